import {MasterJobExecutorBindings} from '../src';
import {ExampleApplication} from './application';
import {DEMO_CRON_PATTERN, DemoCronJob} from './demo-cron-job';
import {createDemoJob} from './demo-job';
import {FencedResourceRepository} from './fenced-resource';
import {dataSourceConfig, readSettings} from './settings';

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<ExampleApplication> {
  const settings = readSettings(env);
  const app = new ExampleApplication({
    rest: {
      port: settings.port,
      host: settings.host,
      openApiSpec: {setServersFromRequest: true},
    },
    dataSource: dataSourceConfig(settings),
    masterJobExecutor: settings.instanceId ? {instanceId: settings.instanceId} : {},
  });
  if (settings.demoCron) {
    app.bind(DEMO_CRON_PATTERN).to(settings.demoCron);
    app.service(DemoCronJob); // started as master of DEMO-CRON by app.start()
  }
  await app.migrateSchema(); // creates MasterLock, MasterControl and FencedResource if missing
  await app.start();
  const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
  const masterJob = createDemoJob({
    fencedResource: await app.getRepository(FencedResourceRepository),
    fencedWriteInterval: settings.fencedWriteInterval,
  });
  for (const lockName of settings.demoLocks) executor.startMaster({lockName, masterJob});
  const url = app.restServer.url;
  console.error(
    `Example app (instance ${executor.instanceId}, ${settings.databaseUrl ? 'shared database' : 'memory'}) ` +
      `at ${url}; API Explorer at ${url}/explorer; masters for ` +
      [...settings.demoLocks, ...(settings.demoCron ? ['DEMO-CRON'] : [])].join(', '),
  );
  return app;
}

if (require.main === module) {
  main().then(
    app => {
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        console.error(`${signal}: stopping jobs and releasing locks`);
        app.stop().then(
          () => process.exit(0),
          err => {
            console.error(err);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    },
    err => {
      console.error(`Cannot start the example app: ${err.message}`);
      process.exit(1);
    },
  );
}
