// What the component adds to the schema migrations of its datasource (every
// automigrate/autoupdate, of any model): the database's own lock around them,
// unless the app turns it off (`migrationLock: false`), and the dialect's
// step after them (MySQL: the exact-name column upgrade).

import {juggler} from '@loopback/repository';
import {dialectOf} from './dialects';

const wrapped = new WeakSet<juggler.DataSource>();

type Callback = ((err?: unknown) => void) & {[UNDER_LOCK]?: true};
type Migrate = (models?: string | string[] | Callback, cb?: Callback) => Promise<void>;
const UNDER_LOCK = Symbol('under the migration lock');

/**
 * Replicas that migrate at once (each one's deploy step, or at start) race on
 * CREATE TABLE: "relation already exists", or a duplicate in pg_type. With
 * `lock` (the default), every migration of this datasource runs while holding
 * a lock of the database itself, on a connection of its own: the others wait,
 * then find the tables made. The lock ends with its session, so a replica that
 * dies while migrating does not block the others. Once per datasource: the
 * first call's `lock` holds.
 */
export function wrapMigrations(dataSource: juggler.DataSource, {lock}: {lock: boolean}): void {
  if (wrapped.has(dataSource)) return;
  wrapped.add(dataSource);
  const dialect = dialectOf(dataSource);
  for (const operation of ['automigrate', 'autoupdate'] as const) {
    const original = (dataSource as unknown as Record<string, Migrate>)[operation];
    if (typeof original !== 'function') continue;
    const migrate = (models: string | string[] | undefined) =>
      new Promise<void>((resolve, reject) => {
        const underLock: Callback = err => (err ? reject(err) : resolve());
        underLock[UNDER_LOCK] = true;
        void original.call(dataSource, models, underLock);
      }).then(() => dialect.afterMigration(dataSource));
    const serialized: Migrate = function (models, cb) {
      if (typeof models === 'function') {
        cb = models;
        models = undefined;
      }
      // Juggler calls the method again once connected, with the callback we
      // gave it: that call runs under the lock already.
      if (cb?.[UNDER_LOCK]) return original.call(dataSource, models, cb);
      const given = models;
      const done = lock
        ? dialect.withMigrationLock(dataSource, () => migrate(given))
        : migrate(given);
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
