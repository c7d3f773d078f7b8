// In an app shaped as `lb4 app` + `lb4 datasource` make it, the datasource is
// a lifecycle observer of group `datasource`. The component must start after
// it and stop before it, with no configuration, so that app.stop() (and
// LoopBack's SIGTERM handling) releases the locks while the datasource is up.

import {
  CoreBindings,
  inject,
  lifeCycleObserver,
  LifeCycleObserver,
  LifeCycleObserverOptions,
} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {expect} from '@loopback/testlab';
import {
  MASTER_JOB_EXECUTOR_OBSERVER_GROUP,
  MasterJobExecutorBindings,
  MasterJobExecutorComponent,
} from '../../src';
import {waitFor} from '../../cluster-kit';
import {placeAfterDataSources} from '../../src/component';
import {RepositoryLockStore} from '../../src/store/repository-lock-store';

const EVENTS = 'test.lifecycleEvents';

@lifeCycleObserver('datasource')
class DbDataSource extends juggler.DataSource implements LifeCycleObserver {
  static dataSourceName = 'db';
  constructor(@inject(EVENTS) private readonly events: string[]) {
    super({name: 'db', connector: 'memory'});
  }
  start() {
    this.events.push('datasource start');
  }
  stop() {
    this.events.push('datasource stop');
    return this.disconnect();
  }
}

/** The real store, recording when a release has landed. */
class RecordingLockStore extends RepositoryLockStore {
  @inject(EVENTS) events: string[];
  async release(lockName: string, instanceId: string, token: number, handOver?: boolean) {
    const released = await super.release(lockName, instanceId, token, handOver);
    this.events.push(`released ${released}`);
    return released;
  }
}

/**
 * An observer of the app's that takes long to stop (a consumer draining its
 * messages), in a group LoopBack stops before ours (it sorts after it): until
 * the lock is released, or 3 s.
 */
@lifeCycleObserver('webhooks')
class SlowObserver implements LifeCycleObserver {
  constructor(@inject(EVENTS) private readonly events: string[]) {}
  async stop() {
    await waitFor('release', () => this.events.includes('released true'), 3000).catch(() => {});
    this.events.push('webhooks stopped');
  }
}

class CliShapedApp extends RepositoryMixin(RestApplication) {}

async function runApp(orderedGroups?: string[], slowObserver = false): Promise<string[]> {
  const events: string[] = [];
  const app = new CliShapedApp({rest: {port: 0, host: '127.0.0.1'}});
  app.bind(EVENTS).to(events);
  if (slowObserver) app.lifeCycleObserver(SlowObserver);
  if (orderedGroups) {
    app
      .bind(CoreBindings.LIFE_CYCLE_OBSERVER_OPTIONS)
      .to({orderedGroups, parallel: true} as LifeCycleObserverOptions);
  }
  app.dataSource(DbDataSource);
  app.configure(MasterJobExecutorBindings.COMPONENT).to({
    initDelay: 0,
    checkMasterInterval: 100,
    heartbeatInterval: 50,
    leaseDuration: 300,
  });
  app.component(MasterJobExecutorComponent);
  app.bind(MasterJobExecutorBindings.LOCK_STORE).toClass(RecordingLockStore);
  await app.migrateSchema();
  await app.start();
  const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
  const master = executor.startMaster({
    lockName: 'LIFECYCLE',
    masterJob: {
      start: () => {
        events.push('job start');
      },
      stop: () => {
        events.push('job stop');
      },
    },
  });
  await waitFor('mastership', () => master.isMaster, 3000);
  const registry = await app.get(CoreBindings.LIFE_CYCLE_OBSERVER_REGISTRY);
  const groups = registry.getObserverGroupsByOrder().map(g => g.group);
  events.push(`started in order: ${groups.filter(g => g !== '').join(', ')}`);
  await app.stop();
  return events;
}

describe('lifecycle order in a CLI-shaped app', () => {
  const expected = [
    'datasource start',
    'job start',
    `started in order: ${['server', 'datasource', MASTER_JOB_EXECUTOR_OBSERVER_GROUP].join(', ')}`,
    'job stop',
    'released true',
    'datasource stop',
  ];

  it('starts after the datasource and releases before it disconnects, with no configuration', async () => {
    expect(await runApp()).to.deepEqual(expected);
  });

  it('does so when the app orders the datasource group itself', async () => {
    expect(await runApp(['datasource', 'server'])).to.deepEqual(expected);
  });

  it('hands the locks over as soon as the app starts stopping, not after the observers stopped before it', async () => {
    const events = await runApp(undefined, true);
    const at = (event: string) => events.indexOf(event);
    expect(at('job stop')).to.be.greaterThan(at('job start'));
    expect(at('released true')).to.be.greaterThan(at('job stop'));
    expect(at('webhooks stopped')).to.be.greaterThan(at('released true'));
    expect(at('datasource stop')).to.be.greaterThan(at('webhooks stopped'));
  });

  it('places its group after datasource only where datasource is ordered', () => {
    const group = MASTER_JOB_EXECUTOR_OBSERVER_GROUP;
    // unordered, LoopBack sorts groups by name: ours comes after `datasource`
    expect(group > 'datasource').to.be.true();
    expect(placeAfterDataSources(['', 'datasource', group, 'server'])).to.be.undefined();
    expect(placeAfterDataSources(['', 'webhooks', group, 'datasource', 'server'])).to.deepEqual([
      'webhooks',
      'datasource',
      group,
      'server',
    ]);
    // every other group keeps its place, now ordered
    expect(placeAfterDataSources([group, 'zeta', 'datasource', 'server'])).to.deepEqual([
      'zeta',
      'datasource',
      group,
      'server',
    ]);
    expect(placeAfterDataSources(['datasource', 'server'])).to.be.undefined();
  });
});
