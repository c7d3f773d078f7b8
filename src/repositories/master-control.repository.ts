import {inject} from '@loopback/core';
import {DefaultCrudRepository, juggler} from '@loopback/repository';
import {MasterJobExecutorBindings} from '../keys';
import {guardPoolErrors} from '../pool-errors';
import {MasterControl} from '../models';

export class MasterControlRepository extends DefaultCrudRepository<
  MasterControl,
  typeof MasterControl.prototype.lockName
> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    dataSource: juggler.DataSource,
  ) {
    super(MasterControl, dataSource);
    guardPoolErrors(dataSource);
  }
}
