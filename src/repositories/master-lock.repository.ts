import {inject} from '@loopback/core';
import {DefaultCrudRepository, juggler} from '@loopback/repository';
import {MasterJobExecutorBindings} from '../keys';
import {guardDataSource} from '../store/datasource-guard';
import {MasterLock} from '../models';

export class MasterLockRepository extends DefaultCrudRepository<
  MasterLock,
  typeof MasterLock.prototype.lockName
> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    dataSource: juggler.DataSource,
  ) {
    super(MasterLock, dataSource);
    guardDataSource(dataSource);
  }
}
