// The component's binding keys. A leaf: it names contracts (interfaces) and
// the services by type only, and no module it names imports it back.

import {BindingKey, Component, CoreBindings, LifeCycleObserver} from '@loopback/core';
import {juggler} from '@loopback/repository';
import type {LockNotifier} from './wake/notifier';
import type {MasterControlService} from './services/master-control.service';
import type {MasterJobExecutor} from './services/master-job-executor';
import type {Dialect} from './store/dialect';
import type {LockStore} from './store/lock-store';
import type {Clock} from './types';

export namespace MasterJobExecutorBindings {
  /** The component; `app.configure(COMPONENT)` sets MasterJobExecutorConfig. */
  export const COMPONENT = BindingKey.create<Component & LifeCycleObserver>(
    `${CoreBindings.COMPONENTS}.MasterJobExecutorComponent`,
  );
  export const EXECUTOR = BindingKey.create<MasterJobExecutor>('services.MasterJobExecutor');
  /** Alias of `datasources.<dataSourceName>`. */
  export const DATASOURCE = BindingKey.create<juggler.DataSource>('masterJobExecutor.dataSource');
  /** What differs per database (chosen from the datasource's connector). */
  export const DIALECT = BindingKey.create<Dialect>('masterJobExecutor.dialect');
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
