import {Entity, model, property} from '@loopback/repository';
import {LOCK_NAME_COLUMN, MAX_REASON_LENGTH, MAX_UPDATED_BY_LENGTH} from './limits';

/** Operator's switch for one lock; the id makes it one row per lock. */
@model({name: 'MasterControl', settings: {strict: true}})
export class MasterControl extends Entity {
  @property({...LOCK_NAME_COLUMN})
  lockName: string;

  @property({type: 'boolean', required: true})
  enabled: boolean;

  @property({
    type: 'string',
    mysql: {dataType: 'varchar', dataLength: MAX_REASON_LENGTH},
  })
  reason?: string;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  updatedAt?: Date;

  @property({
    type: 'string',
    mysql: {dataType: 'varchar', dataLength: MAX_UPDATED_BY_LENGTH},
  })
  updatedBy?: string;

  constructor(data?: Partial<MasterControl>) {
    super(data);
  }
}
