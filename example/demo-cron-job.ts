import {BindingKey, inject} from '@loopback/core';
import {CronContext, MasterCronJob, MasterCronOptions, masterJob, MasterJobContext} from '../src';
import {printEvent, printLine} from './demo-job';

export const DEMO_CRON_LOCK = 'DEMO-CRON';
export const DEMO_CRON_PATTERN = BindingKey.create<string>('example.demoCronPattern');
export const DEMO_CRON_MISSED =
  BindingKey.create<MasterCronOptions['missed']>('example.demoCronMissed');

/**
 * A class-based master job (`@masterJob`, registered with `app.service()`)
 * that is also a cluster-singleton cron: it fires on the master only, one JSON
 * line per firing.
 */
@masterJob({lockName: DEMO_CRON_LOCK})
export class DemoCronJob extends MasterCronJob {
  constructor(
    @inject(DEMO_CRON_PATTERN) cronTime: string,
    @inject(DEMO_CRON_MISSED, {optional: true}) missed?: MasterCronOptions['missed'],
  ) {
    super({cronTime, missed});
  }

  start(ctx: MasterJobContext): void {
    super.start(ctx);
    printEvent('start', ctx);
  }

  stop(ctx: MasterJobContext): void {
    super.stop(ctx);
    printEvent('stop', ctx);
  }

  onTick(ctx: CronContext): void {
    printLine({
      event: 'cron',
      lockName: ctx.lockName,
      instanceId: ctx.instanceId,
      fencingToken: ctx.fencingToken,
      scheduledAt: ctx.scheduledAt.toISOString(),
      at: new Date().toISOString(),
      mono: Number(process.hrtime.bigint()) / 1e6,
    });
  }
}
