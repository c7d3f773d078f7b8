import {ApplicationConfig} from '@loopback/core';
import {RepositoryMixin, juggler} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {RestExplorerBindings, RestExplorerComponent} from '@loopback/rest-explorer';
import {MasterJobExecutorComponent} from '../src';
import {FencedResourceRepository} from './fenced-resource';

/**
 * A LoopBack app with the component, API Explorer, one datasource `db` and the
 * demo job's fenced resource.
 */
export class ExampleApplication extends RepositoryMixin(RestApplication) {
  constructor(options: ApplicationConfig & {dataSource?: Record<string, unknown>} = {}) {
    super(options);
    this.dataSource(
      new juggler.DataSource(options.dataSource ?? {name: 'db', connector: 'memory'}),
    );
    this.configure(RestExplorerBindings.COMPONENT).to({path: '/explorer'});
    this.component(RestExplorerComponent);
    this.component(MasterJobExecutorComponent);
    this.repository(FencedResourceRepository);
  }
}
