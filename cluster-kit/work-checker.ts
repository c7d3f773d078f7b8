// The checks of work that survives failover, for the cluster tests and the
// chaos runs: the runs of a queue's tasks, and the firings of a cron
// schedule, read against the exits the harness caused. Each returns the
// violations it found (empty when the promises held) and a few counts.
//
// Queue:
//  - Nothing lost: every submitted key ran, and is done when `done` is given.
//  - At most twice, and the second only because the first run's mastership
//    ended during it (its master SIGKILLed, or stopped: SIGTERM, a lost or
//    expired lease) with the run its last; the rerun has a greater token and
//    the next attempt number.
//  - In order within a tenure (a master's token): ids strictly increase.
//  - A task whose submit was answered before another's was sent runs first.
// Cron:
//  - No occurrence fired twice, none fired without its claim.
//  - None lost: each occurrence from the first firing to the last was fired,
//    or was claimed by a master whose mastership ended before its firing did
//    (SIGKILLed, or a stop line of that master after the occurrence and
//    before its next firing: cut off, frozen or starved after the claim).

import type {ExitRecord} from './checker';

export interface TaskRunRecord {
  /** The task's key (what the harness submitted). */
  key: string;
  taskId: number;
  attempt: number;
  instanceId: string;
  fencingToken: number;
  mono: number;
}

export interface SubmitRecord {
  key: string;
  sentAt: number;
  answeredAt: number;
}

export interface TaskCheckInput {
  keys: string[];
  runs: TaskRunRecord[];
  exits: ExitRecord[];
  submits?: SubmitRecord[];
  /** The keys the database has as done, if read. */
  done?: string[];
  /** The stop lines of the queue's masterships (the lock is the queue's name). */
  stops?: {instanceId: string; fencingToken: number | null; mono: number}[];
  /** How soon after a run began its tenure must have ended for a rerun to count as caused (ms; default no bound). */
  endBound?: number;
  /**
   * Pauses of the replicas (SIGSTOP, starvation): a master paused between
   * its claim and its handler runs the handler once it wakes, after the next
   * master ran the task; that run is stale, fenced (its outcome refused),
   * and excused if its tenure ended within `staleStopBound` of waking.
   */
  pauses?: {instanceId: string; from: number; to?: number}[];
  staleStopBound?: number;
}

export interface TaskCheckReport {
  violations: string[];
  reruns: number;
  tenures: number;
  /** Runs by a master paused past the next master's run of the same task (fenced). */
  staleRuns: number;
}

export function checkTaskRuns(input: TaskCheckInput): TaskCheckReport {
  const violations: string[] = [];
  const runs = [...input.runs].sort((a, b) => a.mono - b.mono);
  const byKey = new Map<string, TaskRunRecord[]>();
  for (const run of runs) byKey.set(run.key, [...(byKey.get(run.key) ?? []), run]);
  const killedAt = new Map(
    input.exits.filter(x => x.causedBy === 'SIGKILL').map(x => [x.instanceId, x.at]),
  );
  const done = input.done && new Set(input.done);
  for (const key of input.keys) {
    if (!byKey.has(key)) violations.push(`task ${key} lost: never ran`);
    else if (done && !done.has(key)) violations.push(`task ${key} ran but is not done`);
  }
  let reruns = 0;
  let staleRuns = 0;
  const stops = input.stops ?? [];
  /** `late` (a lower token, printed after `run`) came from a master paused when `run` ran, which stopped soon after waking. */
  const stale = (late: TaskRunRecord, run: TaskRunRecord) =>
    late.fencingToken < run.fencingToken &&
    (input.pauses ?? []).some(
      p =>
        p.instanceId === late.instanceId &&
        p.from <= run.mono &&
        p.to !== undefined &&
        p.to >= run.mono &&
        late.mono >= p.to &&
        stops.some(
          s =>
            s.instanceId === late.instanceId &&
            s.fencingToken === late.fencingToken &&
            s.mono >= p.to! &&
            s.mono - p.to! <= (input.staleStopBound ?? 0),
        ),
    );
  for (const [key, list] of byKey) {
    // In order of token, once a stale run (of an older token, printed late) is set apart.
    const [first, second, ...more] = list.filter(
      r => !list.some(other => other !== r && stale(r, other)),
    );
    staleRuns += list.length - [first, second, ...more].filter(Boolean).length;
    if (more.length) violations.push(`task ${key} ran ${more.length + 2} times`);
    if (!second) continue;
    reruns++;
    // Its master's tenure must have ended during that run: the run was the tenure's last, and
    // the tenure ended (a SIGKILL, or a stop line of that token) after it began.
    const later = runs.some(
      r =>
        r.instanceId === first.instanceId &&
        r.fencingToken === first.fencingToken &&
        r.mono > first.mono,
    );
    const killed = killedAt.get(first.instanceId);
    const within = (t: number) => t >= first.mono && t - first.mono <= (input.endBound ?? Infinity);
    const stopped = (input.stops ?? []).some(
      s =>
        s.instanceId === first.instanceId &&
        s.fencingToken === first.fencingToken &&
        within(s.mono),
    );
    if (later || !((killed !== undefined && within(killed)) || stopped)) {
      violations.push(
        `task ${key} ran twice, but its first master ${first.instanceId} (token ${first.fencingToken}) ` +
          (later
            ? 'ran later tasks after it'
            : 'neither was SIGKILLed nor stopped during that run'),
      );
    }
    if (second.fencingToken <= first.fencingToken) {
      violations.push(
        `task ${key}: the rerun's token ${second.fencingToken} is not above ${first.fencingToken}`,
      );
    }
    if (second.attempt !== first.attempt + 1) {
      violations.push(
        `task ${key}: the rerun is attempt ${second.attempt}, after attempt ${first.attempt}`,
      );
    }
  }
  const tenures = new Map<string, TaskRunRecord[]>();
  for (const run of runs) {
    const tenure = `${run.instanceId}/${run.fencingToken}`;
    tenures.set(tenure, [...(tenures.get(tenure) ?? []), run]);
  }
  for (const [tenure, list] of tenures) {
    for (let i = 1; i < list.length; i++) {
      if (list[i].taskId <= list[i - 1].taskId) {
        violations.push(
          `tenure ${tenure} ran task ${list[i].taskId} after task ${list[i - 1].taskId}`,
        );
      }
    }
  }
  if (input.submits) {
    const firstRun = new Map([...byKey].map(([key, r]) => [key, r[0]]));
    const answered = [...input.submits].sort((a, b) => a.answeredAt - b.answeredAt);
    let latest: SubmitRecord | undefined;
    let i = 0;
    for (const s of [...input.submits].sort((a, b) => a.sentAt - b.sentAt)) {
      while (i < answered.length && answered[i].answeredAt < s.sentAt) {
        const a = answered[i++];
        if (
          !latest ||
          (firstRun.get(a.key)?.mono ?? -Infinity) > (firstRun.get(latest.key)?.mono ?? -Infinity)
        ) {
          latest = a;
        }
      }
      const mine = firstRun.get(s.key);
      const before = latest && firstRun.get(latest.key);
      if (mine && before && mine.mono <= before.mono) {
        violations.push(
          `task ${s.key} ran before ${latest!.key}, whose submit was answered before ${s.key}'s was sent`,
        );
      }
    }
  }
  return {violations, reruns, tenures: tenures.size, staleRuns};
}

