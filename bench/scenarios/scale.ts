// Scale: many replicas x many locks (10 x 1000; quick 5 x 200), all started
// at once. Once settled as for the load windows, every sampleMs the JSON
// lines must show exactly one replica running each lock's job, and the lock
// table must name that replica; the status endpoint at the end must agree
// with the table.

import {mono, sleep} from '../../cluster-kit';
import {LOCK_TABLE} from '../baseline/schema';
import {BenchContext, Impl, note} from '../lib/context';
import {Lane} from '../lib/lane';
import {QUIET_CAP_MS, QUIET_MS, STATS_SETTLE_MS} from '../lib/options';
import {retrying} from '../lib/server-stats';
import {round} from '../lib/stats';
import {measureWindow, restFigures, stopReasons, waitCoverage, waitQuiet} from '../lib/window';
import {LoadResult} from './load';

export interface ScaleSample {
  atMs: number;
  /** Locks with exactly one replica running the job (JSON lines). */
  exactlyOne: number;
  none: number;
  several: number;
  /** Locks whose row names, as holder, the replica the JSON lines say runs the job. */
  tableAgrees: number;
}

export interface ScaleResult extends Omit<LoadResult, 'coverageMs'> {
  coverageMs: number | null;
  samples: ScaleSample[];
  disturbedByServerRestart: boolean;
  allExactlyOne: boolean;
  statusEndpoint: {locksWithHolder: number; agreesWithTable: boolean} | null;
}

/** Lock name -> holder, as the implementation's lock table says. */
async function holders(ctx: BenchContext, impl: Impl): Promise<Map<string, string>> {
  const sql =
    impl === 'baseline'
      ? `SELECT lock_name AS l, instance_id AS h FROM ${LOCK_TABLE}`
      : ctx.options.backend === 'postgresql'
        ? `SELECT lockname AS l, instanceid AS h FROM masterlock`
        : `SELECT lockName AS l, instanceId AS h FROM MasterLock`;
  const {rows} = await retrying(() => ctx.harnessSql.query(sql));
  return new Map(rows.filter(r => r.h).map(r => [String(r.l), String(r.h)]));
}

async function scaleSample(impl: Impl, lane: Lane, atMs: number): Promise<ScaleSample> {
  const table = await holders(lane.ctx, impl);
  const s: ScaleSample = {
    atMs: round(atMs, 0),
    exactlyOne: 0,
    none: 0,
    several: 0,
    tableAgrees: 0,
  };
  for (const name of lane.lockNames) {
    const running = lane.running(name);
    if (running.length === 0) s.none++;
    else if (running.length > 1) s.several++;
    else {
      s.exactlyOne++;
      if (table.get(name) === running[0].instanceId) s.tableAgrees++;
    }
  }
  return s;
}

/** Whether the status endpoint of a replica alive names the holders the table does. */
async function checkStatusEndpoint(
  impl: Impl,
  lane: Lane,
  names: string[],
): Promise<ScaleResult['statusEndpoint']> {
  try {
    const someone = lane.alive()[0];
    if (!someone) throw new Error('no replica alive');
    const status = (await someone.get('/api/MasterControls/status')) as {
      locks: {lockName: string; holder?: string | null; instance_id?: string; lock_name?: string}[];
    };
    const table = await holders(lane.ctx, impl);
    const mine = status.locks
      .map(l => ({name: l.lockName ?? l.lock_name, holder: l.holder ?? l.instance_id}))
      .filter(l => l.name && names.includes(l.name) && l.holder);
    return {
      locksWithHolder: mine.length,
      agreesWithTable:
        mine.every(l => table.get(l.name!) === l.holder) &&
        mine.length === [...table.keys()].filter(k => names.includes(k)).length,
    };
  } catch (err) {
    note(`  status endpoint: ${err.message}`);
    return null;
  }
}

export async function scaleRun(ctx: BenchContext, impl: Impl): Promise<ScaleResult> {
  const plan = ctx.options.plan.scale;
  const {replicas, locks, sampleMs} = plan;
  // The baseline collapses at this size (its replicas die within seconds): a shorter window.
  const windowMs = impl === 'baseline' ? plan.baselineWindowMs : plan.windowMs;
  const names = Array.from({length: locks}, (_, i) => `SCALE-${impl}-${i}`);
  const lane = new Lane(ctx, impl, `${impl}-scale`, names);
  const samples: ScaleSample[] = [];
  try {
    // All replicas at once, like a deployment.
    const t = mono();
    await lane.ensure(replicas);
    const covered = await waitCoverage(lane, 120000);
    const coverageMs = covered ? round(mono() - t, 0) : null;
    note(
      `  ${impl}: ${replicas} replicas x ${locks} locks started at once; ` +
        (covered
          ? `every lock mastered after ${coverageMs} ms`
          : 'NOT every lock mastered in 120 s'),
    );
    const quiet = await waitQuiet(lane, QUIET_MS, QUIET_CAP_MS);
    const settledMs = quiet === null ? null : round(mono() - t - QUIET_MS, 0);
    const churn = stopReasons(lane, t, mono());
    await sleep(STATS_SETTLE_MS);
    const w0 = mono();
    const w = await measureWindow(lane, windowMs, async total => {
      const t0 = mono();
      while (mono() - t0 < total) {
        await sleep(Math.min(sampleMs, total - (mono() - t0)));
        const s = await scaleSample(impl, lane, mono() - t0);
        samples.push(s);
        note(
          `  ${impl} +${Math.round(s.atMs / 1000)} s: exactly one master ${s.exactlyOne}/${locks}, ` +
            `none ${s.none}, several ${s.several}, table agrees ${s.tableAgrees}`,
        );
      }
    });
    const disturbed = ctx.watch.disturbed(w0, mono());
    if (disturbed) {
      note(
        `  ${impl} scale: the database server restarted during the window (another user): figures disturbed`,
      );
    }
    const statusEndpoint = await checkStatusEndpoint(impl, lane, names);
    return {
      locks,
      replicas,
      coverageMs,
      settledMs,
      startupStops: churn,
      ...restFigures(lane, locks, w),
      samples,
      disturbedByServerRestart: disturbed,
      allExactlyOne: samples.length > 0 && samples.every(s => s.exactlyOne === locks),
      statusEndpoint,
    };
  } finally {
    await lane.stop();
  }
}
