// The seam between the component and a database: what differs from one
// connector to another. One implementation per folder (postgres/, mysql/,
// memory/), the defaults in repository-dialect.ts, and the choice by
// connector in dialects.ts, the only place that looks at a connector's name.

import type {DefaultCrudRepository, juggler} from '@loopback/repository';
import type {
  MasterCheckpoint,
  MasterControl,
  MasterCronRun,
  MasterLock,
  MasterTask,
} from '../models';
import type {Clock} from '../types';
import type {LockNotifier} from '../wake/notifier';
import type {LockStore} from './lock-store';

export type LockRepository = DefaultCrudRepository<MasterLock, string>;
export type ControlRepository = DefaultCrudRepository<MasterControl, string>;
export type TaskRepository = DefaultCrudRepository<MasterTask, number>;
export type CheckpointRepository = DefaultCrudRepository<MasterCheckpoint, string>;
export type CronRunRepository = DefaultCrudRepository<MasterCronRun, string>;

/** The component's tables, as its repositories. */
export interface LockTables {
  locks: LockRepository;
  controls: ControlRepository;
}

/** How a notifier is made. */
export interface NotifierOptions {
  /** Times its reconnections (default: the system's clock). */
  clock?: Clock;
  /** PostgreSQL: a direct connection for LISTEN, when the datasource goes through a pooler. */
  listenUrl?: string;
  /** Where a warning goes that wake-ups do not arrive; default process.emitWarning. */
  warn?: (message: string) => void;
}

/** What the component's schema migrations need of the database. */
export interface MigrationDialect {
  /**
   * Runs a schema migration holding a lock of the database itself, so that
   * replicas migrating at once take turns instead of racing on CREATE TABLE.
   */
  withMigrationLock<T>(dataSource: juggler.DataSource, migrate: () => Promise<T>): Promise<T>;
  /** After a migration, under its lock: what migrateSchema cannot do itself. */
  afterMigration(dataSource: juggler.DataSource): Promise<void>;
}

/** What the database can store, and how to tell the operator when it cannot. */
export interface ValueDialect {
  /** Whether the connections store characters of 4 bytes in UTF-8 (emoji) unchanged. */
  carriesAstralCharacters(dataSource: juggler.DataSource): Promise<boolean>;
  /** The advice when `field` holds characters the connections cannot carry. */
  astralAdvice(dataSource: juggler.DataSource, field: string): string;
  /** Added to the message when the database refused a value (a 422). */
  refusedValueHint(dataSource: juggler.DataSource): string;
  /** Why the server takes no writes now (a hot standby, ...), or undefined when it does. */
  readOnly(dataSource: juggler.DataSource): Promise<string | undefined>;
}

/** What is made per datasource: its preparation, its wake-up transport and its store. */
export interface PartsDialect {
  /**
   * Once per datasource, from the repositories' constructors (before any
   * call or migration): what the connector needs to be safe to use.
   */
  prepare(dataSource: juggler.DataSource): void;
  /** How replicas using this datasource wake each other; `clock` times its reconnections. */
  createNotifier(dataSource: juggler.DataSource, options?: NotifierOptions): LockNotifier;
  /** The LockStore over the component's tables; `clock` stamps its renewals (default: the system's). */
  createLockStore(tables: LockTables, notifier?: LockNotifier, clock?: Clock): LockStore;
}

/** Everything that differs per database, by concern. */
export interface Dialect extends MigrationDialect, ValueDialect, PartsDialect {}
