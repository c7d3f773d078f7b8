import {Entity, model, property} from '@loopback/repository';
import {MAX_LOCK_NAME_LENGTH} from './limits';

/**
 * One occurrence of a cron schedule, claimed by the master that fires it:
 * the id (lock name and scheduled time) is unique, so an occurrence is
 * claimed, and fired, once in the cluster.
 */
@model({name: 'MasterCronRun', settings: {strict: true}})
export class MasterCronRun extends Entity {
  /** `<lockName>` U+001F `<scheduledAt, ISO>`. */
  @property({
    type: 'string',
    id: true,
    generated: false,
    required: true,
    mysql: {dataType: 'varbinary', dataLength: 4 * (MAX_LOCK_NAME_LENGTH + 32)},
    postgresql: {dataType: 'varchar', dataLength: MAX_LOCK_NAME_LENGTH + 32},
  })
  id: string;

  @property({
    type: 'string',
    required: true,
    index: true,
    mysql: {dataType: 'varbinary', dataLength: 4 * MAX_LOCK_NAME_LENGTH},
    postgresql: {dataType: 'varchar', dataLength: MAX_LOCK_NAME_LENGTH},
  })
  lockName: string;

  /** The occurrence: when the schedule said to fire. */
  @property({type: 'date', required: true, mysql: {dataType: 'datetime', dataPrecision: 3}})
  scheduledAt: Date;

  @property({type: 'number', required: true})
  fencingToken: number;

  @property({type: 'string', required: true})
  instanceId: string;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  startedAt?: Date;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  finishedAt?: Date;

  /** 'ok', or the error; unset while it runs (or if its master died meanwhile). */
  @property({type: 'string', mysql: {dataType: 'text'}, postgresql: {dataType: 'text'}})
  outcome?: string;

  constructor(data?: Partial<MasterCronRun>) {
    super(data);
  }
}
