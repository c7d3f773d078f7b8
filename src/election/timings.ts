// The timing parameters of an election and the rules between them: defaults,
// environment, app configuration and options merged per parameter (options >
// environment > app configuration > default), checked against the invariants
// of election.ts, and the quantities derived from them.

import {ElectionTimings} from '../types';

/** Granularity of takeover times and deadlines, in ms (see invariant 6). */
export const TICK = 10;

/** Share of the lease the master gives up before others may take over. */
export const SAFETY_MARGIN_RATIO = 0.2;

export function safetyMargin(t: ElectionTimings): number {
  return t.leaseDuration * SAFETY_MARGIN_RATIO;
}

/** Delay between renewal retries: R retries fit between H and the deadline. */
export function renewalRetryDelay(t: ElectionTimings): number {
  const room = t.leaseDuration - safetyMargin(t) - t.heartbeatInterval;
  return room / (t.maxHeartbeatRetryCount + 1);
}

type TimingName = keyof ElectionTimings;

export const TIMING_DEFAULTS: Readonly<Omit<ElectionTimings, 'leaseDuration'>> = {
  initDelay: 1000,
  checkMasterInterval: 30000,
  heartbeatInterval: 8000,
  maxHeartbeatRetryCount: 3,
  stopTimeout: 10000,
};

/** leaseDuration defaults to this many heartbeatIntervals, after merging. */
export const LEASE_HEARTBEATS = 3;

export const TIMING_ENV_VARIABLES: Readonly<Record<TimingName, string>> = {
  initDelay: 'INIT_DELAY',
  checkMasterInterval: 'CHECK_MASTER_INTERVAL',
  heartbeatInterval: 'MASTER_JOB_HEARTBEAT_INTERVAL',
  maxHeartbeatRetryCount: 'MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT',
  leaseDuration: 'MASTER_JOB_LEASE_DURATION',
  stopTimeout: 'MASTER_JOB_STOP_TIMEOUT',
};

export const TIMING_NAMES = Object.keys(TIMING_ENV_VARIABLES) as TimingName[];

/** Node's timers overflow above this. */
export const MAX_DELAY = 2 ** 31 - 1;

/** A source of timing values, with the words that name a value of it in errors. */
export interface TimingSource {
  values: Partial<Record<TimingName, unknown>>;
  describe(name: TimingName): string;
}

/** Parses the timing variables present in `env`; throws naming the variable. */
export function timingsFromEnv(env: NodeJS.ProcessEnv): Partial<ElectionTimings> {
  const values: Partial<ElectionTimings> = {};
  for (const name of TIMING_NAMES) {
    const variable = TIMING_ENV_VARIABLES[name];
    const raw = env[variable];
    if (raw === undefined || raw.trim() === '') continue;
    if (!/^\s*\d+(\.\d+)?\s*$/.test(raw)) {
      throw new Error(
        `Environment variable ${variable} must be a number of ${unit(name)}, got "${raw}"`,
      );
    }
    values[name] = checkValue(name, Number(raw), `environment variable ${variable}`);
  }
  return values;
}

/**
 * Merges the sources, highest first, and validates the result.
 * Derived values (leaseDuration) are computed after merging, so an option that
 * changes heartbeatInterval also changes the default lease.
 */
export function resolveTimings(sources: TimingSource[]): ElectionTimings {
  const pick = (name: TimingName): number | undefined => {
    for (const source of sources) {
      const value = source.values[name];
      if (value !== undefined) return checkValue(name, value, source.describe(name));
    }
    return undefined;
  };
  const merged = {} as ElectionTimings;
  for (const name of TIMING_NAMES) {
    if (name === 'leaseDuration') continue;
    merged[name] = pick(name) ?? TIMING_DEFAULTS[name];
  }
  merged.leaseDuration = pick('leaseDuration') ?? LEASE_HEARTBEATS * merged.heartbeatInterval;
  checkInvariants(merged);
  return merged;
}

function checkValue(name: TimingName, value: unknown, where: string): number {
  const isCount = name === 'maxHeartbeatRetryCount';
  const mayBeZero = isCount || name === 'initDelay';
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (value === 0 && !mayBeZero) ||
    (isCount && !Number.isInteger(value)) ||
    value > MAX_DELAY
  ) {
    const expected = isCount
      ? 'a non-negative integer'
      : `a ${mayBeZero ? 'non-negative' : 'positive'} finite number of milliseconds (at most ${MAX_DELAY})`;
    throw new Error(`${where} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

function checkInvariants(t: ElectionTimings): void {
  const usable = t.leaseDuration * (1 - SAFETY_MARGIN_RATIO);
  if (t.heartbeatInterval >= usable) {
    throw new Error(
      `heartbeatInterval (${t.heartbeatInterval} ms) must be less than leaseDuration ` +
        `minus its ${SAFETY_MARGIN_RATIO * 100}% safety margin (${usable} ms of ` +
        `leaseDuration ${t.leaseDuration} ms): the master must renew, and retry, ` +
        `before the others may consider its lease expired`,
    );
  }
}

function unit(name: TimingName): string {
  return name === 'maxHeartbeatRetryCount' ? 'retries' : 'milliseconds';
}
