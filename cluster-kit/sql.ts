// SQL for the cluster kit, the benchmark and the tests' fixtures: where the
// database servers are (PG_URL / MYSQL_URL), DATABASE_URLs, short admin
// connections (withPg, withMysql), creating and recreating a database, and
// the small pooled adapter (openSql) that the benchmark's harness and its
// baseline replica run on (`pg` / `mysql2`, both installed with the LoopBack
// connectors).

import mysql from 'mysql2/promise';

/* eslint-disable @typescript-eslint/no-explicit-any */
// `pg` comes with loopback-connector-postgresql and has no types installed.
const pg: any = require('pg');
const mysqlCallbacks: any = require('mysql2');

export interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{rows: any[]; rowCount: number}>;
  end(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): void;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export type SqlBackend = 'postgresql' | 'mysql';

export interface ServerAddress {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** 127.0.0.1 (postgres / root, no password) unless PG_URL / MYSQL_URL say otherwise. */
export function serverAddress(backend: SqlBackend): ServerAddress {
  const isPg = backend === 'postgresql';
  const defaults: ServerAddress = {
    host: '127.0.0.1',
    port: isPg ? 5432 : 3306,
    user: isPg ? 'postgres' : 'root',
    password: '',
  };
  const raw = isPg ? process.env.PG_URL : process.env.MYSQL_URL;
  if (!raw) return defaults;
  const url = new URL(raw);
  return {
    host: url.hostname || defaults.host,
    port: url.port ? Number(url.port) : defaults.port,
    user: url.username ? decodeURIComponent(url.username) : defaults.user,
    password: decodeURIComponent(url.password),
  };
}

/** A DATABASE_URL of the example app's form. */
export function databaseUrl(backend: SqlBackend, address: ServerAddress, database: string): string {
  const {user, password, host, port} = address;
  const auth = encodeURIComponent(user) + (password ? `:${encodeURIComponent(password)}` : '');
  const scheme = backend === 'postgresql' ? 'postgres' : 'mysql';
  return `${scheme}://${auth}@${host}:${port}/${database}`;
}

/** Parses a DATABASE_URL of the example app's form. */
export function parseDatabaseUrl(raw: string): {
  backend: SqlBackend;
  address: ServerAddress;
  database: string;
} {
  const url = new URL(raw);
  const backend: SqlBackend = /^postgres(ql)?:$/.test(url.protocol) ? 'postgresql' : 'mysql';
  if (backend === 'mysql' && !/^(mysql|mariadb):$/.test(url.protocol)) {
    throw new Error(`DATABASE_URL must start with postgres:// or mysql://, got ${url.protocol}`);
  }
  return {
    backend,
    address: {
      host: url.hostname || '127.0.0.1',
      port: url.port ? Number(url.port) : backend === 'postgresql' ? 5432 : 3306,
      user: decodeURIComponent(url.username) || (backend === 'postgresql' ? 'postgres' : 'root'),
      password: decodeURIComponent(url.password),
    },
    database: url.pathname.replace(/^\//, ''),
  };
}

/** A database name that can go into SQL as it is. */
export function checkName(database: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`bad database name ${database}`);
  return database;
}

export interface AdminOptions {
  /** PostgreSQL: the database to connect to (default postgres). */
  database?: string;
  connectTimeout?: number;
  /** PostgreSQL only. */
  queryTimeout?: number;
  /** Errors of the connection after connect (default: ignored). */
  onError?: (err: Error) => void;
}

/** One short PostgreSQL connection for `work`, closed after. */
export async function withPg<T>(
  address: ServerAddress,
  work: (client: PgClient) => Promise<T>,
  options: AdminOptions = {},
): Promise<T> {
  const client: PgClient = new pg.Client({
    host: address.host,
    port: address.port,
    user: address.user,
    password: address.password,
    database: options.database ?? 'postgres',
    connectionTimeoutMillis: options.connectTimeout ?? 3000,
    query_timeout: options.queryTimeout ?? 10000,
  });
  // A server shutdown while connected must not crash the caller.
  client.on('error', options.onError ?? (() => {}));
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** One short MySQL/MariaDB connection (no database selected) for `work`, closed after. */
export async function withMysql<T>(
  address: ServerAddress,
  work: (conn: mysql.Connection) => Promise<T>,
  options: AdminOptions = {},
): Promise<T> {
  const conn = await mysql.createConnection({
    host: address.host,
    port: address.port,
    user: address.user,
    password: address.password,
    connectTimeout: options.connectTimeout ?? 3000,
  });
  conn.on('error', options.onError ?? (() => {}));
  try {
    return await work(conn);
  } finally {
    await conn.end().catch(() => {});
  }
}

/**
 * Kills the server threads among `ids` that are connected to `database`;
 * returns how many it killed (a thread gone meanwhile is not counted).
 */
export async function killMysqlThreads(
  conn: mysql.Connection,
  database: string,
  ids?: number[],
): Promise<number> {
  if (ids && !ids.length) return 0;
  const [rows] = ids
    ? await conn.query(
        'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID IN (?)',
        [database, ids],
      )
    : await conn.query(
        'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
        [database],
      );
  let killed = 0;
  for (const {id} of rows as {id: number}[]) {
    try {
      await conn.query(`KILL CONNECTION ${Number(id)}`);
      killed++;
    } catch (err) {
      if (err.errno !== 1094) throw err; // ER_NO_SUCH_THREAD: gone already
    }
  }
  return killed;
}

/** Creates the database if it is missing; a concurrent creation is no error. */
export async function ensureDatabase(
  backend: SqlBackend,
  address: ServerAddress,
  database: string,
  options: AdminOptions = {},
): Promise<void> {
  const name = checkName(database);
  if (backend === 'mysql') {
    await withMysql(address, conn => conn.query(`CREATE DATABASE IF NOT EXISTS ${name}`), options);
    return;
  }
  await withPg(
    address,
    async client => {
      const {rowCount} = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (rowCount) return;
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } catch (err) {
        // Created meanwhile by a concurrent run: duplicate_database / unique_violation.
        if (err.code !== '42P04' && err.code !== '23505') throw err;
      }
    },
    options,
  );
}

/** Drops and creates the database: it starts empty. */
export async function recreateDatabase(
  backend: SqlBackend,
  address: ServerAddress,
  database: string,
): Promise<void> {
  const name = checkName(database);
  const drop = `DROP DATABASE IF EXISTS ${name}${backend === 'postgresql' ? ' WITH (FORCE)' : ''}`;
  const create = `CREATE DATABASE ${name}`;
  if (backend === 'postgresql') {
    await withPg(address, async client => {
      await client.query(drop);
      await client.query(create);
    });
  } else {
    await withMysql(address, async conn => {
      await conn.query(drop);
      await conn.query(create);
    });
  }
}

// ---- a pool with one placeholder syntax ----

export interface Rows {
  rows: Record<string, unknown>[];
  /** Rows matched by an UPDATE / DELETE / INSERT. */
  affected: number;
}

/** A pool; SQL is written with `?` placeholders on both backends. */
export interface Sql {
  readonly backend: SqlBackend;
  /** Statements this pool sent (the benchmark subtracts its own from the server's counts). */
  readonly sent: number;
  query(sql: string, params?: unknown[]): Promise<Rows>;
  close(): Promise<void>;
}

/**
 * `keepIdle`: never close idle connections (the benchmark's own pools): the
 * server's max_connections is shared with every user of the machine, and a
 * measurement must not fail for want of a new connection.
 */
export function openSql(
  backend: SqlBackend,
  address: ServerAddress,
  database: string,
  poolSize = 4,
  keepIdle = false,
): Sql {
  return backend === 'postgresql'
    ? new PgSql(address, database, poolSize, keepIdle)
    : new MySql(address, database, poolSize, keepIdle);
}

class PgSql implements Sql {
  readonly backend = 'postgresql';
  sent = 0;
  private readonly pool: any; // eslint-disable-line @typescript-eslint/no-explicit-any

