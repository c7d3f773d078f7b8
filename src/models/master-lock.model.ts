import {Entity, model, property} from '@loopback/repository';
import {GROUP_NAME_COLUMN, LOCK_NAME_COLUMN} from './limits';

/** One row per lock: who holds it, and the marker a live master keeps changing. */
@model({name: 'MasterLock', settings: {strict: true}})
export class MasterLock extends Entity {
  @property({...LOCK_NAME_COLUMN})
  lockName: string;

  /** The holder; '' once released. */
  @property({type: 'string', default: ''})
  instanceId: string;

  @property({type: 'string', default: ''})
  hostname: string;

  /** Strictly increases with every new mastership; the row is never deleted. */
  @property({type: 'number', required: true})
  fencingToken: number;

  /** Changes on every write: non-masters watch it to judge liveness. */
  @property({type: 'string', required: true})
  renewalId: string;

  /** Wall-clock time of the last renewal, for humans only. */
  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  heartbeatAt?: Date;

  @property({type: 'date', mysql: {dataType: 'datetime', dataPrecision: 3}})
  acquiredAt?: Date;

  /** Set on the rows of a group (members and resources), so one query reads them all. */
  @property({...GROUP_NAME_COLUMN})
  groupName?: string;

  constructor(data?: Partial<MasterLock>) {
    super(data);
  }
}
