import {ExampleApplication} from './application';
import {dataSourceConfig, readSettings} from './settings';

/**
 * `npm run migrate`, as `lb4 app` makes it: creates or updates the tables,
 * then exits. Safe to run on every replica at once: the component serialises
 * migrations of its datasource on a lock of the database.
 */
export async function migrate(args: string[]): Promise<void> {
  const existingSchema = args.includes('--rebuild') ? 'drop' : 'alter';
  console.log('Migrating schemas (%s existing schema)', existingSchema);
  const app = new ExampleApplication();
  app.bind('datasources.config.db').to(dataSourceConfig(readSettings()));
  await app.boot();
  await app.migrateSchema({existingSchema});
  // Connectors keep a pool of connections open, which keeps the process
  // running after all work is done: exit explicitly.
  process.exit(0);
}

migrate(process.argv).catch(err => {
  console.error(`Cannot migrate the schema: ${err.message}`);
  process.exit(1);
});
