import {Entity, model, property} from '@loopback/repository';
import {LOCK_NAME_COLUMN} from './limits';

/**
 * The progress a master saved for its lock: what the next master resumes
 * from. The fencing token is that of the last master that started with it:
 * only that master may save.
 */
@model({name: 'MasterCheckpoint', settings: {strict: true}})
export class MasterCheckpoint extends Entity {
  @property({...LOCK_NAME_COLUMN})
  lockName: string;

  /** JSON text; null until a master saves. */
  @property({type: 'string', mysql: {dataType: 'longtext'}, postgresql: {dataType: 'text'}})
  value?: string | null;

  @property({type: 'number', required: true})
  fencingToken: number;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  savedAt?: Date;

  @property({type: 'string'})
  savedBy?: string;

  constructor(data?: Partial<MasterCheckpoint>) {
    super(data);
  }
}
