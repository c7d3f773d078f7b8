import {inject} from '@loopback/core';
import {DefaultCrudRepository, juggler} from '@loopback/repository';
import {MasterJobExecutorBindings} from '../keys';
import {guardDataSource} from '../store/datasource-guard';
import {MasterTask} from '../models';

export class MasterTaskRepository extends DefaultCrudRepository<
  MasterTask,
  typeof MasterTask.prototype.id
> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    dataSource: juggler.DataSource,
  ) {
    super(MasterTask, dataSource);
    guardDataSource(dataSource);
  }
}
