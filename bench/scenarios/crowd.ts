// Many replicas of ours (50 in the full run) with 1 to 1000 locks: the load
// windows of load.ts, on a server made for the run (PostgreSQL with initdb,
// MariaDB with mariadb-install-db): the machine's shared one has
// max_connections 100 for every user, and 50 replicas need about 150.
// Ours only: the baseline dies at 10 replicas already (the scale phase).

import {PrivateServer} from '../../cluster-kit';
import {BenchContext, note} from '../lib/context';
import {LoadResult, loadRun} from './load';

export async function crowdRuns(ctx: BenchContext): Promise<LoadResult[]> {
  const {backend, plan} = ctx.options;
  const server = await PrivateServer.create(backend);
  const crowd = new BenchContext(ctx.options, server);
  const results: LoadResult[] = [];
  try {
    await crowd.prepare();
    for (const locks of plan.crowd.locks) {
      const r = await loadRun(crowd, 'ours', locks, plan.crowd).catch(err =>
        ctx.fail(`ours crowd ${locks} locks`, err),
      );
      if (!r) continue;
      note(
        `  ${r.replicasMeasured} replicas x ${locks} locks: ${r.statementsPerSecPerReplica} statements/s ` +
          `per replica, CPU ${r.cpuPercentPerReplica.mean}% (max ${r.cpuPercentPerReplica.max}%), ` +
          `exactly one master ${r.exactlyOne}/${locks}`,
      );
      results.push(r);
    }
  } finally {
    await crowd.close();
    await server.destroy();
  }
  return results;
}
