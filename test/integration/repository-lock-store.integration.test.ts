// RepositoryLockStore on the real databases: a release batch and the
// notification that tells the other replicas which locks it freed; a
// takeover batch and the control it reads on PostgreSQL.

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {
  LockNotifier,
  LockRecord,
  MasterControl,
  MasterControlRepository,
  MasterLock,
  MasterLockRepository,
  WakeUp,
} from '../../src/extension';
import {waitFor} from '../../cluster-kit';
import {createLockStore, createNotifier} from '../../src/store/dialects';
import {NOTIFY_CHANNEL, PostgresNotifier} from '../../src/store/postgres/postgres-notifier';
import {RepositoryLockStore} from '../../src/store/repository-lock-store';
import {openTestDatabase, SQL_BACKENDS, TestDatabase} from '../fixtures/databases';

interface PgClient {
  query(sql: string, params?: unknown[]): Promise<unknown>;
  release(): void;
}

for (const backend of SQL_BACKENDS) {
  describe(`RepositoryLockStore on ${backend} (integration)`, () => {
    let db: TestDatabase;
    let ds: juggler.DataSource;
    let locks: MasterLockRepository;
    let controls: MasterControlRepository;
    let store: RepositoryLockStore;
    let notifier: LockNotifier;
    let listener: LockNotifier;
    let heard: WakeUp[];
    let statements: string[] = [];
    const prefix = `S${randomBytes(3).toString('hex')}-`;
    const names = ['A', 'B', 'C'].map(n => prefix + n);

    before(async function () {
      this.timeout(20000);
      db = await openTestDatabase(this, backend, 'mje_store');
      ds = db.createDataSource();
      locks = new MasterLockRepository(ds);
      controls = new MasterControlRepository(ds);
      await ds.autoupdate([MasterLock.modelName, MasterControl.modelName]);
      notifier = createNotifier(ds);
      // Another replica's ear: its own connection on PostgreSQL.
      listener = createNotifier(backend === 'postgresql' ? db.createDataSource() : ds);
      listener.subscribe(m => m.kind !== 'anything' && heard.push(m));
      if (listener instanceof PostgresNotifier) {
        const l = listener;
        await waitFor('LISTEN', () => l.listening, 5000);
      }
      store = createLockStore({locks, controls}, notifier) as RepositoryLockStore;
      // Every statement the connector runs, as SQL.
      const connector = ds.connector as unknown as {execute: (...args: unknown[]) => unknown};
      const execute = connector.execute;
      connector.execute = function (this: unknown, ...args: unknown[]) {
        const sql = String(args[0]);
        // Not the MySQL doorbell's ring (it finds the others' waits, then interrupts them).
        if (/information_schema\.PROCESSLIST|^KILL QUERY/.test(sql))
          return execute.apply(this, args);
        statements.push(sql);
        return execute.apply(this, args);
      };
    });

    after(async () => {
      await notifier?.close();
      await listener?.close();
      await db?.close();
    });

    beforeEach(async () => {
      await locks.deleteAll({lockName: {inq: names}});
      await controls.deleteAll({lockName: {inq: names}});
      await Promise.all(names.map(n => store.create(record(n))));
      heard = [];
      statements = [];
    });

    const record = (lockName: string): LockRecord => ({
      lockName,
      instanceId: 'me',
      hostname: 'host',
      fencingToken: 1,
      renewalId: `r-${lockName}`,
      heartbeatAt: new Date(),
      acquiredAt: new Date(),
    });

    /** The freed-lock entries every replica should hear: what the rows were left with. */
    async function freedRows(): Promise<WakeUp[]> {
      const rows = await locks.find({where: {lockName: {inq: names}}, order: ['lockName ASC']});
      expect(rows.map(r => r.instanceId)).to.deepEqual(['', '', '']);
      return rows.map(r => ({
        kind: 'released',
        lockName: r.lockName,
        freed: {fencingToken: Number(r.fencingToken), renewalId: r.renewalId},
      }));
    }

    it('releases the locks of one turn in one statement, and the others hear each freed lock', async () => {
      const released = await Promise.all(names.map(n => store.release(n, 'me', 1)));
      expect(released).to.deepEqual([true, true, true]);
      await waitFor('three freed locks heard', () => heard.length === 3, 3000);
      const sent = [...statements];
      expect(heard).to.deepEqual(await freedRows());
      expect(sent).to.have.length(1);
      // PostgreSQL: the NOTIFY rides in the release, delivered as it commits.
      expect(sent[0]).to.match(
        backend === 'postgresql' ? /^WITH updated AS \(UPDATE .* pg_notify\(/s : /^UPDATE /,
      );
    });

    it('announces only the locks a batch freed, when one of its releases is stale', async () => {
      const released = await Promise.all([
        ...names.map(n => store.release(n, 'me', 1)),
        store.release(names[0], 'me', 7), // a token it no longer holds
      ]);
      expect(released).to.deepEqual([true, true, true, false]);
      await waitFor('three freed locks heard', () => heard.length >= 3, 3000);
      // Nothing more arrives: the stale release is announced nowhere.
      await new Promise(resolve => setTimeout(resolve, 200));
      expect(heard).to.deepEqual(await freedRows());
    });

    it('announces nothing of a release that hands nothing over (a disabled lock)', async () => {
      const released = await Promise.all(names.map(n => store.release(n, 'me', 1, false)));
      expect(released).to.deepEqual([true, true, true]);
      const sent = [...statements];
      await new Promise(resolve => setTimeout(resolve, 300));
      expect(heard).to.deepEqual([]);
      await freedRows();
      expect(sent).to.have.length(1);
      expect(sent[0]).to.match(/^UPDATE /);
    });

    it('takes over the locks of one turn in one statement; on PostgreSQL, it reads their control too', async () => {
      await Promise.all(names.map(n => store.release(n, 'me', 1, false)));
      const free = await locks.find({where: {lockName: {inq: names}}, order: ['lockName ASC']});
      const [a, b, c] = free.map(row => ({...row}) as LockRecord);
      await controls.create({lockName: b.lockName, enabled: false, reason: 'test'});
      // C changed since it was read: its compare-and-set must fail.
      await locks.updateAll({renewalId: 'moved on'}, {lockName: c.lockName});
      statements = [];
      const next = (r: LockRecord) => ({...r, instanceId: 'you', fencingToken: 2, renewalId: 'x'});
      const won = await Promise.all([a, b, c].map(r => store.takeOver(r, next(r))));
      const sent = [...statements];
      expect(won.map(w => w?.lock.instanceId)).to.deepEqual(['you', 'you', undefined]);
      expect(won.map(w => w?.lock.fencingToken)).to.deepEqual([2, 2, undefined]);
      const rows = await locks.find({where: {lockName: {inq: names}}, order: ['lockName ASC']});
      expect(rows.map(r => r.instanceId)).to.deepEqual(['you', 'you', '']);
      expect(won[0]!.lock.renewalId).to.equal(rows[0].renewalId);
      if (backend === 'postgresql') {
        expect(won.map(w => w?.disabled)).to.deepEqual([false, true, undefined]);
        expect(sent).to.have.length(1);
        expect(sent[0]).to.match(/^WITH updated AS \(UPDATE .*mastercontrol.*enabled/s);
      } else {
        // The store reads the control after the win, in a statement of its own.
        expect(won.map(w => w?.disabled)).to.deepEqual([false, true, undefined]);
        expect(sent[0]).to.match(/^UPDATE /);
        expect(sent[sent.length - 1]).to.match(/^SELECT .*MasterControl/is);
      }
    });

    if (backend === 'postgresql') {
      it('reads the control after the win: a takeover waits for a disable in progress, and sees it', async () => {
        await store.release(names[0], 'me', 1, false);
        await controls.create({lockName: names[0], enabled: true, reason: ''});
        const free = {...(await locks.findById(names[0]))} as LockRecord;
        const pool = (ds.connector as unknown as {pg: {connect(): Promise<PgClient>}}).pg;
        const disabler = await pool.connect();
        try {
          await disabler.query('BEGIN');
          await disabler.query(
            'UPDATE "public"."mastercontrol" SET "enabled" = false WHERE "lockname" = $1',
            [names[0]],
          );
          const takeover = store.takeOver(free, {...free, instanceId: 'you', fencingToken: 2});
          await waitFor(
            'the takeover waiting for the disable',
            async () => {
              const [{n}] = (await ds.execute(
                `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH updated AS%'`,
              )) as {n: number}[];
              return n === 1;
            },
            5000,
          );
          await disabler.query('COMMIT');
          const won = await takeover;
          expect(won?.lock.instanceId).to.equal('you');
          expect(won?.disabled).to.be.true();
        } finally {
          disabler.release();
        }
      });
    }

    if (backend === 'postgresql') {
      it('sends the NOTIFY in the statement when the notifier declares its channel, whatever its class', async () => {
        const published: WakeUp[][] = [];
        const notifierOf = (notifyChannel?: string): LockNotifier => ({
          publish: messages => published.push(messages),
          subscribe: () => () => {},
          close: async () => {},
          notifyChannel,
        });
        // No channel declared: the release, then publish().
        const plain = createLockStore({locks, controls}, notifierOf());
        expect(await plain.release(names[0], 'me', 1)).to.be.true();
        expect(statements).to.have.length(1);
        expect(statements[0]).to.match(/^UPDATE /);
        expect(published.map(p => p.map(m => m.kind))).to.deepEqual([['released']]);
        // The channel declared: the NOTIFY rides in the release; publish() is not called.
        statements = [];
        const declared = createLockStore({locks, controls}, notifierOf(NOTIFY_CHANNEL));
        expect(await declared.release(names[1], 'me', 1)).to.be.true();
        expect(statements).to.have.length(1);
        expect(statements[0]).to.match(/^WITH updated AS \(UPDATE .* pg_notify\(/s);
        expect(published).to.have.length(1);
        await waitFor('the release heard', () => heard.some(m => m.kind === 'released'), 3000);
        expect(heard.map(m => m.kind === 'released' && m.lockName)).to.deepEqual([names[1]]);
      });
    }

    it('announces nothing when no lock of the batch was still held', async () => {
      const released = await Promise.all(names.map(n => store.release(n, 'someone-else', 1)));
      expect(released).to.deepEqual([false, false, false]);
      await new Promise(resolve => setTimeout(resolve, 300));
      expect(heard).to.deepEqual([]);
      const rows = await locks.find({where: {lockName: {inq: names}}});
      expect(rows.map(r => r.instanceId)).to.deepEqual(['me', 'me', 'me']);
    });
  });
}
