// The order of a benchmark run: which scenario runs for which
// implementation, lanes side by side or alone, phase after phase, and the
// results they add up to. Seconds-scale scenarios (crash for both, the
// baseline's handoff and disable/enable) run as concurrent lanes; ours'
// millisecond scenarios run alone, one lane, so that booting replicas do not
// load the CPU during a measurement.

import os from 'os';
import {mono} from '../cluster-kit';
import {BenchContext, IMPL_NAMES, Impl, note} from './lib/context';
import {LaneResult, merge, runLanes} from './lib/lane';
import {DEFAULT_TIMINGS, runs, SLOW_POLL_TIMINGS} from './lib/options';
import {ClusterTimings} from '../cluster-kit';
import {round} from './lib/stats';
import {controlLane} from './scenarios/control';
import {crowdRuns} from './scenarios/crowd';
import {floorRun} from './scenarios/floor';
import {crashLane} from './scenarios/failover';
import {handoffLane} from './scenarios/handoff';
import {LoadResult, loadRun} from './scenarios/load';
import {ScaleResult, scaleRun} from './scenarios/scale';

/** The latency keys of the crash failover at other timings (phase A3). */
export const CRASH_SLOW_POLL = 'crash, C = 2 L';
export const CRASH_DEFAULTS = 'crash, default timings';
/** The floor under ours' handoff: the same statements on bare pg (phase B0). */
export const HANDOFF_FLOOR = 'handoff floor';

export interface BenchResults {
  /** crash, handoff, disable, enable -> implementation -> merged lanes. */
  latency: Record<string, Partial<Record<Impl, LaneResult>>>;
  load: Record<Impl, LoadResult[]>;
  /** Ours with many replicas, on a private server. */
  crowd: LoadResult[];
  scale: Partial<Record<Impl, ScaleResult>>;
  phaseSeconds: Record<string, number>;
  /** Load averages at the start and after each phase (the end is added by the report). */
  loadAverage: Record<string, number[]>;
  /** Phases during which another user restarted the database server. */
  restarts: string[];
}

