import {BootMixin} from '@loopback/boot';
import {ApplicationConfig} from '@loopback/core';
import {MetricsComponent} from '@loopback/metrics';
import {RepositoryMixin} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {RestExplorerBindings, RestExplorerComponent} from '@loopback/rest-explorer';
import {MasterJobExecutorComponent} from '../src';

/**
 * Shaped as `lb4 app` makes one: BootMixin finds the datasource class
 * (datasources/db.datasource.ts) and the repository; LoopBack's own signal
 * handling stops the app. Adds the component, API Explorer and /metrics.
 */
export class ExampleApplication extends BootMixin(RepositoryMixin(RestApplication)) {
  constructor(options: ApplicationConfig = {}) {
    super(options);
    this.configure(RestExplorerBindings.COMPONENT).to({path: '/explorer'});
    this.component(RestExplorerComponent);
    this.redirect('/', '/explorer');
    this.component(MetricsComponent);
    this.component(MasterJobExecutorComponent);

    this.projectRoot = __dirname;
    this.bootOptions = {
      controllers: {dirs: ['controllers'], extensions: ['.controller.js'], nested: true},
    };
  }
}
