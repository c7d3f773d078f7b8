// Graceful handoff: SIGTERM of the master -> start() on another replica.
// Clusters of 4, refilled (between measurements) when below 3, so every
// handoff is among 3 or 4 replicas; after a refill, 1 s and then until every
// replica idles (waitIdle); after a random 0.1-1.1 s the master gets SIGTERM;
// the sample is the time to the start line elsewhere, with its parts (SIGTERM
// to the old master's stop line, that to the new start, SIGTERM to exit).

import {BenchContext, Impl} from '../lib/context';
import {Lane, LaneResult, repeat, uniform, waitIdle} from '../lib/lane';
import {H, HANDOFF_REPLICAS} from '../lib/options';
import {sleep} from '../../cluster-kit';

export async function handoffLane(
  ctx: BenchContext,
  impl: Impl,
  index: number,
  reps: number,
): Promise<LaneResult> {
  const lane = new Lane(ctx, impl, `${impl}-handoff${index}`, [`HANDOFF-${impl}-${index}`]);
  const samples: number[] = [];
  const stopLine: number[] = [];
  const afterStop: number[] = [];
  const exit: number[] = [];
  const settle: number[] = [];
  try {
    await lane.ensure(HANDOFF_REPLICAS);
    await lane.waitMaster();
    const repeated = await repeat(lane, reps, async () => {
      if (lane.alive().length < 3) {
        // Refill between measurements, never during one: booting replicas load the CPU.
        await lane.ensure(HANDOFF_REPLICAS);
        await sleep(1000);
        settle.push(await waitIdle(ctx, lane.alive()));
      }
      await sleep(uniform(100, 100 + H));
      const {master, t, next} = await lane.killMaster('SIGTERM');
      await Promise.race([master.exited, sleep(15000)]);
      const exitedAt = master.exitedAt;
      const stop = ctx.log.jobs.find(
        x => x.mono > t && x.event === 'stop' && x.instanceId === master.instanceId,
      );
      return () => {
        samples.push(next ? next.mono - t : Infinity);
        if (exitedAt) exit.push(exitedAt - t);
        if (stop) {
          stopLine.push(stop.mono - t);
          if (next) afterStop.push(next.mono - stop.mono);
        }
      };
    });
    return {
      samples,
      extra: {
        sigtermToStopLine: stopLine,
        stopLineToStart: afterStop,
        sigtermToExit: exit,
        refillSettle: settle,
      },
      ...lane.outcome(repeated),
    };
  } finally {
    await lane.stop();
  }
}
