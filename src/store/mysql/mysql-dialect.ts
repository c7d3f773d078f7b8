// MySQL and MariaDB: schema migrations serialised on GET_LOCK, lock names
// compared as bytes in tables made by older versions, connections that may
// not carry 4-byte UTF-8 characters, and a doorbell for NOTIFY.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {MAX_LOCK_NAME_LENGTH} from '../../models/limits';
import {LockNotifier} from '../../wake/notifier';
import type {NotifierOptions} from '../dialect';
import {RepositoryDialect} from '../repository-dialect';
import {MysqlDoorbell} from './mysql-doorbell';

const debug = debugFactory('loopback:master-job-executor:datasource');

/** Same name on every database and every version of this package. */
export const MIGRATION_LOCK_NAME = 'loopback4-master-job-executor:migrate';
/** How long a replica waits for another's migration (the connection's own timeouts would be too short). */
const LOCK_WAIT_SECONDS = 600;

/** The component's models, whose id columns must compare exactly. */
const OWN_MODELS = ['MasterLock', 'MasterControl', 'MasterCheckpoint'];

interface SqlConnector {
  name: string;
  table(model: string): string;
  column(model: string, property: string): string;
}

interface MysqlConnection {
  query(sql: string, params: unknown[], cb: (err: Error | null, rows?: unknown) => void): void;
  release(): void;
}

const astralChecks = new WeakMap<juggler.DataSource, Promise<boolean>>();

export class MysqlDialect extends RepositoryDialect {
  async withMigrationLock<T>(
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
      const rows = (await query('SELECT GET_LOCK(?, ?) AS got', [
        MIGRATION_LOCK_NAME,
        LOCK_WAIT_SECONDS,
      ])) as {
        got: number | null;
      }[];
      if (rows[0]?.got !== 1) {
        throw new Error(
          `another replica has been migrating the schema of datasource ${dataSource.name} ` +
            `for ${LOCK_WAIT_SECONDS} s (lock ${MIGRATION_LOCK_NAME} not granted)`,
        );
      }
      try {
        debug('migrating under the lock');
        return await migrate();
      } finally {
        await query('SELECT RELEASE_LOCK(?)', [MIGRATION_LOCK_NAME]).catch(() => {});
      }
    } finally {
      connection.release();
    }
  }

  /**
   * MySQL: tables made by earlier versions compare lock names as VARCHAR in
   * a case-insensitive collation ('casex' = 'CASEX ', so two locks share a
   * row). autoupdate leaves id columns alone: make them bytes here.
   */
  async afterMigration(dataSource: juggler.DataSource): Promise<void> {
    const connector = dataSource.connector as unknown as SqlConnector;
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

  /**
   * MySQL connections in the connector's default charset, utf8 (3 bytes),
   * store characters of 4 bytes in UTF-8 (emoji) mangled, without an error.
   * Asked of the server once.
   */
  carriesAstralCharacters(dataSource: juggler.DataSource): Promise<boolean> {
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

  astralAdvice(dataSource: juggler.DataSource, field: string): string {
    return (
      `${field} contains characters of 4 bytes in UTF-8 (such as emoji), which the connections of ` +
      `datasource "${dataSource.name}" cannot store (their charset is utf8, 3 bytes): set ` +
      `collation: 'utf8mb4_unicode_ci' in its settings (or charset=utf8mb4 in its url)`
    );
  }

  createNotifier(dataSource: juggler.DataSource, options?: NotifierOptions): LockNotifier {
    return new MysqlDoorbell(dataSource, options?.clock);
  }

  refusedValueHint(dataSource: juggler.DataSource): string {
    return (
      ` Characters of 4 bytes in UTF-8 (emoji) need collation: 'utf8mb4_unicode_ci' in the ` +
      `settings of datasource "${dataSource.name}".`
    );
  }
}
