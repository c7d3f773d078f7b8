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
  extensions,
  LifeCycleObserver,
} from '@loopback/core';
import {Class, juggler, Model, Repository} from '@loopback/repository';
import {asSpecEnhancer} from '@loopback/rest';
import debugFactory from 'debug';
import {
  defineMasterControlController,
  ENDPOINT_GROUP_OF,
  MasterControlControllerClass,
  optionalAuthentication,
} from './controllers/master-control.controller';
import {MasterControlsSpecEnhancer} from './controllers/openapi';
import {sleep, systemClock} from './clock';
import {
  MASTER_JOB_EXTENSION_POINT,
  MASTER_JOB_OPTIONS_TAG,
  MasterJobOptions,
} from './jobs/master-job.decorator';
import {MasterJobExecutorBindings} from './keys';
import {MasterCheckpoint, MasterControl, MasterCronRun, MasterLock, MasterTask} from './models';
import {exposeMetrics, unexposeMetrics} from './observability/metrics';
import {
  DialectProvider,
  LockNotifierProvider,
  LockStoreProvider,
  MasterControlServiceProvider,
  MasterJobExecutorProvider,
} from './providers';
import {
  MasterCheckpointRepository,
  MasterControlRepository,
  MasterCronRunRepository,
  MasterLockRepository,
  MasterTaskRepository,
} from './repositories';
import {MasterJobExecutor} from './services/master-job-executor';
import {APP_CONFIG_SECTION, resolveAuthentication, resolveMigrationLock} from './settings';
import {reopen} from './store/datasource-state';
import {guardDataSource} from './store/datasource-guard';
import {wrapMigrations} from './store/migration-lock';
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
  // Typed as RepositoryMixin reads them: an inferred union's order is not stable between builds.
  models: Class<Model>[] = [MasterLock, MasterControl, MasterTask, MasterCheckpoint, MasterCronRun];
  repositories: Class<Repository<Model>>[] = [
    MasterLockRepository,
    MasterControlRepository,
    MasterTaskRepository,
    MasterCheckpointRepository,
    MasterCronRunRepository,
  ];
  bindings: Binding[];
  controllers: Constructor<unknown>[] = [];
  private readonly controller: MasterControlControllerClass | undefined;
  /** The settings the routes were made with: the path is fixed once mounted. */
  private readonly mountedWith: Pick<MasterJobExecutorConfig, 'controllerPath' | 'mountController'>;
  private metricsExposed = false;
  /** The executor this component started, until it stops. */
  private running: MasterJobExecutor | undefined;
  private watchingState = false;

  constructor(
    @inject(CoreBindings.APPLICATION_INSTANCE)
    private readonly app: Application,
    @config() componentConfig: MasterJobExecutorConfig = {},
    @extensions.view() private readonly jobs?: ContextView<MasterJob>,
  ) {
    const settings = {...appSection(app), ...componentConfig};
    const {controllerPath, mountController} = settings;
    this.mountedWith = {controllerPath, mountController};
    this.bindings = [
      // Resolved when first used, so app.configure() may come after app.component().
      Binding.bind(MasterJobExecutorBindings.DATASOURCE).toDynamicValue(async () => {
        const current = await this.settings();
        const dataSource = await this.app.get<juggler.DataSource>(
          `datasources.${dataSourceNameOf(current)}`,
        );
        // Before any call of ours: the dialect's guards (pool errors) and the
        // migration lock (app.migrateSchema() resolves the repositories first).
        guardDataSource(dataSource);
        wrapMigrations(dataSource, {lock: resolveMigrationLock(current)});
        return dataSource;
      }),
      Binding.bind(MasterJobExecutorBindings.DIALECT)
        .toProvider(DialectProvider)
        .inScope(BindingScope.SINGLETON),
      Binding.bind(MasterJobExecutorBindings.LOCK_STORE)
        .toProvider(LockStoreProvider)
        .inScope(BindingScope.SINGLETON),
      Binding.bind(MasterJobExecutorBindings.CLOCK).to(systemClock),
      Binding.bind(MasterJobExecutorBindings.NOTIFIER)
        .toProvider(LockNotifierProvider)
        .inScope(BindingScope.SINGLETON),
      Binding.bind(MasterJobExecutorBindings.EXECUTOR)
        .toProvider(MasterJobExecutorProvider)
        .inScope(BindingScope.SINGLETON),
      Binding.bind(MasterJobExecutorBindings.CONTROL_SERVICE)
        .toProvider(MasterControlServiceProvider)
        .inScope(BindingScope.SINGLETON),
    ];
    // Bad settings fail app.component() at once.
    dataSourceNameOf(settings);
    resolveMigrationLock(settings);
    this.placeObserverGroupOnInit();
    if (mountController !== false) {
      const controller = defineMasterControlController({basePath: controllerPath});
      this.controller = controller;
      this.controllers.push(controller);
      this.bindings.push(
        Binding.bind('masterJobExecutor.openApiSpecEnhancer')
          .to(
            new MasterControlsSpecEnhancer(
              operation => !!controller.protection[ENDPOINT_GROUP_OF[operation]],
            ),
          )
          .apply(asSpecEnhancer),
      );
    }
  }

  /** The component configuration over the application config section, as configured now. */
  private async settings(): Promise<MasterJobExecutorConfig> {
    const configured = await this.app.getConfig<MasterJobExecutorConfig>(
      MasterJobExecutorBindings.COMPONENT,
    );
    return {...appSection(this.app), ...configured};
  }

  /**
   * Protects the controller as configured now, whether app.configure() came
   * before or after app.component().
   */
  async init(): Promise<void> {
    await this.protectController();
  }

  /** Fails closed: protection asked for but impossible is a startup error. */
  private async protectController(): Promise<void> {
    const settings = await this.settings();
    for (const key of ['controllerPath', 'mountController'] as const) {
      if (settings[key] !== this.mountedWith[key]) {
        throw new Error(
          `masterJobExecutor ${key} was configured after app.component(MasterJobExecutorComponent): ` +
            'the routes are made when the component is added, so configure it before',
        );
      }
    }
    const groups = resolveAuthentication(settings.controllerAuthentication);
    if (!this.controller) return;
    if (Object.keys(groups).length && !optionalAuthentication()) {
      throw new Error(
        'masterJobExecutor controllerAuthentication needs @loopback/authentication: install it ' +
          'and add AuthenticationComponent to the app',
      );
    }
    if (Object.keys(groups).length && !this.app.isBound(AUTHENTICATION_METADATA)) {
      throw new Error(
        'masterJobExecutor controllerAuthentication is set but AuthenticationComponent is not ' +
          'mounted: app.component(AuthenticationComponent), or the control endpoints would be open',
      );
    }
    this.controller.protect(groups);
  }

  /**
   * An app that orders the `datasource` group itself gets ours right after
   * it. Done as the app begins to initialize: the datasources are bound by
   * then (boot), and the registry has not yet sorted its observers, which it
   * does once, so the order is set before it matters.
   */
  private placeObserverGroupOnInit(): void {
    this.app.on('stateChanged', ({to}: {to: string}) => {
      if (to !== 'initializing') return;
      const registry = this.app.getSync(CoreBindings.LIFE_CYCLE_OBSERVER_REGISTRY);
      const groups = registry.getObserverGroupsByOrder().map(g => g.group);
      const ordered = placeAfterDataSources(groups);
      if (ordered) registry.setOrderedGroups(ordered);
    });
  }

  /** Resolves the executor so that bad configuration fails app.start(). */
  async start(): Promise<void> {
    await this.checkStrategies();
    const dataSource = await this.app.get(MasterJobExecutorBindings.DATASOURCE, {optional: true});
    if (dataSource) {
      await reopen(dataSource);
      await this.refuseReadOnly(dataSource);
    }
    const executor = await this.app.get(MasterJobExecutorBindings.EXECUTOR);
    if (!this.metricsExposed) this.metricsExposed = exposeMetrics(executor);
    this.running = executor;
    this.stepDownWhenStopping();
    await this.startClassJobs(executor);
  }

  /**
   * A server that takes no writes (a standby the address points at after a
   * wrong failover) fails the start, saying so; one that does not answer
   * does not: the elections wait for it.
   */
  private async refuseReadOnly(dataSource: juggler.DataSource): Promise<void> {
    const dialect = await this.app.get(MasterJobExecutorBindings.DIALECT);
    const clock = await this.app.get(MasterJobExecutorBindings.CLOCK);
    const gaveUp = new AbortController();
    const asked = dialect.readOnly(dataSource).catch(err => {
      debug('could not ask whether the database takes writes: %s', err?.message ?? err);
      return undefined;
    });
    const why = await Promise.race([
      asked,
      sleep(clock, READ_ONLY_CHECK_WAIT, gaveUp.signal).then(() => undefined),
    ]).finally(() => gaveUp.abort());
    if (why) {
      throw new Error(
        `masterJobExecutor: datasource "${dataSource.name}" takes no writes: ${why}. ` +
          'No lock can be won or renewed there: point the datasource at the primary',
      );
    }
  }

  /**
   * LoopBack stops the observers group by group, and the app's groups that
   * sort after ours (an `lb4 observer` named so) stop before it, however long
   * they take: the masters step down (jobs stopped, locks handed over) as soon
   * as the app starts stopping instead. stop() waits for that same step-down.
   */
  private stepDownWhenStopping(): void {
    if (this.watchingState) return;
    this.watchingState = true;
    this.app.on('stateChanged', ({to}: {to: string}) => {
      if (to !== 'stopping' || !this.running) return;
      this.running.stopAll().catch(err => debug('stepping down on stopping failed: %s', err));
    });
  }

  /** Every strategy controllerAuthentication names is registered (by now, they all are). */
  private async checkStrategies(): Promise<void> {
    const wanted = new Set(Object.values(this.controller?.protection ?? {}).flat());
    if (!wanted.size) return;
    const registered = new Set<string>();
    for (const binding of this.app.findByTag({extensionFor: AUTHENTICATION_STRATEGIES})) {
      const strategy = await this.app.get<{name?: string}>(binding.key);
      if (strategy?.name) registered.add(strategy.name);
    }
    const missing = [...wanted].filter(name => !registered.has(name));
    if (missing.length) {
      throw new Error(
        `masterJobExecutor controllerAuthentication names strategy ${missing.join(', ')}, but no ` +
          `AuthenticationStrategy of that name is registered (registered: ${[...registered].join(', ') || 'none'}); ` +
          'use registerAuthenticationStrategy(app, ...)',
      );
    }
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
    this.running = undefined;
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

/** How long app.start() asks the database whether it takes writes before it goes on. */
const READ_ONLY_CHECK_WAIT = 5000;

/** Keys of @loopback/authentication, by name: the component does not depend on it. */
const AUTHENTICATION_METADATA = 'authentication.operationMetadata';
const AUTHENTICATION_STRATEGIES = 'authentication.strategies';

function appSection(app: Application): MasterJobExecutorConfig {
  return (
    (app.options as Record<string, MasterJobExecutorConfig | undefined>)[APP_CONFIG_SECTION] ?? {}
  );
}

function dataSourceNameOf(settings: MasterJobExecutorConfig): string {
  const name = settings.dataSourceName ?? 'db';
  if (typeof name !== 'string' || !name) {
    throw new Error('masterJobExecutor dataSourceName must be a non-empty string');
  }
  return name;
}

/**
 * Given the observer groups as LoopBack sorts them now (the groups it has no
 * order for first, by name, then the ordered ones), the order that puts ours
 * right after `datasource`, or undefined when it is there already. Named
 * groups, ours among them, sort after `datasource`: ours comes before it only
 * when the app ordered `datasource`. Every other group keeps its place, now
 * as an ordered group.
 */
export function placeAfterDataSources(groups: string[]): string[] | undefined {
  const ours = groups.indexOf(MASTER_JOB_EXECUTOR_OBSERVER_GROUP);
  const dataSources = groups.indexOf('datasource');
  if (ours === -1 || dataSources === -1 || ours > dataSources) return undefined;
  const others = groups.filter(g => g !== '' && g !== MASTER_JOB_EXECUTOR_OBSERVER_GROUP);
  const at = others.indexOf('datasource') + 1;
  return [...others.slice(0, at), MASTER_JOB_EXECUTOR_OBSERVER_GROUP, ...others.slice(at)];
}
