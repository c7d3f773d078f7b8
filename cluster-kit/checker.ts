// The one checker of the cluster kit: reads a record of masterships (job
// start/stop lines, fenced writes, faults, pauses, exits, disables) and says
// what broke the election's promises. The process harness (cluster.ts), the
// benchmark, `npm run chaos`, and the tests' in-process and fake-clock
// clusters all check through it. All times are CLOCK_MONOTONIC ms, shared by
// the processes of one host (or a fake clock, for the unit tests).
//
//  - Mutual exclusion: no two replicas are in start..stop of a lock at once,
//    except a replica that was paused (SIGSTOP) during its mastership: that
//    one cannot be prevented, only fenced (next rule).
//  - Fencing: the resource never accepts a write with a lower token after a
//    write with a higher token was accepted and had completed.
//  - Tokens strictly increase from one mastership to the next.
//  - stop() runs only on the replica that is master, for its own mastership.
//  - After every fault a master is acting again within the recovery bound.
//  - After a disable returns: no start() until enable, and the master stops
//    (reason 'disabled') within the disable bound.
//  - No process exits unless the harness killed or terminated it.
//
// checkMasterships() applies the first, third and fourth rules to every lock
// of a record; checkCluster() applies all of them to one lock.

export interface JobEvent {
  event: 'start' | 'stop';
  lockName: string;
  instanceId: string;
  /** null: a replica without fencing tokens (the benchmark's baseline). */
  fencingToken: number | null;
  reason: string | null;
  mono: number;
}

export interface WriteEvent {
  event: 'write';
  lockName: string;
  instanceId: string;
  fencingToken: number;
  accepted: boolean;
  /** Set when the write failed: its outcome is unknown. */
  error?: string;
  monoBefore: number;
  monoAfter: number;
}

export type FaultKind =
  | 'sigkill'
  | 'sigterm'
  | 'sigstop'
  /** SIGSTOP of a replica that is not the master: on waking it must not take over. */
  | 'sigstop-replica'
  | 'connections'
  | 'db-restart'
  | 'disable'
  /** The master cut off from the database (its proxy holds everything) for a while. */
  | 'partition'
  /** Every packet between the master and the database delayed for a while. */
  | 'latency'
  /** The master given a fraction of a core (SIGSTOP/SIGCONT duty cycle): recorded as a pause. */
  | 'cpu-starve'
  /** Every process of the database server stopped (SIGSTOP) for a while. */
  | 'db-freeze'
  /** kill -9 of the database server, then a start (crash recovery). */
  | 'db-kill'
  /** Disables and enables in quick succession through random replicas. */
  | 'rest-storm';

export interface FaultRecord {
  kind: FaultKind;
  /** The instance the fault was aimed at (the master). */
  target?: string;
  at: number;
  /** From when a master is due again within the recovery bound. */
  recoverFrom: number;
  note?: string;
}

export interface PauseRecord {
  instanceId: string;
  from: number;
  to?: number;
}

export interface ExitRecord {
  instanceId: string;
  at: number;
  code: number | null;
  signal: string | null;
  /** The signal the harness sent, if it caused this exit. */
  causedBy?: 'SIGKILL' | 'SIGTERM';
}

export interface DisableRecord {
  lockName: string;
  /** When the disable request was sent, and when its response arrived. */
  sent: number;
  from: number;
  /** When the enable request was sent. */
  to?: number;
}

export interface ClusterLog {
  jobs: JobEvent[];
  writes: WriteEvent[];
  faults: FaultRecord[];
  pauses: PauseRecord[];
  exits: ExitRecord[];
  disables: DisableRecord[];
}

export function emptyLog(): ClusterLog {
  return {jobs: [], writes: [], faults: [], pauses: [], exits: [], disables: []};
}

export interface CheckOptions {
  lockName: string;
  /** leaseDuration + checkMasterInterval + 1 s */
  recoveryBound: number;
  /** How soon after a disable returns the master must have stopped. */
  disableStopBound: number;
  /** How soon a paused master that was taken over must stop once resumed. */
  staleStopBound: number;
  /** Events after this time are ignored (their lines may still be in flight). */
  until: number;
}

