import {ApplicationConfig} from '@loopback/core';
import {MasterJobContext, MasterJobExecutorBindings} from '../src';
import {ExampleApplication} from './application';
import {DEMO_CRON_MISSED, DEMO_CRON_PATTERN, DemoCronJob} from './demo-cron-job';
import {createDemoJob, printEvent} from './demo-job';
import {DEMO_QUEUE, DemoTaskController, demoTaskHandler} from './demo-queue';
import {FencedResourceRepository} from './repositories/fenced-resource.repository';
import {dataSourceConfig, readSettings} from './settings';

export * from './application';

/**
 * Boots, migrates and starts the app, then starts the DEMO_LOCKS masters.
 * SIGTERM and SIGINT are LoopBack's to handle (`shutdown` below): app.stop()
 * stops the jobs and releases their locks, then the datasource disconnects.
 */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<ExampleApplication> {
  const settings = readSettings(env);
  const config: ApplicationConfig = {
    rest: {
      port: settings.port,
      host: settings.host,
      gracePeriodForClose: 5000,
      openApiSpec: {setServersFromRequest: true},
    },
    shutdown: {signals: ['SIGTERM', 'SIGINT']},
    masterJobExecutor: settings.instanceId ? {instanceId: settings.instanceId} : {},
  };
  const app = new ExampleApplication(config);
  app.bind('datasources.config.db').to(dataSourceConfig(settings));
  if (settings.demoCron) {
    app.bind(DEMO_CRON_PATTERN).to(settings.demoCron);
    app.bind(DEMO_CRON_MISSED).to(settings.demoCronMissed);
    app.service(DemoCronJob); // started as master of DEMO-CRON by app.start()
  }
  await app.boot();
  // Every replica migrates at start; concurrent runs are serialised by the component.
  await app.migrateSchema();
  await app.start();

  const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
  const masterJob = createDemoJob({
    fencedResource: await app.getRepository(FencedResourceRepository),
    fencedWriteInterval: settings.fencedWriteInterval,
    checkpoint: settings.demoCheckpoint,
  });
  const minMembers = settings.demoQuorum;
  const checkpoint = settings.demoCheckpoint;
  for (const lockName of settings.demoLocks)
    executor.startMaster({lockName, masterJob, minMembers, checkpoint});
  if (settings.demoGroup) {
    const {groupName, count} = settings.demoGroup;
    executor.startGroup({
      groupName,
      resources: Array.from({length: count}, (_, i) => `r${i}`),
      job: createDemoJob(),
      minMembers,
    });
  }
  if (settings.demoQueue) {
    const queue = executor.startQueue({
      queueName: settings.demoQueue,
      handler: demoTaskHandler(settings.demoTaskMs),
    });
    queue.on('start', (ctx: MasterJobContext) => printEvent('start', ctx));
    queue.on('stop', (ctx: MasterJobContext) => printEvent('stop', ctx));
    app.bind(DEMO_QUEUE).to(queue);
    app.controller(DemoTaskController);
  }
  const url = app.restServer.url;
  console.error(
    `Example app (instance ${executor.instanceId}, ${settings.databaseUrl ? 'shared database' : 'memory'}) ` +
      `at ${url}; API Explorer at ${url}/explorer; masters for ` +
      [...settings.demoLocks, ...(settings.demoCron ? ['DEMO-CRON'] : [])].join(', ') +
      (settings.demoGroup
        ? `; group ${settings.demoGroup.groupName} of ${settings.demoGroup.count} resources`
        : '') +
      (minMembers ? `; quorum ${minMembers}` : '') +
      (settings.demoQueue ? `; queue ${settings.demoQueue} (POST /demo/tasks)` : ''),
  );
  return app;
}

if (require.main === module) {
  main().catch(err => {
    console.error(`Cannot start the example app: ${err.message}`);
    process.exit(1);
  });
}
