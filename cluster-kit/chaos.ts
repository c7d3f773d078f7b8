// Random faults on a process cluster, drawn from a seeded PRNG, with the
// checker run after every one, and the summary of a run. `npm run chaos`
// (scripts/chaos.ts) runs it for minutes; the cluster tests run it briefly.
// The sequence of faults and their parameters depends on the seed only; how
// the cluster reacts is real timing.

import {CheckReport, FaultKind, FaultRecord} from './checker';
import {ProcessCluster} from './cluster';
import {mono, sleep} from './time';

/** mulberry32: small, fast, good enough to pick faults reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How often each fault is drawn, relative to the others. */
const WEIGHTS: [FaultKind, number][] = [
  ['sigkill', 2],
  ['sigterm', 2],
  ['sigstop', 2],
  ['sigstop-replica', 1],
  ['connections', 2],
  ['db-restart', 1],
  ['disable', 1],
  ['partition', 2],
  ['latency', 1],
  ['cpu-starve', 1],
  ['db-freeze', 1],
  ['db-kill', 1],
  ['rest-storm', 1],
];

/** A cluster this broken is not worth more faults: the run ends and says so. */
const MAX_FAILED_IN_A_ROW = 10;

/** Faults that need a proxy per replica, and those that need a server of the run's own. */
const NEEDS_PROXY: FaultKind[] = ['partition', 'latency'];
const NEEDS_OWN_SERVER: FaultKind[] = ['db-restart', 'db-freeze', 'db-kill'];

export interface ChaosOptions {
  /** Stops after this long (default: no limit, but `faults` must be set). */
  durationMs?: number;
  /** Stops after this many faults. */
  faults?: number;
  seed: number;
  /** Progress and violations as they are found. */
  onProgress?: (message: string) => void;
  /** Ends the run early (after the current fault). */
  shouldStop?: () => boolean;
}

export interface ChaosSummary {
  seed: number;
  elapsedMs: number;
  faults: Record<FaultKind, number>;
  report: CheckReport;
  /** Slowest recovery per fault kind injected by this run, in ms. */
  slowestRecovery: Partial<Record<FaultKind, number>>;
  recoveryBound: number;
  /** Faults the harness could not inject (e.g. no master to aim at). */
  harnessErrors: string[];
}

