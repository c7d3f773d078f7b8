// One LockStore contract (test/fixtures/lock-store-contract.ts), run against
// every store: the fake of the unit tests, and the real store, as its
// dialect makes it, on memory, PostgreSQL and MariaDB.

import {
  MasterControl,
  MasterControlRepository,
  MasterLock,
  MasterLockRepository,
} from '../../src/extension';
import {createLockStore, createNotifier} from '../../src/store/dialects';
import {BACKENDS, openTestDatabase, TestDatabase} from '../fixtures/databases';
import {FakeClock} from '../fixtures/fake-clock';
import {FakeDatabase, FakeStore} from '../fixtures/fake-store';
import {lockStoreContract} from '../fixtures/lock-store-contract';

lockStoreContract('the fake store of the unit tests', async () => {
  const db = new FakeDatabase();
  const clock = new FakeClock();
  return {stores: [new FakeStore(db, clock, 'a'), new FakeStore(db, clock, 'b')]};
});

for (const backend of BACKENDS) {
  lockStoreContract(`the store on ${backend}`, async context => {
    const db: TestDatabase = await openTestDatabase(context, backend, 'mje_contract');
    const replica = () => {
      const ds = db.createDataSource();
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
        await db.close();
      },
    };
  });
}
