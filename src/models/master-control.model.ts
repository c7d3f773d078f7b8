import {Entity, model, property} from '@loopback/repository';

/** Operator's switch for one lock; the id makes it one row per lock. */
@model({name: 'MasterControl', settings: {strict: true}})
export class MasterControl extends Entity {
  @property({
    type: 'string',
    id: true,
    generated: false,
    required: true,
    mysql: {dataType: 'varchar', dataLength: 255},
    postgresql: {dataType: 'varchar', dataLength: 255},
  })
  lockName: string;

  @property({type: 'boolean', required: true})
  enabled: boolean;

  @property({type: 'string'})
  reason?: string;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  updatedAt?: Date;

  @property({type: 'string'})
  updatedBy?: string;

  constructor(data?: Partial<MasterControl>) {
    super(data);
  }
}
