// What a benchmark run does: the command line (`--quick`, `--mysql`,
// `--db=<name>`, `--only=<scenarios>`, `--crowd-locks=<n,...>`, `--events`), the plan of repetitions
// it implies, and the timings and waits that are the same for every run.

import {ClusterTimings, SqlBackend} from '../../cluster-kit';

export type Scenario =
  'crash' | 'crash-timings' | 'handoff' | 'control' | 'load' | 'scale' | 'crowd';

export interface Plan {
  crash: {lanes: number; reps: number};
  /** Crash failover at other timings: polls slower than the lease, and the defaults. */
  crashTimings: {slowPollReps: number; defaultsReps: number};
  handoff: {ours: {lanes: number; reps: number}; baseline: {lanes: number; reps: number}};
  control: {ours: {lanes: number; reps: number}; baseline: {lanes: number; reps: number}};
  load: {locks: number[]; replicas: number; windowMs: number};
  scale: {
    replicas: number;
    locks: number;
    windowMs: number;
    sampleMs: number;
    baselineWindowMs: number;
  };
  /** Many replicas (ours only), on a private server that has the connections for them. */
  crowd: {replicas: number; locks: number[]; windowMs: number};
}

export interface BenchOptions {
  /** The arguments as given, for the report. */
  argv: string[];
  backend: SqlBackend;
  quick: boolean;
  /** The database, dropped and created afresh. */
  database: string;
  /** Run only these scenarios (development); undefined: all. */
  only?: string[];
  /** Also write every job line to `<results>-events.tmp`. */
  events: boolean;
  plan: Plan;
}

/** Repetitions (lanes run concurrently, each its own cluster and lock). */
const QUICK_PLAN: Plan = {
  crash: {lanes: 1, reps: 3},
  crashTimings: {slowPollReps: 3, defaultsReps: 2},
  handoff: {ours: {lanes: 1, reps: 5}, baseline: {lanes: 1, reps: 2}},
  control: {ours: {lanes: 1, reps: 5}, baseline: {lanes: 1, reps: 2}},
  load: {locks: [1, 10, 100, 1000], replicas: 3, windowMs: 6000},
  scale: {replicas: 5, locks: 200, windowMs: 10000, sampleMs: 5000, baselineWindowMs: 10000},
  crowd: {replicas: 20, locks: [1, 1000], windowMs: 6000},
};

const FULL_PLAN: Plan = {
  crash: {lanes: 3, reps: 34},
  crashTimings: {slowPollReps: 20, defaultsReps: 6},
  handoff: {ours: {lanes: 1, reps: 100}, baseline: {lanes: 2, reps: 12}},
  control: {ours: {lanes: 1, reps: 100}, baseline: {lanes: 2, reps: 6}},
  load: {locks: [1, 10, 100, 1000], replicas: 3, windowMs: 12000},
  scale: {replicas: 10, locks: 1000, windowMs: 60000, sampleMs: 10000, baselineWindowMs: 20000},
  crowd: {replicas: 50, locks: [1, 10, 100, 1000], windowMs: 12000},
};

export function parseOptions(argv: string[]): BenchOptions {
  const flag = (name: string) => argv.includes(`--${name}`);
  const option = (name: string) => argv.find(a => a.startsWith(`--${name}=`))?.split('=')[1];
  const quick = flag('quick');
  const plan = quick ? QUICK_PLAN : FULL_PLAN;
  const crowdLocks = option('crowd-locks');
  if (crowdLocks !== undefined) {
    const locks = crowdLocks.split(',').map(Number);
    if (!locks.every(n => Number.isInteger(n) && n >= 1 && n <= 10000)) {
      throw new Error(
        `--crowd-locks must be lock counts from 1 to 10000, comma-separated, got "${crowdLocks}"`,
      );
    }
    plan.crowd = {...plan.crowd, locks};
  }
  return {
    argv,
    backend: flag('mysql') ? 'mysql' : 'postgresql',
    quick,
    database: option('db') ?? 'mje_bench',
    only: option('only')?.split(','),
    events: flag('events'),
    plan,
  };
}

/** Whether the run includes `scenario`. */
export function runs(options: BenchOptions, scenario: Scenario): boolean {
  return !options.only || options.only.includes(scenario);
}

/** The same timings for both implementations; the baseline's tolerance is the lease. */
export const L = 3000; // leaseDuration
export const H = 1000; // heartbeatInterval
export const C = 2000; // checkMasterInterval
export const TIMINGS: ClusterTimings = {
  initDelay: 500,
  checkMasterInterval: C,
  heartbeatInterval: H,
  leaseDuration: L,
  maxHeartbeatRetryCount: 3,
  // stopTimeout: the replicas' default
};

/** Polls slower than the lease (C = 2 L), as the defaults do (30 s > 24 s). */
export const SLOW_POLL_TIMINGS: ClusterTimings = {...TIMINGS, checkMasterInterval: 2 * L};
/** The package's defaults (README): L 24 s, H 8 s, C 30 s; initDelay short, to save time. */
export const DEFAULT_TIMINGS: ClusterTimings = {
  initDelay: 500,
  checkMasterInterval: 30000,
  heartbeatInterval: 8000,
  leaseDuration: 24000,
  maxHeartbeatRetryCount: 3,
};

/**
 * Connections per baseline replica. The server's max_connections (100 here)
 * is shared with every other user of the machine: 10 replicas x 10 would not fit.
 */
export const BASELINE_POOL_SIZE = 4;
/** Load and scale windows start once no job started or stopped for this long... */
export const QUIET_MS = 5000;
/** ...or after this long anyway (reported as not settled). */
export const QUIET_CAP_MS = 30000;
/**
 * Then this long before the window: the statistics of a PostgreSQL backend
 * reach pg_stat_database up to ~10 s late (idle flush interval, or when the
 * pool closes an idle connection 10 s after its last use), so a startup burst
 * would otherwise be counted in the window.
 */
export const STATS_SETTLE_MS = 11000;
/**
 * Replicas of a handoff lane: every handoff retires one, and the lane is
 * refilled (between measurements) below 3, so a handoff happens among 3 or 4
 * replicas. More would inflate it on 2 cores: every replica wakes on the
 * release and races for the lock.
 */
export const HANDOFF_REPLICAS = 4;
/** A replica at rest (1 lock: a renewal per H, a poll per C) uses well under this share of a core. */
export const IDLE_CPU = 0.05;
