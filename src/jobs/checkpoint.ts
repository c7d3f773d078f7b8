// Checkpoints: the progress a master saves for its lock, so the next master
// resumes where the last one stopped (`startMaster({checkpoint: true})`).
// A master starts by claiming the lock's checkpoint row with its fencing
// token and reading it (ctx.checkpoint); a save writes only where the row
// still has that token, so a master that lost the lock cannot overwrite the
// progress of the next. The other replicas hear of each save (`synchronize`
// on the handle): at once on PostgreSQL, at their next check elsewhere.
// Stamps and the watch's timer are the executor's clock's.

import debugFactory from 'debug';
import {CheckpointStore, parse} from '../store/checkpoint-store';
import {Clock, Master, MasterJob, MasterJobContext, TimerHandle} from '../types';

const debug = debugFactory('loopback:master-job-executor:checkpoint');

/**
 * The job as the election runs it: its start waits for the claim, and both
 * start and stop get the checkpoint and saveCheckpoint. A failed claim is a
 * failed start (the lock is released; the replica backs off).
 */
export function withCheckpoint(
  job: MasterJob,
  store: CheckpointStore,
  announce: (lockName: string) => void,
): MasterJob {
  let checkpoint: unknown;
  const extend = (ctx: MasterJobContext): MasterJobContext => ({
    ...ctx,
    checkpoint,
    saveCheckpoint: async (value: unknown) => {
      if (ctx.signal.aborted && ctx.reason === undefined) {
        throw new Error(`not master of "${ctx.lockName}" any more: checkpoint not saved`);
      }
      await store.save(ctx.lockName, ctx.fencingToken, ctx.instanceId, value);
      checkpoint = value;
      announce(ctx.lockName);
    },
  });
  return {
    async start(ctx) {
      checkpoint = await store.claim(ctx.lockName, ctx.fencingToken);
      debug('%s: token %d starts from %j', ctx.lockName, ctx.fencingToken, checkpoint);
      await job.start(extend(ctx));
    },
    async stop(ctx) {
      await job.stop?.(extend(ctx));
    },
  };
}

/**
 * Tells a non-master handle of each save: `synchronize` with the value.
 * Reads the row when told (a NOTIFY) and at every `interval`; emits only
 * what changed since it last looked. Stopped with its election, whose
 * timers keep the process alive meanwhile anyway.
 */
export class CheckpointWatch {
  private seen: string | undefined;
  private timer: TimerHandle | undefined;
  private reading = false;

  constructor(
    private readonly handle: Master,
    private readonly store: CheckpointStore,
    private readonly interval: number,
    private readonly clock: Clock,
  ) {
    this.schedule();
  }

  /** A save was announced, or it is time to look. */
  async look(): Promise<void> {
    if (this.reading || this.handle.isMaster || this.handle.state === 'stopped') return;
    this.reading = true;
    try {
      const row = await this.store.read(this.handle.lockName);
      const mark = row?.savedAt
        ? `${row.fencingToken}/${new Date(row.savedAt).getTime()}`
        : undefined;
      if (row && mark !== undefined && mark !== this.seen && !this.handle.isMaster) {
        this.seen = mark;
        this.handle.emit('synchronize', parse(row), Number(row.fencingToken));
      }
    } catch (err) {
      debug('%s: reading the checkpoint failed: %s', this.handle.lockName, err);
    } finally {
      this.reading = false;
    }
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      void this.look().finally(() => {
        if (this.timer !== undefined && this.handle.state !== 'stopped') this.schedule();
      });
    }, this.interval);
  }
}
