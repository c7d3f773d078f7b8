import {Application} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {
  MasterJobContext,
  MasterJobExecutorBindings,
  MasterJobExecutorComponent,
  MasterJobExecutorConfig,
} from '../../src';
import {MasterLockRepository} from '../../src/extension';
import {waitFor} from '../../cluster-kit';

class App extends RepositoryMixin(Application) {}

const FAST = {
  initDelay: 0,
  checkMasterInterval: 100,
  heartbeatInterval: 50,
  leaseDuration: 300,
};

function makeApp(
  options: {
    section?: MasterJobExecutorConfig;
    configure?: MasterJobExecutorConfig;
    dsName?: string;
  } = {},
) {
  const app = new App(options.section ? {masterJobExecutor: options.section} : {});
  if (options.configure) app.configure(MasterJobExecutorBindings.COMPONENT).to(options.configure);
  app.dataSource(
    new juggler.DataSource({
      name: options.dsName ?? 'db',
      connector: 'memory',
    }),
  );
  app.component(MasterJobExecutorComponent);
  return app;
}

describe('MasterJobExecutorComponent in an app (memory)', () => {
  const savedEnv = {...process.env};
  afterEach(() => {
    process.env = {...savedEnv};
  });

  it('runs a job on the master and releases the lock on app.stop()', async () => {
    const app = makeApp({configure: {...FAST, instanceId: 'one'}});
    await app.migrateSchema();
    await app.start();
    const calls: string[] = [];
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    const master = executor.startMaster({
      lockName: 'JOB-SCHEDULER',
      masterJob: {
        start: (ctx: MasterJobContext) => {
          calls.push(`start:${ctx.instanceId}:${ctx.fencingToken}`);
        },
        stop: (ctx: MasterJobContext) => {
          calls.push(`stop:${ctx.reason}`);
        },
      },
    });
    await waitFor('mastership', () => master.isMaster, 3000);
    await app.stop();
    expect(calls).to.eql(['start:one:1', 'stop:stopped']);
    const locks = await app.getRepository(MasterLockRepository);
    const row = await locks.findById('JOB-SCHEDULER');
    expect(row.instanceId).to.equal('');
    expect(row.fencingToken).to.equal(1);
  });

  it('uses the datasource named by dataSourceName, from the app config section', async () => {
    const app = makeApp({
      section: {dataSourceName: 'coordination', ...FAST},
      dsName: 'coordination',
    });
    await app.migrateSchema();
    await app.start();
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    const m = executor.startMaster({
      lockName: 'X',
      masterJob: {start() {}},
    });
    await waitFor('mastership', () => m.isMaster, 3000);
    const locks = await app.getRepository(MasterLockRepository);
    expect(locks.dataSource.name).to.equal('coordination');
    expect((await locks.findById('X')).instanceId).to.equal(executor.instanceId);
    await app.stop();
  });

  it('lets app.configure() win over the app config section, and env over both', async () => {
    process.env.CHECK_MASTER_INTERVAL = '777';
    const app = makeApp({
      section: {
        heartbeatInterval: 111,
        checkMasterInterval: 999,
        stopTimeout: 1234,
        instanceId: 'section',
      },
      configure: {
        heartbeatInterval: 222,
        checkMasterInterval: 888,
        instanceId: 'configured',
      },
    });
    await app.start();
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    expect(executor.instanceId).to.equal('configured');
    expect(executor.timingsFor({})).to.containDeep({
      heartbeatInterval: 222,
      checkMasterInterval: 777,
      stopTimeout: 1234,
      leaseDuration: 666,
    });
    await app.stop();
  });

  it('fails app.start() on a bad environment value, naming the variable', async () => {
    process.env.MASTER_JOB_HEARTBEAT_INTERVAL = 'fast';
    const app = makeApp();
    await expect(app.start()).to.be.rejectedWith(/MASTER_JOB_HEARTBEAT_INTERVAL/);
  });

  it('fails app.component() on a migrationLock that is not a boolean, naming it', () => {
    expect(() => makeApp({configure: {migrationLock: 'no' as unknown as boolean}})).to.throw(
      'masterJobExecutor migrationLock must be true or false, got "no"',
    );
    expect(() => makeApp({section: {migrationLock: 0 as unknown as boolean}})).to.throw(
      /migrationLock must be true or false, got 0/,
    );
  });
});
