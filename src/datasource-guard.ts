// What the component adds to the datasource it uses, once per datasource
// instance, from its repositories' constructors (so before any migration or
// call): pool error listeners, a fast failure once the app has stopped the
// datasource, schema migrations serialised on the database's own lock, and
// on the memory connector, lock names that are exact keys.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {MAX_LOCK_NAME_LENGTH} from './models/limits';
import {guardPoolErrors} from './pool-errors';

const debug = debugFactory('loopback:master-job-executor:datasource');

const guarded = new WeakSet<juggler.DataSource>();
const everConnected = new WeakSet<juggler.DataSource>();

export function guardDataSource(dataSource: juggler.DataSource): void {
  if (guarded.has(dataSource)) return;
  guarded.add(dataSource);
  guardPoolErrors(dataSource);
  if (dataSource.connected) everConnected.add(dataSource);
  dataSource.on('connected', () => {
    everConnected.add(dataSource);
    guardPoolErrors(dataSource); // a reconnect may bring a new pool
  });
  serializeMigrations(dataSource);
  exactMemoryKeys(dataSource);
}

/** The error of a call made after the app stopped (disconnected) the datasource. */
export class DataSourceStoppedError extends Error {
  readonly code = 'DATASOURCE_STOPPED';
  constructor(dataSource: juggler.DataSource) {
    super(`datasource ${dataSource.name} is disconnected (the app stopped it)`);
  }
}

/**
 * Throws once the datasource was connected and then disconnected (juggler
 * sets `connected` false only in `disconnect()`). Juggler would queue the
 * call and try to reconnect a stopped datasource, which on PostgreSQL never
 * finishes: a release on `app.stop()` would wait out its timeout instead of
 * failing at once.
 */
export function assertOpen(dataSource: juggler.DataSource): void {
  if (everConnected.has(dataSource) && !dataSource.connected) {
    throw new DataSourceStoppedError(dataSource);
  }
}

