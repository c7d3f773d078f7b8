// A lane: the replicas of one implementation that campaign for the same
// locks (a process cluster of the kit), measured repetition after
// repetition; the result of a lane, lanes run side by side, and merging
// their results.

import {
  checkMasterships,
  ClusterTimings,
  mono,
  ProcessCluster,
  Replica,
  sleep,
} from '../../cluster-kit';
import {BenchContext, Impl, note} from './context';
import {BASELINE_POOL_SIZE, IDLE_CPU, TIMINGS} from './options';

export interface LaneResult {
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

export class Lane {
  readonly cluster: ProcessCluster;
  unexpectedExits = 0;

  constructor(
    readonly ctx: BenchContext,
    readonly impl: Impl,
    readonly name: string,
    readonly lockNames: string[],
    readonly timings: ClusterTimings = TIMINGS,
  ) {
    this.cluster = new ProcessCluster({
      server: ctx.server,
      lockNames,
      namePrefix: name,
      script: ctx.scripts[impl],
      timings,
      baseEnv: {PATH: process.env.PATH ?? '', NODE_ENV: 'production'},
      extraEnv: {BASELINE_POOL_SIZE: String(BASELINE_POOL_SIZE)},
      readiness: 'http',
      log: ctx.log,
      onExit: replica => {
        if (replica.causedExit) return;
        this.unexpectedExits++;
        const lines = replica.stderr().trim().split('\n');
        const why = lines.filter(l => /error|Error|ERR|refused|too many/.test(l)).slice(0, 2);
        note(
          `${replica.instanceId} exited unexpectedly: ${(why.length ? why : lines.slice(-3)).join(' | ')}`,
        );
      },
    });
  }

  get lockName(): string {
    return this.lockNames[0];
  }

  alive(): Replica[] {
    return this.cluster.alive();
  }

  /**
   * Starts replicas until `n` are alive; waits until they answer. A replica
   * that dies while booting (e.g. the server refused a connection: it has
   * max_connections for every user of this machine) is replaced, 5 times at most.
   */
  ensure(n: number): Promise<void> {
    return this.cluster.ensure(n, {attempts: 6, retryDelay: 2000, timeout: 120000});
  }

  waitMaster(timeoutMs = 20000): Promise<Replica> {
    return this.cluster.waitForMaster(timeoutMs, `${this.name}: a master of ${this.lockName}`);
  }

  /**
   * Sends `signal` to the master: resolves with it, when (`t`), and the next
   * start of the job on another replica (`next`; undefined: none within
   * L + C + 10 s).
   */
  async killMaster(signal: 'SIGKILL' | 'SIGTERM') {
    const master = await this.waitMaster();
    const t = master.kill(signal);
    const {leaseDuration: L, checkMasterInterval: C} = this.timings;
    const next = await this.ctx.log.nextJob(
      x =>
        x.event === 'start' && x.lockName === this.lockName && x.instanceId !== master.instanceId,
      t,
      L + C + 10000,
    );
    return {master, t, next};
  }

  /** What a result of this lane reports besides its samples: exits, overlaps, stray stops, repetitions redone or failed. */
  outcome(
    {discarded, errors}: {discarded: number; errors: number},
    spuriousStops = 0,
  ): Omit<LaneResult, 'samples' | 'extra'> {
    return {
      unexpectedExits: this.unexpectedExits,
      overlaps: this.overlaps(),
      spuriousStops,
      discarded,
      errors,
    };
  }

  /** A random replica alive other than `not`. */
  otherAlive(not: Replica | undefined): Replica {
    const candidates = this.alive().filter(r => r !== not);
    return candidates[Math.floor(Math.random() * candidates.length)];
  }

  /** The replicas alive that run the job of `lockName` now, as the lines tell. */
  running(lockName: string): Replica[] {
    const alive = new Map(this.alive().map(r => [r.instanceId, r]));
    return this.ctx.log
      .running(lockName)
      .map(e => alive.get(e.instanceId))
      .filter((r): r is Replica => r !== undefined);
  }

