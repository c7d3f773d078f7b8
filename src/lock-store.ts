// The storage the election needs, and nothing more. Every write is a
// compare-and-set on the lock's row; rows are never deleted, so the fencing
// token of a lock only ever grows.

export interface LockRecord {
  lockName: string;
  /** The holder; '' when the lock is free (released). */
  instanceId: string;
  hostname: string;
  fencingToken: number;
  /** Changes on every write: what a non-master watches to see the lock is alive. */
  renewalId: string;
  /** Wall-clock time of the last renewal: informative only, never compared. */
  heartbeatAt: Date;
  acquiredAt: Date;
}

/** What a release leaves on the row of a free lock: enough for a takeover's compare-and-set. */
export type FreedLock = Pick<LockRecord, 'fencingToken' | 'renewalId'>;

export interface LockObservation {
  /** Undefined when no replica has ever held the lock. */
  lock?: LockRecord;
  /** True when an operator disabled the lock. */
  disabled: boolean;
}

export interface Acquired {
  lock: LockRecord;
  /**
   * The control, read as part of the win: on PostgreSQL in the statement that
   * won, elsewhere right after the win, before the store answers (a store that
   * cannot read it releases the lock it won and rejects).
   */
  disabled: boolean;
}

export interface RenewResult {
  /** False when the row no longer names this holder and token. */
  renewed: boolean;
  disabled: boolean;
}

export interface LockStore {
  read(lockName: string): Promise<LockObservation>;
  isDisabled(lockName: string): Promise<boolean>;
  /**
   * Inserts the first row of a lock. Resolves to the record as written, with
   * the control read as part of the win, or undefined if a row exists already.
   */
  create(lock: LockRecord): Promise<Acquired | undefined>;
  /**
   * Replaces `expected` by `next` only if the row still has expected's
   * holder, fencing token and renewalId. Resolves to the record as written,
   * with the control read as part of the win, or undefined if the row changed. The store may write a higher fencing
   * token than next's (to take over many locks in one statement), never a
   * lower one.
   */
  takeOver(expected: LockRecord, next: LockRecord): Promise<Acquired | undefined>;
  /** Writes a new renewalId if the row still has this holder and token. */
  renew(lockName: string, instanceId: string, fencingToken: number): Promise<RenewResult>;
  /**
   * Frees the lock (and changes its renewalId) if the row still has this
   * holder and token. `handOver` (default true): tell the other replicas to
   * take it over at once; false when the lock is disabled, so they need not.
   */
  release(
    lockName: string,
    instanceId: string,
    fencingToken: number,
    handOver?: boolean,
  ): Promise<boolean>;
}