export interface CronFiringRecord {
  /** The occurrence, ms since the epoch. */
  scheduledAt: number;
  instanceId: string;
}

export interface CronClaimRecord {
  scheduledAt: number;
  instanceId: string;
  /** Set once its firing ended. */
  outcome?: string | null;
}

export interface CronCheckInput {
  firings: CronFiringRecord[];
  claims: CronClaimRecord[];
  exits: ExitRecord[];
  /** The stop lines of the schedule's masterships, with their wall time (ms since the epoch). */
  stops?: {instanceId: string; at: number}[];
  /** Wall time of each SIGKILL (ms since the epoch), by instance; without it any SIGKILL counts. */
  killedAt?: Map<string, number>;
  /** How soon after an occurrence its claimer must have ended for it not to count as lost (ms). */
  endBound?: number;
  /** The schedule's period in ms (a schedule of fixed period). */
  periodMs: number;
}

export interface CronCheckReport {
  violations: string[];
  /** Occurrences claimed by a master killed before it fired them. */
  unfired: number;
}

export function checkCronFirings(input: CronCheckInput): CronCheckReport {
  const violations: string[] = [];
  const iso = (t: number) => new Date(t).toISOString();
  const fired = new Map<number, CronFiringRecord[]>();
  for (const f of input.firings) fired.set(f.scheduledAt, [...(fired.get(f.scheduledAt) ?? []), f]);
  const claims = new Map(input.claims.map(c => [c.scheduledAt, c]));
  const killed = new Set(input.exits.filter(x => x.causedBy === 'SIGKILL').map(x => x.instanceId));
  for (const [at, list] of fired) {
    if (list.length > 1) {
      violations.push(
        `occurrence ${iso(at)} fired ${list.length} times (${list.map(f => f.instanceId).join(', ')})`,
      );
    }
    const claim = claims.get(at);
    if (!claim || !list.some(f => f.instanceId === claim.instanceId)) {
      violations.push(`occurrence ${iso(at)} fired without its claim`);
    }
  }
  /** The claimer stopped or was killed after occurrence `t`, soon, and before it fired the next one. */
  const endedAfter = (claim: CronClaimRecord, t: number) => {
    const next = Math.min(
      t + (input.endBound ?? Infinity),
      ...input.firings
        .filter(f => f.instanceId === claim.instanceId && f.scheduledAt > t)
        .map(f => f.scheduledAt),
    );
    const inWindow = (at: number) => at >= t - input.periodMs && at <= next;
    const killAt = input.killedAt?.get(claim.instanceId);
    return (
      (killAt !== undefined && inWindow(killAt)) ||
      (input.stops ?? []).some(s => s.instanceId === claim.instanceId && inWindow(s.at))
    );
  };
  let unfired = 0;
  if (fired.size) {
    const times = [...fired.keys()];
    for (let t = Math.min(...times); t <= Math.max(...times); t += input.periodMs) {
      if (fired.has(t)) continue;
      const claim = claims.get(t);
      const killedAny = !input.killedAt && claim !== undefined && killed.has(claim.instanceId);
      if (claim && !claim.outcome && (killedAny || endedAfter(claim, t))) {
        unfired++;
      } else
        violations.push(`occurrence ${iso(t)} lost: neither fired nor claimed by a killed master`);
    }
  }
  return {violations, unfired};
}
