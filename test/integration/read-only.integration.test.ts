// A PostgreSQL server that takes no writes, as a hot standby the address
// points at after a wrong failover does: the database is made read-only for
// new sessions (default_transaction_read_only) and its sessions are ended.
// app.start() refuses it, saying so; a running replica's calls answer 503
// naming it, its master stops, nobody retries in a hot loop, and all recovers
// once the server takes writes again.

import {expect} from '@loopback/testlab';
import {Master, MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {serverAddress, waitFor, withPg} from '../../cluster-kit';
import {FAST, TestApp} from '../fixtures/cluster';
import {openTestDatabase, TestDatabase} from '../fixtures/databases';

describe('a read-only PostgreSQL server (integration)', () => {
  let db: TestDatabase;
  const apps: TestApp[] = [];

  before(async function () {
    db = await openTestDatabase(this, 'postgresql', 'mje_read_only');
    await readOnly(false);
  });
  afterEach(async () => {
    await readOnly(false);
    // An app whose start failed stays 'starting', which stop() refuses.
    await Promise.all(apps.splice(0).map(made => made.stop().catch(() => {})));
  });
  after(() => db?.close());

  /** Sets whether new sessions of the test database are read-only, and ends the others. */
  async function readOnly(on: boolean): Promise<void> {
    await withPg(serverAddress('postgresql'), async admin => {
      await admin.query(
        `ALTER DATABASE ${db.database} SET default_transaction_read_only = ${on ? 'on' : 'off'}`,
      );
      await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [db.database],
      );
    });
  }

  async function app(name: string): Promise<TestApp> {
    const made = new TestApp();
    made.dataSource(db.createDataSource());
    made.configure(MasterJobExecutorBindings.COMPONENT).to({...FAST, instanceId: name});
    made.component(MasterJobExecutorComponent);
    apps.push(made);
    await made.migrateSchema();
    return made;
  }

  it('fails app.start() saying the database takes no writes', async () => {
    const replica = await app('a');
    await readOnly(true);
    await expect(replica.start()).to.be.rejectedWith(
      /datasource "db" takes no writes: transaction_read_only is on .*point the datasource at the primary/,
    );
  });

  it('answers 503 naming it, stops the master without a hot loop, and recovers', async function () {
    this.timeout(30000);
    const replicas = [await app('a'), await app('b')];
    const errors: string[] = [];
    const masters: Master[] = [];
    for (const replica of replicas) {
      await replica.start();
      const executor = await replica.get(MasterJobExecutorBindings.EXECUTOR);
      executor.on('error', (err: Error) => errors.push(err.message));
      masters.push(executor.startMaster({lockName: 'RO', masterJob: {start() {}}}));
    }
    await waitFor('a master', () => masters.some(m => m.isMaster), 10000);

    await readOnly(true);
    await waitFor('no master', () => masters.every(m => !m.isMaster), 10000);
    const service = await replicas[0].get(MasterJobExecutorBindings.CONTROL_SERVICE);
    const refused = await service.disable('RO', 'maintenance').catch((err: Error) => err);
    expect(refused).to.match({name: 'DatabaseUnavailable', statusCode: 503});
    expect((refused as Error).message).to.match(/the database is read-only .*Nothing was changed/);
    // Both replicas keep trying, backing off: a hot loop would report thousands.
    errors.length = 0;
    await new Promise(resolve => setTimeout(resolve, 2000));
    expect(errors.length).to.be.below(60);
    expect(errors.some(e => /the database is read-only/.test(e))).to.be.true();

    await readOnly(false);
    await waitFor('a master again', () => masters.some(m => m.isMaster), 15000);
  });
});