export interface Tenure {
  instanceId: string;
  fencingToken: number | null;
  start: number;
  /** Infinity while open. */
  end: number;
  /** The stop reason, 'killed', 'restarted' (a start without a stop), or 'open'. */
  endReason: string;
}

export interface Recovery {
  fault: FaultRecord;
  /** ms from fault.recoverFrom to a master acting; undefined if none yet. */
  ms?: number;
}

export interface CheckReport {
  violations: string[];
  tenures: Tenure[];
  /** Two masters at once (violations). */
  overlaps: number;
  /** Overlaps with a paused (stale) master: allowed, fencing must catch them. */
  fencedOverlaps: number;
  /** Writes accepted with a lower token after a higher one (violations). */
  fencingFailures: number;
  /**
   * Stale writes were still in flight when a master with a newer token
   * started: rejected ones were fenced off; accepted ones landed before any
   * write of the newer master (fencing cannot and need not reject those).
   */
  writes: {
    accepted: number;
    rejected: number;
    failed: number;
    staleRejected: number;
    staleAccepted: number;
  };
  recoveries: Recovery[];
  longestGap: {
    ms: number;
    from: number;
    afterFault?: FaultKind;
    /** The longest gap put down to each kind of fault (the last one injected before it ended). */
    byFault: Partial<Record<FaultKind, number>>;
  };
  processesLost: number;
}

/** A tenure with the places of its start and stop among the lock's job lines. */
interface RankedTenure extends Tenure {
  /** Lines of equal time keep the order they were recorded in (a fake clock stands still). */
  startRank: number;
  endRank: number;
}

export interface MastershipOptions {
  lockName: string;
  /** Lines and exits after this time are ignored. */
  until: number;
  /**
   * Called for every pair in which `b` started while `a`, another replica,
   * was master (in start..stop); true if that is excused (pushing any
   * violation it finds meanwhile), false if it counts as two masters at once.
   */
  excuse?: (a: Tenure, b: Tenure, violations: string[]) => boolean;
}

export interface Masterships {
  lockName: string;
  /** In order of start. */
  tenures: Tenure[];
  /** Two masters at once, not excused (each is also a violation). */
  overlaps: number;
  excusedOverlaps: number;
  /** stop() lines of a replica that was not master with that token (each is also a violation). */
  strayStops: JobEvent[];
  violations: string[];
}

const fmt = (t: number) => `t=${Math.round(t)}`;

/**
 * The masterships of one lock, from its start/stop lines and the exits of
 * the processes, and the rules they break on their own: a start by a replica
 * that is master already, a stop on one that is not, an exit while master
 * without stop() (unless SIGKILLed), tokens that do not increase from one
 * mastership to the next, and two replicas master at once.
 */
