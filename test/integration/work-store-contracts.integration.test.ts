// The contracts of the stores of work (test/fixtures/task-store-contract.ts,
// checkpoint-store-contract.ts, cron-run-store-contract.ts), each run against
// the store on its repository on memory, PostgreSQL and MariaDB, and on
// PostgreSQL through PgBouncer in transaction mode.

import {juggler} from '@loopback/repository';
import {existsSync} from 'fs';
import {PGBOUNCER, PgBouncer, serverAddress} from '../../cluster-kit';
import {
  MasterCheckpoint,
  MasterCheckpointRepository,
  MasterCronRun,
  MasterCronRunRepository,
  MasterTask,
  MasterTaskRepository,
} from '../../src/extension';
import {RepositoryCheckpointStore} from '../../src/store/checkpoint-store';
import {RepositoryCronRunStore} from '../../src/store/cron-run-store';
import {RepositoryTaskStore} from '../../src/store/task-store';
import {checkpointStoreContract} from '../fixtures/checkpoint-store-contract';
import {cronRunStoreContract} from '../fixtures/cron-run-store-contract';
import {BACKENDS, BackendName, openTestDatabase} from '../fixtures/databases';
import {FakeClock} from '../fixtures/fake-clock';
import {taskStoreContract} from '../fixtures/task-store-contract';

/**
 * Opens two stores on one fresh table of the suite's database on `backend`,
 * as two replicas (SQL: two connection pools), stamping with one fake clock.
 */
function storesOn<S>(
  backend: BackendName,
  modelName: string,
  store: (ds: juggler.DataSource, clock: FakeClock) => S,
  through?: (context: Mocha.Context) => Promise<{host: string; port: number}>,
) {
  return async (context: Mocha.Context) => {
    const db = await openTestDatabase(context, backend, 'mje_work_contract');
    const clock = new FakeClock();
    const via = through && (await through(context));
    const [one, two] = [db.createDataSource(via), db.createDataSource(via)];
    const stores: [S, S] = [store(one, clock), store(two, clock)];
    await one.automigrate([modelName]);
    return {stores, clock, close: () => db.close()};
  };
}

// Each store of work on the repository of its model, stamping with `clock`.
const taskStore = (ds: juggler.DataSource, clock: FakeClock) =>
  new RepositoryTaskStore(new MasterTaskRepository(ds), clock);
const checkpointStore = (ds: juggler.DataSource, clock: FakeClock) =>
  new RepositoryCheckpointStore(new MasterCheckpointRepository(ds), clock);
const cronRunStore = (ds: juggler.DataSource, clock: FakeClock) =>
  new RepositoryCronRunStore(new MasterCronRunRepository(ds), clock);

for (const backend of BACKENDS) {
  const title = `the store on ${backend}`;
  taskStoreContract(title, storesOn(backend, MasterTask.modelName, taskStore));
  checkpointStoreContract(title, storesOn(backend, MasterCheckpoint.modelName, checkpointStore));
  cronRunStoreContract(title, storesOn(backend, MasterCronRun.modelName, cronRunStore));
}

describe('through PgBouncer', () => {
  let bouncer: Promise<PgBouncer> | undefined;
  /** One PgBouncer for the three suites, started by the first; skipped where there is none. */
  const through = async (context: Mocha.Context) => {
    if (!existsSync(PGBOUNCER) && process.env.CI !== 'true') {
      console.log(`      skipped: ${PGBOUNCER} is not installed (apt-get install pgbouncer)`);
      context.skip();
    }
    bouncer ??= PgBouncer.start(serverAddress('postgresql'), 'transaction');
    const {port} = (await bouncer).address;
    return {host: '127.0.0.1', port};
  };
  after(async () => (await bouncer)?.stop());

  const title = 'the store on postgresql through PgBouncer (transaction pooling)';
  const pg = 'postgresql';
  taskStoreContract(title, storesOn(pg, MasterTask.modelName, taskStore, through));
  checkpointStoreContract(
    title,
    storesOn(pg, MasterCheckpoint.modelName, checkpointStore, through),
  );
  cronRunStoreContract(title, storesOn(pg, MasterCronRun.modelName, cronRunStore, through));
});
