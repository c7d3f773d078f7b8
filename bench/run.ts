// `npm run bench [-- --quick] [-- --mysql]`: failover, handoff, disable/enable
// and database load of this package ("ours", the example app) side by side
// with the naive protocol of the original module ("baseline",
// bench/baseline/replica.ts), both as real processes on one fresh database.
// Prints a table and writes JSON under bench/results/. See bench/README.md.

import {execSync} from 'child_process';
import {cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'fs';
import os from 'os';
import path from 'path';
import {createBaselineSchema, LOCK_TABLE} from './baseline/schema';
import {EventLog, freePort, killAll, now, Replica, sleep, uniform} from './lib/cluster';
import {Backend, databaseUrl, openSql, recreateDatabase, retrying, serverAddress, ServerWatch, Sql, StatementCounter} from './lib/db';
import {round, Summary, summarize} from './lib/stats';

// ---- configuration ----

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string) => argv.find(a => a.startsWith(`--${name}=`))?.split('=')[1];

const BACKEND: Backend = flag('mysql') ? 'mysql' : 'postgresql';
const QUICK = flag('quick');
const DATABASE = option('db') ?? 'mje_bench';
/** Run only some scenarios (development): --only=crash,handoff,control,load,scale */
const ONLY = option('only')?.split(',');
const run = (scenario: string) => !ONLY || ONLY.includes(scenario);

/** The same timings for both implementations; the baseline's tolerance is the lease. */
const L = 3000; // leaseDuration
const H = 1000; // heartbeatInterval
const C = 2000; // checkMasterInterval
const TIMING_ENV = {
  INIT_DELAY: '500',
  CHECK_MASTER_INTERVAL: String(C),
  MASTER_JOB_HEARTBEAT_INTERVAL: String(H),
  MASTER_JOB_LEASE_DURATION: String(L),
  MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT: '3',
};

/** Repetitions (lanes run concurrently, each its own cluster and lock). */
const PLAN = QUICK
  ? {
      crash: {lanes: 1, reps: 3},
      handoff: {ours: {lanes: 1, reps: 5}, baseline: {lanes: 1, reps: 2}},
      control: {ours: {lanes: 1, reps: 5}, baseline: {lanes: 1, reps: 2}},
      load: {locks: [1, 10, 100, 1000], replicas: 3, windowMs: 6000},
      scale: {replicas: 5, locks: 200, windowMs: 10000, sampleMs: 5000, baselineWindowMs: 10000},
    }
  : {
      crash: {lanes: 3, reps: 34},
      handoff: {ours: {lanes: 1, reps: 100}, baseline: {lanes: 2, reps: 12}},
      control: {ours: {lanes: 1, reps: 100}, baseline: {lanes: 2, reps: 6}},
      load: {locks: [1, 10, 100, 1000], replicas: 3, windowMs: 12000},
      scale: {replicas: 10, locks: 1000, windowMs: 60000, sampleMs: 10000, baselineWindowMs: 20000},
    };

/**
 * The replicas run from a private copy of dist/ (node_modules linked): the
 * tests of other engineers working in this checkout clean and rebuild dist/,
 * which would pull the scripts from under a run of 15 minutes.
 */
function snapshotDist(): string {
  const dist = path.resolve(__dirname, '..');
  const root = mkdtempSync(path.join(os.tmpdir(), 'mje-bench-'));
  for (const dir of ['src', 'example', 'bench']) {
    cpSync(path.join(dist, dir), path.join(root, 'dist', dir), {recursive: true});
  }
  symlinkSync(path.resolve(dist, '..', 'node_modules'), path.join(root, 'node_modules'), 'dir');
  return path.join(root, 'dist');
}
const DIST = snapshotDist();
const IMPLS = {
  ours: path.join(DIST, 'example', 'index.js'),
  baseline: path.join(DIST, 'bench', 'baseline', 'replica.js'),
};
type Impl = keyof typeof IMPLS;
const IMPL_NAMES: Impl[] = ['ours', 'baseline'];
/**
 * Connections per baseline replica. The server's max_connections (100 here)
 * is shared with every other user of the machine: 10 replicas x 10 would not fit.
 */
const BASELINE_POOL_SIZE = 4;
/** Load and scale windows start once no job started or stopped for this long... */
const QUIET_MS = 5000;
/** ...or after this long anyway (reported as not settled). */
const QUIET_CAP_MS = 30000;
/**
 * Then this long before the window: the statistics of a PostgreSQL backend
 * reach pg_stat_database up to ~10 s late (idle flush interval, or when the
 * pool closes an idle connection 10 s after its last use), so a startup burst
 * would otherwise be counted in the window.
 */
const STATS_SETTLE_MS = 11000;
/**
 * Replicas of a handoff lane: every handoff retires one, and the lane is
 * refilled (between measurements) below 3, so a handoff happens among 3 or 4
 * replicas. More would inflate it on 2 cores: every replica wakes on the
 * release and races for the lock.
 */
const HANDOFF_REPLICAS = 4;

const URL_ = databaseUrl(BACKEND, DATABASE);
const log = new EventLog();
let clockTicks = 100;

function note(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${t}] ${message}\n`);
}

// ---- clusters ----

/** The replicas of one implementation that campaign for the same locks. */
class Lane {
  readonly replicas: Replica[] = [];
  private counter = 0;
  private stopped = false;
  unexpectedExits = 0;

  constructor(
    readonly impl: Impl,
    readonly name: string,
    readonly lockNames: string[],
  ) {}

  get lockName(): string {
    return this.lockNames[0];
  }

  alive(): Replica[] {
    return this.replicas.filter(r => r.alive);
  }

  /**
   * Starts replicas until `n` are alive; waits until they answer. A replica
   * that dies while booting (e.g. the server refused a connection: it has
   * max_connections for every user of this machine) is replaced, 5 times at most.
   */
  async ensure(n: number): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      const starting: Replica[] = [];
      while (this.alive().length < n) {
        const replica = new Replica(
          {
            impl: this.impl,
            script: IMPLS[this.impl],
            env: {...TIMING_ENV, DATABASE_URL: URL_, BASELINE_POOL_SIZE: String(BASELINE_POOL_SIZE)},
            instanceId: `${this.name}-${++this.counter}`,
            lockNames: this.lockNames,
          },
          await freePort(),
          log,
        );
        void replica.exited.then(() => {
          if (!replica.expectedExit) {
            this.unexpectedExits++;
            const lines = replica.stderr().trim().split('\n');
            const why = lines.filter(l => /error|Error|ERR|refused|too many/.test(l)).slice(0, 2);
            note(`${replica.instanceId} exited unexpectedly: ${(why.length ? why : lines.slice(-3)).join(' | ')}`);
          }
        });
        this.replicas.push(replica);
        starting.push(replica);
      }
      const failed = (await Promise.allSettled(starting.map(r => r.ready(120000)))).filter(r => r.status === 'rejected');
      if (!failed.length) return;
      if (attempt >= 6) throw (failed[0] as PromiseRejectedResult).reason;
      await sleep(2000);
    }
  }

  async waitMaster(timeoutMs = 20000): Promise<Replica> {
    const started = now();
    for (;;) {
      const m = log.master(this.lockName);
      if (m) return m;
      if (now() - started > timeoutMs) throw new Error(`${this.name}: no master of ${this.lockName} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Signals a replica and notes that its exit is intended. */
  kill(replica: Replica, signal: NodeJS.Signals): number {
    replica.expectedExit = true;
    return replica.kill(signal);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.replicas) r.expectedExit = true;
    await Promise.all(this.replicas.map(r => r.terminate()));
  }
}

