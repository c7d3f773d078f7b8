// Disable and enable over HTTP: POST disable (form-encoded) to a non-master
// -> stop() on the master (timeout L + C); 0.1-0.3 s later POST enable to a
// random replica -> start() anywhere. Clusters of 3; each new replica is
// warmed first with invalid requests (LoopBack compiles the body validators
// on first use), so the figures are the protocol's.

import {checkMasterships, mono, Replica, sleep} from '../../cluster-kit';
import {BenchContext, Impl} from '../lib/context';
import {Lane, LaneResult, repeat, uniform} from '../lib/lane';
import {C, H, L} from '../lib/options';

export interface ControlResult {
  disable: LaneResult;
  enable: LaneResult;
}

export async function controlLane(
  ctx: BenchContext,
  impl: Impl,
  index: number,
  reps: number,
): Promise<ControlResult> {
  const lane = new Lane(ctx, impl, `${impl}-control${index}`, [`CONTROL-${impl}-${index}`]);
  const lockName = lane.lockName;
  const disable: number[] = [];
  const enable: number[] = [];
  const disableHttp: number[] = [];
  const enableHttp: number[] = [];
  const since = mono();
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
    const repeated = await repeat(lane, reps, async () => {
      await lane.ensure(3);
      await warmUp();
      await sleep(uniform(100, 100 + H));
      const master = await lane.waitMaster(L + C + 10000);
      const t = mono();
      await lane
        .otherAlive(master)
        .post('/api/MasterControls/disable', {lockName, reason: 'bench'});
      const http1 = mono() - t;
      const stop = await ctx.log.nextJob(
        x => x.event === 'stop' && x.lockName === lockName && x.instanceId === master.instanceId,
        t,
        L + C,
      );
      await sleep(uniform(100, 300));
      const t2 = mono();
      // Enable even when the disable failed: the lane must not stay disabled.
      await lane.otherAlive(undefined).post('/api/MasterControls/enable', {lockName});
      const http2 = mono() - t2;
      const start = await ctx.log.nextJob(
        x => x.event === 'start' && x.lockName === lockName,
        t2,
        L + C + 5000,
      );
      return () => {
        disableHttp.push(http1);
        disable.push(stop ? stop.mono - t : Infinity);
        enableHttp.push(http2);
        enable.push(start ? start.mono - t2 : Infinity);
      };
    });
    // stop() lines of a replica not running the job, of any lane, while this one ran
    // (as the benchmark has always counted them: lanes of other scenarios run alongside).
    const stray = checkMasterships(ctx.log, {until: mono()}).strayStops;
    const common = lane.outcome(repeated, stray.filter(e => e.mono >= since).length);
    return {
      disable: {samples: disable, extra: {httpResponse: disableHttp}, ...common},
      enable: {samples: enable, extra: {httpResponse: enableHttp}, ...common},
    };
  } finally {
    await lane.stop();
  }
}
