// PostgreSQL behind Debian's PgBouncer with its default settings, in
// transaction pooling mode (the session is not the client's between
// transactions) and in session mode: the store keeps its contract, replicas
// that migrate at once all come up, and no advisory lock stays behind.

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {MasterJobExecutorComponent} from '../../src';
import {
  MasterControl,
  MasterControlRepository,
  MasterLock,
  MasterLockRepository,
} from '../../src/extension';
import {createLockStore, createNotifier} from '../../src/store/dialects';
import {MIGRATION_LOCK_KEY} from '../../src/store/postgres/postgres-dialect';
import {PostgresNotifier} from '../../src/store/postgres/postgres-notifier';
import {PGBOUNCER, PgBouncer, PoolMode, serverAddress, waitFor, withPg} from '../../cluster-kit';
import {existsSync} from 'fs';
import {TestApp} from '../fixtures/cluster';
import {openTestDatabase, TestDatabase} from '../fixtures/databases';
import {lockStoreContract} from '../fixtures/lock-store-contract';

const REPLICAS = 6;

/** A bouncer for the suite, or the suite skipped (a failure under CI=true) when there is none. */
async function startBouncer(context: Mocha.Context, mode: PoolMode): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER) && process.env.CI !== 'true') {
    console.log(`      skipped: ${PGBOUNCER} is not installed (apt-get install pgbouncer)`);
    context.skip();
  }
  return PgBouncer.start(serverAddress('postgresql'), mode);
}

/** Advisory locks held now in `database`, by anyone. */
async function advisoryLocks(database: string): Promise<number> {
  return withPg(serverAddress('postgresql'), async client => {
    const {rows} = await client.query(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND " +
        'database = (SELECT oid FROM pg_database WHERE datname = $1)',
      [database],
    );
    return rows[0].n;
  });
}

/** Whether a session of `database` waits for an advisory lock now. */
async function waitingOnLock(database: string): Promise<boolean> {
  return withPg(serverAddress('postgresql'), async client => {
    const {rows} = await client.query(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND " +
        'database = (SELECT oid FROM pg_database WHERE datname = $1)',
      [database],
    );
    return rows[0].n > 0;
  });
}

for (const mode of ['transaction', 'session'] as PoolMode[]) {
  describe(`PostgreSQL through PgBouncer in ${mode} pooling (integration)`, () => {
    let bouncer: PgBouncer | undefined;
    let db: TestDatabase;
    const through = () => ({host: '127.0.0.1', port: bouncer!.address.port});

    before(async function () {
      this.timeout(30000);
      db = await openTestDatabase(this, 'postgresql', 'mje_pgbouncer');
      bouncer = await startBouncer(this, mode);
    });
    after(async () => {
      await db?.close();
      await bouncer?.stop();
    });

    lockStoreContract(`the store through PgBouncer (${mode})`, async () => {
      const replica = () => {
        const ds = db.createDataSource(through());
        const notifier = createNotifier(ds);
        const locks = new MasterLockRepository(ds);
        const controls = new MasterControlRepository(ds);
        return {ds, notifier, store: createLockStore({locks, controls}, notifier)};
      };
      const [one, two] = [replica(), replica()];
      await one.ds.automigrate([MasterLock.modelName, MasterControl.modelName]);
      return {
        stores: [one.store, two.store],
        close: async () => {
          await Promise.all([one.notifier.close(), two.notifier.close()]);
        },
      };
    });

    it(
      mode === 'transaction'
        ? 'says once that wake-ups do not arrive, and hears them through listenUrl'
        : 'hears wake-ups through the pooler',
      async function () {
        this.timeout(30000);
        const warnings: string[] = [];
        const warn = (message: string) => warnings.push(message);
        const pooled = createNotifier(db.createDataSource(through()), {warn});
        const {host, port, user} = serverAddress('postgresql');
        const listenUrl = `postgres://${user}@${host}:${port}/${db.database}`;
        const direct = createNotifier(db.createDataSource(through()), {warn, listenUrl});
        const heard: string[] = [];
        direct.subscribe(m => heard.push(m.kind));
        try {
          await waitFor('the direct LISTEN', () => (direct as PostgresNotifier).listening, 10000);
          // A NOTIFY through the pooler reaches a LISTEN on the direct connection.
          const sender = createNotifier(db.createDataSource(through()), {warn});
          sender.publish([{kind: 'submitted', lockName: 'Q'}]);
          await waitFor('the wake-up', () => heard.includes('submitted'), 10000);
          await sender.close();
          if (mode === 'transaction') {
            await waitFor('the warning', () => warnings.length > 0, 15000);
            expect(warnings).to.have.length(1);
            expect(warnings[0]).to.match(/wake-ups do not arrive through datasource/);
            expect(warnings[0]).to.match(/MASTER_JOB_LISTEN_URL/);
            expect((pooled as PostgresNotifier).listening).to.be.false();
          } else {
            await waitFor('the pooled LISTEN', () => (pooled as PostgresNotifier).listening, 10000);
            expect(warnings).to.deepEqual([]);
          }
        } finally {
          await Promise.all([pooled.close(), direct.close()]);
        }
      },
    );

    it(`${REPLICAS} replicas migrating an empty database at once all come up, and leave no advisory lock`, async () => {
      const admin = db.createDataSource();
      for (const table of ['masterlock', 'mastercontrol', 'mastertask']) {
        await admin.execute(`DROP TABLE IF EXISTS ${table}`);
      }
      const apps = Array.from({length: REPLICAS}, () => {
        const app = new TestApp();
        app.dataSource(db.createDataSource(through()));
        app.component(MasterJobExecutorComponent);
        return app;
      });
      const outcomes = await Promise.allSettled(apps.map(app => app.migrateSchema()));
      const failed = outcomes.filter(o => o.status === 'rejected') as PromiseRejectedResult[];
      expect(failed.map(f => String(f.reason?.message ?? f.reason))).to.deepEqual([]);
      for (const app of apps) {
        const locks = await app.getRepository(MasterLockRepository);
        expect(await locks.count()).to.deepEqual({count: 0});
      }
      expect(await advisoryLocks(db.database)).to.equal(0);
      // A later migration waits for a holder of the key (a connection of its own), then frees it too.
      await withPg(
        serverAddress('postgresql'),
        async holder => {
          await holder.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY}::bigint)`);
          let migrated = false;
          const ds = await apps[0].get<juggler.DataSource>('datasources.db');
          const later = ds.autoupdate().then(() => (migrated = true));
          await waitFor('the later migration to wait', () => waitingOnLock(db.database), 10000, 50);
          expect(migrated).to.be.false();
          await holder.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY}::bigint)`);
          await later;
        },
        {database: db.database},
      );
      expect(await advisoryLocks(db.database)).to.equal(0);
    });
  });
}