function otherAlive(lane: Lane, not: Replica | undefined): Replica {
  const candidates = lane.alive().filter(r => r !== not);
  return candidates[Math.floor(Math.random() * candidates.length)];
}

// ---- latency scenarios ----

/** A replica at rest (1 lock: a renewal per H, a poll per C) uses well under this share of a core. */
const IDLE_CPU = 0.05;

/**
 * Waits (up to `capMs`) until every replica's CPU over the last 500 ms is
 * below IDLE_CPU: a replica just booted keeps compiling and warming up for
 * 2-3 s on this machine, and a handoff measured meanwhile measures that load
 * on 2 cores, not the protocol. Resolves to how long it waited.
 */
async function waitIdle(replicas: Replica[], capMs = 10000): Promise<number> {
  const started = now();
  const windowMs = 500;
  let before = replicas.map(r => r.cpuTicks());
  for (;;) {
    await sleep(windowMs);
    const after = replicas.map(r => r.cpuTicks());
    const use = after.map((a, i) => ((a - before[i]) / clockTicks) * (1000 / windowMs));
    const busiest = Math.max(0, ...use.filter(Number.isFinite));
    if (busiest < IDLE_CPU || now() - started > capMs) return now() - started;
    before = after;
  }
}

interface LaneResult {
  samples: number[];
  extra: Record<string, number[]>;
  unexpectedExits: number;
  overlaps: number;
  spuriousStops: number;
  /** Repetitions redone because the database server restarted meanwhile (another user). */
  discarded: number;
  /** Repetitions that failed for another reason (noted on stderr). */
  errors: number;
}

function overlapsOf(lane: Lane): number {
  return log.overlaps.filter(o => lane.lockNames.includes(o.lockName)).length;
}

/**
 * Runs `rep` until `reps` samples are kept. A repetition that overlaps a
 * restart of the database server is discarded and redone; one that fails
 * otherwise is noted and counted.
 */
async function repeat(lane: Lane, reps: number, rep: () => Promise<() => void>): Promise<{discarded: number; errors: number}> {
  let kept = 0;
  let discarded = 0;
  let errors = 0;
  for (let attempt = 0; kept < reps && attempt < reps * 3; attempt++) {
    const t0 = now();
    let commit: (() => void) | undefined;
    try {
      commit = await rep();
    } catch (err) {
      if (!watch.disturbed(t0, now())) {
        errors++;
        note(`${lane.name}: repetition failed: ${err.message}`);
      }
    }
    if (watch.disturbed(t0, now())) {
      discarded++;
      await retryingUntilUp();
    } else if (commit) {
      commit();
      kept++;
    }
  }
  return {discarded, errors};
}

async function retryingUntilUp(): Promise<void> {
  const t = now();
  while (watch.disturbed(now(), now()) && now() - t < 120000) await sleep(500);
}

/** SIGKILL of the master -> start() on another replica. */
async function crashLane(impl: Impl, index: number, reps: number): Promise<LaneResult> {
  const lane = new Lane(impl, `${impl}-crash${index}`, [`CRASH-${impl}-${index}`]);
  const samples: number[] = [];
  let replacing: Promise<void> = Promise.resolve();
  try {
    await lane.ensure(3);
    await lane.waitMaster();
    const {discarded, errors} = await repeat(lane, reps, async () => {
      await replacing;
      await lane.ensure(3);
      // Uniform phase against the renewal and polling grids (the range is C long).
      await sleep(uniform(200, 200 + C));
      const master = await lane.waitMaster();
      const t = lane.kill(master, 'SIGKILL');
      const e = await log.waitFor(
        x => x.event === 'start' && x.lockName === lane.lockName && x.replica !== master,
        L + C + 10000,
        t,
      );
      replacing = lane.ensure(3).catch(err => note(`${lane.name}: ${err.message}`)); // boots meanwhile
      return () => samples.push(e ? e.mono - t : Infinity);
    });
    return {samples, extra: {}, unexpectedExits: lane.unexpectedExits, overlaps: overlapsOf(lane), spuriousStops: 0, discarded, errors};
  } finally {
    await replacing;
    await lane.stop();
  }
}

/** SIGTERM of the master -> start() on another replica. */
async function handoffLane(impl: Impl, index: number, reps: number): Promise<LaneResult> {
  const lane = new Lane(impl, `${impl}-handoff${index}`, [`HANDOFF-${impl}-${index}`]);
  const samples: number[] = [];
  const stopLine: number[] = [];
  const afterStop: number[] = [];
  const exit: number[] = [];
  const settle: number[] = [];
  try {
    await lane.ensure(HANDOFF_REPLICAS);
    await lane.waitMaster();
    const {discarded, errors} = await repeat(lane, reps, async () => {
      if (lane.alive().length < 3) {
        // Refill between measurements, never during one: booting replicas load the CPU.
        await lane.ensure(HANDOFF_REPLICAS);
        await sleep(1000);
        settle.push(await waitIdle(lane.alive()));
      }
      await sleep(uniform(100, 100 + H));
      const master = await lane.waitMaster();
      const t = lane.kill(master, 'SIGTERM');
      const e = await log.waitFor(
        x => x.event === 'start' && x.lockName === lane.lockName && x.replica !== master,
        L + C + 10000,
        t,
      );
      await Promise.race([master.exited, sleep(15000)]);
      const exitedAt = master.exitedAt;
      const stop = log.events.find(x => x.mono > t && x.event === 'stop' && x.replica === master);
      return () => {
        samples.push(e ? e.mono - t : Infinity);
        if (exitedAt) exit.push(exitedAt - t);
        if (stop) {
          stopLine.push(stop.mono - t);
          if (e) afterStop.push(e.mono - stop.mono);
        }
      };
    });
    return {
      samples,
      extra: {sigtermToStopLine: stopLine, stopLineToStart: afterStop, sigtermToExit: exit, refillSettle: settle},
      unexpectedExits: lane.unexpectedExits,
      overlaps: overlapsOf(lane),
      spuriousStops: 0,
      discarded,
      errors,
    };
  } finally {
    await lane.stop();
  }
}

