import {inject} from '@loopback/core';
import {DefaultCrudRepository, juggler} from '@loopback/repository';
import {MasterJobExecutorBindings} from '../keys';
import {guardDataSource} from '../store/datasource-guard';
import {MasterCronRun} from '../models';

export class MasterCronRunRepository extends DefaultCrudRepository<
  MasterCronRun,
  typeof MasterCronRun.prototype.id
> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    dataSource: juggler.DataSource,
  ) {
    super(MasterCronRun, dataSource);
    guardDataSource(dataSource);
  }
}
