// Timing parameters: defaults, environment, app configuration and options,
// merged per parameter (options > environment > app configuration > default)
// and checked against the invariants of election.ts.

import {SAFETY_MARGIN_RATIO} from './election';
import {APP_CONFIG_SECTION} from './keys';
import {ElectionTimings, MasterJobExecutorConfig} from './types';

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
const MAX_DELAY = 2 ** 31 - 1;

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

// ---- component-level settings ----

export const DEFAULT_CONTROL_TIMEOUT = 5000;
export const CONTROL_TIMEOUT_ENV_VARIABLE = 'MASTER_JOB_CONTROL_TIMEOUT';

/** controlTimeout: environment > component configuration > application config > default. */
export function resolveControlTimeout(
  env: NodeJS.ProcessEnv,
  component: MasterJobExecutorConfig,
  section: MasterJobExecutorConfig,
): number {
  const raw = env[CONTROL_TIMEOUT_ENV_VARIABLE];
  if (raw !== undefined && raw.trim() !== '') {
    const value = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
    return checkPositive(value, `Environment variable ${CONTROL_TIMEOUT_ENV_VARIABLE}`, raw);
  }
  if (component.controlTimeout !== undefined) {
    return checkPositive(component.controlTimeout, 'Component configuration controlTimeout');
  }
  if (section.controlTimeout !== undefined) {
    return checkPositive(
      section.controlTimeout,
      `Application config ${APP_CONFIG_SECTION}.controlTimeout`,
    );
  }
  return DEFAULT_CONTROL_TIMEOUT;
}

function checkPositive(value: unknown, where: string, raw: unknown = value): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_DELAY) {
    throw new Error(
      `${where} must be a positive number of milliseconds (at most ${MAX_DELAY}), got ${JSON.stringify(raw) ?? String(raw)}`,
    );
  }
  return value;
}

export const ENDPOINT_GROUPS = ['control', 'read', 'health'] as const;
export type EndpointGroup = (typeof ENDPOINT_GROUPS)[number];

/**
 * The strategies per group of endpoints: a list protects control and read
 * (health stays open for probes). Throws, naming the setting, on anything else.
 */
export function resolveAuthentication(
  value: MasterJobExecutorConfig['controllerAuthentication'],
): Partial<Record<EndpointGroup, string[]>> {
  if (value === undefined) return {};
  const strategies = (list: unknown, name: string): string[] | undefined => {
    if (list === undefined) return undefined;
    if (
      !Array.isArray(list) ||
      list.length === 0 ||
      !list.every(s => typeof s === 'string' && s.trim() !== '')
    ) {
      throw new Error(
        `masterJobExecutor ${name} must be a non-empty list of strategy names, got ${JSON.stringify(list)}`,
      );
    }
    return list;
  };
  if (Array.isArray(value)) {
    const list = strategies(value, 'controllerAuthentication');
    return {control: list, read: list};
  }
  if (value === null || typeof value !== 'object') {
    throw new Error(
      'masterJobExecutor controllerAuthentication must be a list of strategy names or ' +
        `{control, read, health} lists, got ${JSON.stringify(value)}`,
    );
  }
  const unknown = Object.keys(value).filter(
    k => !(ENDPOINT_GROUPS as readonly string[]).includes(k),
  );
  if (unknown.length) {
    throw new Error(
      `masterJobExecutor controllerAuthentication has unknown group ${unknown.join(', ')}: ` +
        `use ${ENDPOINT_GROUPS.join(', ')}`,
    );
  }
  const groups: Partial<Record<EndpointGroup, string[]>> = {};
  for (const group of ENDPOINT_GROUPS) {
    const list = strategies(value[group], `controllerAuthentication.${group}`);
    if (list) groups[group] = list;
  }
  return groups;
}
