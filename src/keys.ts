import {BindingKey, CoreBindings} from '@loopback/core';
import {juggler} from '@loopback/repository';
import type {Clock} from './clock';
import type {MasterJobExecutorComponent} from './component';
import type {LockStore} from './lock-store';
import type {LockNotifier} from './notifier';
import type {MasterJobExecutor} from './master-job-executor';
import type {MasterControlService} from './master-control.service';

export namespace MasterJobExecutorBindings {
  /** The component; `app.configure(COMPONENT)` sets MasterJobExecutorConfig. */
  export const COMPONENT = BindingKey.create<MasterJobExecutorComponent>(
    `${CoreBindings.COMPONENTS}.MasterJobExecutorComponent`,
  );
  export const EXECUTOR = BindingKey.create<MasterJobExecutor>('services.MasterJobExecutor');
  /** Alias of `datasources.<dataSourceName>`. */
  export const DATASOURCE = BindingKey.create<juggler.DataSource>('masterJobExecutor.dataSource');
  /** Where locks and controls live; replaceable, e.g. by a test double. */
  export const LOCK_STORE = BindingKey.create<LockStore>('masterJobExecutor.lockStore');
  /** Disable/enable/status, used by the controller; usable from code too. */
  export const CONTROL_SERVICE = BindingKey.create<MasterControlService>(
    'services.MasterControlService',
  );
  /** Wakes other replicas on release/disable/enable (LISTEN/NOTIFY on PostgreSQL). */
  export const NOTIFIER = BindingKey.create<LockNotifier>('masterJobExecutor.notifier');
  export const CLOCK = BindingKey.create<Clock>('masterJobExecutor.clock');
}

/** Name of the application config section (`new App({masterJobExecutor: {...}})`). */
export const APP_CONFIG_SECTION = 'masterJobExecutor';
