// The contracts of the stores of work (test/fixtures/task-store-contract.ts,
// checkpoint-store-contract.ts, cron-run-store-contract.ts), each run against
// the store on its repository on memory, PostgreSQL and MariaDB.

import {juggler} from '@loopback/repository';
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
 * Two stores on one fresh table of the suite's database, as two replicas
 * (SQL: two connection pools), stamping with one fake clock.
 */
async function openStores<S>(
  context: Mocha.Context,
  backend: BackendName,
  modelName: string,
  store: (ds: juggler.DataSource, clock: FakeClock) => S,
) {
  const db = await openTestDatabase(context, backend, 'mje_work_contract');
  const clock = new FakeClock();
  const [one, two] = [db.createDataSource(), db.createDataSource()];
  const stores: [S, S] = [store(one, clock), store(two, clock)];
  await one.automigrate([modelName]);
  return {stores, clock, close: () => db.close()};
}

for (const backend of BACKENDS) {
  taskStoreContract(`the store on ${backend}`, context =>
    openStores(
      context,
      backend,
      MasterTask.modelName,
      (ds, clock) => new RepositoryTaskStore(new MasterTaskRepository(ds), clock),
    ),
  );
  checkpointStoreContract(`the store on ${backend}`, context =>
    openStores(
      context,
      backend,
      MasterCheckpoint.modelName,
      (ds, clock) => new RepositoryCheckpointStore(new MasterCheckpointRepository(ds), clock),
    ),
  );
  cronRunStoreContract(`the store on ${backend}`, context =>
    openStores(
      context,
      backend,
      MasterCronRun.modelName,
      (ds, clock) => new RepositoryCronRunStore(new MasterCronRunRepository(ds), clock),
    ),
  );
}
