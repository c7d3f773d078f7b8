// The batching of RepositoryLockStore, on the memory connector: calls made in
// one turn of the event loop become one repository call (one statement on SQL).

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {
  LockNotifier,
  LockRecord,
  MasterControlRepository,
  MasterLockRepository,
  WakeUp,
} from '../../src/extension';
import {RepositoryLockStore} from '../../src/store/repository-lock-store';
import {FakeClock} from '../fixtures/fake-clock';

describe('RepositoryLockStore batching (memory)', () => {
  let locks: MasterLockRepository;
  let store: RepositoryLockStore;
  let calls: string[];
  let published: WakeUp[][];
  let updateWheres: unknown[];

  beforeEach(() => {
    const ds = new juggler.DataSource({name: 'db', connector: 'memory'});
    locks = new MasterLockRepository(ds);
    const controls = new MasterControlRepository(ds);
    calls = [];
    updateWheres = [];
    for (const [name, repo] of [
      ['lock', locks],
      ['control', controls],
    ] as const) {
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
    expect(created.map(r => r?.lock.lockName)).to.deepEqual(names);
    // The control of what was won is read after the win, in one call too.
    expect(calls).to.deepEqual(['lock.createAll', 'control.find']);

    await locks.create({...record('E'), instanceId: 'other'});
    calls.length = 0;
    const second = await Promise.all(['D', 'E'].map(n => store.create(record(n))));
    // memory inserts D before the clash on E; the read-back finds D ours.
    expect(second.map(r => r?.lock.lockName)).to.deepEqual(['D', undefined]);
    expect(calls).to.deepEqual(['lock.createAll', 'lock.find', 'control.find']);
  });

  it('runs an INSERT again that the database chose as a deadlock victim', async () => {
    const r = locks as unknown as Record<string, Function>;
    const createAll = r.createAll;
    let failures = 1;
    r.createAll = function (this: unknown, ...args: unknown[]) {
      if (failures-- > 0) {
        calls.push('lock.createAll (deadlock)');
        return Promise.reject(
          Object.assign(new Error('Deadlock found'), {code: 'ER_LOCK_DEADLOCK'}),
        );
      }
      return createAll.apply(this, args);
    };
    const created = await store.create(record('A'));
    expect(created?.lock.lockName).to.equal('A');
    expect(calls).to.deepEqual(['lock.createAll (deadlock)', 'lock.createAll', 'control.find']);
  });

  it('takes over the locks of one turn in one UPDATE, with one token above every row', async () => {
    await locks.createAll([
      {...record('A', 4), instanceId: 'dead'},
      {...record('B', 9), instanceId: 'dead'},
      {...record('C', 1), instanceId: 'alive'},
    ]);
    const rows = await locks.find();
    const expected = (n: string) => ({...rows.find(r => r.lockName === n)!}) as LockRecord;
    // C changed hands since it was read: its compare-and-set must fail.
    await locks.updateAll({renewalId: 'moved on'}, {lockName: 'C'});
    calls.length = 0;
    const won = await Promise.all(
      names.map(n =>
        store.takeOver(expected(n), {
          ...expected(n),
          instanceId: 'me',
          fencingToken: expected(n).fencingToken + 1,
        }),
      ),
    );
    expect(won.map(r => r?.lock.fencingToken)).to.deepEqual([10, 10, undefined]);
    // The control of what was won, read after the win by the store itself.
    expect(won.map(r => r?.disabled)).to.deepEqual([false, false, undefined]);
    // lock.find: which landed; control.find: the control of A and B.
    expect(calls).to.deepEqual(['lock.updateAll', 'lock.find', 'control.find']);
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
    const released = await Promise.all([
      ...names.map(n => store.release(n, 'me', 1)),
      store.release('A', 'me', 7),
    ]);
    expect(released).to.deepEqual([true, true, true, false]);
    // One notification, with what the release left on each row: enough to take it over unread.
    const rows = await locks.find({order: ['lockName ASC']});
    expect(published).to.deepEqual([
      rows.map(r => ({
        kind: 'released',
        lockName: r.lockName,
        freed: {fencingToken: 1, renewalId: r.renewalId},
      })),
    ]);
    expect(rows.map(r => r.instanceId)).to.deepEqual(['', '', '']);
  });

  it('matches the rows of one holder and token with one IN list, not an OR per lock', async () => {
    await Promise.all([...names.map(n => store.create(record(n))), store.create(record('D', 2))]);
    updateWheres.length = 0;
    const renewed = await Promise.all(
      [...names, 'D'].map(n => store.renew(n, 'me', n === 'D' ? 2 : 1)),
    );
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
    expect(results.map(r => r.status)).to.deepEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'rejected',
    ]);
    expect((results[1] as PromiseRejectedResult).reason.message).to.match(
      /without a value for instanceId/,
    );
    const rows = await locks.find();
    expect(rows.every(r => r.instanceId === 'me' && r.fencingToken === 1)).to.be.true();
  });

  it('inserts the rows again in halves when a clash inside the batch rolled all back, as SQL does', async () => {
    // As on a case-insensitive column: two names of one batch share a key.
    const r = locks as unknown as Record<string, Function>;
    const createAll = r.createAll;
    r.createAll = function (this: unknown, rows: {lockName: string}[], ...rest: unknown[]) {
      const keys = rows.map(row => row.lockName.toLowerCase());
      if (new Set(keys).size < keys.length) {
        return Promise.reject(Object.assign(new Error('Duplicate entry'), {code: 'ER_DUP_ENTRY'}));
      }
      return createAll.call(this, rows, ...rest);
    };
    const batch = ['A', 'B', 'CASEX', 'casex', 'D', 'E'];
    const created = await Promise.all(batch.map(n => store.create(record(n))));
    expect(created.map(c => c?.lock.lockName)).to.deepEqual(['A', 'B', 'CASEX', 'casex', 'D', 'E']);
    expect(calls.filter(c => c === 'lock.createAll').length).to.be.lessThanOrEqual(5);
  });

  it('fails only the lock whose value the database refuses, in a few statements, not the batch', async () => {
    const r = locks as unknown as Record<string, Function>;
    const find = r.find;
    r.find = function (
      this: unknown,
      filter: {where?: {lockName?: {inq?: string[]}}},
      ...rest: unknown[]
    ) {
      if (
        filter?.where?.lockName?.inq?.includes('BAD') ||
        JSON.stringify(filter).includes('"BAD"')
      ) {
        return Promise.reject(
          Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
            code: '22021',
          }),
        );
      }
      return find.call(this, filter, ...rest);
    };
    const many = Array.from({length: 64}, (_, i) => `L${i}`);
    const results = await Promise.allSettled([...many, 'BAD'].map(n => store.read(n)));
    expect(results.slice(0, 64).every(x => x.status === 'fulfilled')).to.be.true();
    expect(results[64].status).to.equal('rejected');
    // log2(65) levels, two statements per level on the bad path, for locks and controls.
    expect(calls.filter(c => c.endsWith('.find')).length).to.be.lessThanOrEqual(2 * (2 * 7 + 1));
  });

  it('fails the whole batch at once when the database is unreachable', async () => {
    const r = locks as unknown as Record<string, Function>;
    r.find = function () {
      calls.push('lock.find (refused)');
      return Promise.reject(
        Object.assign(new Error('connect ECONNREFUSED'), {code: 'ECONNREFUSED'}),
      );
    };
    const results = await Promise.allSettled(names.map(n => store.read(n)));
    expect(results.every(x => x.status === 'rejected')).to.be.true();
    expect(calls.filter(c => c === 'lock.find (refused)')).to.have.length(1);
  });

  it("stamps a renewal's heartbeatAt with the wall clock of its clock", async () => {
    const clock = new FakeClock();
    const controls = new MasterControlRepository(locks.dataSource);
    const stamped = new RepositoryLockStore(locks, controls, undefined, undefined, clock);
    await stamped.create(record('A'));
    await clock.tick(2500);
    expect((await stamped.renew('A', 'me', 1)).renewed).to.be.true();
    const row = await locks.findById('A');
    expect(new Date(row.heartbeatAt!).getTime()).to.equal(clock.epoch + 2500);
  });
});
