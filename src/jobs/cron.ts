// A cron schedule as a master job: it fires only on the master of its lock,
// and, with the component's tables, each occurrence once in the cluster: the
// master claims an occurrence (a row keyed by lock name and scheduled time)
// before it fires it, so a failover or a handoff at the wrong instant cannot
// fire it twice. What a new master does with the occurrences that passed
// while nobody was master is `missed`. Occurrences are wall-clock times: the
// schedule reads the executor's clock's date() and waits on its timers.

import debugFactory from 'debug';
import {sleep, systemClock} from '../clock';
import {MasterCronRun} from '../models/master-cron-run.model';
import {CronRunStore, whileMaster} from '../store/cron-run-store';
import {Clock, MasterJob, MasterJobContext} from '../types';

const debug = debugFactory('loopback:master-job-executor:cron');

/** Occurrences a new master fires for 'all' at most: a schedule stopped for long does not flood. */
const MAX_MISSED = 1000;
const MAX_TIMER = 2 ** 31 - 1;

export interface MasterCronOptions {
  /** Cron pattern (with seconds, as the `cron` package takes it), e.g. '0 *\/5 * * * *'. */
  cronTime: string;
  timeZone?: string;
  /**
   * What a new master does with the occurrences that passed since the last
   * one claimed, while nobody was master: 'skip' them (default), fire the
   * latest 'once', or fire 'all' (oldest first, at most 1000).
   */
  missed?: 'skip' | 'once' | 'all';
}

/** What a firing receives: the master's context and the occurrence it fires. */
export interface CronContext extends MasterJobContext {
  /** The occurrence's scheduled time (a missed one is in the past). */
  scheduledAt: Date;
}

interface CronTimeLike {
  getNextDateFrom(start: Date, timeZone?: string): {toJSDate(): Date};
}

/**
 * A cron schedule that fires only on the master of its lock: scheduled when
 * this replica becomes master, stopped the moment it stops being master,
 * resumed on the new master. Needs the `cron` package (it comes with
 * @loopback/cron). Started by the component's executor, each occurrence is
 * claimed in the database first (see CronRunStore); without it, a failover
 * at the instant of an occurrence may fire it twice or not at all.
 */
export abstract class MasterCronJob implements MasterJob {
  /** Set by the executor that starts this job: where occurrences are claimed. */
  runs?: CronRunStore;
  /** Set by the executor that starts this job: its clock (else the system's). */
  clock?: Clock;

  constructor(protected readonly cronOptions: MasterCronOptions) {
    const missed = cronOptions.missed;
    if (missed !== undefined && !['skip', 'once', 'all'].includes(missed)) {
      throw new TypeError(
        `masterCron: missed must be 'skip', 'once' or 'all', got ${String(missed)}`,
      );
    }
    this.cronTime(); // a bad pattern fails here, not at the first mastership
  }

  /** One firing, on the master only; `ctx.signal` aborts when mastership ends. */
  abstract onTick(ctx: CronContext): void | Promise<void>;

  start(ctx: MasterJobContext): void {
    void this.run(ctx);
    debug('%s: schedule %s started', ctx.lockName, this.cronOptions.cronTime);
  }

  /** The schedule's wait ended with `ctx.signal`, which aborts before stop() is called. */
  stop(ctx: MasterJobContext): void {
    debug('%s: schedule stopped (%s)', ctx.lockName, ctx.reason);
  }

