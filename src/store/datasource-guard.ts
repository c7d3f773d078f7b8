// What the component adds to the datasource it uses, once per datasource
// instance, from its repositories' constructors (so before any migration or
// call): what its dialect needs (pool error listeners, exact keys), a fast
// failure once the app has stopped the datasource, and schema migrations
// serialised on the database's own lock.

import {juggler} from '@loopback/repository';
import {Dialect} from './dialect';
import {dialectOf} from './dialects';
import {trackConnection} from './datasource-state';

const guarded = new WeakSet<juggler.DataSource>();

export function guardDataSource(dataSource: juggler.DataSource): void {
  if (guarded.has(dataSource)) return;
  guarded.add(dataSource);
  const dialect = dialectOf(dataSource);
  dialect.prepare(dataSource);
  // A reconnect may bring a new pool.
  trackConnection(dataSource, () => dialect.prepare(dataSource));
  serializeMigrations(dataSource, dialect);
}

type Callback = ((err?: unknown) => void) & {[UNDER_LOCK]?: true};
type Migrate = (models?: string | string[] | Callback, cb?: Callback) => Promise<void>;
const UNDER_LOCK = Symbol('under the migration lock');

/**
 * Replicas that migrate at once (each one's deploy step, or at start) race on
 * CREATE TABLE: "relation already exists", or a duplicate in pg_type. So every
 * automigrate/autoupdate of this datasource (whatever models it migrates) runs
 * while holding a lock of the database itself, on a connection of its own:
 * the others wait, then find the tables made. The lock ends with its session,
 * so a replica that dies while migrating does not block the others.
 */
function serializeMigrations(dataSource: juggler.DataSource, dialect: Dialect): void {
  for (const operation of ['automigrate', 'autoupdate'] as const) {
    const original = (dataSource as unknown as Record<string, Migrate>)[operation];
    if (typeof original !== 'function') continue;
    const serialized: Migrate = function (models, cb) {
      if (typeof models === 'function') {
        cb = models;
        models = undefined;
      }
      // Juggler calls the method again once connected, with the callback we
      // gave it: that call runs under the lock already.
      if (cb?.[UNDER_LOCK]) return original.call(dataSource, models, cb);
      const done = dialect.withMigrationLock(dataSource, async () => {
        await new Promise<void>((resolve, reject) => {
          const underLock: Callback = err => (err ? reject(err) : resolve());
          underLock[UNDER_LOCK] = true;
          void original.call(dataSource, models, underLock);
        });
        await dialect.afterMigration(dataSource);
      });
      if (cb) done.then(() => cb!(), cb);
      return done;
    };
    Object.defineProperty(dataSource, operation, {
      value: serialized,
      configurable: true,
      writable: true,
    });
  }
}
