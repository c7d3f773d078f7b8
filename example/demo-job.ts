import {MasterJob, MasterJobContext} from '../src';

/** One JSON line per start and stop, on stdout (SPEC section 7). */
export function printEvent(event: 'start' | 'stop', ctx: MasterJobContext): void {
  const line = {
    event,
    lockName: ctx.lockName,
    instanceId: ctx.instanceId,
    fencingToken: ctx.fencingToken,
    reason: ctx.reason ?? null,
    at: new Date().toISOString(),
    // CLOCK_MONOTONIC in ms: comparable between processes of one host
    mono: Number(process.hrtime.bigint()) / 1e6,
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}

/** A job that only says when it runs. */
export const demoJob: MasterJob = {
  start: ctx => printEvent('start', ctx),
  stop: ctx => printEvent('stop', ctx),
};