export function readMasterships(
  log: Pick<ClusterLog, 'jobs' | 'exits'>,
  options: MastershipOptions,
): Masterships {
  const {lockName, until} = options;
  const violations: string[] = [];
  const tenures: RankedTenure[] = [];
  const open = new Map<string, RankedTenure>();
  const strayStops: JobEvent[] = [];
  const jobs = log.jobs
    .filter(e => e.lockName === lockName && e.mono <= until)
    .sort((a, b) => a.mono - b.mono); // stable: equal times keep their order
  jobs.forEach((e, rank) => {
    const current = open.get(e.instanceId);
    if (e.event === 'start') {
      if (current) {
        violations.push(
          `${e.instanceId} started token ${e.fencingToken} at ${fmt(e.mono)} while master`,
        );
        current.end = e.mono;
        current.endRank = rank;
        current.endReason = 'restarted';
      }
      const tenure: RankedTenure = {
        instanceId: e.instanceId,
        fencingToken: e.fencingToken,
        start: e.mono,
        end: Infinity,
        endReason: 'open',
        startRank: rank,
        endRank: Infinity,
      };
      tenures.push(tenure);
      open.set(e.instanceId, tenure);
    } else if (!current || current.fencingToken !== e.fencingToken) {
      strayStops.push(e);
      violations.push(
        `stop() (token ${e.fencingToken}, ${e.reason}) ran on ${e.instanceId} at ${fmt(e.mono)}, ` +
          `which was not master with that token`,
      );
    } else {
      current.end = e.mono;
      current.endRank = rank;
      current.endReason = e.reason ?? 'null';
      open.delete(e.instanceId);
    }
  });
  for (const exit of log.exits.filter(x => x.at <= until)) {
    const tenure = open.get(exit.instanceId);
    if (!tenure) continue;
    tenure.end = exit.at;
    tenure.endRank = -Infinity; // a start at the instant of the kill is not an overlap
    tenure.endReason = 'killed';
    open.delete(exit.instanceId);
    if (exit.causedBy !== 'SIGKILL') {
      violations.push(`${exit.instanceId} exited at ${fmt(exit.at)} while master, without stop()`);
    }
  }

  // ---- mutual exclusion and token order ----
  let overlaps = 0;
  let excusedOverlaps = 0;
  for (let i = 0; i < tenures.length; i++) {
    const a = tenures[i];
    for (let j = i + 1; j < tenures.length; j++) {
      const b = tenures[j];
      if (
        j === i + 1 &&
        a.fencingToken !== null &&
        b.fencingToken !== null &&
        b.fencingToken <= a.fencingToken
      ) {
        violations.push(
          `token did not increase: ${b.instanceId} started token ${b.fencingToken} at ${fmt(b.start)} ` +
            `after ${a.instanceId}'s token ${a.fencingToken}`,
        );
      }
      const startsWithin = b.start < a.end || (b.start === a.end && b.startRank < a.endRank);
      if (!startsWithin) break; // nor do the later ones: tenures are in order of start
      if (b.instanceId === a.instanceId) continue;
      if (options.excuse?.(a, b, violations)) {
        excusedOverlaps++;
        continue;
      }
      const overlap = Math.min(a.end, b.end, until) - b.start;
      overlaps++;
      violations.push(
        `two masters: ${a.instanceId} (token ${a.fencingToken}) and ${b.instanceId} (token ${b.fencingToken}) ` +
          `for ${Math.round(overlap)} ms from ${fmt(b.start)}`,
      );
    }
  }
  return {lockName, tenures, overlaps, excusedOverlaps, strayStops, violations};
}

export interface MastershipsReport {
  byLock: Map<string, Masterships>;
  /** Over all the locks. */
  overlaps: number;
  strayStops: JobEvent[];
  violations: string[];
}

/**
 * Mutual exclusion, token order and stop() on the master only, for every
 * lock of a record (or the given ones): what the benchmark and the
 * in-process and fake-clock clusters of the tests check. With `pauses`, the
 * overlap of a master paused at the takeover is excused as in checkCluster
 * (a history's other locks); without, none is.
 */
export function checkMasterships(
  log: Pick<ClusterLog, 'jobs' | 'exits'>,
  options: {
    until?: number;
    lockNames?: Iterable<string>;
    pauses?: PauseRecord[];
    staleStopBound?: number;
  } = {},
): MastershipsReport {
  const until = options.until ?? Infinity;
  const pauses = options.pauses;
  const excuse = pauses
    ? pausedAtTakeover(
        id => pauses.filter(p => p.instanceId === id && p.from <= until),
        options.staleStopBound ?? 0,
        until,
      )
    : undefined;
  const byName = new Map<string, JobEvent[]>();
  for (const e of log.jobs) {
    const list = byName.get(e.lockName);
    if (list) list.push(e);
    else byName.set(e.lockName, [e]);
  }
  const report: MastershipsReport = {
    byLock: new Map(),
    overlaps: 0,
    strayStops: [],
    violations: [],
  };
  for (const lockName of options.lockNames ?? byName.keys()) {
    const m = readMasterships(
      {jobs: byName.get(lockName) ?? [], exits: log.exits},
      {lockName, until, excuse},
    );
    report.byLock.set(lockName, m);
    report.overlaps += m.overlaps;
    report.strayStops.push(...m.strayStops);
    report.violations.push(...m.violations.map(v => `${lockName}: ${v}`));
  }
  return report;
}

