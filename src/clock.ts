// The package's time: the system clock behind the Clock seam (every timer and
// time read of src/ goes through a Clock, so one fake clock drives them all in
// tests), the one abortable sleep and the one back-off of every retry loop,
// timeouts that mean "outcome unknown", and one timer per instant shared by
// all locks.

import {performance} from 'perf_hooks';
import {Clock, TimerHandle} from './types';

export const systemClock: Clock = {
  now: () => performance.now(),
  date: () => new Date(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: handle => clearTimeout(handle as NodeJS.Timeout),
};

/** Resolves true after `ms` on `clock`, false as soon as `signal` aborts (at once if it has). */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise(resolve => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, {once: true});
  });
}

export interface BackoffOptions {
  /** The first wait, in ms. */
  base: number;
  /** The longest wait, in ms. */
  max: number;
  /** Spreads each wait uniformly over ±this share of it (0.25: 75% to 125%), after the cap. */
  jitter?: number;
}

/**
 * The wait before retry `attempt` (1 for the first) of a loop that backs off:
 * `base` doubled with every attempt, at most `max`. The doubling stops after
 * 16 (65536 × base), so that no attempt count overflows.
 */
export function backoff(attempt: number, {base, max, jitter = 0}: BackoffOptions): number {
  const delay = Math.min(max, base * 2 ** Math.min(attempt - 1, 16));
  return jitter ? delay * (1 - jitter + 2 * jitter * Math.random()) : delay;
}

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
