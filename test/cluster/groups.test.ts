// A balanced group in real processes of the example app (DEMO_GROUP), on
// PostgreSQL and on MariaDB: 3 replicas, then 5, then 2 (two leave with
// SIGTERM, one is SIGKILLed). After each step settles, the owners are
// balanced within one; throughout, no resource has two owners at once, and
// none stays unowned longer than a lease plus a check.

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {
  DatabaseServer,
  FAST_TIMINGS,
  mono,
  ProcessCluster,
  readMasterships,
  sleep,
  SqlBackend,
  waitFor,
} from '../../cluster-kit';

const RESOURCES = 100;

function note(text: string): void {
  process.stdout.write(text.replace(/^/gm, '      ') + '\n');
}

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  describe(`a group of ${RESOURCES} resources in example app processes on ${backend}`, function () {
    this.timeout(60000);
    const group = `G${randomBytes(3).toString('hex')}`;
    const locks = Array.from({length: RESOURCES}, (_, i) => `${group}/r${i}`);
    const T = FAST_TIMINGS;
    let cluster: ProcessCluster | undefined;

    before(async function () {
      const server = new DatabaseServer(backend, 'mje_groups_cluster');
      try {
        await server.ensureDatabase();
      } catch (err) {
        if (process.env.CI === 'true') throw err;
        note(`skipped: ${err.message}`);
        return this.skip();
      }
      cluster = new ProcessCluster({
        server,
        lockNames: [`${group}-LOCK`],
        replicas: 3,
        namePrefix: `${backend === 'postgresql' ? 'pg' : 'my'}g`,
        timings: T,
        extraEnv: {DEMO_GROUP: `${group}:${RESOURCES}`},
      });
    });

    after(async function () {
      if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.describe());
      await cluster?.shutdown();
    });

    /** Resources each live replica runs now, as their lines say. */
    function owned(): Map<string, number> {
      const counts = new Map(cluster!.live().map(r => [r.instanceId, 0]));
      for (const lock of locks) {
        for (const start of cluster!.log.running(lock)) {
          // a replica being killed counts as nobody: what it ran must move
          const n = counts.get(start.instanceId);
          if (n !== undefined) counts.set(start.instanceId, n + 1);
        }
      }
      return counts;
    }

    /** Waits until balanced; reports the time since `from` (the step's start). */
    async function waitBalanced(what: string, from = mono()): Promise<number> {
      await waitFor(
        `${what}: every resource run once, owners balanced within one`,
        () => {
          const counts = [...owned().values()];
          const total = counts.reduce((a, b) => a + b, 0);
          return total === RESOURCES && Math.max(...counts) - Math.min(...counts) <= 1;
        },
        T.leaseDuration + 10 * T.checkMasterInterval,
      );
      const ms = mono() - from;
      note(`${what}: balanced ${[...owned().values()].join('/')} after ${ms.toFixed(0)} ms`);
      return ms;
    }

    /** No two owners at once, and no resource unowned longer than lease + check (+1 s of lag). */
    async function check(): Promise<void> {
      await sleep(200); // the last lines are in the pipes still
      const until = mono() - 100;
      const bound = T.leaseDuration + T.checkMasterInterval + 1000;
      let longest = 0;
      for (const lockName of locks) {
        const m = readMasterships(cluster!.log, {lockName, until});
        expect(m.violations).to.eql([]);
        for (let i = 1; i < m.tenures.length; i++) {
          longest = Math.max(longest, m.tenures[i].start - m.tenures[i - 1].end);
        }
      }
      note(`longest a resource waited for its next owner: ${longest.toFixed(0)} ms`);
      expect(longest).to.be.below(bound);
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
