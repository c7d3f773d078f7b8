// A balanced group as a newcomer meets it, in real processes of the
// example app (DEMO_GROUP) on PostgreSQL and on MariaDB:
//  - replicas started together at the default timings run every resource
//    within initDelay + 2 s of the last one answering, by one plan;
//  - a replica killed with SIGKILL leaves every survivor's status within L + C;
//  - through kills, graceful leaves and rejoins, every resource has an owner
//    again within L + 2C, and the owners are balanced within L + 2C + H.
// The last two run at the defaults' proportions, ten times faster (C > L).

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {GroupWatch} from '../fixtures/group-watch';
import {note, orSkip} from '../fixtures/real-processes';
import {
  ClusterTimings,
  DatabaseServer,
  mono,
  ProcessCluster,
  Replica,
  sleep,
  SqlBackend,
  waitFor,
} from '../../cluster-kit';

const DEFAULTS: ClusterTimings = {
  initDelay: 1000,
  checkMasterInterval: 30000,
  heartbeatInterval: 8000,
  leaseDuration: 24000,
  maxHeartbeatRetryCount: 3,
  stopTimeout: 2000,
};

/** The defaults' proportions, ten times faster. */
const SCALED: ClusterTimings = {
  ...DEFAULTS,
  checkMasterInterval: 3000,
  heartbeatInterval: 800,
  leaseDuration: 2400,
};

interface StatusBody {
  groups: {groupName: string; members: {instanceId: string}[]}[];
}

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  describe(`a group as a newcomer meets it, in example app processes on ${backend}`, function () {
    this.timeout(120000);
    let server: DatabaseServer | undefined;
    let cluster: ProcessCluster | undefined;
    let group = '';
    let locks: string[] = [];

    before(async function () {
      const candidate = new DatabaseServer(backend, 'mje_groups_newcomer');
      await orSkip(this, () => candidate.ensureDatabase());
      server = candidate;
    });

    afterEach(async function () {
      if (this.currentTest?.state === 'failed' && cluster) console.log(cluster.describe());
      await cluster?.shutdown();
      cluster = undefined;
    });

    /** A cluster of `replicas` running a group of `resources` resources of its own. */
    function makeCluster(timings: ClusterTimings, resources: number, replicas: number) {
      group = `N${randomBytes(3).toString('hex')}`;
      locks = Array.from({length: resources}, (_, i) => `${group}/r${i}`);
      cluster = new ProcessCluster({
        server: server!,
        lockNames: [`${group}-LOCK`],
        replicas,
        namePrefix: `${backend === 'postgresql' ? 'pg' : 'my'}n`,
        timings,
        readiness: 'http',
        extraEnv: {DEMO_GROUP: `${group}:${resources}`},
      });
      watch = new GroupWatch(cluster, locks, note);
      return cluster;
    }

    let watch: GroupWatch;
    const balancedAfter = (what: string, from: number, timeout: number) =>
      watch.balancedAfter(what, from, timeout);
    const longestUnowned = () => watch.longestUnowned();

    it('3 replicas started together at the defaults run every resource within initDelay + 2 s, by one plan', async () => {
      const T = DEFAULTS;
      const c = makeCluster(T, 12, 3);
      await c.start();
      const lastAnswered = mono(); // every replica answers HTTP by now
      await balancedAfter('cold start', lastAnswered, T.leaseDuration + 10000);
      const lastStart = Math.max(...locks.map(l => c.log.running(l)[0].mono));
      const ms = lastStart - lastAnswered;
      note(`the last resource started ${ms.toFixed(0)} ms after the last replica answered`);
      expect(ms).to.be.below(T.initDelay + 2000);
      const moved = c.log.jobs.filter(j => j.event === 'stop' && j.lockName.startsWith(group));
      note(`resources handed over at startup: ${moved.length}`);
      await longestUnowned(); // asserts no two owners at once
    });

    it('a SIGKILLed replica leaves every survivor’s members within L + C', async () => {
      const T = SCALED;
      const c = makeCluster(T, 12, 3);
      await c.start();
      await balancedAfter('3 replicas', mono(), T.leaseDuration + 2 * T.checkMasterInterval);
      const [victim, ...survivors] = c.live();
      const killedAt = victim.kill('SIGKILL');
      await victim.exited;
      /** Whether `replica`'s status still lists the victim in the group's members. */
      const lists = async (replica: Replica) => {
        const body = (await replica.get('/api/MasterControls/status')) as StatusBody;
        const g = body.groups.find(x => x.groupName === group);
        return !!g?.members.some(m => m.instanceId === victim.instanceId);
      };
      const bound = T.leaseDuration + T.checkMasterInterval;
      await waitFor(
        `${victim.instanceId} gone from the survivors' members`,
        async () => !(await Promise.all(survivors.map(lists))).some(Boolean),
        bound + 10 * T.leaseDuration,
        50,
      );
      const ms = mono() - killedAt;
      note(`gone from every survivor's members ${ms.toFixed(0)} ms after the SIGKILL`);
      expect(ms).to.be.below(bound);
    });

    it('kills, graceful leaves and rejoins: owners again within L + 2C, balanced within L + 2C + H', async () => {
      const T = SCALED;
      const ownerBound = T.leaseDuration + 2 * T.checkMasterInterval;
      const balanceBound = ownerBound + T.heartbeatInterval;
      const c = makeCluster(T, 12, 3);
      await c.start();
      await balancedAfter('3 replicas', mono(), balanceBound);
      const steps: [string, () => Promise<unknown>][] = [
        [
          'SIGKILL and a rejoin at once',
          async () => {
            const [victim] = c.live();
            victim.kill('SIGKILL');
            await Promise.all([victim.exited, c.spawnReplica()]);
          },
        ],
        [
          'SIGTERM and a rejoin at once',
          async () => {
            const [leaver] = c.live();
            await Promise.all([leaver.terminate(), c.spawnReplica()]);
          },
        ],
        [
          'SIGKILL, and a rejoin half a lease later',
          async () => {
            const [victim] = c.live();
            victim.kill('SIGKILL');
            await victim.exited;
            await sleep(T.leaseDuration / 2);
            await c.spawnReplica();
          },
        ],
        [
          'SIGKILL of two, one rejoins',
          async () => {
            const [a, b] = c.live();
            a.kill('SIGKILL');
            b.kill('SIGKILL');
            await Promise.all([a.exited, b.exited, c.spawnReplica()]);
          },
        ],
      ];
      for (const [what, step] of steps) {
        const from = mono();
        await step();
        const ms = await balancedAfter(what, from, balanceBound + 10000);
        expect(ms).to.be.below(balanceBound);
      }
      expect(await longestUnowned()).to.be.below(ownerBound);
    });
  });
}
