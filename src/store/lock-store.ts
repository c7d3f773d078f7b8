// The LockStore contract, by concern: what an election needs, what a group
// adds, and the operators' writes to a lock's control. Every write to a lock
// is a compare-and-set on its row; a lock's row is never deleted (only the
// rows of members long gone are), so its fencing token only ever grows.
// Interfaces only.

import type {ControlChange, FreedLock, WakeUp} from '../wake/messages';

export type {ControlChange, FreedLock};

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
  /** The group (or quorum) the row belongs to: a member, or a resource of a group. */
  groupName?: string;
}

export interface LockObservation {
  /** Undefined when no replica has ever held the lock. */
  lock?: LockRecord;
  /** True when an operator disabled the lock. */
  disabled: boolean;
}

export interface Acquired {
  lock: LockRecord;
  /**
   * Whether the lock is disabled, as read after the win (in the statement
   * that won it, or right after): a disable that commits later is heard by
   * the master (see invariant 7 of election.ts).
   */
  disabled: boolean;
}

/** An operator's disable or enable. */
export interface ControlWrite {
  enabled: boolean;
  reason: string;
  updatedAt: Date;
  updatedBy?: string;
}

export interface ControlWritten {
  /** False when the control was already so (a repeat). */
  changed: boolean;
  /** What was announced to the other replicas: the same wakes this process's executor. */
  announced: WakeUp[];
}

export interface RenewResult {
  /** False when the row no longer names this holder and token. */
  renewed: boolean;
  disabled: boolean;
}

/**
 * What one election needs: a lock's row, won, renewed and freed, each write a
 * compare-and-set on what was read.
 */
export interface ElectionStore {
  read(lockName: string): Promise<LockObservation>;
  isDisabled(lockName: string): Promise<boolean>;
  /**
   * Inserts the first row of a lock. Resolves to the record as written, or
   * undefined if a row exists already.
   */
  create(lock: LockRecord): Promise<Acquired | undefined>;
  /**
   * Replaces `expected` by `next` only if the row still has expected's
   * holder, fencing token and renewalId. Resolves to the record as written,
   * or undefined if the row changed. The store may write a higher fencing
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

/**
 * What a group (or a quorum) adds: its members' and resources' rows, read at
 * once, and the rows of members long gone, deleted. Members campaign for
 * their rows through the ElectionStore.
 */
export interface GroupStore {
  /**
   * Every row of a group (its members and its resources): one statement per
   * group, whatever its size.
   */
  readGroup(groupName: string): Promise<LockRecord[]>;
  /**
   * Deletes a row that is still exactly `lock` (same holder, token and
   * renewalId): for the member rows of a group whose members are long gone,
   * never for a lock (its token must only grow). Resolves whether it did.
   */
  forget(lock: LockRecord): Promise<boolean>;
}

/** A lock's control as stored: one row per lock, made by its first disable. */
export interface ControlRecord {
  lockName: string;
  enabled: boolean;
  reason?: string;
  updatedAt?: Date;
  updatedBy?: string;
}

/** What the operators' disable and enable need, and what the status reads. */
export interface ControlStore {
  /**
   * Sets the control of a lock (one row per lock, made by the first disable)
   * unless it is so already, and tells the replicas concerned.
   */
  setControl(lockName: string, write: ControlWrite): Promise<ControlWritten>;
  /**
   * The lock's row once every write under way on it has committed: what a
   * disable reads after it committed, to find a holder that won just before
   * it (PostgreSQL: a locking read, which waits for a takeover in flight).
   */
  readSettled(lockName: string): Promise<LockRecord | undefined>;
  /** The control of a lock; undefined if it was never disabled. */
  readControl(lockName: string): Promise<ControlRecord | undefined>;
  /** Every control, by lockName. */
  listControls(): Promise<ControlRecord[]>;
  /** Every row of the lock table: locks, group resources and group members. */
  listLocks(): Promise<LockRecord[]>;
}

/** The three concerns over one table of locks and one of controls: what a store implements. */
export interface LockStore extends ElectionStore, GroupStore, ControlStore {}
