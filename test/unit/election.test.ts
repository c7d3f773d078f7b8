import {expect} from '@loopback/testlab';
import {renewalRetryDelay, safetyMargin} from '../../src/election/timings';
import {FakeCluster, masterAndFollower, TIMINGS} from '../fixtures/fake-cluster';

const L = TIMINGS.leaseDuration;
const M = safetyMargin(TIMINGS);

/** A master (A) and a replica that watches it (B), polling every 200 ms. */
function masterAndPoller(timings = TIMINGS, settle = 400) {
  return masterAndFollower({...timings, checkMasterInterval: 200}, {settle});
}

describe('LockElection (fake clock, fake store)', () => {
  it('elects exactly one master among many candidates', async () => {
    const cluster = new FakeCluster();
    for (const name of ['A', 'B', 'C', 'D', 'E']) cluster.add(name);
    cluster.startAll();
    await cluster.run(300);
    const [winner] = cluster.masters();
    expect(cluster.masters()).to.have.length(1);
    expect(cluster.events.filter(e => e.kind === 'start')).to.have.length(1);
    for (const [, r] of cluster.replicas) {
      expect(r.election.status().observedHolder).to.equal(winner);
    }
    expect(cluster.db.locks.get('JOB')!.fencingToken).to.equal(1);
    await cluster.stopAll();
  });

  it('takes over exactly when the lease observed unchanged expires, not at the next poll', async () => {
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 5000});
    const a = cluster.add('A');
    const b = cluster.add('B');
    a.election.begin();
    await cluster.run(300);
    expect(a.election.isMaster).to.be.true();
    a.store.fault = 'hang'; // A's record stops changing; A will stop itself
    const frozenAt = cluster.clock.now();
    await cluster.run(10);
    b.election.begin(); // B reads the frozen record now
    const observedAt = cluster.clock.now();
    await cluster.until(() => b.election.isMaster, 2000);
    const started = cluster.events.find(e => e.replica === 'B' && e.kind === 'start')!;
    expect(started.at).to.be.greaterThanOrEqual(observedAt + L);
    expect(started.at).to.be.lessThanOrEqual(observedAt + L + 5);
    expect(started.at - a.store.lastWriteAt()).to.be.greaterThanOrEqual(L);
    expect(frozenAt).to.be.lessThan(started.at);
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });

  for (const fault of ['fail', 'hang', 'slow'] as const) {
    it(`master stops before anyone can take over when renewals ${fault}`, async () => {
      const {cluster, a, b} = await masterAndPoller();
      expect(cluster.masters()).to.eql(['A']);
      if (fault === 'slow') a.store.latency = 10 * L;
      else a.store.fault = fault;
      const lastWrite = a.store.lastWriteAt();
      await cluster.run(3 * L);
      expect(b.election.isMaster).to.be.true();
      const stopped = cluster.events.find(e => e.replica === 'A' && e.kind === 'stop')!;
      const started = cluster.events.find(e => e.replica === 'B' && e.kind === 'start')!;
      expect(stopped.reason).to.equal('expired');
      // The last renewal that landed was sent no later than it landed.
      expect(stopped.at).to.be.lessThanOrEqual(lastWrite + L - M);
      expect(started.at - stopped.at).to.be.greaterThanOrEqual(M);
      expect(started.fencingToken).to.be.greaterThan(stopped.fencingToken);
      cluster.assertNoOverlap();
      await cluster.stopAll();
    });
  }

  it('gives up after maxHeartbeatRetryCount failed retries, spaced by the retry delay', async () => {
    const timings = {
      ...TIMINGS,
      leaseDuration: 2000,
      maxHeartbeatRetryCount: 2,
    };
    const cluster = new FakeCluster(timings);
    const a = cluster.add('A');
    a.election.begin();
    await cluster.run(300);
    a.store.fault = 'fail';
    const renewsBefore = a.store.calls.filter(c => c === 'renew').length;
    await cluster.until(() => !a.election.isMaster, 2000);
    const failedAt = cluster.clock.now();
    expect(a.store.calls.filter(c => c === 'renew').length - renewsBefore).to.equal(3);
    // 1 renewal + 2 retries, well before the deadline of a 2000 ms lease
    expect(failedAt).to.be.lessThan(
      300 + timings.heartbeatInterval + 3 * renewalRetryDelay(timings),
    );
    expect(cluster.events.find(e => e.kind === 'stop')!.reason).to.equal('expired');
    await cluster.stopAll();
  });

  it('keeps the mastership when every renewal answers after H but before the deadline, renewing once per H', async () => {
    // Retries (every 100 ms here) come sooner than heartbeats (500 ms): a retry would show.
    const timings = {
      ...TIMINGS,
      heartbeatInterval: 500,
      leaseDuration: 2000,
      maxHeartbeatRetryCount: 10,
    };
    expect(renewalRetryDelay(timings)).to.be.lessThan(timings.heartbeatInterval);
    const {cluster, a, b} = await masterAndPoller(timings, 1000);
    expect(cluster.masters()).to.eql(['A']);
    // Later than a heartbeat, sooner than the deadline (L - M after the send).
    a.store.replyDelay = 1.6 * timings.heartbeatInterval;
    const renewsBefore = a.store.calls.filter(c => c === 'renew').length;
    const window = 10 * timings.leaseDuration;
    await cluster.run(window);
    expect(cluster.events.filter(e => e.kind === 'stop')).to.eql([]);
    expect(cluster.masters()).to.eql(['A']);
    expect(b.election.isMaster).to.be.false();
    const renews = a.store.calls.filter(c => c === 'renew').length - renewsBefore;
    expect(renews).to.be.within(
      window / timings.heartbeatInterval - 1,
      window / timings.heartbeatInterval + 1,
    );
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });

  it('stays safe when renewals land after their timeout', async () => {
    const {cluster, a, b} = await masterAndPoller();
    a.store.replyDelay = 3 * TIMINGS.heartbeatInterval; // written at once, answered too late
    await cluster.run(6 * L);
    const stopped = cluster.events.find(e => e.replica === 'A' && e.kind === 'stop');
    expect(stopped?.reason).to.equal('expired');
    expect(b.election.isMaster).to.be.true();
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });

  it('stays safe when writes land long after the caller gave up', async () => {
    const {cluster, a} = await masterAndPoller();
    a.store.latency = 2 * L; // every call of A executes 2 leases after it was sent
    await cluster.run(8 * L);
    cluster.assertNoOverlap();
    expect(cluster.masters()).to.have.length(1);
    await cluster.stopAll();
  });

  it('survives replies that arrive out of order', async () => {
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 200});
    const names = ['A', 'B', 'C'];
    for (const n of names) cluster.add(n);
    cluster.startAll();
    for (const n of names) cluster.get(n).store.latencies = [80, 5, 60, 1, 40, 0, 90, 3, 70, 2];
    await cluster.run(3000);
    expect(cluster.masters()).to.have.length(1);
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });

  it('gives every new mastership a strictly greater fencing token', async () => {
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 200});
    for (const n of ['A', 'B', 'C']) cluster.add(n);
    cluster.startAll();
    await cluster.run(300);
    for (let round = 0; round < 5; round++) {
      const [master] = cluster.masters();
      cluster.get(master).store.fault = 'fail';
      await cluster.until(() => cluster.masters().some(m => m !== master), 3000);
      cluster.get(master).store.fault = 'none';
      await cluster.run(100);
    }
    const tokens = cluster.events.filter(e => e.kind === 'start').map(e => e.fencingToken);
    expect(tokens.length).to.be.greaterThanOrEqual(6);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).to.be.greaterThan(tokens[i - 1]);
    cluster.assertNoOverlap();
    await cluster.stopAll();
  });

  it('awaits stop() before releasing, so the next master starts after it', async () => {
    const cluster = new FakeCluster({
      ...TIMINGS,
      checkMasterInterval: 200,
      leaseDuration: 5000,
    });
    let stopFinishedAt = -1;
    const a = cluster.add('A', {
      stop: async () => {
        await cluster.clock.sleep(150);
        stopFinishedAt = cluster.clock.now();
      },
    });
    const b = cluster.add('B');
    a.election.begin();
    await cluster.run(50);
    b.election.begin();
    await cluster.run(300);
    const stopping = a.election.stop();
    await cluster.until(() => b.election.isMaster, 1000);
    await stopping;
    const started = cluster.events.find(e => e.replica === 'B' && e.kind === 'start')!;
    expect(stopFinishedAt).to.be.greaterThan(0);
    expect(started.at).to.be.greaterThanOrEqual(stopFinishedAt);
    // a release, not an expiry: far sooner than the 5000 ms lease
    expect(started.at - stopFinishedAt).to.be.lessThanOrEqual(200 + 10);
    expect(cluster.events.find(e => e.replica === 'A' && e.kind === 'stop')!.reason).to.equal(
      'stopped',
    );
    await cluster.stopAll();
  });

  it('bounds a stop() that never returns by stopTimeout', async () => {
    const cluster = new FakeCluster();
    const a = cluster.add('A', {stop: () => new Promise<void>(() => {})});
    a.election.begin();
    await cluster.run(100);
    let done = false;
    const stoppedAt = cluster.clock.now();
    void a.election.stop().then(() => (done = true));
    await cluster.until(() => done, 1000);
    expect(cluster.clock.now() - stoppedAt).to.be.within(
      TIMINGS.stopTimeout,
      TIMINGS.stopTimeout + 10,
    );
    expect(cluster.db.locks.get('JOB')!.instanceId).to.equal('');
  });

  it('releases and backs off when start() throws, without calling stop()', async () => {
    const cluster = new FakeCluster({
      ...TIMINGS,
      checkMasterInterval: 200,
      leaseDuration: 5000,
    });
    const a = cluster.add('A', {
      start: () => {
        throw new Error('boom');
      },
    });
    const b = cluster.add('B');
    const errors: Error[] = [];
    a.election.on('error', err => errors.push(err));
    a.election.begin();
    await cluster.run(20);
    b.election.begin();
    await cluster.until(() => b.election.isMaster, 400);
    expect(errors.map(e => e.message)).to.containEql('boom');
    expect(cluster.events.filter(e => e.replica === 'A').map(e => e.kind)).to.eql(['start']);
    await cluster.stopAll();
  });

  it('does not campaign again before checkMasterInterval after a failed start()', async () => {
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 1000});
    let attempts = 0;
    const a = cluster.add('A', {
      start: async () => {
        attempts++;
        throw new Error('boom');
      },
    });
    a.election.begin();
    await cluster.run(900);
    expect(attempts).to.equal(1);
    await cluster.run(300);
    expect(attempts).to.equal(2);
    await cluster.stopAll();
  });

  it('never calls stop() on a replica that never started', async () => {
    const {cluster, b} = await masterAndFollower(TIMINGS);
    await b.election.stop();
    await cluster.stopAll();
    expect(cluster.events.filter(e => e.replica === 'B')).to.eql([]);
    expect(cluster.events.filter(e => e.replica === 'A').map(e => e.kind)).to.eql([
      'start',
      'stop',
    ]);
  });

  it('never runs start() twice at once on one replica', async () => {
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 200});
    let running = 0;
    let maxRunning = 0;
    let finishFirst = () => {};
    const a = cluster.add('A', {
      start: () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        return new Promise<void>(resolve => {
          finishFirst = () => {
            running--;
            resolve();
          };
        });
      },
    });
    a.election.begin();
    await cluster.run(50);
    expect(running).to.equal(1);
    // Someone else takes the lock: A loses it while start() still runs.
    const row = cluster.db.locks.get('JOB')!;
    cluster.db.locks.set('JOB', {
      ...row,
      instanceId: 'X',
      fencingToken: row.fencingToken + 1,
      renewalId: 'x',
    });
    await cluster.run(3 * L); // X never renews: the lock expires, but A must not start again
    expect(a.election.isMaster).to.be.false();
    expect(cluster.events.filter(e => e.kind === 'start')).to.have.length(1);
    finishFirst();
    await cluster.until(() => a.election.isMaster, 2000);
    expect(maxRunning).to.equal(1);
    await cluster.stopAll();
  });

  it('campaigns with every lock started in one turn at once, though the loop took over a TICK', async () => {
    const cluster = new FakeCluster({...TIMINGS, initDelay: 100});
    const first = cluster.add('A', {}, {lockName: 'J1'});
    const second = cluster.add('A2', {}, {lockName: 'J2'});
    first.election.begin();
    cluster.clock.jump(15); // starting the first lock took 15 ms
    second.election.begin();
    await cluster.clock.tick(100 - 15);
    expect(first.store.calls[0]).to.equal('read');
    expect(second.store.calls[0]).to.equal('read'); // not at 120
    await cluster.stopAll();
  });

  it('renews within H of a slow acquisition instead of waiting for the grid point', async () => {
    const cluster = new FakeCluster(); // L 500, H 100: deadline at 400
    const a = cluster.add('A');
    a.store.latencies = [0, 320]; // the read, then a create that takes 320 ms
    a.store.latency = 30;
    a.election.begin();
    await cluster.run(1000);
    // At the grid point (400) the deadline would have passed: 'expired'.
    expect(cluster.events.filter(e => e.kind === 'stop')).to.eql([]);
    expect(a.election.isMaster).to.be.true();
    const firstRenewal = cluster.db.writes.find(w => w.op === 'renew')!;
    expect(firstRenewal.at).to.be.lessThan(400);
    await cluster.stopAll();
  });

  it('keeps the renewals of many locks on one instant per heartbeat though handling them takes time', async () => {
    // Whatever the phase of the acquisition against the heartbeat grid.
    for (const offset of [37, 72, 85, 93]) {
      const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 200});
      const sent: number[] = [];
      for (let i = 0; i < 200; i++) {
        const {store} = cluster.add(`A${i}`, {}, {lockName: `L${i}`});
        store.latency = 3;
        // Every call costs 0.1 ms of CPU: a loop over the 200 locks takes 20 ms, two TICKs.
        for (const op of ['read', 'create', 'isDisabled', 'renew'] as const) {
          const call = (store[op] as Function).bind(store);
          (store as unknown as Record<string, Function>)[op] = (...args: unknown[]) => {
            if (op === 'renew') sent.push(cluster.clock.now());
            cluster.clock.jump(0.1);
            return call(...args);
          };
        }
      }
      await cluster.clock.tick(offset);
      cluster.startAll();
      await cluster.clock.tick(1000); // not run(): that checks for one master in all
      expect(cluster.masters()).to.have.length(200);
      // Bursts: a renewal sent over 1 ms after the previous one starts a new one.
      const bursts = sent.filter((t, i) => i === 0 || t - sent[i - 1] > 1);
      expect(sent.length).to.be.greaterThanOrEqual(200 * 8);
      // One per heartbeat, and at most one more right after a slow acquisition.
      const heartbeats = Math.ceil(1000 / TIMINGS.heartbeatInterval);
      expect({offset, bursts: Math.min(bursts.length, heartbeats + 1)}).to.eql({
        offset,
        bursts: bursts.length,
      });
      await cluster.stopAll();
    }
  });

  it('leaves no timer behind after stop', async () => {
    const cluster = new FakeCluster();
    const a = cluster.add('A');
    const b = cluster.add('B');
    const c = cluster.add('C');
    a.election.begin();
    await cluster.run(50);
    b.election.begin();
    c.election.begin();
    await cluster.run(300);
    c.store.fault = 'hang'; // a call in flight that never answers
    await cluster.run(2000);
    await cluster.stopAll();
    expect(cluster.clock.pendingTimers).to.equal(0);
    expect(cluster.masters()).to.eql([]);
    expect(a.election.state).to.equal('stopped');
  });

  describe('disable', () => {
    it('stops the master within one heartbeatInterval and starts nobody until enabled', async () => {
      const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 200});
      for (const n of ['A', 'B', 'C']) cluster.add(n);
      cluster.startAll();
      await cluster.run(300);
      const [master] = cluster.masters();
      cluster.db.disabled.add('JOB');
      const disabledAt = cluster.clock.now();
      await cluster.until(() => cluster.masters().length === 0, TIMINGS.heartbeatInterval + 5);
      const stop = cluster.events.find(e => e.kind === 'stop')!;
      expect(stop.replica).to.equal(master);
      expect(stop.reason).to.equal('disabled');
      expect(stop.at - disabledAt).to.be.lessThanOrEqual(TIMINGS.heartbeatInterval);
      await cluster.run(3000);
      expect(cluster.events.filter(e => e.kind === 'start')).to.have.length(1);
      cluster.db.disabled.delete('JOB');
      const enabledAt = cluster.clock.now();
      await cluster.until(() => cluster.masters().length === 1, 200 + 10);
      expect(cluster.clock.now() - enabledAt).to.be.lessThanOrEqual(200 + 10);
      await cluster.stopAll();
    });

    it('wins the race with a replica that is acquiring at that moment', async () => {
      const cluster = new FakeCluster();
      const a = cluster.add('A');
      a.store.latencies = [0, 50]; // read, then a create that lands at 50
      a.election.begin();
      await cluster.clock.tick(30); // A has read the lock free; its create is on its way
      expect(cluster.db.locks.get('JOB')).to.be.undefined();
      // Committed before the win: the store reports it with the win.
      cluster.db.disabled.add('JOB');
      await cluster.run(2000);
      expect(cluster.events).to.eql([]);
      expect(cluster.db.locks.get('JOB')!.instanceId).to.equal('');
      await cluster.stopAll();
    });

    it('lets a replica started while disabled stay idle', async () => {
      const cluster = new FakeCluster();
      cluster.db.disabled.add('JOB');
      cluster.add('A');
      cluster.startAll();
      await cluster.run(3000);
      expect(cluster.events).to.eql([]);
      expect(cluster.get('A').election.status().disabled).to.be.true();
      await cluster.stopAll();
    });
  });

  describe('events for metrics', () => {
    it('reports renewals, failed renewals and the leaderless time it observed', async () => {
      const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 200});
      const a = cluster.add('A');
      const b = cluster.add('B');
      const seen: Record<string, number[]> = {renewed: [], renewalFailed: [], leaderless: []};
      for (const name of Object.keys(seen)) {
        for (const r of [a, b]) r.election.on(name, (value: number) => seen[name].push(value));
      }
      a.election.begin();
      await cluster.run(20);
      b.election.begin();
      a.store.latency = 3;
      await cluster.run(300);
      expect(seen.renewed.length).to.be.greaterThanOrEqual(2);
      expect(seen.renewed.every(ms => ms === 3)).to.be.true();
      seen.leaderless.length = 0;
      a.store.fault = 'hang';
      await cluster.until(() => b.election.isMaster, 3000);
      expect(seen.renewalFailed.length).to.be.greaterThanOrEqual(1);
      // B saw the lease expire, then took over at once
      expect(seen.leaderless).to.have.length(1);
      expect(seen.leaderless[0]).to.be.within(0, 10);
      await cluster.stopAll();
    });
  });

  describe('wake()', () => {
    /** A master and a watcher of it, with the poll and the lease's expiry far away. */
    function masterAndWatcher() {
      const timings = {...TIMINGS, checkMasterInterval: 60000, leaseDuration: 50000};
      return masterAndFollower(timings, {delay: 20, settle: 20});
    }

    it('makes a slave check at once after a release instead of at the next poll', async () => {
      const {cluster, a, b} = await masterAndWatcher();
      await a.election.stop();
      const releasedAt = cluster.clock.now();
      b.election.wake();
      await cluster.until(() => b.election.isMaster, 10);
      expect(cluster.clock.now() - releasedAt).to.be.lessThanOrEqual(1);
      await cluster.stopAll();
    });

    it('takes over a freed lock without reading it first, given what the release left', async () => {
      const {cluster, a, b} = await masterAndWatcher();
      await a.election.stop();
      const released = cluster.releaseNotice();
      b.store.calls.length = 0;
      b.election.wake(released);
      expect(b.store.calls).to.eql(['takeOver']); // at once, not on a timer's turn
      await cluster.until(() => b.election.isMaster, 10);
      expect(b.store.calls).to.eql(['takeOver']); // the store read the control with the win
      expect(b.election.fencingToken).to.equal(released.freed.fencingToken + 1);
      await cluster.stopAll();
    });

    it('starts without a read after a takeover that read the control in its statement', async () => {
      const {cluster, a, b} = await masterAndWatcher();
      await a.election.stop();
      const released = cluster.releaseNotice();
      b.store.calls.length = 0;
      b.election.wake(released);
      await cluster.until(() => b.election.isMaster, 10);
      expect(b.store.calls).to.eql(['takeOver']);
      await cluster.stopAll();
    });

    it('releases, without start(), a lock whose takeover read it disabled', async () => {
      const {cluster, a, b} = await masterAndWatcher();
      await a.election.stop();
      const released = cluster.releaseNotice();
      cluster.db.disabled.add('JOB');
      b.store.calls.length = 0;
      b.election.wake(released);
      await cluster.run(50);
      expect(b.store.calls).to.eql(['takeOver', 'release']);
      expect(cluster.events.filter(e => e.replica === 'B')).to.eql([]);
      expect(cluster.db.locks.get('JOB')!.instanceId).to.equal('');
      expect(b.election.status().disabled).to.be.true();
      await cluster.stopAll();
    });

    it('falls back to a read when the freed lock it was told of has changed since', async () => {
      const {cluster, b} = await masterAndWatcher();
      b.store.calls.length = 0;
      // A stale or forged notification: A still holds the lock.
      b.election.wake({
        kind: 'released',
        lockName: 'JOB',
        freed: {fencingToken: 1, renewalId: 'not-the-current-one'},
      });
      await cluster.run(20);
      expect(b.store.calls).to.eql(['takeOver', 'read']);
      expect(cluster.masters()).to.eql(['A']);
      expect(b.election.status().observedHolder).to.equal('A');
      cluster.assertNoOverlap();
      await cluster.stopAll();
    });

    it('never shortens the wait for a lease to expire', async () => {
      const cluster = new FakeCluster({
        ...TIMINGS,
        checkMasterInterval: 60000,
      });
      const a = cluster.add('A');
      const b = cluster.add('B');
      a.election.begin();
      await cluster.run(20);
      a.store.fault = 'hang';
      b.election.begin();
      await cluster.clock.tick(1);
      const observedAt = cluster.clock.now();
      for (let t = 0; t < L + 50; t += 10) {
        b.election.wake();
        await cluster.run(10);
        if (b.election.isMaster) break;
      }
      const started = cluster.events.find(e => e.replica === 'B' && e.kind === 'start')!;
      expect(started.at).to.be.greaterThanOrEqual(observedAt + L - 1);
      cluster.assertNoOverlap();
      await cluster.stopAll();
    });

    /** Until A's first renewal has landed: then a disable need not wait for it. */
    async function renewedMasterAndWatcher() {
      const parts = await masterAndWatcher();
      let renewed = false;
      parts.a.election.once('renewed', () => (renewed = true));
      await parts.cluster.until(() => renewed, 2 * TIMINGS.heartbeatInterval);
      return parts;
    }

    it('makes a master told of a disable read the control only, and stop at once when disabled', async () => {
      const {cluster, a} = await renewedMasterAndWatcher();
      const handOvers: unknown[] = [];
      const release = a.store.release.bind(a.store);
      a.store.release = (
        lockName: string,
        instanceId: string,
        token: number,
        handOver?: boolean,
      ) => {
        handOvers.push(handOver);
        return release(lockName, instanceId, token);
      };
      a.store.calls.length = 0;
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'}); // not really: the renewals keep their grid
      await cluster.run(1);
      expect(a.store.calls).to.eql(['isDisabled']);
      expect(a.election.isMaster).to.be.true();
      cluster.db.disabled.add('JOB');
      const disabledAt = cluster.clock.now();
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'});
      await cluster.until(() => !a.election.isMaster, 10);
      expect(cluster.clock.now() - disabledAt).to.be.lessThanOrEqual(1);
      const stop = cluster.events.find(e => e.replica === 'A' && e.kind === 'stop')!;
      expect(stop.reason).to.equal('disabled');
      // Released, but nobody is woken to take over a disabled lock.
      await cluster.until(() => handOvers.length === 1, 10);
      expect(handOvers).to.eql([false]);
      await cluster.stopAll();
    });

    it('makes a master woken for anything else (a reconnect) renew at once', async () => {
      const {cluster, a} = await masterAndWatcher();
      a.store.calls.length = 0;
      a.election.wake();
      await cluster.run(1);
      expect(a.store.calls).to.eql(['renew']);
      expect(a.election.isMaster).to.be.true();
      await cluster.stopAll();
    });

    for (const [when, after] of [
      ['while it was acquiring', 10],
      ['just after it won', 30],
    ] as const)
      it(`stops at once a replica that a disable reached ${when}`, async () => {
        const {cluster, a, b} = await masterAndWatcher();
        await a.election.stop();
        const released = cluster.releaseNotice();
        await cluster.run(95 - (cluster.clock.now() % 100)); // so it wins just after a grid point
        b.store.replyDelay = 20;
        b.election.wake(released);
        // Won at once; the answer, with the control read in the win (enabled),
        // arrives 20 ms later: the disable comes before it, or after.
        await cluster.run(after);
        cluster.db.disabled.add('JOB');
        const disabledAt = cluster.clock.now();
        b.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'});
        const stopOfB = () => cluster.events.find(e => e.replica === 'B' && e.kind === 'stop');
        await cluster.until(() => stopOfB() !== undefined, 200);
        // It renews (and reads the control) as soon as it is master, not at the next grid point.
        expect(stopOfB()!.reason).to.equal('disabled');
        expect(stopOfB()!.at - disabledAt).to.be.lessThanOrEqual(2 * 20 + 1);
        await cluster.stopAll();
      });

    it('makes a master told of a disable before its first renewal renew at once: the disable waits for that', async () => {
      const {cluster, a} = await masterAndWatcher();
      a.store.calls.length = 0;
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'}); // not really, but it has not renewed yet
      await cluster.run(1);
      expect(a.store.calls).to.eql(['renew']);
      expect(a.election.isMaster).to.be.true();
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'}); // renewed now: the control read suffices
      await cluster.run(1);
      expect(a.store.calls).to.eql(['renew', 'isDisabled']);
      await cluster.stopAll();
    });

    it('calls start() before it sends its first renewal', async () => {
      const cluster = new FakeCluster(TIMINGS);
      let callsAtStart: string[] | undefined;
      const a = cluster.add('A', {
        start: () => {
          callsAtStart = [...a.store.calls];
        },
      });
      a.store.replyDelay = 5;
      a.election.begin();
      // Told of a disable while it acquires: it renews at once after the win.
      await cluster.run(1);
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'});
      await cluster.until(() => a.store.calls.includes('renew'), 200);
      expect(callsAtStart).to.eql(a.store.calls.slice(0, a.store.calls.indexOf('renew')));
      expect(callsAtStart).to.not.containEql('renew');
      await cluster.stopAll();
    });

    it('wakes only the master on a disable, only the others on an enable', async () => {
      const {cluster, a, b} = await renewedMasterAndWatcher();
      a.store.calls.length = 0;
      b.store.calls.length = 0;
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'enabled'});
      b.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'});
      await cluster.run(1);
      expect([a.store.calls, b.store.calls]).to.eql([[], []]);
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'});
      b.election.wake({kind: 'control', lockName: 'JOB', control: 'enabled'});
      await cluster.run(1);
      expect([a.store.calls, b.store.calls]).to.eql([['isDisabled'], ['read']]);
      await cluster.stopAll();
    });

    it('takes over unread a lock that an enable says is free, though it saw it disabled', async () => {
      const {cluster, a, b} = await masterAndWatcher();
      cluster.db.disabled.add('JOB');
      a.election.wake({kind: 'control', lockName: 'JOB', control: 'disabled'});
      await cluster.until(() => cluster.db.locks.get('JOB')!.instanceId === '', 50);
      b.election.wake(); // it reads: disabled
      await cluster.run(5);
      expect(b.election.status().disabled).to.be.true();
      cluster.db.disabled.delete('JOB');
      const {fencingToken, renewalId} = cluster.db.locks.get('JOB')!;
      b.store.calls.length = 0;
      b.election.wake({
        kind: 'control',
        lockName: 'JOB',
        control: 'enabled',
        freed: {fencingToken, renewalId},
      });
      await cluster.until(() => b.election.isMaster, 10);
      expect(b.store.calls).to.eql(['takeOver']); // the store read the control with the win
      await cluster.stopAll();
    });

    it('re-checks right after a step that was running when woken', async () => {
      const cluster = new FakeCluster({
        ...TIMINGS,
        checkMasterInterval: 60000,
        leaseDuration: 50000,
      });
      const a = cluster.add('A');
      const b = cluster.add('B');
      a.election.begin();
      await cluster.run(20);
      b.store.latency = 30;
      b.election.begin();
      await cluster.clock.tick(5); // B's read is in flight
      await a.election.stop(); // released while B reads the old record
      b.election.wake();
      await cluster.until(() => b.election.isMaster, 200);
      expect(cluster.clock.now()).to.be.lessThan(200);
      await cluster.stopAll();
    });

    it('keeps the back-off after a failed start()', async () => {
      const cluster = new FakeCluster({
        ...TIMINGS,
        checkMasterInterval: 1000,
      });
      let attempts = 0;
      const a = cluster.add('A', {
        start: () => {
          attempts++;
          throw new Error('boom');
        },
      });
      a.election.begin();
      await cluster.run(50);
      for (let i = 0; i < 10; i++) {
        a.election.wake();
        await cluster.run(50);
      }
      expect(attempts).to.equal(1);
      await cluster.stopAll();
    });
  });

  it('keeps one master at a time under random faults (seeded)', async () => {
    const cluster = new FakeCluster({...TIMINGS, checkMasterInterval: 300});
    const names = ['A', 'B', 'C', 'D'];
    for (const n of names) cluster.add(n);
    cluster.startAll();
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 60; i++) {
      const store = cluster.get(names[Math.floor(random() * names.length)]).store;
      const pick = random();
      store.fault = pick < 0.15 ? 'fail' : pick < 0.25 ? 'hang' : 'none';
      store.latency = pick > 0.8 ? Math.floor(random() * 2 * L) : 0;
      store.replyDelay = pick > 0.9 ? Math.floor(random() * L) : 0;
      await cluster.run(50 + Math.floor(random() * 300));
    }
    for (const n of names)
      Object.assign(cluster.get(n).store, {
        fault: 'none',
        latency: 0,
        replyDelay: 0,
      });
    await cluster.run(3000);
    expect(cluster.masters()).to.have.length(1);
    cluster.assertNoOverlap();
    const tokens = cluster.intervals().map(i => i.fencingToken);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).to.be.greaterThan(tokens[i - 1]);
    await cluster.stopAll();
  });
});
