// A balanced group in real processes of the example app (DEMO_GROUP), on
// PostgreSQL and on MariaDB: 3 replicas, then 5, then 2 (two leave with
// SIGTERM, one is SIGKILLed). After each step settles, the owners are
// balanced within one; throughout, no resource has two owners at once, and
// none stays unowned longer than a lease plus a check.

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {GroupWatch} from '../fixtures/group-watch';
import {note, orSkip} from '../fixtures/real-processes';
import {DatabaseServer, FAST_TIMINGS, mono, ProcessCluster, SqlBackend} from '../../cluster-kit';

const RESOURCES = 100;

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  describe(`a group of ${RESOURCES} resources in example app processes on ${backend}`, function () {
    this.timeout(60000);
    const group = `G${randomBytes(3).toString('hex')}`;
    const locks = Array.from({length: RESOURCES}, (_, i) => `${group}/r${i}`);
    const T = FAST_TIMINGS;
    let cluster: ProcessCluster | undefined;

    before(async function () {
      const server = new DatabaseServer(backend, 'mje_groups_cluster');
      await orSkip(this, () => server.ensureDatabase());
      cluster = new ProcessCluster({
        server,
        lockNames: [`${group}-LOCK`],
        replicas: 3,
        namePrefix: `${backend === 'postgresql' ? 'pg' : 'my'}g`,
        timings: T,
        extraEnv: {DEMO_GROUP: `${group}:${RESOURCES}`},
      });
      watch = new GroupWatch(cluster, locks, note);
    });

    after(async function () {
      if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.describe());
      await cluster?.shutdown();
    });

    let watch: GroupWatch;
    const owned = () => watch.owned();

    /** Waits until balanced; reports the time since `from` (the step's start). */
    const waitBalanced = (what: string, from = mono()) =>
      watch.balancedAfter(what, from, T.leaseDuration + 10 * T.checkMasterInterval);

    /** No two owners at once, and no resource unowned longer than lease + check (+1 s of lag). */
    async function check(): Promise<void> {
      const longest = await watch.longestUnowned();
      expect(longest).to.be.below(T.leaseDuration + T.checkMasterInterval + 1000);
    }

    it('3 replicas started together share the resources 34/33/33', async () => {
      const from = mono();
      await cluster!.start();
      await waitBalanced('3 replicas (from the spawn)', from);
      // Started together, they agree on one plan: nothing expires, little moves.
      const stops = cluster!.log.jobs.filter(j => j.event === 'stop');
      note(`stops at startup: ${stops.length}`);
      expect(stops.map(j => j.reason)).to.not.containEql('expired');
      await check();
    });

    it('2 more join: the 5 own 20 each, taken over by handover', async () => {
      const joinedAt = mono();
      await Promise.all([cluster!.spawnReplica(), cluster!.spawnReplica()]);
      await waitBalanced('5 replicas (from the spawn)', joinedAt);
      const moved = cluster!.log.jobs.filter(j => j.event === 'stop' && j.mono > joinedAt);
      expect(moved.map(j => j.reason)).to.matchEach('rebalanced');
      await check();
    });

    it('2 leave with SIGTERM: their resources are handed over at once', async () => {
      const [a, b] = cluster!.live();
      const from = mono();
      await Promise.all([a.terminate(), b.terminate()]);
      await waitBalanced('after 2 SIGTERMs', from);
      await check();
    });

    it('1 is SIGKILLed: the 2 survivors share its resources after the lease, 50/50', async () => {
      const [victim] = cluster!.live();
      const from = mono();
      victim.kill('SIGKILL');
      await victim.exited;
      await waitBalanced('after a SIGKILL', from);
      expect([...owned().values()]).to.eql([50, 50]);
      await check();
    });
  });
}
