// The database server under a process cluster, seen from an admin connection:
// create the test database, kill client connections, and, only for a server
// of the tests' own (PrivateServer), stop and restart it. Used by the cluster
// tests and by `npm run chaos`.

import mysql from 'mysql2/promise';
import {serverAddress, ServerAddress} from '../fixtures/databases';
import {mono} from './checker';
import type {PrivateServer} from './private-server';

/* eslint-disable @typescript-eslint/no-explicit-any */
// `pg` comes with loopback-connector-postgresql and has no types installed.
const pg: {Client: new (config: object) => any} = require('pg');
/* eslint-enable @typescript-eslint/no-explicit-any */

export type SqlBackend = 'postgresql' | 'mysql';

export class DatabaseServer {
  readonly address: ServerAddress;

  /** `own`: a server made by the tests, which they may stop; else the machine's shared one. */
  constructor(
    readonly backend: SqlBackend,
    readonly database: string,
    private readonly own?: PrivateServer,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`bad database name ${database}`);
    this.address = own?.address ?? serverAddress(backend);
  }

  /** DATABASE_URL for the example app. */
  get url(): string {
    const {user, password, host, port} = this.address;
    const auth = encodeURIComponent(user) + (password ? ':' + encodeURIComponent(password) : '');
    const scheme = this.backend === 'postgresql' ? 'postgres' : 'mysql';
    return `${scheme}://${auth}@${host}:${port}/${this.database}`;
  }

  /** Only a server of the tests' own is ever stopped and started. */
  get canRestart(): boolean {
    return this.own !== undefined;
  }

  async ensureDatabase(): Promise<void> {
    if (this.backend === 'postgresql') {
      await this.withPg(async client => {
        const {rowCount} = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [
          this.database,
        ]);
        if (!rowCount) await client.query(`CREATE DATABASE ${this.database}`);
      });
    } else {
      await this.withMysql(conn => conn.query(`CREATE DATABASE IF NOT EXISTS ${this.database}`));
    }
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
    return this.withMysql(async conn => {
      const [rows] = await conn.query(
        'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
        [this.database],
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
    });
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
      await new Promise(resolve => setTimeout(resolve, 50));
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

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private async withPg<T>(work: (client: any) => Promise<T>, database = 'postgres'): Promise<T> {
    const {host, port, user, password} = this.address;
    const client = new pg.Client({
      host,
      port,
      user,
      password,
      database,
      connectionTimeoutMillis: 2000,
      query_timeout: 5000,
    });
    client.on('error', () => {}); // a server shutdown while connected must not crash the harness
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async withMysql<T>(work: (conn: mysql.Connection) => Promise<T>): Promise<T> {
    const {host, port, user, password} = this.address;
    const conn = await mysql.createConnection({host, port, user, password, connectTimeout: 2000});
    conn.on('error', () => {});
    try {
      return await work(conn);
    } finally {
      await conn.end().catch(() => {});
    }
  }
}
