import {Application, BindingKey, createBindingFromClass, inject} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {
  masterCron,
  MasterCronJob,
  masterJob,
  MasterJob,
  MasterJobContext,
  MasterJobExecutorBindings,
  MasterJobExecutorComponent,
} from '../../src';
import {MasterLockRepository} from '../../src/extension';
import {waitFor} from '../../cluster-kit';

class App extends RepositoryMixin(Application) {}

const GREETING = BindingKey.create<string>('test.greeting');
const calls: string[] = [];

@masterJob({lockName: 'CLASS-JOB', initDelay: 0})
class GreetingJob implements MasterJob {
  constructor(@inject(GREETING) private readonly greeting: string) {}
  start(ctx: MasterJobContext) {
    calls.push(`${this.greeting} start ${ctx.lockName} ${ctx.fencingToken}`);
  }
  stop(ctx: MasterJobContext) {
    calls.push(`${this.greeting} stop ${ctx.lockName} ${ctx.reason}`);
  }
}

function givenApp(
  ds = new juggler.DataSource({name: 'db', connector: 'memory'}),
  instanceId?: string,
) {
  const app = new App();
  app.dataSource(ds);
  app.bind(GREETING).to('hello');
  app
    .configure(MasterJobExecutorBindings.COMPONENT)
    .to({instanceId, heartbeatInterval: 50, leaseDuration: 300});
  app.component(MasterJobExecutorComponent);
  return app;
}

describe('class-based master jobs (@masterJob)', () => {
  beforeEach(() => {
    calls.length = 0;
  });

  it('starts a job registered with app.service() on app.start() and releases it on app.stop()', async () => {
    const app = givenApp();
    app.service(GreetingJob);
    await app.migrateSchema();
    await app.start();
    await waitFor('the job starts', () => calls.length === 1, 3000);
    expect(calls).to.eql(['hello start CLASS-JOB 1']);
    const locks = await app.getRepository(MasterLockRepository);
    await app.stop();
    expect(calls).to.eql(['hello start CLASS-JOB 1', 'hello stop CLASS-JOB stopped']);
    expect((await locks.findById('CLASS-JOB')).instanceId).to.equal('');
  });

  it('starts its jobs again when the app is stopped and started again', async () => {
    const app = givenApp();
    app.service(GreetingJob);
    await app.migrateSchema();
    await app.start();
    await waitFor('the job starts', () => calls.length === 1, 3000);
    const before = await app.get(MasterJobExecutorBindings.EXECUTOR);
    await app.stop();
    await app.start();
    await waitFor('the job starts again', () => calls.length === 3, 3000);
    expect(calls).to.eql([
      'hello start CLASS-JOB 1',
      'hello stop CLASS-JOB stopped',
      'hello start CLASS-JOB 2',
    ]);
    const after = await app.get(MasterJobExecutorBindings.EXECUTOR);
    expect(after).to.not.equal(before); // the old one stays stopped
    expect(after.getMaster('CLASS-JOB')!.isMaster).to.be.true();
    after.startMaster({lockName: 'FROM-CODE', masterJob: {start() {}}});
    await app.stop();
    expect(calls).to.have.length(4);
  });

  it('takes options from app.configure(binding.key) over the decorator', async () => {
    const app = givenApp();
    const binding = createBindingFromClass(GreetingJob);
    app.add(binding);
    app.configure(binding.key).to({lockName: 'RENAMED', checkMasterInterval: 5000});
    await app.migrateSchema();
    await app.start();
    await waitFor('the job starts', () => calls.length === 1, 3000);
    expect(calls).to.eql(['hello start RENAMED 1']);
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    expect(executor.getMaster('RENAMED')).to.be.ok();
    expect(executor.getMaster('CLASS-JOB')).to.be.undefined();
    await app.stop();
  });
});

describe('cluster-singleton cron', () => {
  it('fires only on the master, and resumes on the new master after a handoff', async function () {
    this.timeout(20000);
    const ds = new juggler.DataSource({name: 'db', connector: 'memory'});
    const firings: {replica: string; second: number; token: number}[] = [];
    const apps = ['a', 'b'].map(id => givenApp(ds, id));
    for (const [i, app] of apps.entries()) {
      await app.migrateSchema();
      await app.start();
      const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
      executor.startMaster({
        lockName: 'EVERY-SECOND',
        initDelay: 0,
        masterJob: masterCron({cronTime: '* * * * * *'}, ctx => {
          firings.push({
            replica: ctx.instanceId,
            second: Math.floor(Date.now() / 1000),
            token: ctx.fencingToken,
          });
        }),
      });
      if (i === 0)
        await waitFor('a is master', () => executor.getMaster('EVERY-SECOND')!.isMaster, 3000);
    }
    await waitFor('three firings on a', () => firings.length >= 3, 5000);
    await apps[0].stop(); // graceful: b takes over at once
    const handedOverAt = firings.length;
    await waitFor('three firings on b', () => firings.length >= handedOverAt + 3, 6000);
    await apps[1].stop();
    expect(firings.slice(0, handedOverAt).every(f => f.replica === 'a')).to.be.true();
    expect(firings.slice(handedOverAt).every(f => f.replica === 'b')).to.be.true();
    const seconds = firings.map(f => f.second);
    expect(new Set(seconds).size).to.equal(seconds.length); // each second fired once in the cluster
    expect(firings[firings.length - 1].token).to.be.greaterThan(firings[0].token);
  });

  it('stops firing the moment mastership is lost', async () => {
    let fired = 0;
    const job = new (class extends MasterCronJob {
      onTick() {
        fired++;
      }
    })({cronTime: '* * * * * *'});
    const controller = new AbortController();
    job.start({lockName: 'X', instanceId: 'i', fencingToken: 1, signal: controller.signal});
    controller.abort(); // no stop() call needed: the signal stops the schedule
    await new Promise(resolve => setTimeout(resolve, 1100));
    expect(fired).to.equal(0);
  });
});
