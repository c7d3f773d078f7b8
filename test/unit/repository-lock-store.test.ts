// The batching of RepositoryLockStore, on the memory connector: calls made in
// one turn of the event loop become one repository call (one statement on SQL).

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {
  LockChange,
  LockNotifier,
  LockRecord,
  MasterControlRepository,
  MasterLockRepository,
  RepositoryLockStore,
} from '../../src';

describe('RepositoryLockStore batching (memory)', () => {
  let locks: MasterLockRepository;
  let store: RepositoryLockStore;
  let calls: string[];
  let published: LockChange[][];
  let updateWheres: unknown[];

  beforeEach(() => {
    const ds = new juggler.DataSource({name: 'db', connector: 'memory'});
    locks = new MasterLockRepository(ds);
    const controls = new MasterControlRepository(ds);
    calls = [];
    updateWheres = [];
    for (const [name, repo] of [['lock', locks], ['control', controls]] as const) {
      const r = repo as unknown as Record<string, Function>;
      for (const method of ['find', 'updateAll', 'createAll', 'create']) {
        const original = r[method];
        r[method] = function (this: unknown, ...args: unknown[]) {
          calls.push(`${name}.${method}`);
          if (name === 'lock' && method === 'updateAll') updateWheres.push(args[1]);
          return original.apply(this, args);
        };
      }
    }
    published = [];
    const notifier: LockNotifier = {
      publish: changes => published.push(changes),
      subscribe: () => () => {},
      close: async () => {},
    };
    store = new RepositoryLockStore(locks, controls, notifier);
  });

  const record = (lockName: string, fencingToken = 1): LockRecord => ({
    lockName,
    instanceId: 'me',
    hostname: 'host',
    fencingToken,
    renewalId: `r-${lockName}-${fencingToken}`,
    heartbeatAt: new Date(),
    acquiredAt: new Date(),
  });
  const names = ['A', 'B', 'C'];

  it('creates the rows of one turn in one call, and tells which landed after a clash', async () => {
    const created = await Promise.all(names.map(n => store.create(record(n))));
    expect(created.map(r => r?.lockName)).to.deepEqual(names);
    expect(calls).to.deepEqual(['lock.createAll']);

    await locks.create({...record('E'), instanceId: 'other'});
    calls.length = 0;
    const second = await Promise.all(['D', 'E'].map(n => store.create(record(n))));
    // memory inserts D before the clash on E; the read-back finds D ours.
    expect(second.map(r => r?.lockName)).to.deepEqual(['D', undefined]);
    expect(calls).to.deepEqual(['lock.createAll', 'lock.find']);
  });

  it('runs an INSERT again that the database chose as a deadlock victim', async () => {
    const r = locks as unknown as Record<string, Function>;
    const createAll = r.createAll;
    let failures = 1;
    r.createAll = function (this: unknown, ...args: unknown[]) {
      if (failures-- > 0) {
        calls.push('lock.createAll (deadlock)');
        return Promise.reject(Object.assign(new Error('Deadlock found'), {code: 'ER_LOCK_DEADLOCK'}));
      }
      return createAll.apply(this, args);
    };
    const created = await store.create(record('A'));
    expect(created?.lockName).to.equal('A');
    expect(calls).to.deepEqual(['lock.createAll (deadlock)', 'lock.createAll']);
  });

  it('takes over the locks of one turn in one UPDATE, with one token above every row', async () => {
    await locks.createAll([
      {...record('A', 4), instanceId: 'dead'},
      {...record('B', 9), instanceId: 'dead'},
      {...record('C', 1), instanceId: 'alive'},
    ]);
    const rows = await locks.find();
    const expected = (n: string) => ({...rows.find(r => r.lockName === n)!} as LockRecord);
    // C changed hands since it was read: its compare-and-set must fail.
    await locks.updateAll({renewalId: 'moved on'}, {lockName: 'C'});
    calls.length = 0;
    const won = await Promise.all(
      names.map(n => store.takeOver(expected(n), {...expected(n), instanceId: 'me', fencingToken: expected(n).fencingToken + 1})),
    );
    expect(won.map(r => r?.lock.fencingToken)).to.deepEqual([10, 10, undefined]);
    expect(won.map(r => r?.disabled)).to.deepEqual([undefined, undefined, undefined]); // read after, by the election
    expect(calls).to.deepEqual(['lock.updateAll', 'lock.find']); // the find: which landed
    const after = await locks.find({order: ['lockName ASC']});
    expect(after.map(r => [r.instanceId, r.fencingToken])).to.deepEqual([
      ['me', 10],
      ['me', 10],
      ['alive', 1],
    ]);
  });

  it('renews and releases the locks of one turn in one UPDATE each; one NOTIFY names the freed rows', async () => {
    await Promise.all(names.map(n => store.create(record(n))));
    calls.length = 0;
    const renewed = await Promise.all(names.map(n => store.renew(n, 'me', 1)));
    expect(renewed.every(r => r.renewed && !r.disabled)).to.be.true();
    expect(calls.sort()).to.deepEqual(['control.find', 'lock.updateAll']);

    calls.length = 0;
    const released = await Promise.all([...names.map(n => store.release(n, 'me', 1)), store.release('A', 'me', 7)]);
    expect(released).to.deepEqual([true, true, true, false]);
    // One notification, with what the release left on each row: enough to take it over unread.
    const rows = await locks.find({order: ['lockName ASC']});
    expect(published).to.deepEqual([
      rows.map(r => ({lockName: r.lockName, freed: {fencingToken: 1, renewalId: r.renewalId}})),
    ]);
    expect(rows.map(r => r.instanceId)).to.deepEqual(['', '', '']);
  });

  it('matches the rows of one holder and token with one IN list, not an OR per lock', async () => {
    await Promise.all([...names.map(n => store.create(record(n))), store.create(record('D', 2))]);
    updateWheres.length = 0;
    const renewed = await Promise.all([...names, 'D'].map(n => store.renew(n, 'me', n === 'D' ? 2 : 1)));
    expect(renewed.map(r => r.renewed)).to.deepEqual([true, true, true, true]);
    expect(updateWheres).to.deepEqual([
      {
        or: [
          {instanceId: 'me', fencingToken: 1, lockName: {inq: names}},
          {instanceId: 'me', fencingToken: 2, lockName: 'D'},
        ],
      },
    ]);
    // A lock whose token moved on is left alone by the same statement.
    await locks.updateAll({fencingToken: 5}, {lockName: 'B'});
    const again = await Promise.all(names.map(n => store.renew(n, 'me', 1)));
    expect(again.map(r => r.renewed)).to.deepEqual([true, false, true]);
  });

  it('fails only the call with a missing compare-and-set value, not the batch', async () => {
    await Promise.all(names.map(n => store.create(record(n))));
    const results = await Promise.allSettled([
      store.renew('A', 'me', 1),
      store.renew('B', undefined as unknown as string, 1),
      store.release('C', 'me', NaN),
      store.takeOver({...record('A'), renewalId: undefined as unknown as string}, record('A', 2)),
    ]);
    expect(results.map(r => r.status)).to.deepEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason.message).to.match(/without a value for instanceId/);
    const rows = await locks.find();
    expect(rows.every(r => r.instanceId === 'me' && r.fencingToken === 1)).to.be.true();
  });
});
