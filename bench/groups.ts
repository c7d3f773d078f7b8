// `npm run bench:groups [-- --quick] [-- --mysql]`: balanced groups side by
// side with plain locks, both this package's example app as real processes on
// a fresh database. The same R resources, as R plain locks (DEMO_LOCKS) or as
// a group (DEMO_GROUP), on M replicas started at once (full 10 x 1000, quick
// 5 x 200). Prints, per mode: how long until every lock has a master, until
// the owners are balanced (every replica within one of R/M), the split, the
// stops at startup by reason, statements per second per replica at rest, and
// how long the group takes to rebalance after a join, a SIGTERM and a
// SIGKILL. Figures, not assertions.

import {
  DatabaseServer,
  mono,
  ProcessCluster,
  recreateDatabase,
  serverAddress,
  sleep,
  waitFor,
} from '../cluster-kit';
import {StatementCounter} from './lib/server-stats';
import {TIMINGS} from './lib/options';
import {loadAverage, note, sideBenchArgs} from './lib/side-bench';
import {EXAMPLE_SCRIPT} from '../cluster-kit';

const {quick, backend, command} = sideBenchArgs('bench:groups');
const REPLICAS = quick ? 5 : 10;
const RESOURCES = quick ? 200 : 1000;
const WINDOW_MS = quick ? 10000 : 20000;
const DATABASE = 'mje_bench_groups';
/** Plain locks never balance: how long to wait before saying so. */
const BALANCE_CAP_MS = 60000;

interface ModeResult {
  mode: string;
  coverageMs: number | null;
  balancedMs: number | null;
  split: number[];
  startupStops: Record<string, number>;
  statementsPerSecPerReplica: number;
  joinMs?: number | null;
  leaveMs?: number | null;
  crashMs?: number | null;
  moves?: {join: number; leave: number; crash: number};
}

async function main(): Promise<void> {
  note(
    `${command}: ${backend}, ` +
      `${REPLICAS} replicas x ${RESOURCES} resources, timings ${JSON.stringify(TIMINGS)}, ` +
      `load average ${loadAverage()}`,
  );
  const results: ModeResult[] = [];
  for (const mode of ['plain locks', 'group'] as const) {
    await recreateDatabase(backend, serverAddress(backend), DATABASE);
    results.push(await measure(mode));
  }
  printTable(results);
}