/**
 * Excuses the overlap of a master that was paused when the other took over
 * (the pause under way then: the last one to begin before it), if it
 * stopped within `staleStopBound` of resuming; its writes must be fenced.
 */
function pausedAtTakeover(
  pausesOf: (id: string) => PauseRecord[],
  staleStopBound: number,
  until: number,
): (a: Tenure, b: Tenure, found: string[]) => boolean {
  return (a, b, found) => {
    const pause = pausesOf(a.instanceId)
      .filter(p => p.from >= a.start && p.from <= b.start)
      .pop();
    if (!pause) return false;
    // Stale: fenced, but once running again it must notice at once (its deadline passed).
    const resumed = pause.to ?? until;
    if (Math.min(a.end, until) - resumed > staleStopBound) {
      found.push(
        `${a.instanceId} (token ${a.fencingToken}) resumed at ${fmt(resumed)} after ${b.instanceId} took over, ` +
          `and went on as master until ${a.end === Infinity ? 'now' : fmt(a.end)}`,
      );
    }
    return true;
  };
}

export function checkCluster(log: ClusterLog, options: CheckOptions): CheckReport {
  const {lockName, until} = options;
  // Indexed once: a check runs after every fault of a run of thousands, in the process whose
  // event loop also runs the replicas' proxies.
  const pausesById = new Map<string, PauseRecord[]>();
  for (const p of log.pauses) {
    if (p.from <= until) pausesById.set(p.instanceId, [...(pausesById.get(p.instanceId) ?? []), p]);
  }
  const pausesOf = (id: string) => pausesById.get(id) ?? [];

  // ---- masterships (tenures), mutual exclusion and token order ----
  const masterships = readMasterships(log, {
    lockName,
    until,
    excuse: pausedAtTakeover(pausesOf, options.staleStopBound, until),
  });
  const {tenures, violations} = masterships;
  const overlaps = masterships.overlaps;
  const fencedOverlaps = masterships.excusedOverlaps;

  // ---- fencing: no accepted write goes back to a lower token ----
  const writes = log.writes.filter(w => w.lockName === lockName && w.monoAfter <= until);
  const accepted = writes.filter(w => w.accepted).sort((a, b) => a.monoAfter - b.monoAfter);
  const highest: WriteEvent[] = []; // highest[k]: the highest-token write among accepted[0..k]
  for (const w of accepted) {
    const prev = highest[highest.length - 1];
    highest.push(prev && prev.fencingToken > w.fencingToken ? prev : w);
  }
  let fencingFailures = 0;
  for (const w2 of accepted) {
    const k = lastIndexBefore(accepted, w2.monoBefore); // writes completed before w2 began
    const w1 = k >= 0 ? highest[k] : undefined;
    if (w1 && w1.fencingToken > w2.fencingToken) {
      fencingFailures++;
      violations.push(
        `fencing failed: ${w2.instanceId}'s write with token ${w2.fencingToken} at ${fmt(w2.monoBefore)} ` +
          `was accepted after ${w1.instanceId}'s write with token ${w1.fencingToken} at ${fmt(w1.monoAfter)}`,
      );
    }
  }
  const rejected = writes.filter(w => !w.accepted && !w.error);
  // A stale write: still in flight when a master with a newer token started. The highest
  // token started by each time, to look up in log time (tenures are in order of start).
  const highestStarted: number[] = [];
  for (const t of tenures) {
    highestStarted.push(
      Math.max(highestStarted[highestStarted.length - 1] ?? -Infinity, t.fencingToken ?? -Infinity),
    );
  }
  const isStale = (w: WriteEvent) => {
    let lo = 0;
    let hi = tenures.length; // the first tenure that started after the write ended
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tenures[mid].start <= w.monoAfter) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && highestStarted[lo - 1] > w.fencingToken;
  };

  // ---- recovery after every fault ----
  const recoveries: Recovery[] = [];
  for (const fault of log.faults.filter(f => f.at <= until)) {
    const r = fault.recoverFrom;
    const disabledAtR = log.disables.some(
      d => fault.kind !== 'disable' && d.sent <= r && (d.to ?? until) > r,
    );
    if (disabledAtR || r > until) continue;
    // A terminated master still runs until its stop(); the new master must be another one.
    const candidates =
      fault.kind === 'sigterm' ? tenures.filter(t => t.instanceId !== fault.target) : tenures;
    const acting = firstActingMaster(candidates, r, until, pausesOf);
    const recovery: Recovery = {fault, ms: acting === undefined ? undefined : acting - r};
    recoveries.push(recovery);
    const waited = recovery.ms ?? until - r;
    if (
      waited > options.recoveryBound &&
      (recovery.ms !== undefined || until - r > options.recoveryBound)
    ) {
      violations.push(
        `no master for ${recovery.ms === undefined ? 'more than ' : ''}${Math.round(waited)} ms ` +
          `(bound ${options.recoveryBound}) after ${fault.kind}${fault.target ? ' of ' + fault.target : ''} ` +
          `at ${fmt(fault.at)}`,
      );
    }
  }

  // ---- disable ----
  for (const d of log.disables.filter(x => x.lockName === lockName && x.sent <= until)) {
    const to = d.to ?? until;
    for (const t of tenures) {
      if (t.start > d.from && t.start < to) {
        violations.push(`${t.instanceId} started at ${fmt(t.start)} while the lock was disabled`);
      }
      // (an enable sent before the bound may legitimately come first)
      if (t.start < d.from && t.end > d.sent && to - d.from > options.disableStopBound) {
        const late = t.end > d.from + options.disableStopBound;
        if (late || t.endReason !== 'disabled') {
          violations.push(
            `after the disable at ${fmt(d.from)} ${t.instanceId} stopped ${
              t.end === Infinity ? 'never' : `at ${fmt(t.end)}`
            } with reason ${t.endReason} (bound ${options.disableStopBound} ms, reason disabled)`,
          );
        }
      }
    }
  }

  // ---- processes ----
  let processesLost = 0;
  for (const exit of log.exits.filter(x => x.at <= until)) {
    if (!exit.causedBy) {
      processesLost++;
      violations.push(
        `${exit.instanceId} exited (code ${exit.code}, signal ${exit.signal}) at ${fmt(exit.at)}`,
      );
    } else if (exit.causedBy === 'SIGTERM' && exit.code !== 0 && exit.signal !== 'SIGTERM') {
      // LoopBack's shutdown stops the app, then kills the process with the
      // signal it got: a clean exit after SIGTERM is code 0 or that signal.
      violations.push(
        `${exit.instanceId} exited with code ${exit.code} (signal ${exit.signal}) after SIGTERM`,
      );
    }
  }

  return {
    violations,
    tenures,
    overlaps,
    fencedOverlaps,
    fencingFailures,
    writes: {
      accepted: accepted.length,
      rejected: rejected.length,
      failed: writes.filter(w => w.error).length,
      staleRejected: rejected.filter(isStale).length,
      staleAccepted: accepted.filter(isStale).length,
    },
    recoveries,
    longestGap: longestLeaderlessGap(log, tenures, until, pausesOf),
    processesLost,
  };
}

