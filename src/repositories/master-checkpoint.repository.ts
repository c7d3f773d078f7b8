import {inject} from '@loopback/core';
import {DefaultCrudRepository, juggler} from '@loopback/repository';
import {MasterJobExecutorBindings} from '../keys';
import {guardDataSource} from '../store/datasource-guard';
import {MasterCheckpoint} from '../models';

export class MasterCheckpointRepository extends DefaultCrudRepository<
  MasterCheckpoint,
  typeof MasterCheckpoint.prototype.lockName
> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    dataSource: juggler.DataSource,
  ) {
    super(MasterCheckpoint, dataSource);
    guardDataSource(dataSource);
  }
}
