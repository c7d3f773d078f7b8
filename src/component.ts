import {
  Application,
  Binding,
  BindingScope,
  Component,
  config,
  ContextTags,
  CoreBindings,
  inject,
  Constructor,
  ContextView,
  CoreTags,
  extensionPoint,
  LifeCycleObserverRegistry,
  extensions,
  LifeCycleObserver,
} from '@loopback/core';
import debugFactory from 'debug';
import {systemClock} from './clock';
import {reopen} from './datasource-guard';
import {MASTER_JOB_EXTENSION_POINT, MASTER_JOB_OPTIONS_TAG, MasterJobOptions} from './decorators';
import {defineMasterControlController} from './controllers/master-control.controller';
import {APP_CONFIG_SECTION, MasterJobExecutorBindings} from './keys';
import {MasterJobExecutor} from './master-job-executor';
import {MasterControlService} from './master-control.service';
import {exposeMetrics, unexposeMetrics} from './metrics';
import {LockNotifierProvider} from './notifier';
import {MasterControl, MasterLock} from './models';
import {MasterControlRepository, MasterLockRepository} from './repositories';
import {RepositoryLockStore} from './repository-lock-store';
import {MasterJob, MasterJobExecutorConfig} from './types';

const debug = debugFactory('loopback:master-job-executor:component');

/**
 * The component's lifecycle observer group. LoopBack starts groups it has no
 * order for first, alphabetically, and `server` last (stopping in reverse):
 * this name sorts after `datasource`, the group of a datasource made by
 * `lb4 datasource`, so the jobs start once the datasources are up and release
 * their locks before the datasources disconnect.
 */
export const MASTER_JOB_EXECUTOR_OBSERVER_GROUP = 'masterJobExecutor';

/**
 * Contributes the models, repositories, controller and the executor service.
 * It is also the extension point of class-based master jobs (`@masterJob`):
 * it starts them when the app starts, and stops every master (releasing its
 * lock) when the app stops.
 */
@extensionPoint(MASTER_JOB_EXTENSION_POINT, {
  tags: {
    [ContextTags.KEY]: MasterJobExecutorBindings.COMPONENT,
    [CoreTags.LIFE_CYCLE_OBSERVER_GROUP]: MASTER_JOB_EXECUTOR_OBSERVER_GROUP,
  },
})
export class MasterJobExecutorComponent implements Component, LifeCycleObserver {
  models = [MasterLock, MasterControl];
  repositories = [MasterLockRepository, MasterControlRepository];
  bindings: Binding[];
  controllers: Constructor<unknown>[] = [];
  private metricsExposed = false;

  constructor(
    @inject(CoreBindings.APPLICATION_INSTANCE)
    private readonly app: Application,
    @config() componentConfig: MasterJobExecutorConfig = {},
    @extensions.view() private readonly jobs?: ContextView<MasterJob>,
  ) {
    const section: MasterJobExecutorConfig =
      (app.options as Record<string, MasterJobExecutorConfig | undefined>)[APP_CONFIG_SECTION] ??
      {};
    const settings = {...section, ...componentConfig};
    const dataSourceName = settings.dataSourceName ?? 'db';
    if (typeof dataSourceName !== 'string' || !dataSourceName) {
      throw new Error('masterJobExecutor dataSourceName must be a non-empty string');
    }
    this.bindings = [
      Binding.bind(MasterJobExecutorBindings.DATASOURCE).toAlias(`datasources.${dataSourceName}`),
      Binding.bind(MasterJobExecutorBindings.LOCK_STORE).toClass(RepositoryLockStore),
      Binding.bind(MasterJobExecutorBindings.CLOCK).to(systemClock),
      Binding.bind(MasterJobExecutorBindings.NOTIFIER)
        .toProvider(LockNotifierProvider)
        .inScope(BindingScope.SINGLETON),
      Binding.bind(MasterJobExecutorBindings.EXECUTOR)
        .toClass(MasterJobExecutor)
        .inScope(BindingScope.SINGLETON),
      Binding.bind(MasterJobExecutorBindings.CONTROL_SERVICE).toClass(MasterControlService),
    ];
    if (settings.mountController !== false) {
      this.controllers.push(
        defineMasterControlController({
          basePath: settings.controllerPath,
          authenticate: settings.controllerAuthentication,
        }),
      );
    }
  }

