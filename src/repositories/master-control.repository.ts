import {inject} from '@loopback/core';
import {DefaultCrudRepository, juggler} from '@loopback/repository';
import {MasterJobExecutorBindings} from '../keys';
import {guardDataSource} from '../store/datasource-guard';
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
    guardDataSource(dataSource);
  }
}
