// Balanced groups and quorum through real repositories, on the memory
// connector, PostgreSQL and MySQL/MariaDB: replicas join, leave and are cut
// off; every resource has one owner at a time and the owners stay balanced.

import {expect} from '@loopback/testlab';
import {holdsFor, mono, waitFor} from '../../cluster-kit';
import {MasterGroup, MasterJobContext} from '../../src';
import {BACKENDS, BackendName} from '../fixtures/databases';
import {Cluster, clusterPerSuite, FAST, Replica} from '../fixtures/cluster';

const L = FAST.leaseDuration;
const H = FAST.heartbeatInterval;
const C = FAST.checkMasterInterval;
const RESOURCES = Array.from({length: 12}, (_, i) => `r${i}`);

for (const backend of BACKENDS) {
  describe(`groups on ${backend} (integration)`, function () {
    groupSuite(backend);
  });
}

function groupSuite(backend: BackendName): void {
  let cluster: Cluster;
  let GROUP: string;
  const groups = new Map<Replica, MasterGroup>();

  clusterPerSuite(backend, 'mje_groups', c => {
    cluster = c;
    GROUP = cluster.name('TENANTS');
  });
  afterEach(() => groups.clear());

  function startGroup(r: Replica, minMembers?: number): MasterGroup {
    const log = cluster.log;
    const group = r.executor.startGroup({
      ...FAST,
      groupName: GROUP,
      resources: RESOURCES,
      minMembers,
      job: {
        start: (ctx: MasterJobContext) => log.job(r.instanceId, ctx.lockName).start(ctx),
        stop: (ctx: MasterJobContext) => log.job(r.instanceId, ctx.lockName).stop(ctx),
      },
    });
    groups.set(r, group);
    return group;
  }

  /** Owned per live group, in the order the replicas were added. */
  function owned(): number[] {
    return [...groups.values()]
      .filter(g => g.status().state !== 'stopped')
      .map(g => g.owned().length);
  }

  function balanced(): boolean {
    const counts = owned();
    const total = counts.reduce((a, b) => a + b, 0);
    return (
      total === RESOURCES.length &&
      Math.max(...counts) - Math.min(...counts) <= 1 &&
      cluster.log.running().length === RESOURCES.length
    );
  }

  it('three replicas started together share 12 resources 4/4/4, each run once', async () => {
    const replicas = await cluster.addReplicas(3);
    replicas.forEach(r => startGroup(r));
    await waitFor('balanced', balanced, 10 * L);
    expect(owned()).to.eql([4, 4, 4]);
    // Stable: nothing moves once balanced.
    const starts = cluster.log.tenures.length;
    await holdsFor('no moves', () => cluster.log.tenures.length === starts, 2 * C);
    cluster.log.expectNoOverlap();
    const members = groups.get(replicas[0])!.members();
    expect(members.map(m => m.owned)).to.eql([4, 4, 4]);
    expect(members.filter(m => m.self).map(m => m.instanceId)).to.eql([replicas[0].instanceId]);
    // Every resource's row names the group: one query reads them all.
    const rows = await (await cluster.lockRepo()).find({where: {groupName: GROUP}});
    expect(rows.filter(row => row.lockName.startsWith(`${GROUP}/`)).length).to.equal(12);
  });

  it('a replica joining takes its share by handover; one leaving hands its share over at once', async () => {
    const [a, b] = await cluster.addReplicas(2);
    startGroup(a);
    startGroup(b);
    await waitFor('balanced on two', balanced, 10 * L);
    const joinedAt = mono();
    const c = await cluster.addReplica();
    startGroup(c);
    await waitFor('balanced on three', () => balanced() && owned().length === 3, 10 * L);
    const moves = cluster.log.tenures.filter(
      t => t.stoppedAt !== undefined && t.stoppedAt > joinedAt,
    );
    expect(moves.map(t => t.reason)).to.matchEach('rebalanced');
    expect(moves.length).to.equal(4);
    // None of the moves waited for a lease: stop -> release -> the new owner starts.
    for (const t of moves) {
      const next = cluster.log.tenures.find(
        n => n.lockName === t.lockName && n.startedAt > t.stoppedAt!,
      );
      expect(next).to.be.ok();
      expect(next!.startedAt - t.stoppedAt!).to.be.below(L);
    }
    const leftAt = mono();
    await groups.get(a)!.stop();
    await waitFor('balanced on two again', () => balanced() && owned().length === 2, 10 * L);
    const handedOver = cluster.log.tenures.filter(
      t => t.instanceId === a.instanceId && t.stoppedAt! > leftAt,
    );
    expect(handedOver.map(t => t.reason)).to.matchEach('stopped');
    cluster.log.expectNoOverlap();
  });

  it('a replica cut off loses its share after the lease; the others share it evenly', async () => {
    const replicas = await cluster.addReplicas(3, {crashable: true});
    replicas.forEach(r => startGroup(r));
    await waitFor('balanced', balanced, 10 * L);
    const [victim] = replicas;
    const crashedAt = mono();
    victim.store!.crash();
    groups.delete(victim);
    await waitFor(
      'the survivors own everything, 6/6',
      () => owned().join() === '6,6' && cluster.log.running().length === 12,
      3 * L + 4 * C,
    );
    cluster.log.expectNoOverlap();
    expect(
      cluster.log.tenures
        .filter(t => t.instanceId === victim.instanceId && t.stoppedAt! > crashedAt)
        .map(t => t.reason),
    ).to.matchEach('expired');
  });

  it('quorum: nothing runs below minMembers; the owners stop with reason quorum', async () => {
    const [a, b] = await cluster.addReplicas(2);
    startGroup(a, 2);
    await holdsFor('nothing runs alone', () => cluster.log.tenures.length === 0, 2 * L);
    expect(groups.get(a)!.status().state).to.equal('quorum');
    startGroup(b, 2);
    await waitFor('balanced on two', balanced, 10 * L);
    await groups.get(b)!.stop();
    await waitFor('nothing runs', () => cluster.log.running().length === 0, 4 * H + L);
    const stopsOfA = cluster.log.tenures.filter(t => t.instanceId === a.instanceId);
    expect(stopsOfA.map(t => t.reason)).to.matchEach('quorum');
    await holdsFor('still nothing runs', () => cluster.log.running().length === 0, 2 * L);
  });

  it('startMaster({minMembers}) runs the job only while the quorum is alive', async () => {
    const LOCK = cluster.name('QUORUM-JOB');
    const [a, b] = await cluster.addReplicas(2);
    const start = (r: Replica) =>
      r.executor.startMaster({
        ...FAST,
        lockName: LOCK,
        minMembers: 2,
        masterJob: cluster.log.job(r.instanceId, LOCK),
      });
    const handleA = start(a);
    await holdsFor('no master alone', () => cluster.log.tenures.length === 0, 2 * L);
    const handleB = start(b);
    await waitFor('one master', () => cluster.log.running(LOCK).length === 1, 10 * L);
    const master = handleA.isMaster ? handleA : handleB;
    const other = master === handleA ? handleB : handleA;
    await other.stop();
    await waitFor('the master stopped', () => cluster.log.running(LOCK).length === 0, 4 * H + L);
    expect(cluster.log.of(LOCK).map(t => t.reason)).to.eql(['quorum']);
  });
}