  private async run(ctx: MasterJobContext): Promise<void> {
    const clock = this.clock ?? systemClock;
    const cronTime = this.cronTime();
    const next = (after: Date) =>
      cronTime.getNextDateFrom(after, this.cronOptions.timeZone).toJSDate();
    let from = clock.date();
    let missed: Date[] = [];
    try {
      missed = await whileMaster(clock, ctx, 'reading the missed occurrences', () =>
        this.missedOccurrences(ctx, next, clock),
      );
    } catch (err) {
      debug('%s: the missed occurrences could not be read: %s', ctx.lockName, err);
    }
    for (const occurrence of missed) {
      if (ctx.signal.aborted) return;
      await this.fire(ctx, occurrence, clock);
    }
    // The catch-up ran up to the time of its read, which can be after `from`
    // (the read retried): the schedule goes on after what it fired.
    if (missed.length && missed[missed.length - 1] > from) from = missed[missed.length - 1];
    while (!ctx.signal.aborted) {
      const occurrence = next(from);
      const delay = occurrence.getTime() - clock.date().getTime();
      if (delay > 0) {
        // A timer holds at most ~24.8 days, and may fire a millisecond early: look again.
        if (!(await sleep(clock, Math.min(delay, MAX_TIMER), ctx.signal))) return;
        continue;
      }
      from = occurrence; // a firing longer than the period: the next ones fire at once, in order
      await this.fire(ctx, occurrence, clock);
    }
  }

  /** The occurrences to fire now, by `missed`, since the latest one claimed. */
  private async missedOccurrences(
    ctx: MasterJobContext,
    next: (d: Date) => Date,
    clock: Clock,
  ): Promise<Date[]> {
    const policy = this.cronOptions.missed ?? 'skip';
    if (policy === 'skip' || !this.runs) return [];
    const latest = await this.runs.latest(ctx.lockName);
    if (!latest) return [];
    const now = clock.date().getTime();
    const missed: Date[] = [];
    for (let at = next(latest); at.getTime() <= now && missed.length < MAX_MISSED; at = next(at)) {
      missed.push(at);
    }
    return policy === 'once' ? missed.slice(-1) : missed;
  }

  /** Claims the occurrence, then fires it; an occurrence claimed elsewhere is not fired. */
  private async fire(ctx: MasterJobContext, scheduledAt: Date, clock: Clock): Promise<void> {
    // Woken from a pause (SIGSTOP, a starved CPU), this occurrence's timer and the
    // election's deadline may be due together: a timer set now runs after every timer
    // due already, so a mastership that ended meanwhile is seen before the claim
    // (else it claims the occurrence, and nobody fires it).
    await sleep(clock, 0);
    if (ctx.signal.aborted) return;
    let run: MasterCronRun | undefined;
    if (this.runs) {
      try {
        run = await this.runs.claim(ctx, scheduledAt);
      } catch (err) {
        debug(
          '%s: could not claim %s, not fired: %s',
          ctx.lockName,
          scheduledAt.toISOString(),
          err,
        );
        return;
      }
      if (!run) {
        debug('%s: %s was claimed already', ctx.lockName, scheduledAt.toISOString());
        return;
      }
      // The mastership ended while the claim was under way (its reply held up): another
      // master may be firing by now. Claimed, not fired: the row says so (no outcome).
      if (ctx.signal.aborted) return;
    }
    let outcome = 'ok';
    try {
      await this.onTick({...ctx, scheduledAt});
    } catch (err) {
      outcome = String((err as Error)?.message ?? err).slice(0, 1000);
      debug('%s: a firing failed: %s', ctx.lockName, err);
    }
    if (run) {
      await this.runs!.finish(run, outcome).catch(err =>
        debug('%s: could not record the outcome of %s: %s', ctx.lockName, run!.id, err),
      );
    }
  }

  private cronTime(): CronTimeLike {
    const {CronTime} = require('cron') as {
      CronTime: new (pattern: string, timeZone?: string) => CronTimeLike;
    };
    return new CronTime(this.cronOptions.cronTime, this.cronOptions.timeZone);
  }
}

/** A MasterCronJob from a function: `masterJob: masterCron({cronTime}, ctx => ...)`. */
export function masterCron(
  options: MasterCronOptions,
  onTick: (ctx: CronContext) => void | Promise<void>,
): MasterCronJob {
  return new (class extends MasterCronJob {
    onTick(ctx: CronContext) {
      return onTick(ctx);
    }
  })(options);
}
