// The report of a benchmark run: latency summaries, the table (ours,
// baseline, baseline/ours) with its heading, the targets as PASS/MISS, and
// the JSON under bench/results/ (raw samples included), plus the job lines
// with --events.

import {writeFileSync, mkdirSync} from 'fs';
import os from 'os';
import path from 'path';
import {mono} from '../../cluster-kit';
import {BenchResults, CRASH_DEFAULTS, CRASH_SLOW_POLL, HANDOFF_FLOOR} from '../phases';
import {LoadResult} from '../scenarios/load';
import {ScaleResult} from '../scenarios/scale';
import {BenchContext, IMPL_NAMES, Impl} from './context';
import {C, DEFAULT_TIMINGS, H, L, Plan, QUIET_CAP_MS, SLOW_POLL_TIMINGS} from './options';
import {round, Summary, summarize} from './stats';

export type Row = [string, string, string, string];

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
    rows.push([
      `  ${k} ms`,
      ours ? ms(o) : '-',
      baseline ? ms(b) : '-',
      ours && baseline ? ratio(o, b) : '-',
    ]);
  }
  return rows;
}

function printTable(rows: Row[]): string {
  const header: Row = ['scenario / metric', 'ours', 'baseline', 'baseline/ours'];
  const all = [header, ...rows];
  const width = [0, 1, 2, 3].map(i => Math.max(...all.map(r => r[i].length)));
  const line = (r: Row) =>
    `${r[0].padEnd(width[0])}  ${r[1].padStart(width[1])}  ${r[2].padStart(width[2])}  ${r[3].padStart(width[3])}`;
  const sep = '-'.repeat(width.reduce((a, b) => a + b + 2, -2));
  return [line(header), sep, ...rows.map(r => (r[1] === '' && r[2] === '' ? r[0] : line(r)))].join(
    '\n',
  );
}

type Latency = BenchResults['latency'];
type Summaries = Record<string, Partial<Record<Impl, Summary>>>;

/** When and how the run was started, for the heading and the JSON. */
export interface RunInfo {
  command: string;
  started: Date;
  /** mono() at the start. */
  t0: number;
}

function summarizeLatency(latency: Latency): Summaries {
  const summaries: Record<string, Partial<Record<Impl, Summary>>> = {};
  for (const [scenario, byImpl] of Object.entries(latency)) {
    summaries[scenario] = {};
    for (const impl of IMPL_NAMES) {
      const r = byImpl[impl];
      if (r?.samples.length) summaries[scenario][impl] = summarize(r.samples);
    }
  }
  return summaries;
}

/** Crash takeovers sooner than leaseDuration - heartbeatInterval. */
function early(latency: Latency, impl: Impl): number {
  return latency.crash?.[impl]?.samples.filter(s => s < L - H).length ?? 0;
}

/** Starts while another replica still ran the job, in the latency scenarios. */
function safety(latency: Latency, impl: Impl): number {
  return ['crash', 'handoff', 'disable'].reduce(
    (a, s) => a + (latency[s]?.[impl]?.overlaps ?? 0),
    0,
  );
}