interface ControlResult {
  disable: LaneResult;
  enable: LaneResult;
}

/** POST disable to a non-master -> stop() on the master; POST enable -> start() anywhere. */
async function controlLane(impl: Impl, index: number, reps: number): Promise<ControlResult> {
  const lane = new Lane(impl, `${impl}-control${index}`, [`CONTROL-${impl}-${index}`]);
  const lockName = lane.lockName;
  const disable: number[] = [];
  const enable: number[] = [];
  const disableHttp: number[] = [];
  const enableHttp: number[] = [];
  const spurious0 = log.spuriousStops;
  const warmed = new Set<Replica>();
  // The first request to an endpoint of a process is slow (LoopBack compiles the
  // body validators on first use: 100-250 ms): measure the protocol, not that.
  // An invalid body (422) compiles the validator without reaching the controller.
  const warmUp = async () => {
    for (const r of lane.alive().filter(x => !warmed.has(x))) {
      await r.post('/api/MasterControls/disable', {lockName: '', reason: 'warm-up'}, 422);
      await r.post('/api/MasterControls/enable', {lockName: ''}, 422);
      warmed.add(r);
    }
  };
  try {
    await lane.ensure(3);
    await lane.waitMaster();
    const {discarded, errors} = await repeat(lane, reps, async () => {
      await lane.ensure(3);
      await warmUp();
      await sleep(uniform(100, 100 + H));
      const master = await lane.waitMaster(L + C + 10000);
      const t = now();
      await otherAlive(lane, master).post('/api/MasterControls/disable', {lockName, reason: 'bench'});
      const http1 = now() - t;
      const stop = await log.waitFor(x => x.event === 'stop' && x.lockName === lockName && x.replica === master, L + C, t);
      await sleep(uniform(100, 300));
      const t2 = now();
      // Enable even when the disable failed: the lane must not stay disabled.
      await otherAlive(lane, undefined).post('/api/MasterControls/enable', {lockName});
      const http2 = now() - t2;
      const start = await log.waitFor(x => x.event === 'start' && x.lockName === lockName, L + C + 5000, t2);
      return () => {
        disableHttp.push(http1);
        disable.push(stop ? stop.mono - t : Infinity);
        enableHttp.push(http2);
        enable.push(start ? start.mono - t2 : Infinity);
      };
    });
    const common = {
      unexpectedExits: lane.unexpectedExits,
      overlaps: overlapsOf(lane),
      spuriousStops: log.spuriousStops - spurious0,
      discarded,
      errors,
    };
    return {
      disable: {samples: disable, extra: {httpResponse: disableHttp}, ...common},
      enable: {samples: enable, extra: {httpResponse: enableHttp}, ...common},
    };
  } finally {
    await lane.stop();
  }
}

function merge(results: LaneResult[]): LaneResult {
  const extra: Record<string, number[]> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.extra)) extra[k] = [...(extra[k] ?? []), ...v];
  return {
    samples: results.flatMap(r => r.samples),
    extra,
    unexpectedExits: results.reduce((a, r) => a + r.unexpectedExits, 0),
    overlaps: results.reduce((a, r) => a + r.overlaps, 0),
    spuriousStops: results.reduce((a, r) => a + r.spuriousStops, 0),
    discarded: results.reduce((a, r) => a + r.discarded, 0),
    errors: results.reduce((a, r) => a + r.errors, 0),
  };
}

/** Scenarios (or lanes of one) that failed; the others still report. */
const failures: {what: string; error: string}[] = [];

function fail(what: string, err: Error): void {
  failures.push({what, error: String(err?.message ?? err)});
  note(`FAILED ${what}: ${err?.stack ?? err}`);
}

/** Runs `count` lanes, `stagger` ms apart; a lane that fails is left out (and reported). */
async function lanes<T>(
  what: string,
  count: number,
  reps: number,
  stagger: number,
  fn: (index: number, reps: number) => Promise<T>,
): Promise<T[]> {
  const all = await Promise.all(
    Array.from({length: count}, (_, i) =>
      sleep(i * stagger)
        .then(() => fn(i + 1, reps))
        .catch(err => {
          fail(`${what} lane ${i + 1}`, err);
          return undefined;
        }),
    ),
  );
  return all.filter((r): r is Awaited<T> => r !== undefined) as T[];
}

// ---- load ----

interface LoadResult {
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
  rowsWrittenPerSec: number;
  cpuPercentPerReplica: {mean: number; max: number};
  startsInWindow: number;
  stopsInWindow: number;
  overlaps: number;
  unexpectedExits: number;
}

/** Sends the harness's own checks through this pool so they are subtracted. */
let harnessSql: Sql;
let counter: StatementCounter;
let watch: ServerWatch;

async function waitCoverage(lane: Lane, timeoutMs: number): Promise<boolean> {
  const started = now();
  while (now() - started < timeoutMs) {
    if (lane.lockNames.every(n => log.runningTenures(n).some(t => t.replica.alive))) return true;
    await sleep(100);
  }
  return false;
}

/**
 * Waits until no job of the lane started or stopped for `quietMs` (startup
 * churn over); resolves with the time waited, or null after `capMs`.
 */
async function waitQuiet(lane: Lane, quietMs: number, capMs: number): Promise<number | null> {
  const mine = new Set(lane.lockNames);
  const started = now();
  for (;;) {
    const last = [...log.events].reverse().find(e => mine.has(e.lockName));
    const since = now() - Math.max(last?.mono ?? 0, started);
    if (since >= quietMs) return now() - started;
    if (now() - started > capMs) return null;
    await sleep(Math.max(50, Math.min(500, quietMs - since)));
  }
}

