// Crash failover: SIGKILL of the master -> start() on another replica.
// Clusters of 3; after a random 0.2-2.2 s (one C long: a uniform phase
// against the renewal and polling grids) the master is killed; the sample is
// the time to the next start line elsewhere. The killed replica is replaced
// meanwhile.

import {BenchContext, Impl, note} from '../lib/context';
import {Lane, LaneResult, repeat, uniform} from '../lib/lane';
import {TIMINGS} from '../lib/options';
import {ClusterTimings, sleep} from '../../cluster-kit';

export async function crashLane(
  ctx: BenchContext,
  impl: Impl,
  index: number,
  reps: number,
  timings: ClusterTimings = TIMINGS,
  tag = 'crash',
): Promise<LaneResult> {
  const C = timings.checkMasterInterval;
  const lane = new Lane(
    ctx,
    impl,
    `${impl}-${tag}${index}`,
    [`${tag.toUpperCase()}-${impl}-${index}`],
    timings,
  );
  const samples: number[] = [];
  let replacing: Promise<void> = Promise.resolve();
  try {
    await lane.ensure(3);
    await lane.waitMaster();
    const repeated = await repeat(lane, reps, async () => {
      await replacing;
      await lane.ensure(3);
      // Uniform phase against the renewal and polling grids (the range is C long).
      await sleep(uniform(200, 200 + C));
      const {t, next} = await lane.killMaster('SIGKILL');
      replacing = lane.ensure(3).catch(err => note(`${lane.name}: ${err.message}`)); // boots meanwhile
      return () => samples.push(next ? next.mono - t : Infinity);
    });
    return {samples, extra: {}, ...lane.outcome(repeated)};
  } finally {
    await replacing;
    await lane.stop();
  }
}
