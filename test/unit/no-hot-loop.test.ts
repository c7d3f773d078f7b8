// Whatever the database answers, an election's call rate stays bounded: a
// compare-and-set that always loses, a row that never matches, writes that
// always fail. Each store answers in 1 ms, so a loop that retried at once
// would make thousands of calls in the time measured.

import {expect} from '@loopback/testlab';
import {LockRecord} from '../../src/extension';
import {FakeCluster, TIMINGS} from '../fixtures/fake-cluster';
import {FakeStore} from '../fixtures/fake-store';

const C = TIMINGS.checkMasterInterval;
const MEASURED = 20 * C;

type Misbehaviour = (store: FakeStore, cluster: FakeCluster) => void;

const FREE: LockRecord = {
  lockName: 'JOB',
  instanceId: '',
  hostname: '',
  fencingToken: 7,
  renewalId: 'freed',
  heartbeatAt: new Date(0),
  acquiredAt: new Date(0),
};

const cases: Record<string, Misbehaviour> = {
  'a takeover that never matches the free row it read': (store, cluster) => {
    cluster.db.locks.set('JOB', {...FREE});
    store.takeOver = async () => {
      store.calls.push('takeOver');
      await cluster.clock.sleep(1);
      return undefined;
    };
  },
  'a create that always finds a duplicate of a row no read finds': (store, cluster) => {
    store.create = async () => {
      store.calls.push('create');
      await cluster.clock.sleep(1);
      return undefined;
    };
  },
  'writes that always fail after reads that succeed': (store, cluster) => {
    cluster.db.locks.set('JOB', {...FREE});
    store.takeOver = async () => {
      store.calls.push('takeOver');
      await cluster.clock.sleep(1);
      throw new Error('batch refused');
    };
  },
  'every call failing': store => {
    store.fault = 'fail';
  },
};

describe('LockElection never loops hot (fake clock)', () => {
  for (const [name, misbehave] of Object.entries(cases)) {
    it(`backs off on ${name}`, async () => {
      const cluster = new FakeCluster();
      const a = cluster.add('A');
      a.store.latency = 1;
      misbehave(a.store, cluster);
      a.election.begin();
      await cluster.run(MEASURED);
      const reads = a.store.calls.filter(c => c === 'read').length;
      // Back-off 100, 200, 400, 800 ms, then once per C.
      expect(reads).to.be.within(MEASURED / C, MEASURED / C + 6);
      expect(a.store.calls.length).to.be.lessThanOrEqual(2 * (MEASURED / C + 6));
      expect(a.election.isMaster).to.be.false();
      await cluster.stopAll();
    });
  }

  it('still re-reads at once after the first lost race, and resets once a master is seen', async () => {
    const cluster = new FakeCluster();
    const a = cluster.add('A');
    const b = cluster.add('B');
    a.store.latency = b.store.latency = 1;
    cluster.startAll();
    await cluster.run(C / 2);
    expect(cluster.masters()).to.have.length(1);
    const loser = cluster.masters()[0] === 'A' ? b : a;
    // The loser read, lost, and read again at once: it saw the winner within ms.
    expect(loser.election.status().observedHolder).to.equal(cluster.masters()[0]);
    expect(loser.store.calls.filter(c => c === 'read')).to.have.length(2);
    await cluster.stopAll();
  });

  it('bounds the masterships of a lock whose renewals never match', async () => {
    const cluster = new FakeCluster();
    const a = cluster.add('A');
    a.store.latency = 1;
    a.store.renew = async () => {
      a.store.calls.push('renew');
      await cluster.clock.sleep(1);
      return {renewed: false, disabled: false};
    };
    a.election.begin();
    await cluster.run(MEASURED);
    const starts = cluster.events.filter(e => e.kind === 'start').length;
    expect(starts).to.be.within(1, MEASURED / C + 2);
    expect(a.store.calls.length).to.be.lessThanOrEqual(6 * (MEASURED / C + 2));
    await cluster.stopAll();
  });
});
