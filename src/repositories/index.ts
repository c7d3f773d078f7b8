export * from './master-control.repository';
export * from './master-lock.repository';
export * from './master-task.repository';
export * from './master-checkpoint.repository';
export * from './master-cron-run.repository';
