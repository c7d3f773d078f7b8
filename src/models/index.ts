export * from './master-control.model';
export * from './master-lock.model';
export * from './limits';
export * from './master-task.model';
export * from './master-checkpoint.model';
export * from './master-cron-run.model';