/** Stop lines of the lane's locks by reason (startup churn). */
function stopReasons(lane: Lane, from: number, to: number): Record<string, number> {
  const mine = new Set(lane.lockNames);
  const reasons: Record<string, number> = {};
  for (const e of log.events) {
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
function expectedRate(impl: Impl, held: number[], locks: number): number {
  if (!held.length) return NaN;
  const perReplica = held.map(h => {
    if (impl === 'baseline') return (2 * locks * 1000) / C + (h * 1000) / H;
    const holds = h > 0;
    const watches = h < locks;
    return (holds ? (2 * 1000) / H : 0) + (watches ? ((holds ? 1 : 2) * 1000) / C : 0);
  });
  return round(perReplica.reduce((a, b) => a + b, 0) / held.length, 2);
}

async function measureWindow(lane: Lane, windowMs: number, during?: (elapsed: number) => Promise<void>) {
  const replicas = lane.alive();
  const sent0 = harnessSql.sent;
  const s0 = await counter.snapshot();
  const cpu0 = replicas.map(r => r.cpuTicks());
  const events0 = log.events.length;
  const t0 = now();
  if (during) await during(windowMs);
  else await sleep(windowMs);
  const s1 = await counter.snapshot();
  const t1 = now();
  const cpu1 = replicas.map(r => r.cpuTicks());
  const seconds = (t1 - t0) / 1000;
  const ours = (s1.statements - s0.statements) - (harnessSql.sent - sent0);
  const cpu = replicas.map((r, i) => ((cpu1[i] - cpu0[i]) / clockTicks / seconds) * 100).filter(Number.isFinite);
  const mine = new Set(lane.lockNames);
  const window = log.events.slice(events0).filter(e => mine.has(e.lockName));
  // No replica alive (the baseline at scale dies): per-replica figures are NaN (null in the JSON).
  return {
    seconds,
    replicasMeasured: replicas.length,
    statementsPerSec: round(ours / seconds, 2),
    statementsPerSecPerReplica: round(ours / seconds / replicas.length, 2),
    rowsWrittenPerSec: round((s1.rowsWritten - s0.rowsWritten) / seconds, 1),
    cpuPercentPerReplica: {
      mean: cpu.length ? round(cpu.reduce((a, b) => a + b, 0) / cpu.length, 2) : NaN,
      max: cpu.length ? round(Math.max(...cpu), 2) : NaN,
    },
    startsInWindow: window.filter(e => e.event === 'start').length,
    stopsInWindow: window.filter(e => e.event === 'stop').length,
  };
}

async function loadRun(impl: Impl, locks: number): Promise<LoadResult> {
  const {replicas, windowMs} = PLAN.load;
  const settleMs = STATS_SETTLE_MS;
  const names = Array.from({length: locks}, (_, i) => `LOAD${locks}-${impl}-${i}`);
  const lane = new Lane(impl, `${impl}-load${locks}`, names);
  try {
    const t = now();
    await lane.ensure(replicas); // all at once, like a deployment
    const covered = await waitCoverage(lane, 60000);
    const coverageMs = covered ? round(now() - t, 0) : null;
    const quiet = await waitQuiet(lane, QUIET_MS, QUIET_CAP_MS);
    const settledMs = quiet === null ? null : round(now() - t - QUIET_MS, 0);
    const churn = stopReasons(lane, t, now());
    let w;
    for (let attempt = 1; ; attempt++) {
      await sleep(settleMs);
      const w0 = now();
      w = await measureWindow(lane, windowMs);
      if (!watch.disturbed(w0 - settleMs, now()) || attempt === 3) break;
      note(`  ${impl} ${locks} locks: the database server restarted during the window, measuring again`);
      await retryingUntilUp();
      await lane.ensure(replicas);
      await waitCoverage(lane, 60000);
      await waitQuiet(lane, QUIET_MS, QUIET_CAP_MS);
    }
    const held = new Map(lane.alive().map(r => [r, 0]));
    for (const name of names) for (const t of log.runningTenures(name)) held.set(t.replica, (held.get(t.replica) ?? 0) + 1);
    const mastersPerReplica = [...held.values()].sort((a, b) => b - a);
    return {
      settledMs,
      startupStops: churn,
      mastersPerReplica,
      expectedPerReplica: expectedRate(impl, mastersPerReplica, locks),
      locks,
      replicas,
      windowMs: round(w.seconds * 1000, 0),
      coverageMs,
      replicasMeasured: w.replicasMeasured,
      statementsPerSec: w.statementsPerSec,
      statementsPerSecPerReplica: w.statementsPerSecPerReplica,
      rowsWrittenPerSec: w.rowsWrittenPerSec,
      cpuPercentPerReplica: w.cpuPercentPerReplica,
      startsInWindow: w.startsInWindow,
      stopsInWindow: w.stopsInWindow,
      overlaps: overlapsOf(lane),
      unexpectedExits: lane.unexpectedExits,
    };
  } finally {
    await lane.stop();
  }
}

// ---- scale ----

interface ScaleSample {
  atMs: number;
  /** Locks with exactly one replica running the job (JSON lines). */
  exactlyOne: number;
  none: number;
  several: number;
  /** Locks whose row names, as holder, the replica the JSON lines say runs the job. */
  tableAgrees: number;
}

interface ScaleResult extends Omit<LoadResult, 'coverageMs'> {
  coverageMs: number | null;
  samples: ScaleSample[];
  disturbedByServerRestart: boolean;
  allExactlyOne: boolean;
  statusEndpoint: {locksWithHolder: number; agreesWithTable: boolean} | null;
}

async function holders(impl: Impl): Promise<Map<string, string>> {
  const sql =
    impl === 'baseline'
      ? `SELECT lock_name AS l, instance_id AS h FROM ${LOCK_TABLE}`
      : BACKEND === 'postgresql'
        ? `SELECT lockname AS l, instanceid AS h FROM masterlock`
        : `SELECT lockName AS l, instanceId AS h FROM MasterLock`;
  const {rows} = await retrying(() => harnessSql.query(sql));
  return new Map(rows.filter(r => r.h).map(r => [String(r.l), String(r.h)]));
}

async function scaleSample(impl: Impl, lane: Lane, atMs: number): Promise<ScaleSample> {
  const table = await holders(impl);
  const s: ScaleSample = {atMs: round(atMs, 0), exactlyOne: 0, none: 0, several: 0, tableAgrees: 0};
  for (const name of lane.lockNames) {
    const running = log.runningTenures(name).filter(t => t.replica.alive);
    if (running.length === 0) s.none++;
    else if (running.length > 1) s.several++;
    else {
      s.exactlyOne++;
      if (table.get(name) === running[0].replica.instanceId) s.tableAgrees++;
    }
  }
  return s;
}

async function scaleRun(impl: Impl): Promise<ScaleResult> {
  const {replicas, locks, sampleMs} = PLAN.scale;
  const held = () => {
    const m = new Map(lane.alive().map(r => [r, 0]));
    for (const name of names) for (const t of log.runningTenures(name)) m.set(t.replica, (m.get(t.replica) ?? 0) + 1);
    return [...m.values()].sort((a, b) => b - a);
  };
  // The baseline collapses at this size (its replicas die within seconds): a shorter window.
  const windowMs = impl === 'baseline' ? PLAN.scale.baselineWindowMs : PLAN.scale.windowMs;
  const names = Array.from({length: locks}, (_, i) => `SCALE-${impl}-${i}`);
  const lane = new Lane(impl, `${impl}-scale`, names);
  const samples: ScaleSample[] = [];
  try {
    // All replicas at once, like a deployment.
    const t = now();
    await lane.ensure(replicas);
    const covered = await waitCoverage(lane, 120000);
    const coverageMs = covered ? round(now() - t, 0) : null;
    note(`  ${impl}: ${replicas} replicas x ${locks} locks started at once; ${covered ? `every lock mastered after ${coverageMs} ms` : 'NOT every lock mastered in 120 s'}`);
    const quiet = await waitQuiet(lane, QUIET_MS, QUIET_CAP_MS);
    const settledMs = quiet === null ? null : round(now() - t - QUIET_MS, 0);
    const churn = stopReasons(lane, t, now());
    await sleep(STATS_SETTLE_MS);
    const w0 = now();
    const w = await measureWindow(lane, windowMs, async total => {
      const t0 = now();
      while (now() - t0 < total) {
        await sleep(Math.min(sampleMs, total - (now() - t0)));
        const s = await scaleSample(impl, lane, now() - t0);
        samples.push(s);
        note(`  ${impl} +${Math.round(s.atMs / 1000)} s: exactly one master ${s.exactlyOne}/${locks}, none ${s.none}, several ${s.several}, table agrees ${s.tableAgrees}`);
      }
    });
    const disturbed = watch.disturbed(w0, now());
    if (disturbed) note(`  ${impl} scale: the database server restarted during the window (another user): figures disturbed`);
    let statusEndpoint: ScaleResult['statusEndpoint'] = null;
    try {
      const someone = lane.alive()[0];
      if (!someone) throw new Error('no replica alive');
      const status = (await someone.get('/api/MasterControls/status')) as {
        locks: {lockName: string; holder?: string | null; instance_id?: string; lock_name?: string}[];
      };
      const table = await holders(impl);
      const mine = status.locks
        .map(l => ({name: l.lockName ?? l.lock_name, holder: l.holder ?? l.instance_id}))
        .filter(l => l.name && names.includes(l.name) && l.holder);
      statusEndpoint = {
        locksWithHolder: mine.length,
        agreesWithTable: mine.every(l => table.get(l.name!) === l.holder) && mine.length === [...table.keys()].filter(k => names.includes(k)).length,
      };
    } catch (err) {
      note(`  status endpoint: ${err.message}`);
    }
    return {
      locks,
      replicas,
      windowMs: round(w.seconds * 1000, 0),
      coverageMs,
      settledMs,
      startupStops: churn,
      mastersPerReplica: held(),
      expectedPerReplica: expectedRate(impl, held(), locks),
      replicasMeasured: w.replicasMeasured,
      statementsPerSec: w.statementsPerSec,
      statementsPerSecPerReplica: w.statementsPerSecPerReplica,
      rowsWrittenPerSec: w.rowsWrittenPerSec,
      cpuPercentPerReplica: w.cpuPercentPerReplica,
      startsInWindow: w.startsInWindow,
      stopsInWindow: w.stopsInWindow,
      overlaps: overlapsOf(lane),
      unexpectedExits: lane.unexpectedExits,
      samples,
      disturbedByServerRestart: disturbed,
      allExactlyOne: samples.length > 0 && samples.every(s => s.exactlyOne === locks),
      statusEndpoint,
    };
  } finally {
    await lane.stop();
  }
}

// ---- report ----

type Row = [string, string, string, string];

function ms(v: number | null): string {
  if (v === null) return 'never';
  return v >= 100 ? `${Math.round(v)}` : v.toFixed(1);
}

function ratio(ours: number | null, baseline: number | null): string {
  if (ours === null || baseline === null) return baseline === null && ours !== null ? 'inf' : '-';
  if (ours === 0) return baseline === 0 ? '1.0x' : 'inf';
  const r = baseline / ours;
  return r >= 100 ? `${Math.round(r)}x` : `${r.toFixed(r >= 10 ? 0 : 1)}x`;
}

function latencyRows(title: string, ours?: Summary, baseline?: Summary): Row[] {
  if (!ours && !baseline) return [];
  const n = (s?: Summary) => (s ? `${s.n}${s.timeouts ? `, ${s.timeouts} never` : ''}` : '-');
  const rows: Row[] = [[`${title} (n = ${n(ours)} / ${n(baseline)})`, '', '', '']];
  for (const k of ['p50', 'p95', 'p99', 'min', 'max'] as const) {
    const o = ours?.[k] ?? null;
    const b = baseline?.[k] ?? null;
    rows.push([`  ${k} ms`, ours ? ms(o) : '-', baseline ? ms(b) : '-', ours && baseline ? ratio(o, b) : '-']);
  }
  return rows;
}

function printTable(rows: Row[]): string {
  const header: Row = ['scenario / metric', 'ours', 'baseline', 'baseline/ours'];
  const all = [header, ...rows];
  const width = [0, 1, 2, 3].map(i => Math.max(...all.map(r => r[i].length)));
  const line = (r: Row) => `${r[0].padEnd(width[0])}  ${r[1].padStart(width[1])}  ${r[2].padStart(width[2])}  ${r[3].padStart(width[3])}`;
  const sep = '-'.repeat(width.reduce((a, b) => a + b + 2, -2));
  return [line(header), sep, ...rows.map(r => (r[1] === '' && r[2] === '' ? r[0] : line(r)))].join('\n');
}

// ---- main ----

async function main(): Promise<void> {
  const started = new Date();
  const t0 = now();
  try {
    clockTicks = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  } catch {
    clockTicks = 100;
  }
  const command = `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`;
  note(`${command}: ${BACKEND} database ${DATABASE} (recreated), ${QUICK ? 'quick' : 'full'} run`);
  await recreateDatabase(BACKEND, DATABASE);
  execSync(`"${process.execPath}" "${path.join(DIST, 'example', 'migrate.js')}"`, {
    env: {...process.env, DATABASE_URL: URL_},
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  harnessSql = openSql(BACKEND, serverAddress(BACKEND), DATABASE, 2, true);
  await createBaselineSchema(harnessSql);
  watch = new ServerWatch(BACKEND, now);
  watch.start();
  counter = new StatementCounter(BACKEND, DATABASE, [watch]);
  let serverVersion = '';
  try {
    const {rows} = await harnessSql.query('SELECT version() AS v');
    serverVersion = String(rows[0]?.v ?? '');
  } catch {
    // informative only
  }
  const loads: Record<string, number[]> = {start: os.loadavg()};

  const latency: Record<string, Partial<Record<Impl, LaneResult>>> = {};
  const phaseTimes: Record<string, number> = {};
  const restarts: string[] = [];
  const phase = async (name: string, work: () => Promise<void>) => {
    const p0 = now();
    note(`${name} (load average ${os.loadavg().map(v => v.toFixed(2)).join(' ')})`);
    await work();
    if (watch.disturbed(p0, now())) {
      restarts.push(name);
      note(`  the database server restarted during ${name} (not by this benchmark): disturbed samples were redone`);
    }
    phaseTimes[name] = round((now() - p0) / 1000, 1);
    loads[name] = os.loadavg();
  };

  // Phase A: the scenarios measured in seconds, lanes concurrently (booting
  // replicas do not matter at that scale). A1: crash, both implementations;
  // A2: the baseline's handoff, disable and enable (which wait for expiry).
  if (run('crash')) {
    await phase('phase A1: crash failover, both implementations, lanes concurrently', async () => {
      await Promise.all(
        IMPL_NAMES.map(impl =>
          lanes(`${impl} crash`, PLAN.crash.lanes, PLAN.crash.reps, 700, (i, n) => crashLane(impl, i, n)).then(r => {
            (latency.crash ??= {})[impl] = merge(r);
          }),
        ),
      );
    });
  }
  if (run('handoff') || run('control')) {
    await phase('phase A2: baseline graceful handoff and disable/enable, lanes concurrently', async () => {
      const work: Promise<void>[] = [];
      if (run('handoff')) {
        const p = PLAN.handoff.baseline;
        work.push(
          lanes('baseline handoff', p.lanes, p.reps, 900, (i, n) => handoffLane('baseline', i, n)).then(r => {
            (latency.handoff ??= {}).baseline = merge(r);
          }),
        );
      }
      if (run('control')) {
        const p = PLAN.control.baseline;
        work.push(
          lanes('baseline control', p.lanes, p.reps, 1100, (i, n) => controlLane('baseline', i, n)).then(r => {
            (latency.disable ??= {}).baseline = merge(r.map(x => x.disable));
            (latency.enable ??= {}).baseline = merge(r.map(x => x.enable));
          }),
        );
      }
      await Promise.all(work);
    });
  }

  // Phase B: ours' millisecond scenarios, one lane at a time on a quiet machine.
  if (run('handoff')) {
    await phase('phase B1: ours graceful handoff', async () => {
      const p = PLAN.handoff.ours;
      (latency.handoff ??= {}).ours = merge(await lanes('ours handoff', p.lanes, p.reps, 0, (i, n) => handoffLane('ours', i, n)));
    });
  }
  if (run('control')) {
    await phase('phase B2: ours disable/enable', async () => {
      const p = PLAN.control.ours;
      const r = await lanes('ours control', p.lanes, p.reps, 0, (i, n) => controlLane('ours', i, n));
      (latency.disable ??= {}).ours = merge(r.map(x => x.disable));
      (latency.enable ??= {}).ours = merge(r.map(x => x.enable));
    });
  }

  // Phase C: database load per replica against the number of locks.
  const load: Record<Impl, LoadResult[]> = {ours: [], baseline: []};
  if (run('load')) {
    await phase('phase C: database load, 1 to 1000 locks', async () => {
      for (const locks of PLAN.load.locks) {
        for (const impl of IMPL_NAMES) {
          const r = await loadRun(impl, locks).catch(err => fail(`${impl} load ${locks} locks`, err));
          if (!r) continue;
          note(
            r.replicasMeasured
              ? `  ${impl} ${locks} locks: ${r.statementsPerSecPerReplica} statements/s per replica, CPU ${r.cpuPercentPerReplica.mean}%`
              : `  ${impl} ${locks} locks: every replica died before the window`,
          );
          load[impl].push(r);
        }
      }
    });
  }

  // Phase D: scale.
  const scale: Partial<Record<Impl, ScaleResult>> = {};
  if (run('scale')) {
    await phase(`phase D: scale, ${PLAN.scale.replicas} replicas x ${PLAN.scale.locks} locks`, async () => {
      for (const impl of IMPL_NAMES) {
        const r = await scaleRun(impl).catch(err => fail(`${impl} scale`, err));
        if (r) scale[impl] = r;
      }
    });
  }

  // ---- summaries, table, JSON ----
  const summaries: Record<string, Partial<Record<Impl, Summary>>> = {};
  for (const [scenario, byImpl] of Object.entries(latency)) {
    summaries[scenario] = {};
    for (const impl of IMPL_NAMES) {
      const r = byImpl[impl];
      if (r && r.samples.length) summaries[scenario][impl] = summarize(r.samples);
    }
  }
  const early = (impl: Impl) => latency.crash?.[impl]?.samples.filter(s => s < L - H).length ?? 0;
  const rows: Row[] = [];
  const crash = summaries.crash ?? {};
  rows.push(...latencyRows('crash failover: SIGKILL master -> start() elsewhere', crash.ours, crash.baseline));
  if (crash.ours || crash.baseline) {
    const rel = (s?: Summary) => (s?.p99 != null && s.p50 != null ? `${(s.p50 / (L + C)).toFixed(2)} / ${(s.p99 / (L + C)).toFixed(2)}` : '-');
    rows.push([`  p50 / p99 as a ratio to leaseDuration + checkMasterInterval (${L + C} ms)`, rel(crash.ours), rel(crash.baseline), '']);
    rows.push([`  takeovers sooner than leaseDuration - heartbeat (${L - H} ms)`, String(early('ours')), String(early('baseline')), '']);
  }
  rows.push(...latencyRows('graceful handoff: SIGTERM master -> start() elsewhere', summaries.handoff?.ours, summaries.handoff?.baseline));
  const part = (scenario: string, key: string, label: string) => {
    const f = (impl: Impl) => {
      const v = latency[scenario]?.[impl]?.extra[key];
      if (!v?.length) return '-';
      const x = summarize(v);
      return `${ms(x.p50)} / ${ms(x.p99)}`;
    };
    if (latency[scenario]) rows.push([`  ${label}, p50 / p99 ms`, f('ours'), f('baseline'), '']);
  };
  part('handoff', 'sigtermToStopLine', 'of which SIGTERM -> stop() on the old master');
  part('handoff', 'stopLineToStart', 'of which stop() -> start() on the new one');
  part('handoff', 'sigtermToExit', 'SIGTERM -> process exit');
  part('handoff', 'refillSettle', 'wait after a refill until its replicas idle (before a handoff, not in it)');
  rows.push(...latencyRows('disable (POST to a non-master) -> stop() on the master', summaries.disable?.ours, summaries.disable?.baseline));
  part('disable', 'httpResponse', 'of which the HTTP response');
  rows.push(...latencyRows('enable (POST) -> start() somewhere', summaries.enable?.ours, summaries.enable?.baseline));
  part('enable', 'httpResponse', 'of which the HTTP response');
  const safety = (impl: Impl) =>
    ['crash', 'handoff', 'disable'].reduce((a, s) => a + (latency[s]?.[impl]?.overlaps ?? 0), 0);
  const spurious = (impl: Impl) => latency.disable?.[impl]?.spuriousStops ?? 0;
  if (Object.keys(latency).length) {
    rows.push(['safety in the scenarios above', '', '', '']);
    rows.push(['  start() while another replica still ran the job', String(safety('ours')), String(safety('baseline')), '']);
    rows.push(['  stop() on a replica that was not running the job', String(spurious('ours')), String(spurious('baseline')), '']);
  }
  if (load.ours.length || load.baseline.length) {
    rows.push([`database load, ${PLAN.load.replicas} replicas, ${PLAN.load.windowMs / 1000} s window`, '', '', '']);
    for (const locks of PLAN.load.locks) {
      const o = load.ours.find(r => r.locks === locks);
      const b = load.baseline.find(r => r.locks === locks);
      const f = (v?: number) => (v === undefined ? '-' : Number.isNaN(v) ? 'all died' : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2));
      const rat = (x?: number, y?: number) => (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y) ? '-' : ratio(x, y));
      const label = `  ${locks} lock${locks > 1 ? 's' : ''}:`;
      const split = (r?: LoadResult) => (!r ? '-' : r.mastersPerReplica?.length ? r.mastersPerReplica.join('+') : 'all died');
      rows.push([`${label} statements/s per replica`, f(o?.statementsPerSecPerReplica), f(b?.statementsPerSecPerReplica), rat(o?.statementsPerSecPerReplica, b?.statementsPerSecPerReplica)]);
      rows.push([`${label} locks held by each replica (end of window)`, split(o), split(b), '']);
      rows.push([`${label} statements/s per replica the protocol predicts for that split`, f(o?.expectedPerReplica), f(b?.expectedPerReplica), '']);
      rows.push([`${label} CPU % of a core per replica`, f(o?.cpuPercentPerReplica.mean), f(b?.cpuPercentPerReplica.mean), rat(o?.cpuPercentPerReplica.mean, b?.cpuPercentPerReplica.mean)]);
      const startup = (r?: LoadResult) =>
        r ? `${r.coverageMs === null ? 'never' : Math.round(r.coverageMs)} / ${r.settledMs === null ? '>' + QUIET_CAP_MS / 1000 + ' s' : Math.round(r.settledMs)}` : '-';
      rows.push([`  ${locks} lock${locks > 1 ? 's' : ''}: start, ms to all mastered / to stable`, startup(o), startup(b), '']);
      const lost = (r?: LoadResult) => (r ? String(Object.entries(r.startupStops).filter(([k]) => k !== 'stopped').reduce((a, [, v]) => a + v, 0)) : '-');
      rows.push([`  ${locks} lock${locks > 1 ? 's' : ''}: start, stop() lines before stable`, lost(o), lost(b), '']);
    }
    const sum = (list: LoadResult[], f: (r: LoadResult) => number) => String(list.reduce((a, r) => a + f(r), 0));
    rows.push(['  all: start() while another replica still ran the job', sum(load.ours, r => r.overlaps), sum(load.baseline, r => r.overlaps), '']);
    rows.push(['  all: replica processes that died unexpectedly', sum(load.ours, r => r.unexpectedExits), sum(load.baseline, r => r.unexpectedExits), '']);
  }
  if (scale.ours || scale.baseline) {
    const {replicas, locks, windowMs} = PLAN.scale;
    rows.push([`scale: ${replicas} replicas x ${locks} locks, ${windowMs / 1000} s window (baseline ${PLAN.scale.baselineWindowMs / 1000} s)`, '', '', '']);
    const get = <T>(f: (r: ScaleResult) => T) => [scale.ours ? f(scale.ours) : undefined, scale.baseline ? f(scale.baseline) : undefined];
    const str = (v: unknown) => (v === undefined ? '-' : v === null ? 'never' : Number.isNaN(v) ? 'all died' : String(v));
    const add = (label: string, f: (r: ScaleResult) => unknown, withRatio = false) => {
      const [o, b] = get(f);
      const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
      rows.push([`  ${label}`, str(o), str(b), withRatio && finite(o) && finite(b) ? ratio(o, b) : '']);
    };
    add('start (all at once), ms to all mastered', r => r.coverageMs);
    add('start, ms to stable (no start/stop for 5 s)', r => r.settledMs);
    add('stop() lines before stable', r => Object.entries(r.startupStops).filter(([k]) => k !== 'stopped').reduce((a, [, v]) => a + v, 0));
    add('samples with exactly one master for every lock', r => `${r.samples.filter(s => s.exactlyOne === locks).length}/${r.samples.length}`);
    add('worst sample: locks with exactly one master', r => (r.samples.length ? Math.min(...r.samples.map(s => s.exactlyOne)) : '-'));
    add('worst sample: locks whose table row names that master', r => (r.samples.length ? Math.min(...r.samples.map(s => s.tableAgrees)) : '-'));
    add('status endpoint: locks with a holder, agrees with table', r => (r.statusEndpoint ? `${r.statusEndpoint.locksWithHolder}, ${r.statusEndpoint.agreesWithTable ? 'yes' : 'no'}` : '-'));
    add('start() while another replica still ran the job', r => r.overlaps);
    add('start()/stop() lines in the window', r => `${r.startsInWindow}/${r.stopsInWindow}`);
    add('replicas alive at the start of the window', r => r.replicasMeasured);
    add('statements/s per replica', r => r.statementsPerSecPerReplica, true);
    add('locks held by each replica (end of window)', r => (r.mastersPerReplica?.length ? r.mastersPerReplica.join('+') : 'all died'));
    add('statements/s per replica the protocol predicts for that split', r => r.expectedPerReplica);
    add('CPU % of a core per replica (mean)', r => r.cpuPercentPerReplica.mean, true);
    add('replica processes that died unexpectedly', r => r.unexpectedExits);
  }
  const table = printTable(rows);

  // Targets of issue 5.
  const targets: {target: string; value: string; met: boolean}[] = [];
  if (BACKEND === 'postgresql') {
    for (const [s, what] of [['handoff', 'graceful handoff'], ['disable', 'disable -> stop()'], ['enable', 'enable -> start()']]) {
      const p99 = summaries[s]?.ours?.p99;
      if (summaries[s]?.ours) targets.push({target: `${what} p99 < 50 ms`, value: `${ms(p99 ?? null)} ms`, met: p99 != null && p99 < 50});
    }
  }
  if (crash.ours) {
    const p99 = crash.ours.p99;
    targets.push({target: `crash failover p99 <= leaseDuration + checkMasterInterval + 50 ms (${L + C + 50} ms)`, value: `${ms(p99)} ms`, met: p99 != null && p99 <= L + C + 50});
    targets.push({target: `no crash takeover sooner than leaseDuration - heartbeatInterval (${L - H} ms)`, value: `${early('ours')} sooner, earliest ${ms(crash.ours.min)} ms`, met: early('ours') === 0});
  }
  if (load.ours.length > 1) {
    const rates = load.ours.map(r => r.statementsPerSecPerReplica);
    const spread = Math.max(...rates) / Math.max(0.001, Math.min(...rates));
    targets.push({target: 'statements/s per replica flat from 1 to 1000 locks (max/min <= 1.5)', value: `${rates.join(' / ')} (max/min ${spread.toFixed(2)})`, met: spread <= 1.5});
  }
  if (scale.ours) {
    targets.push({target: 'scale: every lock exactly one master in every sample', value: `${scale.ours.samples.filter(s => s.exactlyOne === PLAN.scale.locks).length}/${scale.ours.samples.length} samples, ${scale.ours.overlaps} overlaps`, met: scale.ours.allExactlyOne && scale.ours.overlaps === 0});
  }
  const safetyOk = safety('ours') === 0;
  if (Object.keys(latency).length) targets.push({target: 'ours: never two replicas running a job at once', value: `${safety('ours')}`, met: safetyOk});

  const duration = round((now() - t0) / 1000, 0);
  loads.end = os.loadavg();
  const heading =
    `loopback4-master-job-executor benchmark: ${BACKEND} (${serverVersion.split(' on ')[0] || 'server'}), ` +
    `${os.cpus().length} cores, Node ${process.version}, ${QUICK ? 'quick' : 'full'} run of ${duration} s\n` +
    `timings (both): heartbeat ${H} ms, lease ${L} ms (baseline tolerance), check ${C} ms, initDelay 500 ms; ` +
    `load average at start ${loads.start.map(v => v.toFixed(2)).join(' ')}, at end ${loads.end.map(v => v.toFixed(2)).join(' ')}\n` +
    `command: ${command}` +
    (restarts.length ? `\nNOTE: another user restarted the database server during: ${restarts.join('; ')} (${watch.disturbances.length} restart(s); disturbed samples redone)` : '');
  const targetText =
    targets.map(t => `${t.met ? 'PASS' : 'MISS'}  ${t.target}: ${t.value}`).join('\n') +
    failures.map(f => `\nFAILED ${f.what}: ${f.error}`).join('');
  process.stdout.write(`\n${heading}\n\n${table}\n\n${targetText}\n`);

  const resultsDir = path.resolve(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(resultsDir, {recursive: true});
  const stamp = started.toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
  const file = path.join(resultsDir, `${stamp}-${BACKEND}${QUICK ? '-quick' : ''}.json`);
  const json = {
    command,
    startedAt: started.toISOString(),
    durationSeconds: duration,
    backend: BACKEND,
    server: serverVersion,
    database: DATABASE,
    quick: QUICK,
    machine: {cores: os.cpus().length, node: process.version, loadAverage: loads, phaseSeconds: phaseTimes},
    serverRestartedDuring: restarts,
    timings: {leaseDuration: L, heartbeatInterval: H, checkMasterInterval: C, initDelay: 500, maxHeartbeatRetryCount: 3},
    plan: PLAN,
    latency: Object.fromEntries(
      Object.entries(latency).map(([s, byImpl]) => [
        s,
        Object.fromEntries(
          Object.entries(byImpl).map(([impl, r]) => [
            impl,
            {
              summary: summaries[s][impl as Impl],
              samplesMs: r!.samples.map(v => (Number.isFinite(v) ? round(v, 2) : null)),
              extra: Object.fromEntries(Object.entries(r!.extra).map(([k, v]) => [k, {summary: summarize(v), samplesMs: v.map(x => round(x, 2))}])),
              overlaps: r!.overlaps,
              spuriousStops: r!.spuriousStops,
              discardedForServerRestart: r!.discarded,
              failedRepetitions: r!.errors,
              unexpectedExits: r!.unexpectedExits,
            },
          ]),
        ),
      ]),
    ),
    crashTakeoversSoonerThanLeaseMinusHeartbeat: {ours: early('ours'), baseline: early('baseline')},
    load,
    scale,
    targets,
    failures,
    table,
  };
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  if (flag('events')) {
    const events = log.events.map(({replica, ...e}) => JSON.stringify({...e, replica: replica.instanceId}));
    writeFileSync(file.replace(/\.json$/, '-events.tmp'), events.join('\n') + '\n');
  }
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), file)}\n`);
}

let exiting = false;
const cleanup = (code: number) => {
  if (exiting) return;
  exiting = true;
  killAll();
  try {
    rmSync(path.dirname(DIST), {recursive: true, force: true});
  } catch {
    // a temporary directory
  }
  Promise.all([harnessSql?.close(), counter?.close(), watch?.stop()])
    .catch(() => {})
    .finally(() => process.exit(code));
};
process.on('SIGINT', () => cleanup(130));
process.on('SIGTERM', () => cleanup(143));
main().then(
  () => cleanup(0),
  err => {
    process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
    cleanup(1);
  },
);
