import {expect} from '@loopback/testlab';
import {MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {waitFor} from '../../cluster-kit';
import {FAST, TestApp} from '../fixtures/cluster';
import {openTestDatabase, SQL_BACKENDS, TestDatabase} from '../fixtures/databases';

for (const backend of SQL_BACKENDS) {
  describe(`missing tables on ${backend} (integration)`, () => {
    let db: TestDatabase;
    before(async function () {
      // a database of its own that nobody migrates
      db = await openTestDatabase(this, backend, 'mje_no_tables');
    });
    after(() => db?.close());

    it('reports an error that says to run app.migrateSchema(), and keeps the process alive', async () => {
      const app = new TestApp();
      app.dataSource(db.createDataSource());
      app.configure(MasterJobExecutorBindings.COMPONENT).to(FAST);
      app.component(MasterJobExecutorComponent);
      await app.start();
      const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
      const errors: Error[] = [];
      executor.on('error', (err: Error) => errors.push(err));
      const master = executor.startMaster({lockName: 'NO-TABLES', masterJob: {start() {}}});
      await waitFor('two errors (it keeps retrying)', () => errors.length >= 2, 5000);
      expect(errors[0].message).to.match(
        /tables .* are missing: create them with app\.migrateSchema\(\)/,
      );
      expect(master.isMaster).to.be.false();
      expect(master.state).to.equal('slave');
      await app.stop();
    });
  });
}
