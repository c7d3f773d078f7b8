// The LockNotifier contract: how replicas wake each other when a lock is
// released, disabled or enabled, so that handoff, disable and enable do not
// wait for a polling tick. Polling stays the fallback: a lost notification
// only costs latency. The transports: in-process (local.ts), and one per
// database dialect across processes (PostgreSQL: store/postgres/
// postgres-notifier.ts; MySQL/MariaDB: store/mysql/mysql-doorbell.ts).
// Interfaces only.

import type {LockChange} from '../store/lock-store';

/** Called with the lock that changed, or undefined when any may have (after a reconnect). */
export type ChangeListener = (change: LockChange | undefined) => void;

export interface LockNotifier {
  /** Tell every replica that these locks changed; never throws. */
  publish(changes: LockChange[]): void;
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}