/** Injects random faults into a started cluster for `durationMs`; keeps its size. */
export async function runChaos(
  cluster: ProcessCluster,
  options: ChaosOptions,
): Promise<ChaosSummary> {
  const random = seededRandom(options.seed);
  const between = (min: number, max: number) => Math.round(min + random() * (max - min));
  const progress = options.onProgress ?? (() => {});
  const size = cluster.live().length;
  const t = cluster.timings;
  if (options.durationMs === undefined && options.faults === undefined) {
    throw new Error('runChaos needs durationMs or faults');
  }
  const proxied = cluster.live().every(r => r.proxy);
  const weights = WEIGHTS.filter(
    ([kind]) =>
      (!NEEDS_OWN_SERVER.includes(kind) || cluster.server.canRestart) &&
      (!NEEDS_PROXY.includes(kind) || proxied),
  );
  const total = weights.reduce((sum, [, w]) => sum + w, 0);
  const faults = Object.fromEntries(WEIGHTS.map(([kind]) => [kind, 0])) as Record<
    FaultKind,
    number
  >;
  const harnessErrors: string[] = [];
  const started = mono();

  // Faults not injected count too: a cluster that stays broken must end the run, not spin.
  let attempts = 0;
  let failedInARow = 0;
  const more = () =>
    mono() - started < (options.durationMs ?? Infinity) &&
    attempts < (options.faults ?? Infinity) &&
    failedInARow < MAX_FAILED_IN_A_ROW &&
    !options.shouldStop?.();
  const printed = new Set<string>();
  while (more()) {
    let pick = random() * total;
    const [kind] = weights.find(([, w]) => (pick -= w) < 0) ?? weights[0];
    // Parameters are drawn even if unused, so the sequence depends on the seed only.
    const pauseMs = between(t.leaseDuration / 4, cluster.recoveryBound + 500); // below and beyond the lease
    const downMs = between(200, 2 * t.leaseDuration);
    const disabledMs = between(3 * t.heartbeatInterval, t.leaseDuration + t.checkMasterInterval);
    const dwellMs = between(300, 1500);
    const latencyMs = between(20, t.leaseDuration / 2);
    const share = 0.1 + random() * 0.4;
    const stormPairs = between(3, 10);
    const inject = (k: FaultKind): Promise<{fault: FaultRecord}> => {
      if (k === 'sigkill') return cluster.signalMaster('SIGKILL');
      if (k === 'sigterm') return cluster.signalMaster('SIGTERM');
      if (k === 'sigstop') return cluster.pauseMaster(pauseMs);
      if (k === 'sigstop-replica') return cluster.pauseNonMaster(pauseMs);
      if (k === 'connections') return cluster.cutMasterConnections();
      if (k === 'db-restart') return cluster.restartDatabase(downMs);
      if (k === 'partition') return cluster.partitionMaster(pauseMs);
      if (k === 'latency') return cluster.slowMaster(latencyMs, pauseMs);
      if (k === 'cpu-starve') return cluster.starveMaster(share, pauseMs);
      if (k === 'db-freeze') return cluster.freezeDatabase(downMs);
      if (k === 'db-kill') return cluster.crashDatabase(downMs);
      if (k === 'rest-storm') return cluster.restStorm(stormPairs, 2 * t.heartbeatInterval, random);
      return cluster.disableAndEnable(disabledMs);
    };
    attempts++;
    try {
      const {fault} = await inject(kind);
      faults[kind]++;
      failedInARow = 0;
      const at = ((fault.at - started) / 1000).toFixed(1);
      progress(`${at} s: ${kind} of ${fault.target}${fault.note ? ' (' + fault.note + ')' : ''}`);
    } catch (err) {
      failedInARow++;
      harnessErrors.push(`${kind}: ${err.message}`);
      progress(`${kind} not injected: ${err.message}`);
    }
    // Replace what was killed (and anything lost), then let the cluster settle.
    try {
      while (cluster.live().length < size) await cluster.spawnReplica();
    } catch (err) {
      failedInARow++;
      harnessErrors.push(`replacing a replica: ${err.message}`);
      progress(`replacing a replica failed: ${err.message}`);
    }
    await cluster.waitForMaster(cluster.recoveryBound + 1000).catch(() => {});
    await sleep(dwellMs);
    // Every violation once, as found (a later check may insert one before those printed).
    for (const v of cluster.check().violations) {
      if (!printed.has(v)) progress(`VIOLATION ${v}`);
      printed.add(v);
    }
  }
  if (failedInARow >= MAX_FAILED_IN_A_ROW) {
    harnessErrors.push(`stopped after ${failedInARow} faults in a row could not be injected`);
  }

  const report = cluster.check();
  const slowestRecovery: ChaosSummary['slowestRecovery'] = {};
  for (const {fault, ms} of report.recoveries) {
    if (ms !== undefined && fault.at >= started) {
      slowestRecovery[fault.kind] = Math.max(slowestRecovery[fault.kind] ?? 0, ms);
    }
  }
  return {
    seed: options.seed,
    elapsedMs: mono() - started,
    faults,
    report,
    slowestRecovery,
    recoveryBound: cluster.recoveryBound,
    harnessErrors,
  };
}

export function formatSummary(s: ChaosSummary, title: string): string {
  const r = s.report;
  const round = (ms: number) => `${Math.round(ms)} ms`;
  const injected = Object.values(s.faults).reduce((a, b) => a + b, 0);
  const byKind = Object.entries(s.faults)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const recoveries = Object.entries(s.slowestRecovery)
    .map(([k, ms]) => `${k} ${round(ms!)}`)
    .join(', ');
  const gaps = Object.entries(r.longestGap.byFault)
    .map(([k, ms]) => `${k} ${round(ms!)}`)
    .join(', ');
  const lines = [
    `chaos summary: ${title}, seed ${s.seed}, ${Math.round(s.elapsedMs / 1000)} s`,
    `  faults injected:        ${injected} (${byKind})`,
    `  overlaps found:         ${r.overlaps} (two masters at once, not excused by a pause)`,
    `  stale masters fenced:   ${r.fencedOverlaps} (a paused master woke up after a takeover)`,
    `  fenced writes:          ${r.writes.accepted} accepted, ${r.writes.rejected} rejected, ` +
      `${r.writes.failed} failed (outcome unknown)`,
    `  stale writes:           ${r.writes.staleRejected} rejected by the fencing token, ` +
      `${r.writes.staleAccepted} accepted before the newer master's first write; ` +
      `${r.fencingFailures} accepted out of token order`,
    `  longest leaderless gap: ${round(r.longestGap.ms)}` +
      (r.longestGap.afterFault ? ` (after ${r.longestGap.afterFault})` : ''),
    `  longest gap per fault:  ${gaps || 'none'}`,
    `  slowest recovery:       ${recoveries || 'none'} (bound ${round(s.recoveryBound)})`,
    `  processes lost:         ${r.processesLost}`,
    `  violations:             ${r.violations.length}`,
    ...r.violations.map(v => `    - ${v}`),
    ...s.harnessErrors.map(e => `  harness error: ${e}`),
  ];
  return lines.join('\n');
}
