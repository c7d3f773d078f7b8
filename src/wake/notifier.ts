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
  /**
   * Declared by a notifier that hears PostgreSQL's NOTIFY on this channel of
   * its datasource's database (store/postgres/postgres-notifier.ts): a store
   * on that database then sends its wake-ups in the statement of the write
   * they tell of (codec.ts's payload), so they are heard as it commits and
   * only if it does, instead of calling publish() after it. Undefined for
   * any other transport.
   */
  readonly notifyChannel?: string;
}
