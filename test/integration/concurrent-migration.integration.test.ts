// Replicas deployed together each migrate (a deploy step or at start): on an
// empty database their CREATE TABLEs race. The component serialises them on a
// lock of the database, so every one of them must come up, every time.

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {DataSourceStoppedError, MasterLockRepository} from '../../src/extension';
import {MIGRATION_LOCK_NAME} from '../../src/store/mysql/mysql-dialect';
import {MIGRATION_LOCK_KEY} from '../../src/store/postgres/postgres-dialect';
import {TestApp} from '../fixtures/cluster';
import {openTestDatabase, SQL_BACKENDS, TestDatabase} from '../fixtures/databases';

const REPLICAS = 6;
const ROUNDS = 4;
const TABLES = ['MasterLock', 'MasterControl'];

for (const backend of SQL_BACKENDS) {
  describe(`concurrent schema migration on ${backend} (integration)`, () => {
    let db: TestDatabase;
    let admin: juggler.DataSource;
    before(async function () {
      db = await openTestDatabase(this, backend, 'mje_migrate_race');
      admin = db.createDataSource();
    });
    after(() => db?.close());

    // PostgreSQL folds the unquoted model names to lower case; MariaDB keeps them.
    const dropTables = async () => {
      const tables = backend === 'postgresql' ? TABLES.map(t => t.toLowerCase()) : TABLES;
      for (const table of tables) await admin.execute(`DROP TABLE IF EXISTS ${table}`);
    };

    const replica = (poolSize = 2, migrationLock?: boolean) => {
      const app = new TestApp();
      app.dataSource(db.createDataSource({poolSize}));
      app.configure(MasterJobExecutorBindings.COMPONENT).to({migrationLock});
      app.component(MasterJobExecutorComponent);
      return app;
    };

    it(`${REPLICAS} replicas migrating an empty database at once all succeed, ${ROUNDS} times`, async () => {
      for (let round = 0; round < ROUNDS; round++) {
        await dropTables();
        const apps = Array.from({length: REPLICAS}, () => replica());
        const outcomes = await Promise.allSettled(apps.map(app => app.migrateSchema()));
        const failed = outcomes.filter(o => o.status === 'rejected') as PromiseRejectedResult[];
        expect(failed.map(f => String(f.reason?.message ?? f.reason))).to.deepEqual([]);
        for (const app of apps) {
          const locks = await app.getRepository(MasterLockRepository);
          expect(await locks.count()).to.deepEqual({count: 0});
        }
      }
    });

    it('migrates a datasource that connects lazily (juggler queues the call, then makes it again)', async () => {
      await dropTables();
      const {host, port, user, password} = db.address!;
      const ds = new juggler.DataSource({
        name: 'db',
        connector: backend,
        ...{host, port, user, password, database: db.database},
        lazyConnect: true,
      });
      const app = new TestApp();
      app.dataSource(ds);
      app.component(MasterJobExecutorComponent);
      try {
        expect(ds.connected).to.be.false();
        await app.migrateSchema(); // would wait forever for its own lock if the repeat took it again
        const locks = await app.getRepository(MasterLockRepository);
        expect(await locks.count()).to.deepEqual({count: 0});
      } finally {
        await ds.disconnect();
      }
    });

    it('migrates with the callback API too, and with a pool of one connection', async () => {
      await dropTables();
      const app = replica(1);
      await app.migrateSchema(); // resolves the repositories, which guard the datasource
      const ds = await app.get<juggler.DataSource>('datasources.db');
      await new Promise<void>((resolve, reject) =>
        ds.autoupdate(undefined, (err?: unknown) => (err ? reject(err) : resolve())),
      );
      const locks = await app.getRepository(MasterLockRepository);
      expect(await locks.count()).to.deepEqual({count: 0});
    });

    it('waits for the database lock, unless migrationLock is false', async () => {
      await dropTables();
      // Another session holds the migration lock, as a replica migrating would.
      const holder = db.createDataSource({poolSize: 1});
      const [take, give] =
        backend === 'postgresql'
          ? [
              `SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY}::bigint)`,
              `SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY}::bigint)`,
            ]
          : [
              `SELECT GET_LOCK('${MIGRATION_LOCK_NAME}', 5)`,
              `SELECT RELEASE_LOCK('${MIGRATION_LOCK_NAME}')`,
            ];
      await holder.execute(take);
      try {
        let waited = false;
        const locking = replica()
          .migrateSchema()
          .finally(() => (waited = true));
        // Without the lock, a migration goes ahead while another holds it.
        await replica(2, false).migrateSchema();
        expect(waited).to.be.false();
        await holder.execute(give);
        await locking;
      } finally {
        await holder.disconnect();
      }
    });

    it('fails a lock store call at once after the datasource was disconnected', async () => {
      const app = replica();
      await app.migrateSchema();
      const store = await app.get(MasterJobExecutorBindings.LOCK_STORE);
      await store.read('ANY'); // connected
      const ds = await app.get<juggler.DataSource>('datasources.db');
      await ds.disconnect();
      const started = Date.now();
      await expect(store.read('ANY')).to.be.rejectedWith(DataSourceStoppedError);
      await expect(store.release('ANY', 'me', 1)).to.be.rejectedWith(/is disconnected/);
      expect(Date.now() - started).to.be.below(100);
    });
  });
}
