// Database access for the benchmark: the harness's admin work (fresh database,
// baseline schema, checks) and the counters it reads from the server itself.
// Also the tiny SQL adapter the baseline replica runs on (`pg` / `mysql2`,
// both installed with the LoopBack connectors).

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-var-requires */
const pg: any = require('pg');
const mysql: any = require('mysql2');
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-var-requires */

export type Backend = 'postgresql' | 'mysql';

export interface ServerAddress {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** 127.0.0.1 (postgres / root, no password) unless PG_URL / MYSQL_URL say otherwise. */
export function serverAddress(backend: Backend): ServerAddress {
  const isPg = backend === 'postgresql';
  const defaults = {host: '127.0.0.1', port: isPg ? 5432 : 3306, user: isPg ? 'postgres' : 'root', password: ''};
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

export function databaseUrl(backend: Backend, database: string): string {
  const a = serverAddress(backend);
  const auth = encodeURIComponent(a.user) + (a.password ? `:${encodeURIComponent(a.password)}` : '');
  const scheme = backend === 'postgresql' ? 'postgres' : 'mysql';
  return `${scheme}://${auth}@${a.host}:${a.port}/${database}`;
}

/** Parses a DATABASE_URL of the example app's form. */
export function parseDatabaseUrl(raw: string): {backend: Backend; address: ServerAddress; database: string} {
  const url = new URL(raw);
  const backend: Backend = /^postgres(ql)?:$/.test(url.protocol) ? 'postgresql' : 'mysql';
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

export interface Rows {
  rows: Record<string, unknown>[];
  /** Rows matched by an UPDATE / DELETE / INSERT. */
  affected: number;
}

/** A pool; SQL is written with `?` placeholders on both backends. */
export interface Sql {
  readonly backend: Backend;
  /** Statements this pool sent (the harness subtracts its own from the server's counts). */
  readonly sent: number;
  query(sql: string, params?: unknown[]): Promise<Rows>;
  close(): Promise<void>;
}

/**
 * `keepIdle`: never close idle connections (the harness's own pools): the
 * server's max_connections is shared with every user of the machine, and a
 * measurement must not fail for want of a new connection.
 */
export function openSql(backend: Backend, address: ServerAddress, database: string, poolSize = 4, keepIdle = false): Sql {
  return backend === 'postgresql'
    ? new PgSql(address, database, poolSize, keepIdle)
    : new MySql(address, database, poolSize, keepIdle);
}

class PgSql implements Sql {
  readonly backend = 'postgresql';
  sent = 0;
  private readonly pool: any; // eslint-disable-line @typescript-eslint/no-explicit-any

  constructor(a: ServerAddress, database: string, max: number, keepIdle: boolean) {
    this.pool = new pg.Pool({...a, database, max, connectionTimeoutMillis: 5000, idleTimeoutMillis: keepIdle ? 0 : 10000});
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
    this.pool = mysql
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
    this.pool.pool.on('error', (err: Error) => process.stderr.write(`mysql pool: ${err.message}\n`));
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

function checkName(database: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`bad database name ${database}`);
  return database;
}

/** Drops and creates the benchmark database: every run starts empty. */
export async function recreateDatabase(backend: Backend, database: string): Promise<void> {
  const admin = openSql(backend, serverAddress(backend), backend === 'postgresql' ? 'postgres' : '', 1);
  try {
    const name = checkName(database);
    await admin.query(`DROP DATABASE IF EXISTS ${name}${backend === 'postgresql' ? ' WITH (FORCE)' : ''}`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.close();
  }
}

export interface StatementSnapshot {
  /** Statements (PostgreSQL: committed + rolled-back transactions; each autocommit statement is one). */
  statements: number;
  /** Rows inserted + updated + deleted. */
  rowsWritten: number;
}

/**
 * Reads the server's own statistics. PostgreSQL: pg_stat_database of the
 * benchmark database, read from a connection to another database (so the
 * reads do not count). MariaDB/MySQL has no per-database counter without
 * performance_schema: the global Questions counter (server-wide; any other
 * client of the server adds to it) minus our own SHOW and the server watch's polls.
 */
export class StatementCounter {
  private readonly admin: Sql;

  /**
   * `serverWide`: the harness's other connections that do not reach the bench
   * database; they count only in MySQL's server-wide counter, which must not
   * charge them to the replicas (the server watch polls twice a second).
   */
  constructor(
    private readonly backend: Backend,
    private readonly database: string,
    private readonly serverWide: {readonly sent: number}[] = [],
  ) {
    this.admin = openSql(backend, serverAddress(backend), backend === 'postgresql' ? 'postgres' : '', 1, true);
  }

  snapshot(): Promise<StatementSnapshot> {
    return retrying(() => this.read());
  }

  private async read(): Promise<StatementSnapshot> {
    if (this.backend === 'postgresql') {
      const {rows} = await this.admin.query(
        `SELECT xact_commit + xact_rollback AS s, tup_inserted + tup_updated + tup_deleted AS w
         FROM pg_stat_database WHERE datname = ?`,
        [this.database],
      );
      return {statements: Number(rows[0]?.s ?? 0), rowsWritten: Number(rows[0]?.w ?? 0)};
    }
    const {rows} = await this.admin.query(
      `SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Handler_write', 'Handler_update', 'Handler_delete')`,
    );
    const v = new Map(rows.map(r => [String(r.Variable_name), Number(r.Value)]));
    return {
      statements: (v.get('Questions') ?? 0) - this.admin.sent - this.serverWide.reduce((a, x) => a + x.sent, 0),
      rowsWritten: (v.get('Handler_write') ?? 0) + (v.get('Handler_update') ?? 0) + (v.get('Handler_delete') ?? 0),
    };
  }

  close(): Promise<void> {
    return this.admin.close();
  }
}

/**
 * Other users of this machine may restart the database server mid-run (the
 * outage tests do). Polls the server's start time; a sample whose interval
 * overlaps a restart (or an unreachable server) is disturbed and redone.
 */
export class ServerWatch {
  private readonly admin: Sql;
  private timer: NodeJS.Timeout | undefined;
  private startedAt: string | undefined;
  private lastOk = 0;
  private downSince: number | undefined;
  /** [from, to] on the monotonic clock of `now`. */
  readonly disturbances: [number, number][] = [];

  constructor(
    private readonly backend: Backend,
    private readonly now: () => number,
  ) {
    this.admin = openSql(backend, serverAddress(backend), backend === 'postgresql' ? 'postgres' : '', 1, true);
  }

  /** Statements the watch sent (see StatementCounter). */
  get sent(): number {
    return this.admin.sent;
  }

  start(): void {
    const poll = async () => {
      const t = this.now();
      try {
        const sql =
          this.backend === 'postgresql'
            ? 'SELECT pg_postmaster_start_time()::text AS t'
            : "SELECT VARIABLE_VALUE AS t FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'";
        const {rows} = await this.admin.query(sql);
        let started = String(rows[0]?.t ?? '');
        if (this.backend === 'mysql') started = String(Math.round(Date.now() / 1000 - Number(started)));
        const restarted =
          this.startedAt !== undefined &&
          (this.backend === 'postgresql' ? started !== this.startedAt : Math.abs(Number(started) - Number(this.startedAt)) > 2);
        if (this.downSince !== undefined || restarted) {
          this.disturbances.push([this.downSince ?? this.lastOk, this.now()]);
          this.downSince = undefined;
        }
        this.startedAt = started;
        this.lastOk = this.now();
      } catch {
        this.downSince ??= t;
      }
      this.timer = setTimeout(() => void poll(), 500);
    };
    void poll();
  }

  /** Whether [from, to] (give or take a second) overlaps a restart or an outage. */
  disturbed(from: number, to: number): boolean {
    if (this.downSince !== undefined) return true;
    return this.disturbances.some(([a, b]) => a <= to + 1000 && b >= from - 1000);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.admin.close().catch(() => {});
  }
}

/** Retries `work` while the server is unreachable, for `ms` at most. */
export async function retrying<T>(work: () => Promise<T>, ms = 90000): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await work();
    } catch (err) {
      if (Date.now() - started > ms) throw err;
      await new Promise(resolve => setTimeout(resolve, 500));
    }
  }
}
