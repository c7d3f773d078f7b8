import {MasterJob, MasterJobContext} from '../src';
import {FencedResourceRepository} from './repositories/fenced-resource.repository';

/** CLOCK_MONOTONIC in ms: comparable between processes of one host. */
const mono = (): number => Number(process.hrtime.bigint()) / 1e6;

export function printLine(line: object): void {
  process.stdout.write(JSON.stringify(line) + '\n');
}

/** One JSON line per start and stop, on stdout (docs/example-app.md). */
export function printEvent(event: 'start' | 'stop', ctx: MasterJobContext): void {
  printLine({
    event,
    lockName: ctx.lockName,
    instanceId: ctx.instanceId,
    fencingToken: ctx.fencingToken,
    reason: ctx.reason ?? null,
    ...(ctx.resourceId !== undefined ? {resourceId: ctx.resourceId} : {}),
    ...(event === 'start' && ctx.saveCheckpoint ? {checkpoint: ctx.checkpoint ?? null} : {}),
    at: new Date().toISOString(),
    mono: mono(),
  });
}

export interface DemoJobOptions {
  /** While master, write to this resource every `fencedWriteInterval` ms. */
  fencedResource?: FencedResourceRepository;
  fencedWriteInterval?: number;
  /** While master, save `{count}` as the lock's checkpoint every 200 ms (startMaster({checkpoint: true})). */
  checkpoint?: boolean;
}

/** A job that says when it runs and, optionally, makes fenced writes meanwhile. */
export function createDemoJob(options: DemoJobOptions = {}): MasterJob {
  const {fencedResource, fencedWriteInterval} = options;
  return {
    start: ctx => {
      printEvent('start', ctx);
      if (fencedResource && fencedWriteInterval) {
        void writeWhileMaster(fencedResource, fencedWriteInterval, ctx);
      }
      if (options.checkpoint) void countWhileMaster(ctx);
    },
    stop: ctx => printEvent('stop', ctx),
  };
}

/** A job that only says when it runs. */
export const demoJob: MasterJob = createDemoJob();

/**
 * Writes every `interval` ms until `ctx.signal` aborts, one JSON line per
 * write: `accepted: false` is a write the fencing token rejected, and one with
 * `error` has an unknown outcome (a timed-out UPDATE may still land).
 */
async function writeWhileMaster(
  repository: FencedResourceRepository,
  interval: number,
  ctx: MasterJobContext,
): Promise<void> {
  const {lockName, instanceId, fencingToken} = ctx;
  while (!ctx.signal.aborted) {
    const monoBefore = mono();
    let accepted = false;
    let error: string | undefined;
    try {
      accepted = await repository.fencedWrite(ctx);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const monoAfter = mono();
    const line = {
      event: 'write',
      lockName,
      instanceId,
      fencingToken,
      accepted,
      monoBefore,
      monoAfter,
    };
    printLine(error ? {...line, error} : line);
    await new Promise(resolve => setTimeout(resolve, interval));
  }
}

/** Counts on from the checkpoint, saving `{count}` every 200 ms until the mastership ends. */
async function countWhileMaster(ctx: MasterJobContext): Promise<void> {
  let count = (ctx.checkpoint as {count?: number} | undefined)?.count ?? 0;
  while (!ctx.signal.aborted) {
    await new Promise(resolve => setTimeout(resolve, 200));
    if (ctx.signal.aborted) break;
    count++;
    await ctx.saveCheckpoint?.({count}).catch(() => {}); // refused once not master: the next one counts on
  }
}