function latencySection(latency: Latency, summaries: Summaries): Row[] {
  const rows: Row[] = [];
  const crash = summaries.crash ?? {};
  rows.push(
    ...latencyRows(
      'crash failover: SIGKILL master -> start() elsewhere',
      crash.ours,
      crash.baseline,
    ),
  );
  if (crash.ours || crash.baseline) {
    const rel = (s?: Summary) =>
      s?.p99 != null && s.p50 != null
        ? `${(s.p50 / (L + C)).toFixed(2)} / ${(s.p99 / (L + C)).toFixed(2)}`
        : '-';
    rows.push([
      `  p50 / p99 as a ratio to leaseDuration + checkMasterInterval (${L + C} ms)`,
      rel(crash.ours),
      rel(crash.baseline),
      '',
    ]);
    rows.push([
      `  takeovers sooner than leaseDuration - heartbeat (${L - H} ms)`,
      String(early(latency, 'ours')),
      String(early(latency, 'baseline')),
      '',
    ]);
  }
  for (const [key, timings] of [
    [CRASH_SLOW_POLL, SLOW_POLL_TIMINGS],
    [CRASH_DEFAULTS, DEFAULT_TIMINGS],
  ] as const) {
    const s = summaries[key];
    if (!s) continue;
    const {leaseDuration: lease, heartbeatInterval: hb, checkMasterInterval: poll} = timings;
    rows.push(
      ...latencyRows(
        `${key} (L ${lease}, H ${hb}, C ${poll} ms): SIGKILL -> start()`,
        s.ours,
        s.baseline,
      ),
    );
    const over = (x?: Summary) => (x?.p99 != null ? `${Math.round(x.p99 - lease)}` : '-');
    rows.push([`  p99 - leaseDuration, ms`, over(s.ours), over(s.baseline), '']);
    const sooner = (impl: Impl) =>
      String(latency[key]?.[impl]?.samples.filter(v => v < lease - hb).length ?? 0);
    rows.push([
      `  takeovers sooner than L - H (${lease - hb} ms)`,
      sooner('ours'),
      sooner('baseline'),
      '',
    ]);
  }
  rows.push(
    ...latencyRows(
      'graceful handoff: SIGTERM master -> start() elsewhere',
      summaries.handoff?.ours,
      summaries.handoff?.baseline,
    ),
  );
  const part = (scenario: string, key: string, label: string) => {
    const f = (impl: Impl) => {
      const v = latency[scenario]?.[impl]?.extra[key];
      if (!v?.length) return '-';
      const x = summarize(v);
      return `${ms(x.p50)} / ${ms(x.p99)}`;
    };
    if (latency[scenario]) rows.push([`  ${label}, p50 / p99 ms`, f('ours'), f('baseline'), '']);
  };
  if (summaries[HANDOFF_FLOOR]?.ours) {
    const f = summaries[HANDOFF_FLOOR].ours;
    rows.push([
      `  floor: the same two statements on bare pg, no LoopBack (n = ${f.n}), p50 / p99 ms`,
      `${ms(f.p50)} / ${ms(f.p99)}`,
      '',
      '',
    ]);
  }
  part('handoff', 'sigtermToStopLine', 'of which SIGTERM -> stop() on the old master');
  part('handoff', 'stopLineToStart', 'of which stop() -> start() on the new one');
  part('handoff', 'sigtermToExit', 'SIGTERM -> process exit');
  part(
    'handoff',
    'refillSettle',
    'wait after a refill until its replicas idle (before a handoff, not in it)',
  );
  rows.push(
    ...latencyRows(
      'disable (POST to a non-master) -> stop() on the master',
      summaries.disable?.ours,
      summaries.disable?.baseline,
    ),
  );
  part('disable', 'httpResponse', 'of which the HTTP response');
  rows.push(
    ...latencyRows(
      'enable (POST) -> start() somewhere',
      summaries.enable?.ours,
      summaries.enable?.baseline,
    ),
  );
  part('enable', 'httpResponse', 'of which the HTTP response');
  const spurious = (impl: Impl) => latency.disable?.[impl]?.spuriousStops ?? 0;
  if (Object.keys(latency).length) {
    rows.push(['safety in the scenarios above', '', '', '']);
    rows.push([
      '  start() while another replica still ran the job',
      String(safety(latency, 'ours')),
      String(safety(latency, 'baseline')),
      '',
    ]);
    rows.push([
      '  stop() on a replica that was not running the job',
      String(spurious('ours')),
      String(spurious('baseline')),
      '',
    ]);
  }
  return rows;
}