  /** How many of the lane's locks each replica alive runs, most first. */
  held(): number[] {
    const held = new Map(this.alive().map(r => [r, 0]));
    for (const name of this.lockNames) {
      for (const r of this.running(name)) held.set(r, held.get(r)! + 1);
    }
    return [...held.values()].sort((a, b) => b - a);
  }

  /** Starts of a job while another replica still ran it, on the lane's locks (the checker). */
  overlaps(): number {
    return checkMasterships(this.ctx.log, {lockNames: this.lockNames, until: mono()}).overlaps;
  }

  stop(): Promise<void> {
    return this.cluster.stop();
  }
}

/**
 * Runs `rep` until `reps` samples are kept. A repetition that overlaps a
 * restart of the database server is discarded and redone; one that fails
 * otherwise is noted and counted.
 */
export async function repeat(
  lane: Lane,
  reps: number,
  rep: () => Promise<() => void>,
): Promise<{discarded: number; errors: number}> {
  const {watch} = lane.ctx;
  let kept = 0;
  let discarded = 0;
  let errors = 0;
  for (let attempt = 0; kept < reps && attempt < reps * 3; attempt++) {
    const t0 = mono();
    let commit: (() => void) | undefined;
    try {
      commit = await rep();
    } catch (err) {
      if (!watch.disturbed(t0, mono())) {
        errors++;
        note(`${lane.name}: repetition failed: ${err.message}`);
      }
    }
    if (watch.disturbed(t0, mono())) {
      discarded++;
      await untilServerUp(lane.ctx);
    } else if (commit) {
      commit();
      kept++;
    }
  }
  return {discarded, errors};
}

/** Waits (2 minutes at most) while the server is restarting. */
export async function untilServerUp(ctx: BenchContext): Promise<void> {
  const t = mono();
  while (ctx.watch.disturbed(mono(), mono()) && mono() - t < 120000) await sleep(500);
}

/** Runs `count` lanes, `stagger` ms apart; a lane that fails is left out (and reported). */
export async function runLanes<T>(
  ctx: BenchContext,
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
          ctx.fail(`${what} lane ${i + 1}`, err);
          return undefined;
        }),
    ),
  );
  return all.filter((r): r is Awaited<T> => r !== undefined) as T[];
}

export function merge(results: LaneResult[]): LaneResult {
  const extra: Record<string, number[]> = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.extra)) extra[k] = [...(extra[k] ?? []), ...v];
  }
  const sum = (f: (r: LaneResult) => number) => results.reduce((a, r) => a + f(r), 0);
  return {
    samples: results.flatMap(r => r.samples),
    extra,
    unexpectedExits: sum(r => r.unexpectedExits),
    overlaps: sum(r => r.overlaps),
    spuriousStops: sum(r => r.spuriousStops),
    discarded: sum(r => r.discarded),
    errors: sum(r => r.errors),
  };
}

/**
 * Waits (up to `capMs`) until every replica's CPU over the last 500 ms is
 * below IDLE_CPU: a replica just booted keeps compiling and warming up for
 * 2-3 s on this machine, and a handoff measured meanwhile measures that load
 * on 2 cores, not the protocol. Resolves to how long it waited.
 */
export async function waitIdle(
  ctx: BenchContext,
  replicas: Replica[],
  capMs = 10000,
): Promise<number> {
  const started = mono();
  const windowMs = 500;
  let before = replicas.map(r => r.cpuTicks());
  for (;;) {
    await sleep(windowMs);
    const after = replicas.map(r => r.cpuTicks());
    const use = after.map((a, i) => ((a - before[i]) / ctx.clockTicks) * (1000 / windowMs));
    const busiest = Math.max(0, ...use.filter(Number.isFinite));
    if (busiest < IDLE_CPU || mono() - started > capMs) return mono() - started;
    before = after;
  }
}

/** Uniform in [min, max). */
export function uniform(min: number, max: number): number {
  return min + Math.random() * (max - min);
}
