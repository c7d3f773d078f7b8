// Measuring a lane at rest, for the load and scale scenarios: waiting until
// every lock has a master and the startup churn is over, the stop lines of
// that churn, a window of statements, row writes and CPU, and the statement
// rate each protocol predicts for a split of the locks.

import {mono, sleep, waitFor} from '../../cluster-kit';
import {round} from './stats';
import {Impl} from './context';
import {Lane} from './lane';
import {C, H} from './options';

/** Whether every lock of the lane got a master within `timeoutMs`. */
export function waitCoverage(lane: Lane, timeoutMs: number): Promise<boolean> {
  return waitFor(
    `a master of every lock of ${lane.name}`,
    () => lane.lockNames.every(n => lane.running(n).length > 0),
    timeoutMs,
    100,
  ).then(
    () => true,
    () => false,
  );
}

/**
 * Waits until no job of the lane started or stopped for `quietMs` (startup
 * churn over); resolves with the time waited, or null after `capMs`.
 */
export async function waitQuiet(
  lane: Lane,
  quietMs: number,
  capMs: number,
): Promise<number | null> {
  const mine = new Set(lane.lockNames);
  const jobs = lane.ctx.log.jobs;
  const started = mono();
  for (;;) {
    let last: number | undefined;
    for (let i = jobs.length - 1; i >= 0; i--) {
      if (mine.has(jobs[i].lockName)) {
        last = jobs[i].mono;
        break;
      }
    }
    const since = mono() - Math.max(last ?? 0, started);
    if (since >= quietMs) return mono() - started;
    if (mono() - started > capMs) return null;
    await sleep(Math.max(50, Math.min(500, quietMs - since)));
  }
}

/** Stop lines of the lane's locks by reason (startup churn). */
export function stopReasons(lane: Lane, from: number, to: number): Record<string, number> {
  const mine = new Set(lane.lockNames);
  const reasons: Record<string, number> = {};
  for (const e of lane.ctx.log.jobs) {
    if (e.event === 'stop' && e.mono >= from && e.mono <= to && mine.has(e.lockName)) {
      reasons[e.reason ?? 'null'] = (reasons[e.reason ?? 'null'] ?? 0) + 1;
    }
  }
  return reasons;
}

/**
 * Statements per second per replica that each protocol predicts, given how
 * many of the `locks` each replica holds (bench/README.md, "Reading the load
 * rows"). Ours: one renewal UPDATE and one SELECT of the controls per H for a
 * replica that holds any lock; one SELECT of the locks per C for one that
 * watches any lock it does not hold, plus one SELECT of the controls per C if
 * it holds none (a holder's read of the controls serves both, C being a
 * multiple of H). The baseline: every replica reads the control row and the
 * lock row of every lock per C; the master UPDATEs every lock it holds per H.
 */
export function expectedRate(impl: Impl, held: number[], locks: number): number {
  if (!held.length) return NaN;
  const perReplica = held.map(h => {
    if (impl === 'baseline') return (2 * locks * 1000) / C + (h * 1000) / H;
    const holds = h > 0;
    const watches = h < locks;
    return (holds ? (2 * 1000) / H : 0) + (watches ? ((holds ? 1 : 2) * 1000) / C : 0);
  });
  return round(perReplica.reduce((a, b) => a + b, 0) / held.length, 2);
}

export interface WindowFigures {
  seconds: number;
  /** Replicas alive at the start of the window. */
  replicasMeasured: number;
  statementsPerSec: number;
  statementsPerSecPerReplica: number;
  /** PostgreSQL: NOTIFYs per second per replica (renewal announcements, releases); NaN elsewhere. */
  notifiesPerSecPerReplica: number;
  rowsWrittenPerSec: number;
  cpuPercentPerReplica: {mean: number; max: number};
  startsInWindow: number;
  stopsInWindow: number;
}

/**
 * Statements (minus the harness's own), row writes and CPU of the lane's
 * replicas over `windowMs`, during which `during` runs (or nothing).
 */
export async function measureWindow(
  lane: Lane,
  windowMs: number,
  during?: (elapsed: number) => Promise<void>,
): Promise<WindowFigures> {
  const {harnessSql, counter, clockTicks, log, notifies} = lane.ctx;
  const listening = lane.ctx.options.backend === 'postgresql';
  const n0 = notifies.count;
  const replicas = lane.alive();
  const sent0 = harnessSql.sent;
  const s0 = await counter.snapshot();
  const cpu0 = replicas.map(r => r.cpuTicks());
  const jobs0 = log.jobs.length;
  const t0 = mono();
  if (during) await during(windowMs);
  else await sleep(windowMs);
  const s1 = await counter.snapshot();
  const n1 = notifies.count;
  const t1 = mono();
  const cpu1 = replicas.map(r => r.cpuTicks());
  const seconds = (t1 - t0) / 1000;
  const ours = s1.statements - s0.statements - (harnessSql.sent - sent0);
  const cpu = replicas
    .map((r, i) => ((cpu1[i] - cpu0[i]) / clockTicks / seconds) * 100)
    .filter(Number.isFinite);
  const mine = new Set(lane.lockNames);
  const window = log.jobs.slice(jobs0).filter(e => mine.has(e.lockName));
  // No replica alive (the baseline at scale dies): per-replica figures are NaN (null in the JSON).
  return {
    seconds,
    replicasMeasured: replicas.length,
    statementsPerSec: round(ours / seconds, 2),
    statementsPerSecPerReplica: round(ours / seconds / replicas.length, 2),
    notifiesPerSecPerReplica: listening ? round((n1 - n0) / seconds / replicas.length, 2) : NaN,
    rowsWrittenPerSec: round((s1.rowsWritten - s0.rowsWritten) / seconds, 1),
    cpuPercentPerReplica: {
      mean: cpu.length ? round(cpu.reduce((a, b) => a + b, 0) / cpu.length, 2) : NaN,
      max: cpu.length ? round(Math.max(...cpu), 2) : NaN,
    },
    startsInWindow: window.filter(e => e.event === 'start').length,
    stopsInWindow: window.filter(e => e.event === 'stop').length,
  };
}

/**
 * What a load or scale run reports of its lane at rest: how the locks are
 * split and the rate predicted for that, the window's figures, the overlaps
 * and the unexpected exits.
 */
export function restFigures(lane: Lane, locks: number, w: WindowFigures) {
  const mastersPerReplica = lane.held();
  return {
    mastersPerReplica,
    expectedPerReplica: expectedRate(lane.impl, mastersPerReplica, locks),
    windowMs: round(w.seconds * 1000, 0),
    replicasMeasured: w.replicasMeasured,
    statementsPerSec: w.statementsPerSec,
    statementsPerSecPerReplica: w.statementsPerSecPerReplica,
    notifiesPerSecPerReplica: w.notifiesPerSecPerReplica,
    rowsWrittenPerSec: w.rowsWrittenPerSec,
    cpuPercentPerReplica: w.cpuPercentPerReplica,
    startsInWindow: w.startsInWindow,
    stopsInWindow: w.stopsInWindow,
    overlaps: lane.overlaps(),
    unexpectedExits: lane.unexpectedExits,
  };
}
