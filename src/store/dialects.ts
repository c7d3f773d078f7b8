// Which dialect a datasource speaks: the only place that looks at the name
// of a connector. Anything not listed goes through repositories alone.

import {juggler} from '@loopback/repository';
import {Clock} from '../types';
import {LockNotifier} from '../wake/notifier';
import {Dialect, LockTables, NotifierOptions} from './dialect';
import {LockStore} from './lock-store';
import {MemoryDialect} from './memory/memory-dialect';
import {MysqlDialect} from './mysql/mysql-dialect';
import {PostgresDialect} from './postgres/postgres-dialect';
import {RepositoryDialect} from './repository-dialect';

const DIALECTS: Record<string, Dialect> = {
  postgresql: new PostgresDialect(),
  mysql: new MysqlDialect(),
  memory: new MemoryDialect(),
};

const ANY_CONNECTOR = new RepositoryDialect();

export function dialectOf(dataSource: juggler.DataSource): Dialect {
  const name = dataSource.connector?.name;
  const known = name !== undefined && Object.prototype.hasOwnProperty.call(DIALECTS, name);
  return known ? DIALECTS[name] : ANY_CONNECTOR;
}

/** The notifier for this datasource, as the component makes it. */
export function createNotifier(
  dataSource: juggler.DataSource,
  options?: NotifierOptions,
): LockNotifier {
  return dialectOf(dataSource).createNotifier(dataSource, options);
}

/** The LockStore over these tables, as the component makes it. */
export function createLockStore(
  tables: LockTables,
  notifier?: LockNotifier,
  clock?: Clock,
): LockStore {
  return dialectOf(tables.locks.dataSource).createLockStore(tables, notifier, clock);
}
