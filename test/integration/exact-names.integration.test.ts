// Lock names are compared exactly on every connector: case, accents and
// trailing spaces make different locks, with controls of their own; on the
// memory connector, names of Object.prototype's members are names like others.

import {RepositoryMixin} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {Client, createRestAppClient, expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {MasterJobExecutor, MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {waitFor} from '../../cluster-kit';
import {FAST} from '../fixtures/cluster';
import {BACKENDS, openTestDatabase, TestDatabase} from '../fixtures/databases';

class App extends RepositoryMixin(RestApplication) {}

for (const backend of BACKENDS) {
  describe(`exact lock names on ${backend} (integration)`, function () {
    this.timeout(20000);
    let db: TestDatabase;
    let app: App;
    let client: Client;
    let executor: MasterJobExecutor;
    const stops: {lockName: string; reason?: string}[] = [];
    // Different runs on one server must not share rows; the suffixes differ only as tested.
    const p = `N${randomBytes(3).toString('hex')}-`;
    const names = [`${p}CASEX`, `${p}casex`, `${p}X`, `${p}X `, `${p}é`, `${p}e`];
    if (backend === 'memory') names.push('__proto__', 'constructor', 'toString', 'hasOwnProperty');

    before(async function () {
      db = await openTestDatabase(this, backend, 'mje_exact');
      app = new App({rest: {port: 0, host: '127.0.0.1'}, shutdown: {signals: []}});
      app.dataSource(db.createDataSource(), 'db');
      app.configure(MasterJobExecutorBindings.COMPONENT).to(FAST);
      app.component(MasterJobExecutorComponent);
      await app.migrateSchema();
      await app.start();
      client = createRestAppClient(app);
      executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    });

    after(async () => {
      await app?.stop();
      await db?.close();
    });

    const isMaster = (name: string) => executor.getMaster(name)?.isMaster === true;

    it('makes every name its own lock, all mastered in one batch', async () => {
      for (const lockName of names) {
        executor.startMaster({
          lockName,
          masterJob: {
            start() {},
            stop: ctx => {
              stops.push({lockName, reason: ctx.reason});
            },
          },
        });
      }
      await waitFor('every lock mastered', () => names.every(isMaster), 5000);
      const status = await client.get('/api/MasterControls/status').expect(200);
      const stored = status.body.locks.map((l: {lockName: string}) => l.lockName);
      for (const name of names) expect(stored).to.containEql(name);
    });

    it('disables exactly the name given, not one that differs in case, accent or trailing space', async () => {
      for (const lockName of [`${p}casex`, `${p}X `, `${p}é`, ...names.slice(6, 8)]) {
        const reply = await client
          .post('/api/MasterControls/disable')
          .send({lockName, reason: 'exact'});
        expect(reply.status).to.equal(200);
        expect(reply.body).to.containDeep({lockName, enabled: false, changed: true});
      }
      const disabled = [`${p}casex`, `${p}X `, `${p}é`, ...names.slice(6, 8)];
      await waitFor('disabled masters stopped', () => disabled.every(n => !isMaster(n)), 5000);
      for (const name of names.filter(n => !disabled.includes(n))) {
        expect(isMaster(name)).to.be.true();
        expect(stops.filter(s => s.lockName === name)).to.be.empty();
      }
      const controls = await client.get('/api/MasterControls').expect(200);
      const off = controls.body
        .filter((c: {lockName: string; enabled: boolean}) => !c.enabled)
        .map((c: {lockName: string}) => c.lockName);
      for (const name of disabled) expect(off).to.containEql(name);
      for (const name of names.filter(n => !disabled.includes(n)))
        expect(off).to.not.containEql(name);

      for (const lockName of disabled) {
        await client.post('/api/MasterControls/enable').send({lockName}).expect(200);
      }
      await waitFor('enabled again', () => names.every(isMaster), 5000);
    });

    it('stores the longest name and reason the API accepts, in four-byte characters', async () => {
      // 255 characters in all, the column's size; each emoji 4 bytes in UTF-8.
      const lockName = p + '😀'.repeat(255 - p.length);
      const reason = '😀'.repeat(1000);
      const res = await client.post('/api/MasterControls/disable').send({lockName, reason});
      expect(res.body.error?.message).to.be.undefined();
      expect(res.status).to.equal(200);
      expect(res.body).to.containDeep({lockName, reason, enabled: false});
      executor.startMaster({lockName, masterJob: {start() {}}});
      await waitFor(
        'the longest name mastered',
        () => executor.getMaster(lockName) !== undefined,
        1000,
      );
      await client.post('/api/MasterControls/enable').send({lockName}).expect(200);
      await waitFor('the longest name mastered', () => isMaster(lockName), 5000);
    });

    if (backend === 'mysql') {
      it("answers 422, naming the setting, for 4-byte characters over the connector's default utf8 connection", async () => {
        const narrow = new App({rest: {port: 0, host: '127.0.0.1'}, shutdown: {signals: []}});
        narrow.dataSource(db.createDataSource({collation: 'utf8_general_ci'}), 'db');
        narrow.configure(MasterJobExecutorBindings.COMPONENT).to({initDelay: 0});
        narrow.component(MasterJobExecutorComponent);
        await narrow.start();
        try {
          const res = await createRestAppClient(narrow)
            .post('/api/MasterControls/disable')
            .send({lockName: `${p}narrow`, reason: 'out of 😀 coffee'});
          expect(res.status).to.equal(422);
          expect(res.body.error.message).to.match(
            /^reason contains characters of 4 bytes.*utf8mb4_unicode_ci/,
          );
          // A lock of such a name is refused by the store: it would never match its row again.
          const errors: Error[] = [];
          const narrowExecutor = await narrow.get(MasterJobExecutorBindings.EXECUTOR);
          narrowExecutor.on('error', err => errors.push(err));
          narrowExecutor.startMaster({lockName: `${p}😀`, masterJob: {start() {}}});
          await waitFor('the refusal', () => errors.length > 0, 3000);
          expect(errors[0].message).to.match(/lockName .* contains characters of 4 bytes/);
        } finally {
          await narrow.stop();
        }
      });

      it('upgrades the id columns of tables made by earlier versions when migrating', async function () {
        const old = await openTestDatabase(this, backend, 'mje_exact_upgrade');
        const ds = old.createDataSource();
        try {
          for (const table of ['MasterLock', 'MasterControl']) {
            await ds.execute(`DROP TABLE IF EXISTS ${table}`);
            // As 0.1 made them: VARCHAR in the server's case-insensitive collation.
            await ds.execute(
              `CREATE TABLE ${table} (lockName VARCHAR(255) NOT NULL PRIMARY KEY) ` +
                'CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci',
            );
          }
          await ds.execute("INSERT INTO MasterControl (lockName) VALUES ('CASEX')");
          const upgraded = new App({shutdown: {signals: []}});
          upgraded.dataSource(ds, 'db');
          upgraded.component(MasterJobExecutorComponent);
          await upgraded.migrateSchema();
          const types = (await ds.execute(
            'SELECT TABLE_NAME AS t, COLUMN_TYPE AS type FROM information_schema.COLUMNS ' +
              "WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'lockName' ORDER BY t",
          )) as {t: string; type: string}[];
          expect(types.map(r => `${r.t} ${r.type}`)).to.deepEqual([
            'MasterCheckpoint varbinary(1020)',
            'MasterControl varbinary(1020)',
            'MasterCronRun varbinary(1020)',
            'MasterLock varbinary(1020)',
          ]);
          await ds.execute("INSERT INTO MasterControl (lockName, enabled) VALUES ('casex', 1)");
          const rows = (await ds.execute(
            'SELECT lockName FROM MasterControl ORDER BY lockName',
          )) as {
            lockName: Buffer;
          }[];
          expect(rows.map(r => String(r.lockName))).to.deepEqual(['CASEX', 'casex']);
        } finally {
          await old.close();
        }
      });
    }
  });
}