  /** An app that orders the `datasource` group itself gets ours right after it. */
  async init(): Promise<void> {
    const registry = await this.app.get<LifeCycleObserverRegistry>(
      CoreBindings.LIFE_CYCLE_OBSERVER_REGISTRY,
    );
    const internals = registry as unknown as {
      options: {orderedGroups?: string[]};
      observersView?: {refresh(): void};
    };
    const ordered = internals.options.orderedGroups;
    const groups = placeAfterDataSources(ordered ?? []);
    if (groups === ordered) return;
    registry.setOrderedGroups(groups);
    // The registry sorts the view's cached bindings in place but pairs them
    // with values cached in the old order: refresh both, or each group's
    // event would reach another group's observer.
    internals.observersView?.refresh();
  }

  /** Resolves the executor so that bad configuration fails app.start(). */
  async start(): Promise<void> {
    const dataSource = await this.app.get(MasterJobExecutorBindings.DATASOURCE, {optional: true});
    if (dataSource) await reopen(dataSource);
    const executor = await this.app.get(MasterJobExecutorBindings.EXECUTOR);
    if (!this.metricsExposed) this.metricsExposed = exposeMetrics(executor);
    await this.startClassJobs(executor);
  }

  /** Starts every `@masterJob` binding not started yet; options from the tag, then configure(). */
  private async startClassJobs(executor: MasterJobExecutor): Promise<void> {
    for (const binding of this.jobs?.bindings ?? []) {
      const configured = await this.app.getConfig<Partial<MasterJobOptions>>(binding.key);
      const options = {
        ...binding.tagMap[MASTER_JOB_OPTIONS_TAG],
        ...configured,
      } as MasterJobOptions;
      if (!options.lockName) {
        throw new Error(`Master job ${binding.key} has no lockName: use @masterJob({lockName})`);
      }
      if (executor.getMaster(options.lockName)) continue;
      const job = await this.app.get<MasterJob>(binding.key);
      debug('starting class job %s as master of %s', binding.key, options.lockName);
      executor.startMaster({...options, masterJob: job});
    }
  }

  async stop(): Promise<void> {
    const executor = await this.app.get(MasterJobExecutorBindings.EXECUTOR, {
      optional: true,
    });
    await executor?.stopAll();
    if (executor) unexposeMetrics(executor);
    this.metricsExposed = false;
    const notifier = await this.app.get(MasterJobExecutorBindings.NOTIFIER, {
      optional: true,
    });
    await notifier?.close();
    // A stopped executor and a closed notifier stay so: a restarted app
    // (app.stop(); app.start()) resolves fresh ones, and starts its jobs again.
    for (const key of [MasterJobExecutorBindings.EXECUTOR, MasterJobExecutorBindings.NOTIFIER]) {
      if (this.app.isBound(key)) this.app.getBinding(key).refresh(this.app);
    }
  }
}

/**
 * Where `datasource` is an ordered group, an unordered one (ours) would start
 * before it: insert ours after it. Otherwise the alphabetical order holds.
 * Returns `groups` itself when nothing changes.
 */
export function placeAfterDataSources(groups: string[]): string[] {
  const at = groups.indexOf('datasource');
  if (at === -1 || groups.includes(MASTER_JOB_EXECUTOR_OBSERVER_GROUP)) return groups;
  return [...groups.slice(0, at + 1), MASTER_JOB_EXECUTOR_OBSERVER_GROUP, ...groups.slice(at + 1)];
}