function loadSection(plan: Plan, load: BenchResults['load']): Row[] {
  const rows: Row[] = [];
  if (load.ours.length || load.baseline.length) {
    rows.push([
      `database load, ${plan.load.replicas} replicas, ${plan.load.windowMs / 1000} s window`,
      '',
      '',
      '',
    ]);
    for (const locks of plan.load.locks) {
      const o = load.ours.find(r => r.locks === locks);
      const b = load.baseline.find(r => r.locks === locks);
      const f = (v?: number) =>
        v === undefined
          ? '-'
          : Number.isNaN(v)
            ? 'all died'
            : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);
      const rat = (x?: number, y?: number) =>
        x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y)
          ? '-'
          : ratio(x, y);
      const label = `  ${locks} lock${locks > 1 ? 's' : ''}:`;
      const split = (r?: LoadResult) =>
        !r ? '-' : r.mastersPerReplica?.length ? r.mastersPerReplica.join('+') : 'all died';
      rows.push([
        `${label} statements/s per replica`,
        f(o?.statementsPerSecPerReplica),
        f(b?.statementsPerSecPerReplica),
        rat(o?.statementsPerSecPerReplica, b?.statementsPerSecPerReplica),
      ]);
      if (
        o?.notifiesPerSecPerReplica !== undefined &&
        Number.isFinite(o.notifiesPerSecPerReplica)
      ) {
        rows.push([
          `${label} NOTIFYs/s per replica (renewal announcements, releases)`,
          f(o.notifiesPerSecPerReplica),
          f(b?.notifiesPerSecPerReplica),
          '',
        ]);
      }
      rows.push([`${label} locks held by each replica (end of window)`, split(o), split(b), '']);
      rows.push([
        `${label} statements/s per replica the protocol predicts for that split`,
        f(o?.expectedPerReplica),
        f(b?.expectedPerReplica),
        '',
      ]);
      rows.push([
        `${label} CPU % of a core per replica`,
        f(o?.cpuPercentPerReplica.mean),
        f(b?.cpuPercentPerReplica.mean),
        rat(o?.cpuPercentPerReplica.mean, b?.cpuPercentPerReplica.mean),
      ]);
      const startup = (r?: LoadResult) =>
        r
          ? `${r.coverageMs === null ? 'never' : Math.round(r.coverageMs)} / ${r.settledMs === null ? '>' + QUIET_CAP_MS / 1000 + ' s' : Math.round(r.settledMs)}`
          : '-';
      rows.push([
        `  ${locks} lock${locks > 1 ? 's' : ''}: start, ms to all mastered / to stable`,
        startup(o),
        startup(b),
        '',
      ]);
      const lost = (r?: LoadResult) =>
        r
          ? String(
              Object.entries(r.startupStops)
                .filter(([k]) => k !== 'stopped')
                .reduce((a, [, v]) => a + v, 0),
            )
          : '-';
      rows.push([
        `  ${locks} lock${locks > 1 ? 's' : ''}: start, stop() lines before stable`,
        lost(o),
        lost(b),
        '',
      ]);
    }
    const sum = (list: LoadResult[], f: (r: LoadResult) => number) =>
      String(list.reduce((a, r) => a + f(r), 0));
    rows.push([
      '  all: start() while another replica still ran the job',
      sum(load.ours, r => r.overlaps),
      sum(load.baseline, r => r.overlaps),
      '',
    ]);
    rows.push([
      '  all: replica processes that died unexpectedly',
      sum(load.ours, r => r.unexpectedExits),
      sum(load.baseline, r => r.unexpectedExits),
      '',
    ]);
  }
  return rows;
}