export async function runPhases(ctx: BenchContext): Promise<BenchResults> {
  const {plan} = ctx.options;
  const run = (scenario: Parameters<typeof runs>[1]) => runs(ctx.options, scenario);
  const results: BenchResults = {
    latency: {},
    load: {ours: [], baseline: []},
    crowd: [],
    scale: {},
    phaseSeconds: {},
    loadAverage: {start: os.loadavg()},
    restarts: [],
  };
  const latency = results.latency;
  const phase = async (name: string, work: () => Promise<void>) => {
    const p0 = mono();
    note(
      `${name} (load average ${os
        .loadavg()
        .map(v => v.toFixed(2))
        .join(' ')})`,
    );
    await work();
    if (ctx.watch.disturbed(p0, mono())) {
      results.restarts.push(name);
      note(
        `  the database server restarted during ${name} (not by this benchmark): disturbed samples were redone`,
      );
    }
    results.phaseSeconds[name] = round((mono() - p0) / 1000, 1);
    results.loadAverage[name] = os.loadavg();
  };

  // Phase A: the scenarios measured in seconds, lanes concurrently (booting
  // replicas do not matter at that scale). A1: crash, both implementations;
  // A2: the baseline's handoff, disable and enable (which wait for expiry).
  if (run('crash')) {
    await phase('phase A1: crash failover, both implementations, lanes concurrently', async () => {
      await Promise.all(
        IMPL_NAMES.map(impl =>
          runLanes(ctx, `${impl} crash`, plan.crash.lanes, plan.crash.reps, 700, (i, n) =>
            crashLane(ctx, impl, i, n),
          ).then(r => {
            (latency.crash ??= {})[impl] = merge(r);
          }),
        ),
      );
    });
  }
  // A3: crash failover when polls are slower than the lease (C = 2 L), and
  // at the package's defaults (L 24 s, H 8 s, C 30 s), both implementations.
  if (run('crash-timings')) {
    await phase('phase A3: crash failover at C > L and at the default timings', async () => {
      const {slowPollReps, defaultsReps} = plan.crashTimings;
      const lanes: [string, number, ClusterTimings, string][] = [
        [CRASH_SLOW_POLL, slowPollReps, SLOW_POLL_TIMINGS, 'crashslow'],
        [CRASH_DEFAULTS, defaultsReps, DEFAULT_TIMINGS, 'crashdef'],
      ];
      await Promise.all(
        lanes.flatMap(([key, reps, timings, tag]) =>
          IMPL_NAMES.map(impl =>
            runLanes(ctx, `${impl} ${key}`, 1, reps, 700, (i, n) =>
              crashLane(ctx, impl, i, n, timings, tag),
            ).then(r => {
              (latency[key] ??= {})[impl] = merge(r);
            }),
          ),
        ),
      );
    });
  }
  if (run('handoff') || run('control')) {
    await phase(
      'phase A2: baseline graceful handoff and disable/enable, lanes concurrently',
      async () => {
        const work: Promise<void>[] = [];
        if (run('handoff')) {
          const p = plan.handoff.baseline;
          work.push(
            runLanes(ctx, 'baseline handoff', p.lanes, p.reps, 900, (i, n) =>
              handoffLane(ctx, 'baseline', i, n),
            ).then(r => {
              (latency.handoff ??= {}).baseline = merge(r);
            }),
          );
        }
        if (run('control')) {
          const p = plan.control.baseline;
          work.push(
            runLanes(ctx, 'baseline control', p.lanes, p.reps, 1100, (i, n) =>
              controlLane(ctx, 'baseline', i, n),
            ).then(r => {
              (latency.disable ??= {}).baseline = merge(r.map(x => x.disable));
              (latency.enable ??= {}).baseline = merge(r.map(x => x.enable));
            }),
          );
        }
        await Promise.all(work);
      },
    );
  }

  // Phase B: ours' millisecond scenarios, one lane at a time on a quiet machine.
  if (run('handoff') && ctx.options.backend === 'postgresql') {
    await phase('phase B0: the floor of a handoff on bare pg', async () => {
      latency[HANDOFF_FLOOR] = {ours: await floorRun(ctx, plan.handoff.ours.reps)};
    });
  }
  if (run('handoff')) {
    await phase('phase B1: ours graceful handoff', async () => {
      const p = plan.handoff.ours;
      (latency.handoff ??= {}).ours = merge(
        await runLanes(ctx, 'ours handoff', p.lanes, p.reps, 0, (i, n) =>
          handoffLane(ctx, 'ours', i, n),
        ),
      );
    });
  }
  if (run('control')) {
    await phase('phase B2: ours disable/enable', async () => {
      const p = plan.control.ours;
      const r = await runLanes(ctx, 'ours control', p.lanes, p.reps, 0, (i, n) =>
        controlLane(ctx, 'ours', i, n),
      );
      (latency.disable ??= {}).ours = merge(r.map(x => x.disable));
      (latency.enable ??= {}).ours = merge(r.map(x => x.enable));
    });
  }

  // Phase C: database load per replica against the number of locks.
  if (run('load')) {
    await phase('phase C: database load, 1 to 1000 locks', async () => {
      for (const locks of plan.load.locks) {
        for (const impl of IMPL_NAMES) {
          const r = await loadRun(ctx, impl, locks).catch(err =>
            ctx.fail(`${impl} load ${locks} locks`, err),
          );
          if (!r) continue;
          note(
            r.replicasMeasured
              ? `  ${impl} ${locks} locks: ${r.statementsPerSecPerReplica} statements/s per replica, CPU ${r.cpuPercentPerReplica.mean}%`
              : `  ${impl} ${locks} locks: every replica died before the window`,
          );
          results.load[impl].push(r);
        }
      }
    });
  }

  // Phase D: scale.
  if (run('scale')) {
    await phase(
      `phase D: scale, ${plan.scale.replicas} replicas x ${plan.scale.locks} locks`,
      async () => {
        for (const impl of IMPL_NAMES) {
          const r = await scaleRun(ctx, impl).catch(err => ctx.fail(`${impl} scale`, err));
          if (r) results.scale[impl] = r;
        }
      },
    );
  }
  // Phase E: many replicas, ours only, on a server of the run's own.
  if (run('crowd')) {
    await phase(
      `phase E: ${plan.crowd.replicas} replicas x ${plan.crowd.locks.join(', ')} locks, on a private server`,
      async () => {
        results.crowd = await crowdRuns(ctx).catch(err => {
          ctx.fail('crowd', err);
          return [];
        });
      },
    );
  }
  return results;
}
