// Time and waiting for the cluster kit, the tests, the benchmark and the
// chaos script: one monotonic clock (`mono`, CLOCK_MONOTONIC in ms, the clock
// the example app and the baseline replica print as `mono`), `sleep`, the one
// polling wait (`waitFor`) and its dual (`holdsFor`).

/** CLOCK_MONOTONIC in ms, shared by every process of this host. */
export const mono = (): number => Number(process.hrtime.bigint()) / 1e6;

export function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** What `waitFor` treats as "not yet". */
export type NotYet = undefined | null | false;

/**
 * Polls `probe` every `interval` ms until it returns something other than
 * undefined, null or false, and resolves with that value; fails naming
 * `what` once `timeout` ms have passed. The probe runs at least once.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | NotYet | Promise<T | NotYet>,
  timeout: number,
  interval = 10,
): Promise<T> {
  const started = mono();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (mono() - started > timeout) {
      throw new Error(`timed out after ${timeout} ms waiting for: ${what}`);
    }
    await sleep(interval);
  }
}

/** Checks `invariant` every `interval` ms for `duration` ms; fails at the first violation. */
export async function holdsFor(
  what: string,
  invariant: () => boolean,
  duration: number,
  interval = 5,
): Promise<void> {
  const started = mono();
  while (mono() - started < duration) {
    if (!invariant()) throw new Error(`violated after ${Math.round(mono() - started)} ms: ${what}`);
    await sleep(interval);
  }
  if (!invariant()) throw new Error(`violated at the end: ${what}`);
}
