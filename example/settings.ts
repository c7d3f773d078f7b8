// The example app's environment, validated: a bad value stops the start with
// a message naming the variable.

import {dataSourceConfigFromUrl} from '../src/extension';

export interface ExampleSettings {
  port: number;
  host?: string;
  databaseUrl?: string;
  instanceId?: string;
  demoLocks: string[];
  /** ms between the demo job's fenced writes while master; off when undefined. */
  fencedWriteInterval?: number;
  /** Cron pattern (with seconds) of the class-based cron job DEMO-CRON; off when undefined. */
  demoCron?: string;
  /** DEMO_CRON_MISSED: what a new DEMO-CRON master does with the occurrences nobody fired (default skip). */
  demoCronMissed: 'skip' | 'once' | 'all';
  /** DEMO_GROUP=<name>:<count>: a balanced group of resources r0..r<count-1>. */
  demoGroup?: {groupName: string; count: number};
  /** DEMO_QUORUM=<n>: the DEMO_LOCKS masters (and DEMO_GROUP) get minMembers n. */
  demoQuorum?: number;
  /** DEMO_QUEUE=<name>: a persisted queue, and POST /demo/tasks. */
  demoQueue?: string;
  /** DEMO_TASK_MS: how long a demo task takes (default 20 ms). */
  demoTaskMs: number;
  /** DEMO_CHECKPOINT=1: the DEMO_LOCKS masters save {count} every 200 ms. */
  demoCheckpoint: boolean;
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): ExampleSettings {
  const port = env.PORT?.trim() ? Number(env.PORT) : 3000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be an integer from 0 to 65535, got "${env.PORT}"`);
  }
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl) dataSourceConfig({databaseUrl}); // validates
  const instanceId = env.INSTANCE_ID?.trim() || undefined;
  if (instanceId && instanceId.length > 255) {
    throw new Error('INSTANCE_ID must be at most 255 characters');
  }
  const demoLocks = (env.DEMO_LOCKS ?? 'JOB-SCHEDULER').split(',').map(s => s.trim());
  if (demoLocks.some(name => !name || name.length > 255)) {
    throw new Error(
      `DEMO_LOCKS must be comma-separated lock names of 1 to 255 characters, got "${env.DEMO_LOCKS}"`,
    );
  }
  const rawInterval = env.DEMO_FENCED_WRITE_INTERVAL?.trim();
  const fencedWriteInterval = rawInterval ? Number(rawInterval) : undefined;
  if (fencedWriteInterval !== undefined && !isPositiveInteger(fencedWriteInterval)) {
    throw new Error(
      `DEMO_FENCED_WRITE_INTERVAL must be a positive integer of ms, got "${rawInterval}"`,
    );
  }
  const demoCron = env.DEMO_CRON?.trim() || undefined;
  if (demoCron) checkCronPattern(demoCron);
  const demoCronMissed = (env.DEMO_CRON_MISSED?.trim() ||
    'skip') as ExampleSettings['demoCronMissed'];
  if (!['skip', 'once', 'all'].includes(demoCronMissed)) {
    throw new Error(`DEMO_CRON_MISSED must be skip, once or all, got "${env.DEMO_CRON_MISSED}"`);
  }
  const demoGroup = readDemoGroup(env.DEMO_GROUP);
  const rawQuorum = env.DEMO_QUORUM?.trim();
  const demoQuorum = rawQuorum ? Number(rawQuorum) : undefined;
  if (demoQuorum !== undefined && !(isPositiveInteger(demoQuorum) && demoQuorum <= 1000)) {
    throw new Error(`DEMO_QUORUM must be an integer from 1 to 1000, got "${rawQuorum}"`);
  }
  const demoQueue = env.DEMO_QUEUE?.trim() || undefined;
  if (demoQueue && demoQueue.length > 255) {
    throw new Error(
      `DEMO_QUEUE must be a queue name of 1 to 255 characters, got "${env.DEMO_QUEUE}"`,
    );
  }
  const rawTaskMs = env.DEMO_TASK_MS?.trim();
  const demoTaskMs = rawTaskMs ? Number(rawTaskMs) : 20;
  if (!(Number.isInteger(demoTaskMs) && demoTaskMs >= 0 && demoTaskMs <= 3600000)) {
    throw new Error(`DEMO_TASK_MS must be an integer of ms from 0 to 3600000, got "${rawTaskMs}"`);
  }
  const rawCheckpoint = env.DEMO_CHECKPOINT?.trim() ?? '';
  if (!['', '0', '1'].includes(rawCheckpoint)) {
    throw new Error(`DEMO_CHECKPOINT must be 1 or 0, got "${env.DEMO_CHECKPOINT}"`);
  }
  return {
    demoCheckpoint: rawCheckpoint === '1',
    demoQueue,
    demoTaskMs,
    demoGroup,
    demoQuorum,
    port,
    host: env.HOST?.trim() || undefined,
    databaseUrl,
    instanceId,
    demoLocks,
    fencedWriteInterval,
    demoCron,
    demoCronMissed,
  };
}

function readDemoGroup(raw: string | undefined): ExampleSettings['demoGroup'] {
  const value = raw?.trim();
  if (!value) return undefined;
  const match = /^([^:/]{1,200}):(\d{1,5})$/.exec(value);
  const name = match?.[1].trim();
  const count = match ? Number(match[2]) : NaN;
  if (!name || !(count >= 1 && count <= 10000)) {
    throw new Error(
      `DEMO_GROUP must be <name>:<count>, a name without ":" or "/" and a count from 1 to 10000, like "TENANTS:100", got "${raw}"`,
    );
  }
  return {groupName: name, count};
}

function checkCronPattern(pattern: string): void {
  try {
    const {CronTime} = require('cron');
    new CronTime(pattern);
  } catch (err) {
    throw new Error(
      `DEMO_CRON must be a cron pattern with seconds, like "*/10 * * * * *", got "${pattern}": ${err.message ?? err}`,
    );
  }
}

function isPositiveInteger(value: number): boolean {
  return Number.isInteger(value) && value > 0;
}

/**
 * The datasource for DATABASE_URL, or the memory connector without one (the
 * package's own mapping, which `master-job-run` uses too).
 */
export function dataSourceConfig({
  databaseUrl,
  instanceId,
}: Pick<ExampleSettings, 'databaseUrl' | 'instanceId'> = {}): Record<string, unknown> {
  if (!databaseUrl) return {name: 'db', connector: 'memory'};
  return dataSourceConfigFromUrl(databaseUrl, {instanceId});
}
