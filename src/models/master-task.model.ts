import {Entity, model, property} from '@loopback/repository';
import {MAX_LOCK_NAME_LENGTH} from './limits';

/** Where a task is: waiting (perhaps for a retry), being run, or finished. */
export type TaskState = 'pending' | 'running' | 'done' | 'failed';

/** Characters of a task's idempotency key. */
export const MAX_TASK_KEY_LENGTH = 255;
/** Characters kept of a failed attempt's error. */
export const MAX_TASK_ERROR_LENGTH = 1000;

const DATE_MS = {type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}} as const;

/**
 * One task of a queue. The generated id is the submission order; the row is
 * kept once finished (done or failed), so a repeated submit of a key finds it.
 */
// Indexes are of one column each: loopback-connector-postgresql rewrites a
// model's multi-column index definitions in place, which then break MySQL's.
@model({name: 'MasterTask', settings: {strict: true}})
export class MasterTask extends Entity {
  @property({type: 'number', id: true, generated: true})
  id: number;

  @property({
    type: 'string',
    required: true,
    index: true,
    mysql: {dataType: 'varbinary', dataLength: 4 * MAX_LOCK_NAME_LENGTH},
    postgresql: {dataType: 'varchar', dataLength: MAX_LOCK_NAME_LENGTH},
  })
  queueName: string;

  @property({
    type: 'string',
    mysql: {dataType: 'varbinary', dataLength: 4 * MAX_TASK_KEY_LENGTH},
    postgresql: {dataType: 'varchar', dataLength: MAX_TASK_KEY_LENGTH},
  })
  key?: string;

  /**
   * queueName, U+001F, key: unique, so a key is submitted once per queue even
   * by replicas racing (rows without a key have none: NULLs never clash).
   */
  @property({
    type: 'string',
    index: {unique: true},
    mysql: {
      dataType: 'varbinary',
      dataLength: 4 * (MAX_LOCK_NAME_LENGTH + 1 + MAX_TASK_KEY_LENGTH),
    },
    postgresql: {dataType: 'varchar', dataLength: MAX_LOCK_NAME_LENGTH + 1 + MAX_TASK_KEY_LENGTH},
  })
  queueKey?: string;

  /** The submitted JSON value, as text (the same on every connector). */
  @property({
    type: 'string',
    required: true,
    mysql: {dataType: 'longtext'},
    postgresql: {dataType: 'text'},
  })
  payload: string;

  /** Indexed: the unfinished rows are few, whatever the finished ones grow to. */
  @property({
    type: 'string',
    required: true,
    index: true,
    mysql: {dataType: 'varchar', dataLength: 16},
  })
  state: TaskState;

  /** Attempts started so far (a crashed master's counts). */
  @property({type: 'number', required: true, default: 0})
  attempts: number;

  /** The token of the master that last claimed it: a lower one may no longer write. */
  @property({type: 'number', required: true, default: 0})
  fencingToken: number;

  /** A retry waits until then. */
  @property(DATE_MS)
  notBefore?: Date;

  @property({type: 'string', mysql: {dataType: 'text'}, postgresql: {dataType: 'text'}})
  lastError?: string;

  @property({...DATE_MS, required: true})
  submittedAt: Date;

  @property(DATE_MS)
  startedAt?: Date;

  @property(DATE_MS)
  finishedAt?: Date;

  constructor(data?: Partial<MasterTask>) {
    super(data);
  }
}
