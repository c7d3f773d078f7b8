// The database server under a process cluster, seen from an admin connection:
// create the cluster's database, kill client connections, read the fenced
// resource, and, only for a server of the kit's own (PrivateServer), stop and
// restart it. Used by the process harness (its faults), the cluster tests,
// the benchmark and `npm run chaos`.

import type {Connection} from 'mysql2/promise';
import type {PrivateServer} from './private-server';
import {
  AdminOptions,
  checkName,
  databaseUrl,
  ensureDatabase,
  killMysqlThreads,
  PgClient,
  serverAddress,
  ServerAddress,
  SqlBackend,
  withMysql,
  withPg,
} from './sql';
import {mono, sleep} from './time';

export type {SqlBackend} from './sql';

/** Admin connections here are short-lived and give up fast. */
const ADMIN: AdminOptions = {connectTimeout: 2000, queryTimeout: 5000};

export class DatabaseServer {
  readonly address: ServerAddress;

  /** `own`: a server made by the tests, which they may stop; else the machine's shared one. */
  constructor(
    readonly backend: SqlBackend,
    readonly database: string,
    private readonly own?: PrivateServer,
  ) {
    checkName(database);
    this.address = own?.address ?? serverAddress(backend);
  }

  /** DATABASE_URL for the example app. */
  get url(): string {
    return databaseUrl(this.backend, this.address, this.database);
  }

  /** Only a server of the tests' own is ever stopped and started. */
  get canRestart(): boolean {
    return this.own !== undefined;
  }

  async ensureDatabase(): Promise<void> {
    await ensureDatabase(this.backend, this.address, this.database, ADMIN);
  }

  /**
   * Kills server-side connections to the test database: on PostgreSQL those
   * whose application_name is `applicationName` (the example app sets it to
   * its instance id), on MariaDB all of them (it cannot tell replicas apart).
   * Returns how many were killed.
   */
  async terminateConnections(applicationName: string): Promise<number> {
    if (this.backend === 'postgresql') {
      return this.withPg(async client => {
        const {rows} = await client.query(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
           WHERE datname = $1 AND application_name = $2`,
          [this.database, applicationName],
        );
        return rows.filter((r: {killed: boolean}) => r.killed).length;
      });
    }
    return this.withMysql(conn => killMysqlThreads(conn, this.database));
  }

  /** The URL of the same database through a proxy listening on `port` (127.0.0.1). */
  urlVia(port: number): string {
    return databaseUrl(this.backend, {...this.address, host: '127.0.0.1', port}, this.database);
  }

  /** Stops every process of the server (SIGSTOP): a hung server. */
  freeze(): void {
    this.ownServer().freeze();
  }

  thaw(): void {
    this.ownServer().thaw();
  }

  /** kill -9 of the server; start() brings it back through crash recovery. */
  async crash(): Promise<void> {
    await this.ownServer().crash();
  }

  /** Stops the server (fast: clients are disconnected at once). */
  async stop(): Promise<void> {
    await this.ownServer().stop();
  }

  /** Starts the server; resolves with the (monotonic) time it first answered. */
  async start(timeout = 30000): Promise<number> {
    const starting = this.ownServer().start(timeout);
    // pg_ctl returns some time after the server accepts connections: poll meanwhile.
    const failed = starting.then(
      () => new Promise<never>(() => {}),
      (err: Error) => Promise.reject(err),
    );
    const answeredAt = await Promise.race([this.waitUntilAnswering(timeout), failed]);
    await starting;
    return answeredAt;
  }

  async isAnswering(): Promise<boolean> {
    try {
      await (this.backend === 'postgresql'
        ? this.withPg(client => client.query('SELECT 1'))
        : this.withMysql(conn => conn.query('SELECT 1')));
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves with the (monotonic) time the server answered. */
  async waitUntilAnswering(timeout: number): Promise<number> {
    const deadline = mono() + timeout;
    for (;;) {
      const askedAt = mono();
      if (await this.isAnswering()) return askedAt;
      if (mono() > deadline) throw new Error(`${this.backend} not answering after ${timeout} ms`);
      await sleep(50);
    }
  }

  /** The fenced resource's row for a lock, as the database holds it. */
  async readFencedResource(
    lockName: string,
  ): Promise<{fencingToken: number; writer: string} | undefined> {
    if (this.backend === 'postgresql') {
      return this.withPg(async client => {
        const {rows} = await client.query(
          'SELECT fencingtoken AS "fencingToken", writer FROM fencedresource WHERE lockname = $1',
          [lockName],
        );
        return rows[0];
      }, this.database);
    }
    return this.withMysql(async conn => {
      const [rows] = await conn.query(
        `SELECT fencingToken, writer FROM ${this.database}.FencedResource WHERE lockName = ?`,
        [lockName],
      );
      return (rows as {fencingToken: number; writer: string}[])[0];
    });
  }

  private ownServer(): PrivateServer {
    if (!this.own) throw new Error(`the shared ${this.backend} server is never stopped by a test`);
    return this.own;
  }

  private withPg<T>(work: (client: PgClient) => Promise<T>, database = 'postgres'): Promise<T> {
    return withPg(this.address, work, {...ADMIN, database});
  }

  private withMysql<T>(work: (conn: Connection) => Promise<T>): Promise<T> {
    return withMysql(this.address, work, ADMIN);
  }
}
