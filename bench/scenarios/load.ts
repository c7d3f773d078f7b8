// Database load against the number of locks: 3 replicas started at once with
// 1, 10, 100 or 1000 locks; once every lock has a master and the startup
// churn is over (and the server's statistics caught up), a window of
// statements per replica, row writes and CPU, with the rate the protocol
// predicts for how the locks were split.

import {mono, sleep} from '../../cluster-kit';
import {BenchContext, Impl, note} from '../lib/context';
import {Lane, untilServerUp} from '../lib/lane';
import {QUIET_CAP_MS, QUIET_MS, STATS_SETTLE_MS} from '../lib/options';
import {round} from '../lib/stats';
import {measureWindow, restFigures, stopReasons, waitCoverage, waitQuiet} from '../lib/window';

export interface LoadResult {
  locks: number;
  replicas: number;
  windowMs: number;
  /** From start of the replicas until every lock had a master. */
  coverageMs: number | null;
  /** From start until the last start/stop line before QUIET_MS without any (null: never within the cap). */
  settledMs: number | null;
  /** Stop lines until then, by reason: masterships lost in the startup churn. */
  startupStops: Record<string, number>;
  /** Locks each replica ran at the end of the window, most first. */
  mastersPerReplica?: number[];
  /** Statements/s per replica that the protocol predicts for that split (see expectedRate). */
  expectedPerReplica?: number;
  /** Replicas alive at the start of the window. */
  replicasMeasured: number;
  statementsPerSec: number;
  statementsPerSecPerReplica: number;
  /** PostgreSQL: NOTIFYs per second per replica; NaN elsewhere. */
  notifiesPerSecPerReplica?: number;
  rowsWrittenPerSec: number;
  cpuPercentPerReplica: {mean: number; max: number};
  startsInWindow: number;
  stopsInWindow: number;
  overlaps: number;
  unexpectedExits: number;
  /** Locks with exactly one replica running the job at the end of the window. */
  exactlyOne?: number;
}

export async function loadRun(
  ctx: BenchContext,
  impl: Impl,
  locks: number,
  {replicas, windowMs} = ctx.options.plan.load,
): Promise<LoadResult> {
  const settleMs = STATS_SETTLE_MS;
  const names = Array.from({length: locks}, (_, i) => `LOAD${locks}-${impl}-${i}`);
  const lane = new Lane(ctx, impl, `${impl}-load${locks}`, names);
  try {
    const t = mono();
    await lane.ensure(replicas); // all at once, like a deployment
    const covered = await waitCoverage(lane, 60000);
    const coverageMs = covered ? round(mono() - t, 0) : null;
    const quiet = await waitQuiet(lane, QUIET_MS, QUIET_CAP_MS);
    const settledMs = quiet === null ? null : round(mono() - t - QUIET_MS, 0);
    const churn = stopReasons(lane, t, mono());
    let w;
    for (let attempt = 1; ; attempt++) {
      await sleep(settleMs);
      const w0 = mono();
      w = await measureWindow(lane, windowMs);
      if (!ctx.watch.disturbed(w0 - settleMs, mono()) || attempt === 3) break;
      note(
        `  ${impl} ${locks} locks: the database server restarted during the window, measuring again`,
      );
      await untilServerUp(ctx);
      await lane.ensure(replicas);
      await waitCoverage(lane, 60000);
      await waitQuiet(lane, QUIET_MS, QUIET_CAP_MS);
    }
    const exactlyOne = names.filter(name => lane.running(name).length === 1).length;
    return {
      exactlyOne,
      settledMs,
      startupStops: churn,
      locks,
      replicas,
      coverageMs,
      ...restFigures(lane, locks, w),
    };
  } finally {
    await lane.stop();
  }
}
