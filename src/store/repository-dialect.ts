// The dialect of any connector, through LoopBack repositories alone: no
// migration lock, notifications inside the process only, the store's
// repository statements. The dialects of postgres/, mysql/ and memory/
// override what their database does better or needs.

import {juggler} from '@loopback/repository';
import {Clock} from '../types';
import {LocalNotifier} from '../wake/local';
import {LockNotifier} from '../wake/notifier';
import {Dialect, LockTables} from './dialect';
import {LockStore} from './lock-store';
import {RepositoryLockStore} from './repository-lock-store';

export class RepositoryDialect implements Dialect {
  prepare(dataSource: juggler.DataSource): void {}

  withMigrationLock<T>(dataSource: juggler.DataSource, migrate: () => Promise<T>): Promise<T> {
    return migrate(); // nothing shared to race on, or no lock to take
  }

  async afterMigration(dataSource: juggler.DataSource): Promise<void> {}

  async carriesAstralCharacters(dataSource: juggler.DataSource): Promise<boolean> {
    return true;
  }

  astralAdvice(dataSource: juggler.DataSource, field: string): string {
    return `${field} contains characters of 4 bytes in UTF-8 (such as emoji), which datasource "${dataSource.name}" cannot store`;
  }

  refusedValueHint(dataSource: juggler.DataSource): string {
    return '';
  }

  async readOnly(dataSource: juggler.DataSource): Promise<string | undefined> {
    return undefined; // no way to ask: a refused write says so (errors.ts, isReadOnly)
  }

  createNotifier(dataSource: juggler.DataSource): LockNotifier {
    return new LocalNotifier(dataSource);
  }

  createLockStore(tables: LockTables, notifier?: LockNotifier, clock?: Clock): LockStore {
    return new RepositoryLockStore(tables.locks, tables.controls, notifier, this, clock);
  }
}