/** The index of the last write (sorted by monoAfter) completed before `time`. */
function lastIndexBefore(sorted: WriteEvent[], time: number): number {
  let lo = 0;
  let hi = sorted.length; // first index with monoAfter >= time
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid].monoAfter < time) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/**
 * The first time >= from at which a master is acting: in start..stop and not
 * paused. A paused master counts again once resumed, if still master then.
 */
function firstActingMaster(
  tenures: Tenure[],
  from: number,
  until: number,
  pausesOf: (id: string) => PauseRecord[],
): number | undefined {
  let best: number | undefined;
  for (const t of tenures) {
    if (t.end <= from || t.start > until) continue; // over before, or not begun by the end
    let candidate = Math.max(t.start, from);
    for (const p of pausesOf(t.instanceId)) {
      if (p.from <= candidate && (p.to ?? Infinity) > candidate) candidate = p.to ?? Infinity;
    }
    if (candidate < t.end && candidate <= until && (best === undefined || candidate < best))
      best = candidate;
  }
  return best;
}

/** Time covered by acting masters (paused time excluded), and the longest hole outside disables. */
function longestLeaderlessGap(
  log: ClusterLog,
  tenures: Tenure[],
  until: number,
  pausesOf: (id: string) => PauseRecord[],
): CheckReport['longestGap'] {
  const covered: [number, number][] = [];
  for (const t of tenures) {
    let pieces: [number, number][] = [[t.start, Math.min(t.end, until)]];
    for (const p of pausesOf(t.instanceId)) pieces = subtract(pieces, p.from, p.to ?? until);
    covered.push(...pieces);
  }
  for (const d of log.disables) covered.push([d.sent, d.to ?? until]); // no master is due while disabled
  covered.sort((a, b) => a[0] - b[0]);
  const gaps: {from: number; ms: number}[] = [];
  let reach = covered.length ? covered[0][1] : until;
  for (const [start, end] of covered) {
    if (start > reach) gaps.push({from: reach, ms: start - reach});
    reach = Math.max(reach, end);
  }
  if (covered.length && until > reach) gaps.push({from: reach, ms: until - reach});
  // Each gap is put down to the last fault injected before it ended.
  const faultBefore = (gap: {from: number; ms: number}) =>
    log.faults.filter(f => f.at <= gap.from + gap.ms).pop()?.kind;
  const byFault: CheckReport['longestGap']['byFault'] = {};
  for (const gap of gaps) {
    const kind = faultBefore(gap);
    if (kind) byFault[kind] = Math.max(byFault[kind] ?? 0, gap.ms);
  }
  const longest = gaps.reduce((a, b) => (b.ms > a.ms ? b : a), {from: 0, ms: 0});
  return {...longest, afterFault: longest.ms ? faultBefore(longest) : undefined, byFault};
}

