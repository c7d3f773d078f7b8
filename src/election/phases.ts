// The phases of an election: waiting for initDelay, campaigning, mastership,
// a new object for each; each holds the one step it waits to run, and its
// identity tells a current continuation from a stale one (invariant 9, see election.ts).

import {FreedLock, LockRecord} from '../store/lock-store';
import {MasterState, StopReason} from '../types';
import {SharedTimer, SharedTimers} from '../clock';

/** @internal Why a mastership ended: a stop reason, or a start() that failed. */
export type ResignReason = StopReason | 'startFailed';

/**
 * What a step of the campaign leads to; plan() turns it into the next step
 * and its time.
 * @internal
 */
export type Next =
  /** the next poll on the grid of C, or the observed lease's expiry if sooner */
  | 'poll'
  /** read again at once */
  | 'now'
  /** read again after the back-off of the setbacks so far */
  | 'backoff'
  /** a previous start() still runs: read at the next poll, no takeover */
  | 'busy'
  /** start() failed: read after C, deaf to wakes until then */
  | 'startFailed';

/**
 * What the election does, one object per campaign or mastership: its
 * identity tells a current continuation from a stale one (invariant 9). It
 * holds the one step waiting for its time, which a wake may replace.
 */
abstract class Phase<T> {
  abstract readonly state: MasterState;
  /** Told of a change while a step ran: the next one is due at once. */
  woken = false;
  private over = false;
  private timer: SharedTimer | undefined;
  /** Ends the wait: runs the given step instead of the waiting one, or none. */
  private cut: ((step?: () => Promise<T>) => void) | undefined;

  constructor(private readonly timers: SharedTimers) {}

  /** True unless a step waits for its time: one runs, or is about to be scheduled. */
  get busy(): boolean {
    return this.cut === undefined;
  }

  /**
   * Runs `step` at `time`, unless runNow() runs another first; resolves to
   * what the step that ran resolves to, or to undefined if the phase ends.
   */
  schedule(time: number, step: () => Promise<T>): Promise<T | undefined> {
    if (this.over) return Promise.resolve(undefined);
    return new Promise(resolve => {
      this.cut = chosen => {
        if (this.timer !== undefined) this.timers.cancel(this.timer);
        this.timer = this.cut = undefined;
        resolve(chosen?.());
      };
      this.timer = this.timers.at(time, () => {
        this.timer = undefined;
        this.cut?.(step);
      });
    });
  }

  /** Runs `step` now (synchronously), in place of the waiting one. */
  runNow(step: () => Promise<T>): void {
    this.cut?.(step);
  }

  /** The phase is over: the waiting step never runs, nothing more is scheduled. */
  end(): void {
    this.over = true;
    this.cut?.();
  }
}

/** @internal Waiting for initDelay. */
export class Starting extends Phase<boolean> {
  readonly state = 'idle';
}

/** @internal Not master: polling the lock, taking it over when free or expired. */
export class Campaigning extends Phase<Next | Mastership> {
  readonly state = 'slave';
  /** The record of another holder, and when we received it. */
  observed: {lock: LockRecord; at: number} | undefined;
  /** Since when this replica has seen no live master (lock free or expired). */
  leaderlessSince: number | undefined;
  /** No campaigning, and deaf to wakes, before this time: after a failed start(). */
  quietUntil = 0;
  /** A release told while a step ran: the next step takes it over unread. */
  freed: FreedLock | undefined;
}

/** @internal Master: renewing, until the mastership ends. */
export class Mastership extends Phase<number | undefined> {
  readonly state = 'master';
  readonly controller = new AbortController();
  failures = 0;
  /** Whether a renewal landed: until then, a disable waits for one (invariant 7). */
  renewed = false;
  deadlineTimer: SharedTimer | undefined;
  /** Settles with whether start() succeeded. */
  started = Promise.resolve(false);
  /** Resolves, when the mastership ends, to why. */
  readonly ended: Promise<ResignReason>;
  settle!: (reason: ResignReason) => void;

  constructor(
    timers: SharedTimers,
    readonly lock: LockRecord,
    /** When the last successful write of the record (acquire or renewal) was sent. */
    public renewedAt: number,
    public deadline: number,
  ) {
    super(timers);
    this.ended = new Promise(resolve => (this.settle = resolve));
  }
}
