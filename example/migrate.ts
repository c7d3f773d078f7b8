import {ExampleApplication} from './application';
import {dataSourceConfig, readSettings} from './settings';

/** `npm run migrate`: create or update the tables, then exit. */
async function migrate(): Promise<void> {
  const settings = readSettings();
  const app = new ExampleApplication({
    dataSource: dataSourceConfig(settings),
  });
  await app.migrateSchema({
    existingSchema: process.argv.includes('--rebuild') ? 'drop' : 'alter',
  });
  await app.stop();
}

migrate().then(
  () => process.exit(0),
  err => {
    console.error(`Cannot migrate the schema: ${err.message}`);
    process.exit(1);
  },
);
