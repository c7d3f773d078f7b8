// The LockNotifier contract: how replicas wake each other when a lock is
// released, disabled or enabled, so that handoff, disable and enable do not
// wait for a polling tick. Polling stays the fallback: a lost notification
// only costs latency. The transports: in-process (local.ts), and one per
// database dialect across processes (PostgreSQL: store/postgres/
// postgres-notifier.ts; MySQL/MariaDB: store/mysql/mysql-doorbell.ts).
// Interfaces only.

import type {WakeUp} from './messages';

/** Called with each wake-up heard; `{kind: 'anything'}` when any lock may have changed (after a reconnect). */
export type ChangeListener = (message: WakeUp) => void;

export interface LockNotifier {
  /** Tell every replica these wake-ups; never throws. */
  publish(messages: WakeUp[]): void;
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}
