// `loopback4-master-job-executor/extension`: what the author of a store, a
// notifier or a tool around the package needs, beside the public API of
// index.ts: the storage contract and its records, the wake-up transport, the
// clock, the component's tables, and the helpers and constants the component
// itself uses. These change with the storage protocol; an app that only runs
// jobs never imports them.

// Storage: replace it through MasterJobExecutorBindings.LOCK_STORE
export type {
  Acquired,
  ControlChange,
  ControlRecord,
  ControlStore,
  ControlWrite,
  ControlWritten,
  ElectionStore,
  FreedLock,
  GroupStore,
  LockObservation,
  LockRecord,
  LockStore,
  RenewResult,
} from './store/lock-store';
export {isDuplicate as isDuplicateKeyError} from './store/errors';
export {DataSourceStoppedError} from './store/datasource-state';

// Wake-ups: replace them through MasterJobExecutorBindings.NOTIFIER
export type {ChangeListener, LockNotifier} from './wake/notifier';
export type {WakeUp} from './wake/messages';

// Time: replace it through MasterJobExecutorBindings.CLOCK
export type {Clock, TimerHandle} from './types';
export {TimeoutError} from './clock';

// The component's tables
export {
  MasterCheckpoint,
  MasterControl,
  MasterCronRun,
  MasterLock,
  MasterTask,
  TaskState,
} from './models';
export {
  MasterCheckpointRepository,
  MasterControlRepository,
  MasterCronRunRepository,
  MasterLockRepository,
  MasterTaskRepository,
} from './repositories';

// Defaults, names and helpers
export {TIMING_DEFAULTS, TIMING_ENV_VARIABLES} from './election/timings';
export {
  answerDatabaseUnavailable,
  DEFAULT_CONTROLLER_PATH,
} from './controllers/master-control.controller';
export {APP_CONFIG_SECTION} from './settings';
export {dataSourceConfigFromUrl} from './cli/database-url';