/** For `app.start()` after `app.stop()`: the datasource was disconnected, connect it again. */
export async function reopen(dataSource: juggler.DataSource): Promise<void> {
  if (!everConnected.has(dataSource) || dataSource.connected) return;
  debug('reconnecting datasource %s, disconnected by a previous stop', dataSource.name);
  await dataSource.connect();
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
function serializeMigrations(dataSource: juggler.DataSource): void {
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
      const done = withMigrationLock(dataSource, async () => {
        await new Promise<void>((resolve, reject) => {
          const underLock: Callback = err => (err ? reject(err) : resolve());
          underLock[UNDER_LOCK] = true;
          void original.call(dataSource, models, underLock);
        });
        await exactMysqlIdColumns(dataSource);
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

interface SqlConnector {
  name: string;
  table(model: string): string;
  column(model: string, property: string): string;
}

/**
 * MySQL: tables made by earlier versions compare lock names as VARCHAR in
 * a case-insensitive collation ('casex' = 'CASEX ', so two locks share a
 * row). autoupdate leaves id columns alone: make them bytes here.
 */
async function exactMysqlIdColumns(dataSource: juggler.DataSource): Promise<void> {
  const connector = dataSource.connector as unknown as SqlConnector | undefined;
  if (connector?.name !== 'mysql') return;
  for (const model of OWN_MODELS) {
    if (!dataSource.definitions[model]) continue;
    const table = connector.table(model);
    const column = connector.column(model, 'lockName');
    const rows = (await dataSource.execute(
      'SELECT DATA_TYPE AS type FROM information_schema.COLUMNS ' +
        'WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
      [table, column],
    )) as {type: string}[];
    const type = rows[0]?.type?.toLowerCase();
    if (!type || type === 'varbinary') continue;
    debug('%s.%s is %s: altering it to VARBINARY for exact lock names', table, column, type);
    await dataSource.execute(
      `ALTER TABLE \`${table}\` MODIFY \`${column}\` VARBINARY(${4 * MAX_LOCK_NAME_LENGTH}) NOT NULL`,
    );
  }
}

/** Same name on every database and every version of this package. */
const LOCK_NAME = 'loopback4-master-job-executor:migrate';
/** pg_advisory_lock takes a bigint: a fixed one derived from LOCK_NAME. */
const PG_LOCK_KEY = '7450915263341048217';
/** How long a replica waits for another's migration (the connection's own timeouts would be too short). */
const LOCK_WAIT_SECONDS = 600;

async function withMigrationLock<T>(
  dataSource: juggler.DataSource,
  migrate: () => Promise<T>,
): Promise<T> {
  switch (dataSource.connector?.name) {
    case 'postgresql':
      return withPostgresLock(dataSource, migrate);
    case 'mysql':
      return withMysqlLock(dataSource, migrate);
    default:
      return migrate(); // memory and others: nothing shared to race on, or no lock to take
  }
}

interface PgClient extends EventEmitter {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<unknown>;
  end(): Promise<void>;
}

async function withPostgresLock<T>(
  dataSource: juggler.DataSource,
  migrate: () => Promise<T>,
): Promise<T> {
  const pool = (
    dataSource.connector as {pg?: {Client: new (o: object) => PgClient; options: object}}
  ).pg;
  if (!pool?.Client) return migrate();
  // Not a pool client: the migration needs the pool, which may have one connection.
  const wait = LOCK_WAIT_SECONDS * 1000;
  // pg's own option names: the connection's timeouts would cut the wait short
  // eslint-disable-next-line @typescript-eslint/naming-convention
  const client = new pool.Client({...pool.options, query_timeout: wait, statement_timeout: wait});
  client.on('error', (err: Error) => debug('migration lock connection: %s', err.message));
  await client.connect();
  try {
    debug('waiting for the migration lock');
    await client.query('SELECT pg_advisory_lock($1::bigint)', [PG_LOCK_KEY]);
    debug('migrating under the lock');
    return await migrate();
  } finally {
    await client.end().catch(() => {}); // ending the session frees the lock
  }
}

interface MysqlConnection {
  query(sql: string, params: unknown[], cb: (err: Error | null, rows?: unknown) => void): void;
  release(): void;
}

async function withMysqlLock<T>(
  dataSource: juggler.DataSource,
  migrate: () => Promise<T>,
): Promise<T> {
  await dataSource.connect(); // the connector makes its pool on connect
  const pool = (
    dataSource.connector as {
      client?: {
        getConnection(cb: (err: Error | null, c?: MysqlConnection) => void): void;
        config?: {connectionLimit?: number};
      };
    }
  ).client;
  if (!pool) return migrate();
  if ((pool.config?.connectionLimit ?? 10) < 2) {
    // The lock's connection would leave the migration none: it would wait forever.
    debug('connectionLimit below 2: migrating without the lock');
    return migrate();
  }
  const connection = await new Promise<MysqlConnection>((resolve, reject) =>
    pool.getConnection((err, c) => (err || !c ? reject(err) : resolve(c))),
  );
  const query = (sql: string, params: unknown[]) =>
    new Promise<unknown>((resolve, reject) =>
      connection.query(sql, params, (err, rows) => (err ? reject(err) : resolve(rows))),
    );
  try {
    debug('waiting for the migration lock');
    const rows = (await query('SELECT GET_LOCK(?, ?) AS got', [LOCK_NAME, LOCK_WAIT_SECONDS])) as {
      got: number | null;
    }[];
    if (rows[0]?.got !== 1) {
      throw new Error(
        `another replica has been migrating the schema of datasource ${dataSource.name} ` +
          `for ${LOCK_WAIT_SECONDS} s (lock ${LOCK_NAME} not granted)`,
      );
    }
    try {
      debug('migrating under the lock');
      return await migrate();
    } finally {
      await query('SELECT RELEASE_LOCK(?)', [LOCK_NAME]).catch(() => {});
    }
  } finally {
    connection.release();
  }
}

/** The component's models; the memory connector keys their rows by lock name. */
const OWN_MODELS = new Set(['MasterLock', 'MasterControl']);

interface MemoryConnector {
  name: string;
  collection(model: string, value?: Record<string, unknown>): Record<string, unknown>;
  exists(model: string, id: unknown, options: unknown, cb: (err: null, e: boolean) => void): void;
}

/**
 * The memory connector keeps rows in a plain object keyed by id, so a lock
 * named `__proto__` or `constructor` finds Object.prototype's members: a
 * create reports a duplicate, a read finds a row that is not there. Our
 * models' collections get no prototype.
 */
function exactMemoryKeys(dataSource: juggler.DataSource): void {
  const connector = dataSource.connector as unknown as MemoryConnector | undefined;
  if (connector?.name !== 'memory' || typeof connector.collection !== 'function') return;
  const collection = connector.collection;
  connector.collection = function (this: MemoryConnector, model, ...value) {
    const rows = collection.call(this, model, ...value);
    if (!OWN_MODELS.has(model) || !rows || Object.getPrototypeOf(rows) === null) return rows;
    const bare = Object.assign(Object.create(null), rows) as Record<string, unknown>;
    collection.call(this, model, bare);
    return bare;
  };
  const exists = connector.exists;
  connector.exists = function (this: MemoryConnector, model, id, options, cb) {
    if (!OWN_MODELS.has(model)) return exists.call(this, model, id, options, cb);
    const rows = this.collection(model);
    process.nextTick(() =>
      cb(null, !!rows && Object.prototype.hasOwnProperty.call(rows, String(id))),
    );
  };
}

const astralChecks = new WeakMap<juggler.DataSource, Promise<boolean>>();

/**
 * Whether the datasource's connections carry characters of 4 bytes in UTF-8
 * (emoji). MySQL connections in the connector's default charset, utf8 (3
 * bytes), store them mangled without an error. Asked of the server once.
 */
export function carriesAstralCharacters(dataSource: juggler.DataSource): Promise<boolean> {
  if (dataSource.connector?.name !== 'mysql') return Promise.resolve(true);
  let check = astralChecks.get(dataSource);
  if (!check) {
    check = (
      dataSource.execute('SELECT @@character_set_connection AS charset') as Promise<
        {charset: string}[]
      >
    ).then(rows => /^utf8mb4$/i.test(rows[0]?.charset ?? ''));
    // Unknown while the database is down: ask again next time.
    check.catch(() => astralChecks.delete(dataSource));
    astralChecks.set(dataSource, check);
  }
  return check;
}

/** The advice when a value has characters the connection cannot carry. */
export function astralAdvice(dataSource: juggler.DataSource, field: string): string {
  return (
    `${field} contains characters of 4 bytes in UTF-8 (such as emoji), which the connections of ` +
    `datasource "${dataSource.name}" cannot store (their charset is utf8, 3 bytes): set ` +
    `collation: 'utf8mb4_unicode_ci' in its settings (or charset=utf8mb4 in its url)`
  );
}

export const ASTRAL_CHARACTER = /[\u{10000}-\u{10FFFF}]/u;
