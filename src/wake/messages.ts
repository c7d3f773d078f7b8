// The wake-ups: what one replica tells the others (and its own executor) when
// something changed, so they act at once instead of at their next poll. One
// discriminated union on `kind`; every receiver (the executor, an election, a
// group and its membership) handles it in one exhaustive `switch`. Types,
// describe() for debug logs and the exhaustive check only: the wire format is
// codec.ts, the transports notifier.ts names.

// A leaf: the fields it carries are spelled out here (they are those of the
// lock's row, store/lock-store.ts), so that the store's contract can name
// WakeUp without an import cycle.

/** What a release leaves on the row of a free lock: enough for a takeover's compare-and-set. */
export interface FreedLock {
  fencingToken: number;
  renewalId: string;
}

/** A renewal as announced: the holder and token it was made for, and the renewalId it wrote. */
export interface RenewedLock extends FreedLock {
  instanceId: string;
}

/** What an operator's write does to a lock: told to the others as a wake-up of kind `control`. */
export type ControlChange = 'disabled' | 'enabled';

export type WakeUp =
  /**
   * A release freed the lock. `freed`: the token and renewalId the row was
   * left with, so a replica takes it over at once without reading it first
   * (a forged or stale one only fails the takeover).
   */
  | {kind: 'released'; lockName: string; freed: FreedLock}
  /**
   * An operator disabled or enabled the lock: only its master has anything
   * to do on a disable, only the others on an enable. An enable carries
   * `freed` when the lock's row was free as the enable committed (PostgreSQL
   * reads it in the enable's statement): the others take it over unread.
   */
  | {kind: 'control'; lockName: string; control: ControlChange; freed?: FreedLock}
  /**
   * Its holder renewed the lock (PostgreSQL announces every renewal as it
   * commits): the others see the lease is alive without reading it, so they
   * judge its expiry from the last renewal, whatever their polling interval.
   */
  | {kind: 'renewed'; lockName: string; renewed: RenewedLock}
  /** A task was submitted to the queue of this name: only its master has anything to do. */
  | {kind: 'submitted'; lockName: string}
  /** The master of this lock saved a checkpoint: the others read it. */
  | {kind: 'checkpoint'; lockName: string}
  /** A replica joined a group: `lockName` is its member row, which the other members read. */
  | {kind: 'joined'; lockName: string}
  /**
   * Anything may have changed: the transport reconnected (what was sent
   * meanwhile is lost), a payload was too long or not understood, or a MySQL
   * doorbell rang (it carries no payload). Every lock is checked.
   */
  | {kind: 'anything'};

export type WakeUpKind = WakeUp['kind'];

/** The wake-up that names no lock: check them all. */
export const ANYTHING: WakeUp = Object.freeze({kind: 'anything'});

/** One line for a debug log. */
export function describe(message: WakeUp): string {
  switch (message.kind) {
    case 'released':
      return `${message.lockName} released (token ${message.freed.fencingToken})`;
    case 'control':
      return (
        `${message.lockName} ${message.control}` +
        (message.freed ? ` (free, token ${message.freed.fencingToken})` : '')
      );
    case 'renewed':
      return `${message.lockName} renewed by ${message.renewed.instanceId} (token ${message.renewed.fencingToken})`;
    case 'submitted':
      return `${message.lockName}: a task submitted`;
    case 'checkpoint':
      return `${message.lockName}: a checkpoint saved`;
    case 'joined':
      return `${message.lockName} joined`;
    case 'anything':
      return 'anything may have changed';
    default:
      return describe(unknownKind(message));
  }
}

/**
 * The `default` of a switch on `kind`: it does not compile while a kind is
 * left unhandled. At run time (a message of no known kind, from a notifier
 * bound by an app) the receiver treats it as `anything`.
 */
export function unknownKind(message: never): WakeUp {
  void message;
  return ANYTHING;
}
