// PostgreSQL: the dialect that puts the pieces of this folder together:
// pool errors that must not crash the process, migrations serialised on an
// advisory lock, LISTEN/NOTIFY, and the store's fused statements.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {Clock} from '../../types';
import {LockNotifier} from '../../wake/notifier';
import {LockTables, NotifierOptions} from '../dialect';
import {LockStore} from '../lock-store';
import {RepositoryDialect} from '../repository-dialect';
import {guardPoolErrors} from './pool-errors';
import {PostgresLockStore} from './postgres-lock-store';
import {PostgresNotifier} from './postgres-notifier';

const debug = debugFactory('loopback:master-job-executor:datasource');

/** pg_advisory_xact_lock takes a bigint: a fixed one derived from the package's name. */
export const MIGRATION_LOCK_KEY = '7450915263341048217';
/** How long a replica waits for another's migration (the connection's own timeouts would be too short). */
const LOCK_WAIT_SECONDS = 600;

interface PgClient extends EventEmitter {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<unknown>;
  end(): Promise<void>;
}

export class PostgresDialect extends RepositoryDialect {
  prepare(dataSource: juggler.DataSource): void {
    guardPoolErrors(dataSource);
  }

  async withMigrationLock<T>(
    dataSource: juggler.DataSource,
    migrate: () => Promise<T>,
  ): Promise<T> {
    const pool = (
      dataSource.connector as {pg?: {Client: new (o: object) => PgClient; options: object}}
    ).pg;
    if (!pool?.Client) return migrate();
    // Not a pool client: the migration needs the pool, which may have one connection.
    const wait = LOCK_WAIT_SECONDS * 1000;
    // A transaction's lock, not the session's: behind a pooler in transaction
    // mode (PgBouncer) the session is not ours, and a session lock would stay
    // on a server connection the pooler lends to others. Its timeouts are set
    // in the transaction, not as startup parameters, which PgBouncer refuses.
    // eslint-disable-next-line @typescript-eslint/naming-convention
    const client = new pool.Client({...pool.options, query_timeout: wait + 5000});
    client.on('error', (err: Error) => debug('migration lock connection: %s', err.message));
    await client.connect();
    try {
      debug('waiting for the migration lock');
      await client.query('BEGIN');
      await client.query(`SET LOCAL statement_timeout = ${wait}`);
      await client.query(`SET LOCAL lock_timeout = ${wait}`);
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
      debug('migrating under the lock');
      return await migrate();
    } finally {
      // Ending the transaction frees the lock; ending the connection would too.
      await client.query('ROLLBACK').catch(() => {});
      await client.end().catch(() => {});
    }
  }

  async readOnly(dataSource: juggler.DataSource): Promise<string | undefined> {
    const [row] = (await dataSource.execute(
      "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro",
    )) as {standby: boolean; ro: string}[];
    if (row?.standby) return 'the server is a hot standby (pg_is_in_recovery())';
    if (row?.ro === 'on') return 'transaction_read_only is on (default_transaction_read_only)';
    return undefined;
  }

  createNotifier(dataSource: juggler.DataSource, options?: NotifierOptions): LockNotifier {
    // Its proof of LISTEN is a query through the pool, maybe the pool's first.
    this.prepare(dataSource);
    return new PostgresNotifier(dataSource, options);
  }

  createLockStore(tables: LockTables, notifier?: LockNotifier, clock?: Clock): LockStore {
    return new PostgresLockStore(tables.locks, tables.controls, notifier, this, clock);
  }
}