function subtract(pieces: [number, number][], from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of pieces) {
    if (to <= a || from >= b) out.push([a, b]);
    else {
      if (from > a) out.push([a, from]);
      if (to < b) out.push([to, b]);
    }
  }
  return out;
}

/** A readable timeline of a run, for failure output. */
export function describeLog(
  log: ClusterLog,
  lockName: string,
  origin: number,
  maxLines = 200,
): string {
  const lines: [number, string][] = [];
  for (const e of log.jobs.filter(x => x.lockName === lockName)) {
    lines.push([
      e.mono,
      `${e.event} ${e.instanceId} token ${e.fencingToken}${e.reason ? ' ' + e.reason : ''}`,
    ]);
  }
  for (const w of log.writes.filter(x => x.lockName === lockName && (!x.accepted || x.error))) {
    lines.push([
      w.monoBefore,
      `write ${w.instanceId} token ${w.fencingToken} ${w.error ?? 'rejected'}`,
    ]);
  }
  for (const f of log.faults)
    lines.push([f.at, `FAULT ${f.kind} ${f.target ?? ''} ${f.note ?? ''}`]);
  for (const p of log.pauses) {
    lines.push([p.from, `SIGSTOP ${p.instanceId}`]);
    if (p.to) lines.push([p.to, `SIGCONT ${p.instanceId}`]);
  }
  for (const x of log.exits)
    lines.push([x.at, `exit ${x.instanceId} code ${x.code} signal ${x.signal}`]);
  for (const d of log.disables) {
    lines.push([d.from, `disabled`]);
    if (d.to) lines.push([d.to, `enable sent`]);
  }
  lines.sort((a, b) => a[0] - b[0]);
  return lines
    .slice(-maxLines)
    .map(([t, text]) => `${String(Math.round(t - origin)).padStart(8)} ms  ${text}`)
    .join('\n');
}
