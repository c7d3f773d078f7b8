// How the component's services are made: each provider injects what its
// service needs, so the services themselves are plain classes. The dialect
// comes from the datasource's connector (store/dialects.ts), and with it the
// notifier and the LockStore.

import {BindingScope, config, CoreBindings, inject, injectable, Provider} from '@loopback/core';
import {juggler, repository} from '@loopback/repository';
import {MasterJobExecutorBindings} from './keys';
import {LockNotifier} from './wake/notifier';
import {
  MasterCheckpointRepository,
  MasterCronRunRepository,
  MasterControlRepository,
  MasterLockRepository,
  MasterTaskRepository,
} from './repositories';
import {MasterControlService} from './services/master-control.service';
import {MasterJobExecutor} from './services/master-job-executor';
import {APP_CONFIG_SECTION, resolveListenUrl} from './settings';
import {Dialect} from './store/dialect';
import {RepositoryCheckpointStore} from './store/checkpoint-store';
import {RepositoryCronRunStore} from './store/cron-run-store';
import {dialectOf} from './store/dialects';
import {LockStore} from './store/lock-store';
import {RepositoryTaskStore} from './store/task-store';
import {Clock, MasterJobExecutorConfig} from './types';

@injectable({scope: BindingScope.SINGLETON})
export class DialectProvider implements Provider<Dialect> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    private readonly dataSource: juggler.DataSource,
  ) {}

  value(): Dialect {
    return dialectOf(this.dataSource);
  }
}

@injectable({scope: BindingScope.SINGLETON})
export class LockNotifierProvider implements Provider<LockNotifier> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    private readonly dataSource: juggler.DataSource,
    @inject(MasterJobExecutorBindings.DIALECT)
    private readonly dialect: Dialect,
    @inject(MasterJobExecutorBindings.CLOCK)
    private readonly clock: Clock,
    @config({fromBinding: MasterJobExecutorBindings.COMPONENT})
    private readonly componentConfig: MasterJobExecutorConfig = {},
    @inject(CoreBindings.APPLICATION_CONFIG, {optional: true})
    private readonly appConfig: {[APP_CONFIG_SECTION]?: MasterJobExecutorConfig} = {},
  ) {}

  value(): LockNotifier {
    const section = this.appConfig?.[APP_CONFIG_SECTION] ?? {};
    const listenUrl = resolveListenUrl(process.env, this.componentConfig, section);
    return this.dialect.createNotifier(this.dataSource, {clock: this.clock, listenUrl});
  }
}

@injectable({scope: BindingScope.SINGLETON})
export class LockStoreProvider implements Provider<LockStore> {
  constructor(
    @repository(MasterLockRepository)
    private readonly locks: MasterLockRepository,
    @repository(MasterControlRepository)
    private readonly controls: MasterControlRepository,
    @inject(MasterJobExecutorBindings.DIALECT)
    private readonly dialect: Dialect,
    @inject(MasterJobExecutorBindings.CLOCK)
    private readonly clock: Clock,
    @inject(MasterJobExecutorBindings.NOTIFIER, {optional: true})
    private readonly notifier?: LockNotifier,
  ) {}

  value(): LockStore {
    return this.dialect.createLockStore(
      {locks: this.locks, controls: this.controls},
      this.notifier,
      this.clock,
    );
  }
}

@injectable({scope: BindingScope.SINGLETON})
export class MasterJobExecutorProvider implements Provider<MasterJobExecutor> {
  constructor(
    @inject(MasterJobExecutorBindings.LOCK_STORE)
    private readonly store: LockStore,
    @inject(MasterJobExecutorBindings.CLOCK)
    private readonly clock: Clock,
    @config({fromBinding: MasterJobExecutorBindings.COMPONENT})
    private readonly componentConfig: MasterJobExecutorConfig = {},
    @inject(CoreBindings.APPLICATION_CONFIG, {optional: true})
    private readonly appConfig: {[APP_CONFIG_SECTION]?: MasterJobExecutorConfig} = {},
    @repository(MasterTaskRepository)
    private readonly tasks: MasterTaskRepository,
    @repository(MasterCheckpointRepository)
    private readonly checkpoints: MasterCheckpointRepository,
    @repository(MasterCronRunRepository)
    private readonly cronRuns: MasterCronRunRepository,
    @inject(MasterJobExecutorBindings.DATASOURCE)
    private readonly dataSource: juggler.DataSource,
    @inject(MasterJobExecutorBindings.DIALECT)
    private readonly dialect: Dialect,
    @inject(MasterJobExecutorBindings.NOTIFIER, {optional: true})
    private readonly notifier?: LockNotifier,
  ) {}

  value(): MasterJobExecutor {
    return new MasterJobExecutor({
      store: this.store,
      clock: this.clock,
      config: this.componentConfig,
      appConfig: this.appConfig,
      notifier: this.notifier,
      tasks: new RepositoryTaskStore(this.tasks, this.clock),
      checkpoints: new RepositoryCheckpointStore(this.checkpoints, this.clock),
      cronRuns: new RepositoryCronRunStore(this.cronRuns, this.clock),
      database: {dataSource: this.dataSource, dialect: this.dialect},
    });
  }
}

@injectable({scope: BindingScope.SINGLETON})
export class MasterControlServiceProvider implements Provider<MasterControlService> {
  constructor(
    @inject(MasterJobExecutorBindings.EXECUTOR)
    private readonly executor: MasterJobExecutor,
    @inject(MasterJobExecutorBindings.LOCK_STORE)
    private readonly store: LockStore,
    @inject(MasterJobExecutorBindings.DATASOURCE)
    private readonly dataSource: juggler.DataSource,
    @inject(MasterJobExecutorBindings.DIALECT)
    private readonly dialect: Dialect,
    @inject(MasterJobExecutorBindings.CLOCK)
    private readonly clock: Clock,
  ) {}

  value(): MasterControlService {
    const {executor, store, dataSource, dialect, clock} = this;
    return new MasterControlService({executor, store, dataSource, dialect, clock});
  }
}
