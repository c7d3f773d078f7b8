// The election's time: the process's monotonic clock, timeouts that mean
// "outcome unknown", and one timer per instant shared by all locks.

import {performance} from 'perf_hooks';
import {Clock, TimerHandle} from '../types';

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: handle => clearTimeout(handle as NodeJS.Timeout),
};

export class TimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${Math.round(ms)} ms (outcome unknown)`);
  }
}

/**
 * Rejects with a TimeoutError after `ms`. The underlying call is not
 * cancelled: it may still land later, so a timeout means "outcome unknown".
 */
export function withTimeout<T>(
  clock: Clock,
  work: () => Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (!(ms > 0)) return reject(new TimeoutError(what, 0));
    const timer = clock.setTimeout(() => reject(new TimeoutError(what, ms)), ms);
    let call: Promise<T>;
    try {
      call = work();
    } catch (err) {
      call = Promise.reject(err);
    }
    call.then(
      value => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      err => {
        clock.clearTimeout(timer);
        reject(err);
      },
    );
  });
}

interface Instant {
  handle: TimerHandle;
  callbacks: Set<() => void>;
}

/**
 * Runs every callback due at the same instant from one timer. Node fires
 * timers made with slightly different delays in different turns of the event
 * loop; sharing one keeps the elections of many locks in one turn, so that the
 * store can batch their database calls into one statement.
 */
export class SharedTimers {
  private readonly instants = new Map<number, Instant>();
  private turnStartedAt: number | undefined;

  constructor(private readonly clock: Clock) {}

  /**
   * The time of the first call in this turn of the event loop. A loop that
   * starts many locks can take longer than a TICK; rounding its start times
   * from this one keeps them on one instant, so they campaign in one batch.
   */
  turnTime(): number {
    if (this.turnStartedAt === undefined) {
      this.turnStartedAt = this.clock.now();
      setImmediate(() => (this.turnStartedAt = undefined));
    }
    return this.turnStartedAt;
  }

  /**
   * Calls `fn` at `time` (on the clock's scale), or as soon as possible if
   * that has passed; returns what `cancel` takes.
   */
  at(time: number, fn: () => void): SharedTimer {
    // Everything due now runs together, though computed at different moments.
    if (time <= this.clock.now()) time = -Infinity;
    let instant = this.instants.get(time);
    if (!instant) {
      const callbacks = new Set<() => void>();
      const handle = this.clock.setTimeout(
        () => {
          this.instants.delete(time);
          for (const callback of callbacks) {
            try {
              callback();
            } catch (err) {
              queueMicrotask(() => {
                throw err; // as uncaught as from a timer of its own, without skipping the rest
              });
            }
          }
        },
        Math.max(0, time - this.clock.now()),
      );
      instant = {handle, callbacks};
      this.instants.set(time, instant);
    }
    instant.callbacks.add(fn);
    return {time, fn};
  }

  cancel(timer: SharedTimer): void {
    const instant = this.instants.get(timer.time);
    if (!instant?.callbacks.delete(timer.fn) || instant.callbacks.size) return;
    this.clock.clearTimeout(instant.handle);
    this.instants.delete(timer.time);
  }
}

export interface SharedTimer {
  time: number;
  fn: () => void;
}

const sharedTimers = new WeakMap<Clock, SharedTimers>();

/** The SharedTimers of a clock: one set per clock, so per process in production. */
export function sharedTimersOf(clock: Clock): SharedTimers {
  let timers = sharedTimers.get(clock);
  if (!timers) {
    timers = new SharedTimers(clock);
    sharedTimers.set(clock, timers);
  }
  return timers;
}
