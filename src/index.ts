// The public API of loopback4-master-job-executor: what an app imports. The
// README lists it; anything not exported here is internal.

// The component, its keys and configuration
export {MASTER_JOB_EXECUTOR_OBSERVER_GROUP, MasterJobExecutorComponent} from './component';
export {
  answerDatabaseUnavailable,
  DEFAULT_CONTROLLER_PATH,
} from './controllers/master-control.controller';
export {TIMING_DEFAULTS, TIMING_ENV_VARIABLES} from './election/timings';
export {MasterJobExecutorBindings} from './keys';
export {APP_CONFIG_SECTION} from './settings';
export * from './types';

// Services, jobs, models
export {asMasterJob, masterJob, MasterJobOptions} from './jobs/master-job.decorator';
export {CronContext, masterCron, MasterCronJob, MasterCronOptions} from './jobs/cron';
export {ExclusiveContext, LockBusyError, RunExclusiveOptions} from './jobs/exclusive';
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
export {
  StartQueueOptions,
  SubmitOptions,
  TaskContext,
  TaskHandler,
  TaskQueue,
  QueueStats,
  QueueStatus,
} from './queue/queue';
export {ControlResult, LockStatus, MasterControlService} from './services/master-control.service';
export {MasterJobExecutor} from './services/master-job-executor';

// Helpers
export {dataSourceConfigFromUrl} from './cli/database-url';

// Errors
export {TimeoutError} from './election/clock';
export {DatabaseUnavailableError} from './services/database-unavailable';
export {DataSourceStoppedError} from './store/datasource-state';
export {isDuplicate as isDuplicateKeyError} from './store/errors';

// Seams: replace the store or the notifier through their binding keys
export {WakeUp} from './wake/messages';
export {ChangeListener, LockNotifier} from './wake/notifier';
export {
  Acquired,
  ControlChange,
  ControlWrite,
  ControlWritten,
  FreedLock,
  LockObservation,
  LockRecord,
  LockStore,
  RenewResult,
} from './store/lock-store';