/** Ours with many replicas on a private server: one column per lock count, in the "ours" column. */
function crowdSection(plan: Plan, crowd: LoadResult[]): Row[] {
  if (!crowd.length) return [];
  const rows: Row[] = [
    [
      `crowd: ${plan.crowd.replicas} replicas of ours started at once, private server, ${plan.crowd.windowMs / 1000} s window`,
      '',
      '',
      '',
    ],
  ];
  const f = (v: number | null | undefined) =>
    v === null || v === undefined || Number.isNaN(v) ? '-' : String(v);
  for (const r of crowd) {
    const label = `  ${r.locks} lock${r.locks > 1 ? 's' : ''}:`;
    const expired = r.startupStops.expired ?? 0;
    rows.push([
      `${label} ms to all mastered / to stable`,
      `${f(r.coverageMs)} / ${f(r.settledMs)}`,
      '',
      '',
    ]);
    rows.push([
      `${label} stop() lines before stable (expired)`,
      `${sumOf(r.startupStops)} (${expired})`,
      '',
      '',
    ]);
    rows.push([
      `${label} locks with exactly one master (end of window)`,
      `${f(r.exactlyOne)}/${r.locks}`,
      '',
      '',
    ]);
    rows.push([`${label} statements/s per replica`, f(r.statementsPerSecPerReplica), '', '']);
    if (Number.isFinite(r.notifiesPerSecPerReplica))
      rows.push([`${label} NOTIFYs/s per replica`, f(r.notifiesPerSecPerReplica), '', '']);
    rows.push([
      `${label} CPU % of a core per replica, mean / max`,
      `${f(r.cpuPercentPerReplica.mean)} / ${f(r.cpuPercentPerReplica.max)}`,
      '',
      '',
    ]);
    rows.push([
      `${label} replicas measured, died unexpectedly`,
      `${r.replicasMeasured}, ${r.unexpectedExits}`,
      '',
      '',
    ]);
  }
  return rows;
}

