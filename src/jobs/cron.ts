// A cron schedule as a master job: it ticks only on the master of its lock.

import debugFactory from 'debug';
import {MasterJob, MasterJobContext} from '../types';

const debug = debugFactory('loopback:master-job-executor:cron');

export interface MasterCronOptions {
  /** Cron pattern (with seconds, as the `cron` package takes it), e.g. '0 *\/5 * * * *'. */
  cronTime: string;
  timeZone?: string;
}

interface CronJobLike {
  start(): void;
  stop(): void;
}

/**
 * A cron schedule that fires only on the master of its lock: started when this
 * replica becomes master, stopped the moment it stops being master, resumed on
 * the new master. Firings missed while nobody was master are not replayed.
 * Needs the `cron` package (it comes with @loopback/cron).
 */
export abstract class MasterCronJob implements MasterJob {
  private cron: CronJobLike | undefined;

  constructor(protected readonly cronOptions: MasterCronOptions) {}

  /** One firing, on the master only; `ctx.signal` aborts when mastership ends. */
  abstract onTick(ctx: MasterJobContext): void | Promise<void>;

  start(ctx: MasterJobContext): void {
    const {CronJob} = require('cron') as {CronJob: new (...args: unknown[]) => CronJobLike};
    const tick = async () => {
      if (ctx.signal.aborted) return;
      try {
        await this.onTick(ctx);
      } catch (err) {
        debug('%s: a firing failed: %s', ctx.lockName, err);
      }
    };
    const cron = new CronJob(
      this.cronOptions.cronTime,
      tick,
      null,
      false,
      this.cronOptions.timeZone,
    );
    this.cron = cron;
    ctx.signal.addEventListener('abort', () => cron.stop(), {once: true});
    cron.start();
    debug('%s: schedule %s started', ctx.lockName, this.cronOptions.cronTime);
  }

  stop(ctx: MasterJobContext): void {
    this.cron?.stop();
    this.cron = undefined;
    debug('%s: schedule stopped (%s)', ctx.lockName, ctx.reason);
  }
}

/** A MasterCronJob from a function: `masterJob: masterCron({cronTime}, ctx => ...)`. */
export function masterCron(
  options: MasterCronOptions,
  onTick: (ctx: MasterJobContext) => void | Promise<void>,
): MasterCronJob {
  return new (class extends MasterCronJob {
    onTick(ctx: MasterJobContext) {
      return onTick(ctx);
    }
  })(options);
}
