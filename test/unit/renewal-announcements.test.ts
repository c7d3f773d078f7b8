// Renewals announced as they commit (PostgreSQL's NOTIFY, simulated here):
// a non-master judges the lease from the last renewal it was told of, so a
// crashed master is taken over a lease after its last renewal, whatever the
// polling interval; and never sooner.

import {expect} from '@loopback/testlab';
import {FakeCluster, masterAndFollower, TIMINGS} from '../fixtures/fake-cluster';

const L = TIMINGS.leaseDuration;
const H = TIMINGS.heartbeatInterval;

describe('LockElection told of renewals (fake clock)', () => {
  async function failover(announce: boolean) {
    // Polls far apart: without announcements the takeover waits for one.
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 20 * L});
    const a = cluster.add('A');
    const b = cluster.add('B');
    const renewals: number[] = [];
    a.election.on('renewed', () => {
      const row = cluster.db.locks.get('JOB')!;
      renewals.push(cluster.clock.now());
      if (announce) {
        const {instanceId, fencingToken, renewalId} = row;
        b.election.wake({
          kind: 'renewed',
          lockName: 'JOB',
          renewed: {instanceId, fencingToken, renewalId},
        });
      }
    });
    a.election.begin();
    await cluster.run(50);
    b.election.begin(); // reads A's record once, then polls every 20 leases
    await cluster.run(5 * H + 3);
    // While A lives, B tries no takeover if told of renewals; untold, it tries
    // (and fails) once per lease, when the record it saw last looks expired.
    const takeoversWhileAlive = b.store.calls.filter(c => c === 'takeOver').length;
    a.store.fault = 'hang'; // crashed: no renewal lands after this
    const crashedAt = cluster.clock.now();
    await cluster.until(() => b.election.isMaster, 40 * L);
    const started = cluster.events.find(e => e.replica === 'B' && e.kind === 'start')!.at;
    cluster.assertNoOverlap();
    await cluster.stopAll();
    const lastRenewal = renewals.filter(t => t <= crashedAt).pop()!;
    return {
      afterCrash: started - crashedAt,
      afterLastRenewal: started - lastRenewal,
      takeoversWhileAlive,
    };
  }

  it('takes over a lease after the last announced renewal, not at the next poll', async () => {
    const told = await failover(true);
    expect(told.afterLastRenewal).to.be.within(L, L + 20);
    expect(told.afterCrash).to.be.within(L - H, L + 20);
    expect(told.takeoversWhileAlive).to.equal(0);
  });

  it('untold, it judges the lease from stale sightings: failed takeovers while the master lives', async () => {
    const untold = await failover(false);
    expect(untold.takeoversWhileAlive).to.be.aboveOrEqual(1);
    expect(untold.afterLastRenewal).to.be.aboveOrEqual(L);
  });

  it('ignores an announcement of another holder or token, and a master ignores them all', async () => {
    const timings = {...TIMINGS, checkMasterInterval: 20 * L};
    const {cluster, a, b} = await masterAndFollower(timings, {settle: 20});
    a.store.fault = 'hang';
    const crashedAt = cluster.clock.now();
    // Forged or stale: a wrong holder, a wrong token. Neither delays the takeover.
    const row = cluster.db.locks.get('JOB')!;
    const later = async () => {
      await cluster.run(L / 2);
      b.election.wake({
        kind: 'renewed',
        lockName: 'JOB',
        renewed: {instanceId: 'X', fencingToken: row.fencingToken, renewalId: 'f1'},
      });
      b.election.wake({
        kind: 'renewed',
        lockName: 'JOB',
        renewed: {instanceId: 'A', fencingToken: 99, renewalId: 'f2'},
      });
      a.election.wake({
        kind: 'renewed',
        lockName: 'JOB',
        renewed: {instanceId: 'A', fencingToken: row.fencingToken, renewalId: 'f3'},
      });
    };
    await later();
    await cluster.until(() => b.election.isMaster, 40 * L);
    const started = cluster.events.find(e => e.replica === 'B' && e.kind === 'start')!.at;
    expect(started - crashedAt).to.be.below(L + 50);
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });
});

describe('LockElection told of a release while a step runs (fake clock)', () => {
  it('takes the lock over unread once the step ends, not after another read', async () => {
    const timings = {...TIMINGS, checkMasterInterval: 20 * L};
    const {cluster, a, b} = await masterAndFollower(timings, {settle: 50});
    // B's next read runs at once but answers late: it will report A as holder.
    b.store.replyDelay = 30;
    b.election.wake(); // a poll, now
    await cluster.run(5);
    const calls = b.store.calls.length;
    await a.election.stop(); // released
    b.election.wake(cluster.releaseNotice());
    await cluster.until(() => b.election.isMaster, 1000);
    // The late read, then straight to the takeover: no second read.
    expect(b.store.calls.slice(calls)).to.eql(['takeOver']);
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });
});
