import {MasterJobExecutorBindings} from 'loopback4-master-job-executor';
import {ApplicationConfig, CliApplication} from './application';

export * from './application';

export async function main(options: ApplicationConfig = {}) {
  const app = new CliApplication(options);
  await app.boot();
  await app.start();

  // A master started from code, once the app has started.
  const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
  executor.startMaster({
    lockName: 'JOB-SCHEDULER',
    masterJob: {
      start: ({fencingToken}) => console.log(`JOB-SCHEDULER runs here, token ${fencingToken}`),
      stop: ({reason}) => console.log(`JOB-SCHEDULER stops here: ${reason}`),
    },
  });

  // A persisted queue: each replica submits one task; the queue's master runs both.
  const mail = executor.startQueue({
    queueName: 'MAIL',
    handler: async (payload, {taskId, attempt, instanceId}) => {
      const line = {event: 'task', taskId, attempt, instanceId, payload, at: Date.now()};
      process.stdout.write(JSON.stringify(line) + '\n');
      return true;
    },
  });
  await mail.submit({hello: executor.instanceId}, {key: `hello-${executor.instanceId}`});

  const url = app.restServer.url;
  console.log(`Server is running at ${url}`);
  return app;
}

if (require.main === module) {
  // Run the application
  const config = {
    rest: {
      port: +(process.env.PORT ?? 3000),
      host: process.env.HOST,
      // The `gracePeriodForClose` provides a graceful close for http/https
      // servers with keep-alive clients. The default value is `Infinity`
      // (don't force-close). If you want to immediately destroy all sockets
      // upon stop, set its value to `0`.
      // See https://www.npmjs.com/package/stoppable
      gracePeriodForClose: 5000, // 5 seconds
      openApiSpec: {
        // useful when used with OpenAPI-to-GraphQL to locate your application
        setServersFromRequest: true,
      },
    },
  };
  main(config).catch(err => {
    console.error('Cannot start the application.', err);
    process.exit(1);
  });
}