  constructor(a: ServerAddress, database: string, max: number, keepIdle: boolean) {
    this.pool = new pg.Pool({
      ...a,
      database,
      max,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: keepIdle ? 0 : 10000,
    });
    this.pool.on('error', (err: Error) => process.stderr.write(`pg pool: ${err.message}\n`));
  }

  async query(sql: string, params: unknown[] = []): Promise<Rows> {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    this.sent++;
    const r = await this.pool.query(text, params);
    return {rows: r.rows ?? [], affected: r.rowCount ?? 0};
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

class MySql implements Sql {
  readonly backend = 'mysql';
  sent = 0;
  private readonly pool: any; // eslint-disable-line @typescript-eslint/no-explicit-any

  constructor(a: ServerAddress, database: string, connectionLimit: number, keepIdle: boolean) {
    this.pool = mysqlCallbacks
      .createPool({
        ...a,
        database: database || undefined,
        connectionLimit,
        connectTimeout: 5000,
        supportBigNumbers: true,
        maxIdle: keepIdle ? connectionLimit : undefined,
        idleTimeout: keepIdle ? 24 * 3600 * 1000 : undefined,
      })
      .promise();
    this.pool.pool.on('error', (err: Error) =>
      process.stderr.write(`mysql pool: ${err.message}\n`),
    );
  }

  async query(sql: string, params: unknown[] = []): Promise<Rows> {
    this.sent++;
    const [result] = await this.pool.query(sql, params);
    if (Array.isArray(result)) return {rows: result, affected: result.length};
    return {rows: [], affected: result.affectedRows ?? 0};
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
