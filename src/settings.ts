// The component-level settings that are not timings: the REST controller's
// database timeout and its authentication, the migration lock, parsed and
// validated with messages that name the setting.

import {MAX_DELAY} from './election/timings';
import {MasterJobExecutorConfig} from './types';

/** Name of the application config section (`new App({masterJobExecutor: {...}})`). */
export const APP_CONFIG_SECTION = 'masterJobExecutor';

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

/** migrationLock: true unless set to false. */
export function resolveMigrationLock(settings: MasterJobExecutorConfig): boolean {
  const value = settings.migrationLock;
  if (value === undefined) return true;
  if (typeof value !== 'boolean') {
    throw new Error(
      `masterJobExecutor migrationLock must be true or false, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

export const LISTEN_URL_ENV_VARIABLE = 'MASTER_JOB_LISTEN_URL';

/**
 * listenUrl (PostgreSQL: a direct connection for LISTEN, beside a datasource
 * that goes through a pooler): environment > component configuration >
 * application config; undefined when none is set.
 */
export function resolveListenUrl(
  env: NodeJS.ProcessEnv,
  component: MasterJobExecutorConfig,
  section: MasterJobExecutorConfig,
): string | undefined {
  const sources: [unknown, string][] = [
    [env[LISTEN_URL_ENV_VARIABLE] || undefined, `Environment variable ${LISTEN_URL_ENV_VARIABLE}`],
    [component.listenUrl, 'Component configuration listenUrl'],
    [section.listenUrl, `Application config ${APP_CONFIG_SECTION}.listenUrl`],
  ];
  const found = sources.find(([value]) => value !== undefined);
  if (!found) return undefined;
  const [value, where] = found;
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || !['postgres:', 'postgresql:'].includes(url.protocol) || !url.hostname) {
    throw new Error(
      `${where} must be a PostgreSQL URL (postgres://user:password@host:port/database), got ${
        typeof value === 'string'
          ? JSON.stringify(value.replace(/\/\/[^@/]*@/, '//***@'))
          : String(value)
      }`,
    );
  }
  return value as string;
}