function sumOf(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function scaleSection(plan: Plan, scale: BenchResults['scale']): Row[] {
  const rows: Row[] = [];
  if (scale.ours || scale.baseline) {
    const {replicas, locks, windowMs} = plan.scale;
    rows.push([
      `scale: ${replicas} replicas x ${locks} locks, ${windowMs / 1000} s window (baseline ${plan.scale.baselineWindowMs / 1000} s)`,
      '',
      '',
      '',
    ]);
    const get = <T>(f: (r: ScaleResult) => T) => [
      scale.ours ? f(scale.ours) : undefined,
      scale.baseline ? f(scale.baseline) : undefined,
    ];
    const str = (v: unknown) =>
      v === undefined ? '-' : v === null ? 'never' : Number.isNaN(v) ? 'all died' : String(v);
    const add = (label: string, f: (r: ScaleResult) => unknown, withRatio = false) => {
      const [o, b] = get(f);
      const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
      rows.push([
        `  ${label}`,
        str(o),
        str(b),
        withRatio && finite(o) && finite(b) ? ratio(o, b) : '',
      ]);
    };
    add('start (all at once), ms to all mastered', r => r.coverageMs);
    add('start, ms to stable (no start/stop for 5 s)', r => r.settledMs);
    add('stop() lines before stable', r =>
      Object.entries(r.startupStops)
        .filter(([k]) => k !== 'stopped')
        .reduce((a, [, v]) => a + v, 0),
    );
    add(
      'samples with exactly one master for every lock',
      r => `${r.samples.filter(s => s.exactlyOne === locks).length}/${r.samples.length}`,
    );
    add('worst sample: locks with exactly one master', r =>
      r.samples.length ? Math.min(...r.samples.map(s => s.exactlyOne)) : '-',
    );
    add('worst sample: locks whose table row names that master', r =>
      r.samples.length ? Math.min(...r.samples.map(s => s.tableAgrees)) : '-',
    );
    add('status endpoint: locks with a holder, agrees with table', r =>
      r.statusEndpoint
        ? `${r.statusEndpoint.locksWithHolder}, ${r.statusEndpoint.agreesWithTable ? 'yes' : 'no'}`
        : '-',
    );
    add('start() while another replica still ran the job', r => r.overlaps);
    add('start()/stop() lines in the window', r => `${r.startsInWindow}/${r.stopsInWindow}`);
    add('replicas alive at the start of the window', r => r.replicasMeasured);
    add('statements/s per replica', r => r.statementsPerSecPerReplica, true);
    add('NOTIFYs/s per replica', r => r.notifiesPerSecPerReplica ?? '-');
    add('locks held by each replica (end of window)', r =>
      r.mastersPerReplica?.length ? r.mastersPerReplica.join('+') : 'all died',
    );
    add('statements/s per replica the protocol predicts for that split', r => r.expectedPerReplica);
    add('CPU % of a core per replica (mean)', r => r.cpuPercentPerReplica.mean, true);
    add('replica processes that died unexpectedly', r => r.unexpectedExits);
  }
  return rows;
}

interface Target {
  target: string;
  value: string;
  met: boolean;
}

/** The targets of issue 5. */
function targetsOf(
  backend: string,
  plan: Plan,
  results: BenchResults,
  summaries: Summaries,
): Target[] {
  const {latency, load, scale} = results;
  const crash = summaries.crash ?? {};
  const targets: Target[] = [];
  if (backend === 'postgresql') {
    for (const [s, what] of [
      ['handoff', 'graceful handoff'],
      ['disable', 'disable -> stop()'],
      ['enable', 'enable -> start()'],
    ]) {
      const p99 = summaries[s]?.ours?.p99;
      if (summaries[s]?.ours)
        targets.push({
          target: `${what} p99 < 50 ms`,
          value: `${ms(p99 ?? null)} ms`,
          met: p99 != null && p99 < 50,
        });
    }
  }
  // Issue 18: PostgreSQL p50 <= 5 ms and p99 <= 10 ms; MySQL/MariaDB (a doorbell, no NOTIFY) p99 <= 50 ms.
  for (const [s, what] of [
    ['handoff', 'graceful handoff'],
    ['disable', 'disable -> stop()'],
    ['enable', 'enable -> start()'],
  ]) {
    const o = summaries[s]?.ours;
    if (!o) continue;
    if (backend === 'postgresql') {
      targets.push({
        target: `issue 18: ${what} p50 <= 5 ms and p99 <= 10 ms`,
        value: `${ms(o.p50)} / ${ms(o.p99)} ms`,
        met: o.p50 != null && o.p99 != null && o.p50 <= 5 && o.p99 <= 10,
      });
    } else if (s !== 'disable') {
      targets.push({
        target: `issue 18: ${what} p99 <= 50 ms, independent of checkMasterInterval (${C} ms)`,
        value: `${ms(o.p99)} ms`,
        met: o.p99 != null && o.p99 <= 50,
      });
    }
  }
  if (crash.ours) {
    const p99 = crash.ours.p99;
    targets.push({
      target: `crash failover p99 <= leaseDuration + checkMasterInterval + 50 ms (${L + C + 50} ms)`,
      value: `${ms(p99)} ms`,
      met: p99 != null && p99 <= L + C + 50,
    });
    targets.push({
      target: `no crash takeover sooner than leaseDuration - heartbeatInterval (${L - H} ms)`,
      value: `${early(latency, 'ours')} sooner, earliest ${ms(crash.ours.min)} ms`,
      met: early(latency, 'ours') === 0,
    });
  }
  // Issue 18: renewals announced (PostgreSQL) or a crash rung about by the watch of its doorbell
  // (MySQL/MariaDB): failover is about L whatever C.
  for (const [key, timings] of [
    ['crash', {leaseDuration: L, heartbeatInterval: H}],
    [CRASH_SLOW_POLL, SLOW_POLL_TIMINGS],
    [CRASH_DEFAULTS, DEFAULT_TIMINGS],
  ] as const) {
    const s = summaries[key]?.ours;
    if (!s) continue;
    const {leaseDuration: lease, heartbeatInterval: hb} = timings;
    const sooner = latency[key]?.ours?.samples.filter(v => v < lease - hb).length ?? 0;
    targets.push({
      target: `${key}: failover p99 <= leaseDuration + 100 ms (${lease + 100} ms), none sooner than L - H`,
      value: `p99 ${ms(s.p99)} ms, ${sooner} sooner`,
      met: s.p99 != null && s.p99 <= lease + 100 && sooner === 0,
    });
  }
  if (load.ours.length > 1) {
    const rates = load.ours.map(r => r.statementsPerSecPerReplica);
    const spread = Math.max(...rates) / Math.max(0.001, Math.min(...rates));
    targets.push({
      target: 'statements/s per replica flat from 1 to 1000 locks (max/min <= 1.5)',
      value: `${rates.join(' / ')} (max/min ${spread.toFixed(2)})`,
      met: spread <= 1.5,
    });
  }
  const crowd = results.crowd;
  if (crowd.length) {
    const n = plan.crowd.replicas;
    const rates = crowd.map(r => r.statementsPerSecPerReplica);
    const spread = Math.max(...rates) / Math.max(0.001, Math.min(...rates));
    const cpuMax = Math.max(...crowd.map(r => r.cpuPercentPerReplica.max));
    targets.push({
      target: `issue 18: ${n} replicas: exactly one master per lock at the end of every window`,
      value: crowd.map(r => `${r.exactlyOne}/${r.locks}`).join(', '),
      // A replica that died at boot (the harness's port race: EADDRINUSE) is in the row "died unexpectedly".
      met: crowd.every(r => r.exactlyOne === r.locks),
    });
    targets.push({
      target: `issue 18: ${n} replicas: statements/s per replica flat (max/min <= 1.5) from ${crowd[0].locks} to ${crowd[crowd.length - 1].locks} locks`,
      value: `${rates.join(' / ')} (max/min ${spread.toFixed(2)})`,
      met: spread <= 1.5,
    });
    targets.push({
      target: `issue 18: ${n} replicas: CPU < 5 % of a core for every replica`,
      value: `max ${cpuMax} %`,
      met: cpuMax < 5,
    });
  }
  if (scale.ours) {
    const expired = scale.ours.startupStops.expired ?? 0;
    targets.push({
      target: `issue 18: ${plan.scale.replicas} x ${plan.scale.locks} started at once: all mastered within 5 s of the spawn, 0 expired`,
      value: `${scale.ours.coverageMs === null ? 'never' : `${scale.ours.coverageMs} ms`}, ${expired} expired`,
      met: scale.ours.coverageMs !== null && scale.ours.coverageMs <= 5000 && expired === 0,
    });
    targets.push({
      target: 'scale: every lock exactly one master in every sample',
      value: `${scale.ours.samples.filter(s => s.exactlyOne === plan.scale.locks).length}/${scale.ours.samples.length} samples, ${scale.ours.overlaps} overlaps`,
      met: scale.ours.allExactlyOne && scale.ours.overlaps === 0,
    });
  }
  const safetyOk = safety(latency, 'ours') === 0;
  if (Object.keys(latency).length)
    targets.push({
      target: 'ours: never two replicas running a job at once',
      value: `${safety(latency, 'ours')}`,
      met: safetyOk,
    });

  return targets;
}

function headingOf(
  ctx: BenchContext,
  results: BenchResults,
  command: string,
  duration: number,
): string {
  const {backend, quick} = ctx.options;
  return (
    `loopback4-master-job-executor benchmark: ${backend} (${ctx.serverVersion.split(' on ')[0] || 'server'}), ` +
    `${os.cpus().length} cores, Node ${process.version}, ${quick ? 'quick' : 'full'} run of ${duration} s\n` +
    `timings (both): heartbeat ${H} ms, lease ${L} ms (baseline tolerance), check ${C} ms, initDelay 500 ms; ` +
    `load average at start ${results.loadAverage.start.map(v => v.toFixed(2)).join(' ')}, at end ${results.loadAverage.end.map(v => v.toFixed(2)).join(' ')}\n` +
    `command: ${command}` +
    (results.restarts.length
      ? `\nNOTE: another user restarted the database server during: ${results.restarts.join('; ')} (${ctx.watch.disturbances.length} restart(s); disturbed samples redone)`
      : '')
  );
}

/** Per scenario and implementation: the summary, the raw samples and the counters. */
function latencyJson(latency: Latency, summaries: Summaries) {
  return Object.fromEntries(
    Object.entries(latency).map(([s, byImpl]) => [
      s,
      Object.fromEntries(
        Object.entries(byImpl).map(([impl, r]) => [
          impl,
          {
            summary: summaries[s][impl as Impl],
            samplesMs: r!.samples.map(v => (Number.isFinite(v) ? round(v, 2) : null)),
            extra: Object.fromEntries(
              Object.entries(r!.extra).map(([k, v]) => [
                k,
                {summary: summarize(v), samplesMs: v.map(x => round(x, 2))},
              ]),
            ),
            overlaps: r!.overlaps,
            spuriousStops: r!.spuriousStops,
            discardedForServerRestart: r!.discarded,
            failedRepetitions: r!.errors,
            unexpectedExits: r!.unexpectedExits,
          },
        ]),
      ),
    ]),
  );
}

/** Prints the table and the targets; writes the JSON (and the events); returns the JSON's path. */
export function writeReport(ctx: BenchContext, results: BenchResults, info: RunInfo): string {
  const {backend, database, quick, plan} = ctx.options;
  const {latency, load, scale} = results;
  const {command, started, t0} = info;
  const summaries = summarizeLatency(latency);
  const table = printTable([
    ...latencySection(latency, summaries),
    ...loadSection(plan, load),
    ...scaleSection(plan, scale),
    ...crowdSection(plan, results.crowd),
  ]);
  const targets = targetsOf(backend, plan, results, summaries);
  const duration = round((mono() - t0) / 1000, 0);
  results.loadAverage.end = os.loadavg();
  const heading = headingOf(ctx, results, command, duration);
  const targetText =
    targets.map(t => `${t.met ? 'PASS' : 'MISS'}  ${t.target}: ${t.value}`).join('\n') +
    ctx.failures.map(f => `\nFAILED ${f.what}: ${f.error}`).join('');
  process.stdout.write(`\n${heading}\n\n${table}\n\n${targetText}\n`);

  const resultsDir = path.resolve(__dirname, '..', '..', '..', 'bench', 'results');
  mkdirSync(resultsDir, {recursive: true});
  const stamp = started.toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
  const file = path.join(resultsDir, `${stamp}-${backend}${quick ? '-quick' : ''}.json`);
  const json = {
    command,
    startedAt: started.toISOString(),
    durationSeconds: duration,
    backend,
    server: ctx.serverVersion,
    database,
    quick,
    machine: {
      cores: os.cpus().length,
      node: process.version,
      loadAverage: results.loadAverage,
      phaseSeconds: results.phaseSeconds,
    },
    serverRestartedDuring: results.restarts,
    timings: {
      leaseDuration: L,
      heartbeatInterval: H,
      checkMasterInterval: C,
      initDelay: 500,
      maxHeartbeatRetryCount: 3,
    },
    plan,
    latency: latencyJson(latency, summaries),
    crashTakeoversSoonerThanLeaseMinusHeartbeat: {
      ours: early(latency, 'ours'),
      baseline: early(latency, 'baseline'),
    },
    load,
    scale,
    crowd: results.crowd,
    targets,
    failures: ctx.failures,
    table,
  };
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  if (ctx.options.events) {
    const events = ctx.log.jobs.map(e => JSON.stringify({...e, replica: e.instanceId}));
    writeFileSync(file.replace(/\.json$/, '-events.tmp'), events.join('\n') + '\n');
  }
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), file)}\n`);
  return file;
}
