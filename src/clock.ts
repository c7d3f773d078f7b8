import {performance} from 'perf_hooks';

export type TimerHandle = unknown;

/**
 * Time as the election sees it: a monotonic `now()` and timers. Only the local
 * clock is ever used; wall clocks of other machines are never compared.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock (not wall-clock time). */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

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