async function measure(mode: 'plain locks' | 'group'): Promise<ModeResult> {
  const server = new DatabaseServer(backend, DATABASE);
  const group = 'BENCH';
  const names = Array.from({length: RESOURCES}, (_, i) =>
    mode === 'group' ? `${group}/r${i}` : `LOCK-${i}`,
  );
  const cluster = new ProcessCluster({
    server,
    lockNames: mode === 'group' ? ['BENCH-ONE-LOCK'] : names,
    replicas: REPLICAS,
    namePrefix: mode === 'group' ? 'g' : 'l',
    timings: TIMINGS,
    script: EXAMPLE_SCRIPT,
    baseEnv: {PATH: process.env.PATH ?? '', NODE_ENV: 'production'},
    extraEnv: mode === 'group' ? {DEMO_GROUP: `${group}:${RESOURCES}`} : {},
    readiness: 'http',
  });
  const counter = new StatementCounter(backend, DATABASE);
  const split = () => {
    const counts = new Map(cluster.live().map(r => [r.instanceId, 0]));
    for (const name of names) {
      for (const s of cluster.log.running(name)) {
        const n = counts.get(s.instanceId);
        if (n !== undefined) counts.set(s.instanceId, n + 1);
      }
    }
    return [...counts.values()].sort((a, b) => b - a);
  };
  const covered = () => names.every(n => cluster.log.running(n).length === 1);
  const balanced = () => {
    const s = split();
    return covered() && s[0] - s[s.length - 1] <= 1;
  };
  const timeUntil = async (what: string, test: () => boolean, from: number, cap: number) => {
    try {
      await waitFor(what, test, cap - (mono() - from), 50);
      return Math.round(mono() - from);
    } catch {
      return null;
    }
  };
  const stopsSince = (from: number) => {
    const reasons: Record<string, number> = {};
    for (const j of cluster.log.jobs) {
      if (j.event === 'stop' && j.mono >= from && j.lockName !== 'BENCH-ONE-LOCK') {
        reasons[j.reason ?? 'null'] = (reasons[j.reason ?? 'null'] ?? 0) + 1;
      }
    }
    return reasons;
  };
  const count = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  try {
    const t0 = mono();
    await cluster.start();
    const coverageMs = await timeUntil('every lock mastered', covered, t0, 120000);
    const balancedMs = await timeUntil('balanced', balanced, t0, BALANCE_CAP_MS);
    await sleep(2 * TIMINGS.leaseDuration); // late churn shows in the stops
    const startupStops = stopsSince(t0);
    const before = await counter.snapshot();
    const w0 = mono();
    await sleep(WINDOW_MS);
    const after = await counter.snapshot();
    const seconds = (mono() - w0) / 1000;
    const result: ModeResult = {
      mode,
      coverageMs,
      balancedMs,
      split: split(),
      startupStops,
      statementsPerSecPerReplica:
        Math.round(((after.statements - before.statements) / seconds / REPLICAS) * 10) / 10,
    };
    note(`  ${mode}: ${JSON.stringify(result)}`);
    if (mode === 'group') {
      // From the moment the new replica answers HTTP (its boot is not the group's doing).
      await cluster.spawnReplica();
      let from = mono();
      result.joinMs = await timeUntil('balanced after a join', balanced, from, 30000);
      const join = count(stopsSince(from));
      from = mono();
      const [leaving] = cluster.live();
      await leaving.terminate();
      result.leaveMs = await timeUntil('balanced after a SIGTERM', balanced, from, 30000);
      const leave = count(stopsSince(from));
      from = mono();
      const [victim] = cluster.live();
      victim.kill('SIGKILL');
      await victim.exited;
      result.crashMs = await timeUntil('balanced after a SIGKILL', balanced, from, 30000);
      const crash = count(stopsSince(from));
      result.moves = {join, leave, crash};
      note(`  ${mode} after join/leave/crash: ${JSON.stringify(result)}`);
    }
    return result;
  } finally {
    await cluster.shutdown();
    await counter.close();
  }
}

function printTable(results: ModeResult[]): void {
  const ms = (v: number | null | undefined) =>
    v === null ? 'never' : v === undefined ? '-' : `${v} ms`;
  const rows: [string, ...string[]][] = [
    ['', ...results.map(r => r.mode)],
    ['every lock mastered after start', ...results.map(r => ms(r.coverageMs))],
    [
      `balanced (all within 1 of ${RESOURCES / REPLICAS}) after start`,
      ...results.map(r =>
        r.balancedMs === null ? `not in ${BALANCE_CAP_MS / 1000} s` : ms(r.balancedMs),
      ),
    ],
    ['split at rest (per replica)', ...results.map(r => r.split.join('+'))],
    ['stops at startup, by reason', ...results.map(r => JSON.stringify(r.startupStops))],
    ['statements/s per replica at rest', ...results.map(r => String(r.statementsPerSecPerReplica))],
    ['balanced after 1 joins (from its readiness)', ...results.map(r => ms(r.joinMs))],
    ['balanced after 1 leaves (SIGTERM)', ...results.map(r => ms(r.leaveMs))],
    ['balanced after 1 is SIGKILLed', ...results.map(r => ms(r.crashMs))],
    [
      'resources moved: join / leave / crash',
      ...results.map(r =>
        r.moves ? `${r.moves.join} / ${r.moves.leave} / ${r.moves.crash}` : '-',
      ),
    ],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)));
  for (const row of rows) {
    process.stdout.write(row.map((cell, i) => cell.padEnd(widths[i])).join(' | ') + '\n');
  }
}

main().then(
  () => process.exit(0),
  err => {
    process.stderr.write(`bench:groups failed: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
