// The public API of loopback4-master-job-executor: what an app imports (at
// most 40 names, checked by the API report in api-report/). What a store or
// notifier author needs is in ./extension (`loopback4-master-job-executor/extension`);
// anything else is internal.

// The component, its keys and its configuration
export {MASTER_JOB_EXECUTOR_OBSERVER_GROUP, MasterJobExecutorComponent} from './component';
export {MasterJobExecutorBindings} from './keys';
export type {ControllerAuthentication, ElectionTimings, MasterJobExecutorConfig} from './types';

// Masters: a job, its options, its handle
export {MasterJobExecutor} from './services/master-job-executor';
export type {
  Master,
  MasterJob,
  MasterJobContext,
  MasterState,
  MasterStatus,
  StartMasterOptions,
  StopReason,
} from './types';
export {asMasterJob, masterJob} from './jobs/master-job.decorator';
export type {MasterJobOptions} from './jobs/master-job.decorator';

// Cron, exclusive runs, groups, queues
export {masterCron, MasterCronJob} from './jobs/cron';
export type {CronContext, MasterCronOptions} from './jobs/cron';
export type {CronStatus, GroupMember, GroupStatus, MasterGroup, StartGroupOptions} from './types';
export {LockBusyError} from './jobs/exclusive';
export type {ExclusiveContext, RunExclusiveOptions} from './jobs/exclusive';
export type {
  QueueStats,
  QueueStatus,
  StartQueueOptions,
  SubmitOptions,
  TaskContext,
  TaskHandler,
  TaskQueue,
} from './queue/queue';

// Operating: disable, enable and status from code; the error a REST call answers 503 with
export {MasterControlService} from './services/master-control.service';
export type {ControlResult, LockStatus} from './services/master-control.service';
export {DatabaseUnavailableError} from './store/database-unavailable';
