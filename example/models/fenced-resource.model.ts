import {Entity, model, property} from '@loopback/repository';

/** One row per lock: the last write and the token it was made with. */
@model({name: 'FencedResource', settings: {strict: true}})
export class FencedResource extends Entity {
  @property({
    type: 'string',
    id: true,
    generated: false,
    required: true,
    mysql: {dataType: 'varchar', dataLength: 255},
    postgresql: {dataType: 'varchar', dataLength: 255},
  })
  lockName: string;

  @property({type: 'number', required: true})
  fencingToken: number;

  @property({type: 'string', required: true})
  writer: string;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  updatedAt?: Date;

  constructor(data?: Partial<FencedResource>) {
    super(data);
  }
}
