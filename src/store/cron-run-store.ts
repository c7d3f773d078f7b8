// The claims of a schedule's occurrences: the CronRunStore contract that
// MasterCronJob (jobs/cron.ts) relies on, its implementation on the component's
// repository, and the retry of their database calls while master.

import debugFactory from 'debug';
import {backoff, sleep} from '../clock';
import {MasterCronRun} from '../models/master-cron-run.model';
import {Clock, MasterJobContext} from '../types';
import type {CronRunRepository} from './dialect';
import {isDuplicate, isRowError} from './errors';

const debug = debugFactory('loopback:master-job-executor:cron');

/**
 * One row per occurrence, keyed by lock name and scheduled time: the master
 * claims an occurrence before it fires it, so no occurrence fires twice in
 * the cluster; the row then records the firing's outcome.
 */
export interface CronRunStore {
  /**
   * Claims an occurrence for this master: undefined if it was claimed
   * already by another (fired elsewhere). A claim whose outcome is unknown
   * (a connection cut under it) is looked up and tried again, backing off,
   * while this replica is master: it may have landed, and then it is ours.
   * Given up only when the mastership ends (the next master fires it, as
   * missed) or the database refuses the row itself: an occurrence skipped by
   * a live master would be lost, the next one's catch-up starting after it.
   */
  claim(ctx: MasterJobContext, scheduledAt: Date): Promise<MasterCronRun | undefined>;
  /** Records how the firing of a claimed occurrence ended ('ok' or the error). */
  finish(run: MasterCronRun, outcome: string): Promise<void>;
  /** The latest occurrence claimed, if any. */
  latest(lockName: string): Promise<Date | undefined>;
  /** The last `limit` runs, latest first (the status endpoint). */
  recent(lockName: string, limit?: number): Promise<MasterCronRun[]>;
}

/** Back-off of a database call retried while master (a claim, the read of the missed ones). */
const RETRY = {base: 100, max: 1000};

/** The CronRunStore on the component's MasterCronRun repository, for any connector. */
export class RepositoryCronRunStore implements CronRunStore {
  constructor(
    private readonly rows: CronRunRepository,
    private readonly clock: Clock,
  ) {}

  async claim(ctx: MasterJobContext, scheduledAt: Date): Promise<MasterCronRun | undefined> {
    const id = `${ctx.lockName}\u001f${scheduledAt.toISOString()}`;
    const ours = (row: MasterCronRun | null) =>
      row && row.instanceId === ctx.instanceId && row.fencingToken === ctx.fencingToken
        ? row
        : undefined;
    let unknown = false; // an attempt failed: it may have landed
    return whileMaster(this.clock, ctx, `claiming ${id}`, async () => {
      try {
        const found = unknown ? await this.rows.findOne({where: {id}}) : null;
        if (found) return ours(found);
        return await this.rows.create({
          id,
          lockName: ctx.lockName,
          scheduledAt,
          fencingToken: ctx.fencingToken,
          instanceId: ctx.instanceId,
          startedAt: this.clock.date(),
        });
      } catch (err) {
        // Taken: by another master, or by this one's other path to the same occurrence (its
        // timer and a catch-up) - except after an attempt of unknown outcome, which may be it.
        if (isDuplicate(err))
          return unknown ? ours(await this.rows.findOne({where: {id}})) : undefined;
        unknown = true;
        throw err;
      }
    });
  }

  async finish(run: MasterCronRun, outcome: string): Promise<void> {
    await this.rows.updateAll({finishedAt: this.clock.date(), outcome}, {id: run.id});
  }

  async latest(lockName: string): Promise<Date | undefined> {
    const row = await this.rows.findOne({where: {lockName}, order: ['scheduledAt DESC']});
    return row ? new Date(row.scheduledAt) : undefined;
  }

  recent(lockName: string, limit = 10): Promise<MasterCronRun[]> {
    return this.rows.find({where: {lockName}, order: ['scheduledAt DESC'], limit});
  }
}

/**
 * Runs `call` until it succeeds, backing off (100 ms doubling to 1 s), while
 * this replica is master; throws its last error once the mastership ended,
 * or at once an error of the row itself, which would come back every time.
 */
export async function whileMaster<T>(
  clock: Clock,
  ctx: MasterJobContext,
  what: string,
  call: () => Promise<T>,
): Promise<T> {
  for (let failures = 1; ; failures++) {
    try {
      return await call();
    } catch (err) {
      if (isRowError(err)) throw err;
      const wait = backoff(failures, RETRY);
      debug('%s: %s failed, again in %d ms: %s', ctx.lockName, what, wait, err);
      if (!(await sleep(clock, wait, ctx.signal))) throw err;
    }
  }
}
