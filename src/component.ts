import {
  Application,
  Binding,
  BindingScope,
  Component,
  config,
  ContextTags,
  CoreBindings,
  inject,
  injectable,
  Constructor,
  LifeCycleObserver,
} from '@loopback/core';
import {systemClock} from './clock';
import {defineMasterControlController} from './controllers/master-control.controller';
import {APP_CONFIG_SECTION, MasterJobExecutorBindings} from './keys';
import {MasterJobExecutor} from './master-job-executor';
import {MasterControlService} from './master-control.service';
import {exposeMetrics} from './metrics';
import {LockNotifierProvider} from './notifier';
import {MasterControl, MasterLock} from './models';
import {MasterControlRepository, MasterLockRepository} from './repositories';
import {RepositoryLockStore} from './repository-lock-store';
import {MasterJobExecutorConfig} from './types';

/**
 * Contributes the models, repositories and the executor service, and stops
 * every master (releasing its lock) when the app stops.
 */
@injectable({
  tags: {[ContextTags.KEY]: MasterJobExecutorBindings.COMPONENT},
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

  /** Resolves the executor so that bad configuration fails app.start(). */
  async start(): Promise<void> {
    const executor = await this.app.get(MasterJobExecutorBindings.EXECUTOR);
    if (!this.metricsExposed) this.metricsExposed = exposeMetrics(executor);
  }

  async stop(): Promise<void> {
    const executor = await this.app.get(MasterJobExecutorBindings.EXECUTOR, {
      optional: true,
    });
    await executor?.stopAll();
    const notifier = await this.app.get(MasterJobExecutorBindings.NOTIFIER, {
      optional: true,
    });
    await notifier?.close();
  }
}
