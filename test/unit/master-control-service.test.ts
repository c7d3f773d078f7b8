// MasterControlService on a FakeClock and stubs of its store and executor: a disable waits for a holder that just won to renew (polling at
// 2 ms doubling to 100 ms, for 80% of controlTimeout) and warns if it does
// not; a database that does not answer is a 503 at controlTimeout, not
// before; the stamps and the heartbeat ages are the clock's wall clock.

import {expect} from '@loopback/testlab';
import {DatabaseUnavailableError} from '../../src';
import {MasterControlService} from '../../src/services/master-control.service';
import {ControlWrite, LockRecord} from '../../src/store/lock-store';
import {FakeClock} from '../fixtures/fake-clock';

const CONTROL_TIMEOUT = 1000;

describe('MasterControlService (fake clock)', () => {
  let clock: FakeClock;
  let reads: number[];
  let writes: ControlWrite[];
  let holder: () => LockRecord | undefined;
  let setControl: () => Promise<{changed: boolean; announced: []}>;
  let lockRows: LockRecord[];

  beforeEach(() => {
    clock = new FakeClock();
    reads = [];
    writes = [];
    holder = () => undefined;
    setControl = async () => ({changed: true, announced: []});
    lockRows = [];
  });

  function service(): MasterControlService {
    const dataSource = {name: 'db', connector: {name: 'memory'}};
    const executor = {
      controlTimeout: CONTROL_TIMEOUT,
      instanceId: 'me',
      getMaster: () => undefined,
      wake: () => {},
      queueStatus: async () => [],
      cronStatus: async () => [],
      groupStatus: () => [],
      status: () => [],
    };
    const store = {
      setControl: async (_: string, write: ControlWrite) => {
        writes.push(write);
        return setControl();
      },
      readSettled: async () => {
        reads.push(clock.now());
        return holder();
      },
      readControl: async (lockName: string) => ({lockName, enabled: false, ...writes.at(-1)}),
      read: async () => ({lock: winner()(), disabled: false}),
      listControls: async () => [],
      listLocks: async () => lockRows,
    };
    return new MasterControlService({
      executor: executor as never,
      store: store as never,
      dataSource: dataSource as never,
      dialect: {} as never,
      clock,
    });
  }

  /** A holder that won now and renews at `renewsAt` (never if undefined). */
  function winner(renewsAt?: number): () => LockRecord {
    const won = clock.date();
    return () => ({
      lockName: 'L',
      instanceId: 'winner',
      hostname: 'h',
      fencingToken: 2,
      renewalId: renewsAt !== undefined && clock.now() >= renewsAt ? 'renewed' : 'won',
      heartbeatAt: won,
      acquiredAt: won,
    });
  }

  it('waits for a holder that just won to renew, polling 2 ms doubling to 100 ms', async () => {
    holder = winner(50);
    let result: {message: string} | undefined;
    void service()
      .disable('L', 'maintenance')
      .then(r => (result = r));
    await clock.tick(61);
    expect(result).to.be.undefined();
    await clock.tick(1);
    expect(reads).to.deepEqual([0, 2, 6, 14, 30, 62]);
    expect(result?.message).to.match(/^L disabled/);
    expect(result?.message).to.not.match(/Warning/);
  });

  it('warns of a holder that has not renewed by 80% of controlTimeout', async () => {
    holder = winner();
    let result: {message: string} | undefined;
    void service()
      .disable('L', 'maintenance')
      .then(r => (result = r));
    await clock.tick(799);
    expect(result).to.be.undefined();
    await clock.tick(1);
    expect(reads).to.deepEqual([0, 2, 6, 14, 30, 62, 126, 226, 326, 426, 526, 626, 726, 800]);
    expect(result?.message).to.match(/Warning: replica winner won the lock just before/);
  });

  it('answers 503 at controlTimeout when the database does not answer, not before', async () => {
    setControl = () => new Promise(() => {});
    let outcome: unknown;
    service()
      .disable('L', 'maintenance')
      .catch(err => (outcome = err));
    await clock.tick(CONTROL_TIMEOUT - 1);
    expect(outcome).to.be.undefined();
    await clock.tick(1);
    expect(outcome).to.be.instanceOf(DatabaseUnavailableError);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('stamps a control and ages heartbeats by the wall clock of its clock', async () => {
    await clock.tick(5000);
    await service().enable('L', 'ops');
    expect(writes[0].updatedAt).to.eql(new Date(clock.epoch + 5000));
    lockRows = [
      {
        lockName: 'L',
        instanceId: 'x',
        hostname: 'h',
        fencingToken: 2,
        renewalId: 'r',
        heartbeatAt: new Date(clock.epoch + 3500),
        acquiredAt: new Date(clock.epoch + 1000),
      },
    ];
    const status = await service().status();
    expect(status.locks.map(l => l.heartbeatAgeMs)).to.deepEqual([1500]);
  });
});
