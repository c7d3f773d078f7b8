// LockStore on LoopBack repositories, so it works on any datasource.
// Calls made in the same turn of the event loop (the elections of many locks
// tick on a shared grid) are batched into one statement each, so the database
// work of a replica per tick does not grow with the number of locks.

import {BindingScope, inject, injectable} from '@loopback/core';
import {repository, Where} from '@loopback/repository';
import {randomUUID} from 'crypto';
import {Acquired, LockObservation, LockRecord, LockStore, RenewResult} from './lock-store';
import {
  ASTRAL_CHARACTER,
  assertOpen,
  astralAdvice,
  carriesAstralCharacters,
} from './datasource-guard';
import {MasterJobExecutorBindings} from './keys';
import {MasterLock} from './models';
import {LockChange, LockNotifier, PostgresNotifier} from './notifier';
import {isPostgres, sqlBuilder, updateReturning} from './postgres';
import {MasterControlRepository, MasterLockRepository} from './repositories';

/** Locks per statement at most: bounds the parameters (PostgreSQL allows 65535). */
export const MAX_BATCH = 1000;

@injectable({scope: BindingScope.SINGLETON})
export class RepositoryLockStore implements LockStore {
  private readonly locks = new Batcher<string, LockRecord | undefined>(async names => {
    const rows = await this.lockRepo.find({where: {lockName: {inq: names}}});
    const byName = new Map(rows.map(row => [row.lockName, toLockRecord(row)]));
    return names.map(name => byName.get(name));
  });

  private readonly disabled = new Batcher<string, boolean>(async names => {
    const rows = await this.controlRepo.find({
      where: {lockName: {inq: names}, enabled: false},
      fields: {lockName: true},
    });
    const off = new Set(rows.map(row => row.lockName));
    return names.map(name => off.has(name));
  });

  private readonly creates = new Batcher<LockRecord, LockRecord | undefined>(records =>
    this.createAll(records),
  );

  /** Where the control is not read in the statement of the win, `disabled` is missing. */
  private readonly takeovers = new Batcher<Takeover, Won | undefined>(async batch => {
    // One statement for all: one new token for every row, above each row's own.
    const fencingToken = Math.max(...batch.map(t => t.next.fencingToken));
    const {instanceId, hostname, heartbeatAt, acquiredAt} = batch[0].next;
    const data = {
      instanceId,
      hostname,
      fencingToken,
      heartbeatAt,
      acquiredAt,
      renewalId: randomUUID(),
    };
    const conditions = batch.map(t => t.expected);
    const won = (t: Takeover) => ({...t.next, fencingToken, renewalId: data.renewalId});
    if (isPostgres(this.lockRepo.dataSource)) {
      const result = await this.takeOverReadingControl(conditions, data);
      return batch.map(t =>
        result.won.has(t.expected.lockName)
          ? {lock: won(t), disabled: result.disabled.has(t.expected.lockName)}
          : undefined,
      );
    }
    const landed = await this.writeWhereHeld(conditions, data);
    return batch.map((t, i) => (landed.renewalId[i] ? {lock: won(t)} : undefined));
  });

  // Keyed by holderKey(): JSON, so that equal calls share a key.
  private readonly renewals = new Batcher<string, boolean>(async keys => {
    const held = keys.map(key => JSON.parse(key) as Condition);
    const landed = await this.writeWhereHeld(held, {
      heartbeatAt: new Date(),
      renewalId: randomUUID(),
    });
    return landed.renewalId.map(Boolean);
  });

  private readonly releases = new Batcher<string, boolean>(keys => this.releaseAll(keys, true));
  /** Releases of disabled locks: nobody is to take them over, so nobody is told. */
  private readonly quietReleases = new Batcher<string, boolean>(keys =>
    this.releaseAll(keys, false),
  );

  constructor(
    @repository(MasterLockRepository)
    private readonly lockRepo: MasterLockRepository,
    @repository(MasterControlRepository)
    private readonly controlRepo: MasterControlRepository,
    @inject(MasterJobExecutorBindings.NOTIFIER, {optional: true})
    private readonly notifier?: LockNotifier,
  ) {}

  async read(lockName: string): Promise<LockObservation> {
    assertOpen(this.lockRepo.dataSource);
    const [lock, disabled] = await Promise.all([
      this.locks.load(lockName),
      this.disabled.load(lockName),
    ]);
    return {lock, disabled};
  }

  async isDisabled(lockName: string): Promise<boolean> {
    assertOpen(this.lockRepo.dataSource);
    return this.disabled.load(lockName);
  }

  async create(lock: LockRecord): Promise<Acquired | undefined> {
    const dataSource = this.lockRepo.dataSource;
    assertOpen(dataSource);
    if (ASTRAL_CHARACTER.test(lock.lockName) && !(await carriesAstralCharacters(dataSource))) {
      // Stored mangled, the row would never match its name again.
      throw new Error(astralAdvice(dataSource, `lockName "${lock.lockName}"`));
    }
    return this.withControl(await this.creates.load({...lock}));
  }

  async takeOver(expected: LockRecord, next: LockRecord): Promise<Acquired | undefined> {
    assertOpen(this.lockRepo.dataSource);
    const condition = compareAndSet({
      lockName: expected.lockName,
      instanceId: expected.instanceId,
      fencingToken: expected.fencingToken,
      renewalId: expected.renewalId,
    });
    const won = await this.takeovers.load({expected: condition, next});
    return won?.disabled === undefined
      ? this.withControl(won?.lock)
      : {...won, disabled: won.disabled};
  }

  /**
   * The control of a lock just won, read right after the win (PostgreSQL reads
   * it in the statement of the win instead). If that read fails, the lock is
   * released (best effort) and the call rejects: the caller must not start.
   */
  private async withControl(won: LockRecord | undefined): Promise<Acquired | undefined> {
    if (!won) return undefined;
    try {
      return {lock: won, disabled: await this.disabled.load(won.lockName)};
    } catch (err) {
      await this.release(won.lockName, won.instanceId, won.fencingToken).catch(() => false);
      throw err;
    }
  }

  async renew(lockName: string, instanceId: string, fencingToken: number): Promise<RenewResult> {
    assertOpen(this.lockRepo.dataSource);
    const key = holderKey({lockName, instanceId, fencingToken});
    const [renewed, disabled] = await Promise.all([
      this.renewals.load(key),
      this.disabled.load(lockName),
    ]);
    return {renewed, disabled};
  }

  async release(
    lockName: string,
    instanceId: string,
    fencingToken: number,
    handOver = true,
  ): Promise<boolean> {
    assertOpen(this.lockRepo.dataSource);
    const key = holderKey({lockName, instanceId, fencingToken});
    return (handOver ? this.releases : this.quietReleases).load(key);
  }

  /**
   * Inserts the first rows of these locks in one statement; resolves, per
   * record, to it where it landed, undefined where another replica's row was
   * there first.
   */
  private async createAll(records: LockRecord[]): Promise<(LockRecord | undefined)[]> {
    try {
      // A deadlock victim's INSERT was rolled back: run it again (InnoDB picks
      // one when several replicas insert the same first row at once).
      await retryDeadlock(() => this.lockRepo.createAll(records.map(r => ({...r}))));
      return records;
    } catch (err) {
      if (!isDuplicate(err)) throw err;
    }
    if (records.length === 1) return [undefined];
    // Another replica created some first. SQL rolls the whole INSERT back;
    // the memory connector keeps the rows before the clash.
    const rows = await this.locks.loadMany(records.map(r => r.lockName));
    const result = records.map((r, i) =>
      rows[i]?.instanceId === r.instanceId && rows[i]?.renewalId === r.renewalId ? r : undefined,
    );
    const missing = records.flatMap((r, i) => (rows[i] ? [] : [i]));
    // Insert again those nobody has: in halves if that is all of them, so
    // that a clash among them ends up alone and fails only its own lock.
    const parts = missing.length === records.length ? halves(missing) : [missing];
    for (const part of parts.filter(p => p.length)) {
      const landed = await this.createAll(part.map(i => records[i]));
      part.forEach((i, j) => (result[i] = landed[j]));
    }
    return result;
  }

  /** Frees the rows still held as the keys say; with `handOver`, tells the others which. */
  private async releaseAll(keys: string[], handOver: boolean): Promise<boolean[]> {
    const held = keys.map(key => JSON.parse(key) as Condition);
    const data = {instanceId: '', hostname: '', renewalId: randomUUID()};
    if (!handOver) return (await this.writeWhereHeld(held, data)).renewalId.map(Boolean);
    // The others take over now, not at their next poll, and without a read.
    const freed = held.map(h => ({
      lockName: h.lockName,
      freed: {fencingToken: +h.fencingToken, renewalId: data.renewalId},
    }));
    if (this.notifier instanceof PostgresNotifier) {
      return this.releaseNotifying(this.notifier, held, data, freed);
    }
    const landed = await this.writeWhereHeld(held, data);
    const released = landed.renewalId.map(Boolean);
    if (released.some(Boolean)) this.notifier?.publish(freed.filter((_, i) => released[i]));
    return released;
  }

  /**
   * Writes `data` (with a new renewalId) to every row that matches one of the
   * compare-and-set conditions, in one statement. Resolves, per condition, to
   * the renewalId written, or undefined where the row had changed.
   */
  private async writeWhereHeld(
    conditions: Condition[],
    data: Partial<MasterLock> & {renewalId: string},
  ): Promise<{renewalId: (string | undefined)[]}> {
    const {renewalId} = data;
    const {count} = await retryDeadlock(() => this.lockRepo.updateAll(data, anyOf(conditions)));
    if (count === conditions.length) return {renewalId: conditions.map(() => renewalId)};
    if (count === 0) return {renewalId: conditions.map(() => undefined)};
    // Some rows changed hands: read which ones carry this write. Where the
    // write keeps the token, it also tells two conditions on one row apart
    // (a stale release next to a current one); a takeover has one per lock.
    const rows = await this.locks.loadMany(conditions.map(c => c.lockName));
    return {
      renewalId: rows.map((row, i) =>
        row?.renewalId === renewalId &&
        (data.fencingToken !== undefined || row.fencingToken === conditions[i].fencingToken)
          ? renewalId
          : undefined,
      ),
    };
  }

  /**
   * PostgreSQL: the takeovers and the read of their control in one statement,
   * so a replica that wins can start without another round trip. The control
   * rows are read FOR SHARE, after the win: that read returns their latest
   * committed version (waiting for a disable in progress), and a disable that
   * comes later waits for this takeover to commit, so the winner hears of it
   * as master. As if the control were read after the win.
   */
  private async takeOverReadingControl(
    conditions: Condition[],
    data: Partial<MasterLock>,
  ): Promise<{won: Set<string>; disabled: Set<string>}> {
    const dataSource = this.lockRepo.dataSource;
    const update = updateReturning<MasterLock>(
      dataSource,
      this.lockRepo.modelClass.modelName,
      anyOf(conditions),
      data,
      ['lockName'],
    );
    const sql = sqlBuilder(dataSource);
    const control = this.controlRepo.modelClass.modelName;
    const name = sql.columnEscaped(control, 'lockName');
    const enabled = sql.columnEscaped(control, 'enabled');
    const statement =
      `WITH updated AS (${update.sql}), ` +
      `control AS (SELECT ${name} AS "lockName", ${enabled} AS enabled FROM ${sql.tableEscaped(control)} ` +
      `WHERE ${name} IN (SELECT "lockName" FROM updated) FOR SHARE) ` +
      `SELECT coalesce((SELECT json_agg("lockName") FROM updated), '[]') AS won, ` +
      `coalesce((SELECT json_agg("lockName") FROM control WHERE NOT enabled), '[]') AS disabled`;
    const rows = (await retryDeadlock(() => dataSource.execute(statement, update.params))) as {
      won: string[];
      disabled: string[];
    }[];
    return {won: new Set(rows[0]?.won), disabled: new Set(rows[0]?.disabled)};
  }

  /**
   * PostgreSQL: the release and its NOTIFY in one statement. The NOTIFY names
   * the whole batch and goes only if every row was released; otherwise the
   * rows that were are published after. Resolves, per condition, whether it was.
   */
  private async releaseNotifying(
    notifier: PostgresNotifier,
    held: Condition[],
    data: Partial<MasterLock>,
    freed: LockChange[],
  ): Promise<boolean[]> {
    const {rows} = await retryDeadlock(() =>
      notifier.updateAndPublish<MasterLock>(
        this.lockRepo.modelClass.modelName,
        anyOf(held),
        data,
        ['lockName', 'fencingToken'],
        held.length,
        freed,
      ),
    );
    // A release keeps the token: it tells apart two conditions on one row.
    const released = held.map(h =>
      rows.some(
        r => r.lockName === h.lockName && Number(r.fencingToken) === Number(h.fencingToken),
      ),
    );
    if (rows.length > 0 && rows.length < held.length) {
      notifier.publish(freed.filter((_, i) => released[i]));
    }
    return released;
  }
}

type Won = Omit<Acquired, 'disabled'> & {disabled?: boolean};

interface Takeover {
  /** The compare-and-set condition on the expected record. */
  expected: Condition;
  next: LockRecord;
}

/** A compare-and-set condition on one row. */
type Condition = {lockName: string} & Record<string, string | number>;

/**
 * The condition that the row still names this holder and token. Checked where
 * the call is made: one bad call must not fail the whole batch.
 */
function holderKey(h: Pick<LockRecord, 'lockName' | 'instanceId' | 'fencingToken'>): string {
  const {lockName, instanceId, fencingToken} = h;
  return JSON.stringify(compareAndSet({lockName, instanceId, fencingToken}));
}

/**
 * Rows matching any of the conditions. Conditions that differ only in the
 * lock name become one `lockName IN (...)`: the locks of a replica share their
 * holder, and a batch of takeovers or renewals its token and renewalId, so 1000
 * renewals are one IN list, not an OR of 1000 branches (about 25 times cheaper
 * for PostgreSQL and for the connector to build).
 */
function anyOf(conditions: Condition[]): Where<MasterLock> {
  const groups = new Map<string, {rest: Omit<Condition, 'lockName'>; names: string[]}>();
  for (const {lockName, ...rest} of conditions) {
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1)));
    const group = groups.get(key) ?? {rest, names: []};
    group.names.push(lockName);
    groups.set(key, group);
  }
  const wheres = [...groups.values()].map(({rest, names}) => ({
    ...rest,
    lockName: names.length === 1 ? names[0] : {inq: names},
  }));
  return (wheres.length === 1 ? wheres[0] : {or: wheres}) as Where<MasterLock>;
}

/**
 * Connectors silently drop a condition whose value is undefined, which would
 * turn a compare-and-set into an unconditional write: refuse instead.
 */
function compareAndSet<T extends Record<string, string | number>>(where: T): T {
  for (const [field, value] of Object.entries(where)) {
    if (
      value === undefined ||
      value === null ||
      (typeof value === 'number' && !Number.isFinite(value))
    ) {
      throw new Error(`compare-and-set on MasterLock without a value for ${field}`);
    }
  }
  return where;
}

function toLockRecord(row: MasterLock): LockRecord {
  return {
    lockName: row.lockName,
    instanceId: row.instanceId ?? '',
    hostname: row.hostname ?? '',
    fencingToken: Number(row.fencingToken),
    renewalId: row.renewalId,
    heartbeatAt: row.heartbeatAt ? new Date(row.heartbeatAt) : new Date(0),
    acquiredAt: row.acquiredAt ? new Date(row.acquiredAt) : new Date(0),
  };
}

interface ErrorWithCode {
  code?: string;
  statusCode?: number | string;
  message?: string;
}

/**
 * InnoDB may pick two concurrent single-row UPDATEs, or INSERTs of one key, as
 * deadlock victims; the victim's statement was rolled back, so running it
 * again is safe.
 */
export async function retryDeadlock<T>(statement: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await statement();
    } catch (err) {
      const code = (err as ErrorWithCode)?.code;
      if (i >= attempts || (code !== 'ER_LOCK_DEADLOCK' && code !== '40P01')) throw err;
    }
  }
}

/** memory: 409 "Duplicate entry"; PostgreSQL 23505; MySQL ER_DUP_ENTRY. */
export function isDuplicate(err: unknown): boolean {
  const e = (err ?? {}) as ErrorWithCode;
  return (
    e.code === '23505' ||
    e.code === 'ER_DUP_ENTRY' ||
    String(e.statusCode) === '409' ||
    /duplicate/i.test(e.message ?? '')
  );
}

/**
 * The database refused a statement for a value of some row, not for being
 * unreachable: PostgreSQL's data exceptions (class 22: a NUL byte, a value
 * too long), MySQL's data errors.
 */
export function isRowError(err: unknown): boolean {
  const code = String((err as ErrorWithCode)?.code ?? '');
  return /^22[0-9A-Z]{3}$/.test(code) || MYSQL_ROW_ERRORS.has(code);
}

const MYSQL_ROW_ERRORS = new Set([
  'ER_DATA_TOO_LONG',
  'ER_TRUNCATED_WRONG_VALUE',
  'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD',
  'ER_WARN_DATA_OUT_OF_RANGE',
  'ER_INVALID_CHARACTER_STRING',
  'ER_CANNOT_CONVERT_STRING',
  'WARN_DATA_TRUNCATED',
]);

/** Turns "no such table" into an error that says what to do. */
export function explain(err: unknown): unknown {
  const e = (err ?? {}) as ErrorWithCode;
  if (e.code === '42P01' || e.code === 'ER_NO_SUCH_TABLE') {
    return new Error(
      `The tables of loopback4-master-job-executor (MasterLock, MasterControl) are missing: ` +
        `create them with app.migrateSchema() (see README, "Database tables"). ` +
        `Database said: ${e.message}`,
    );
  }
  return err;
}

/**
 * Collects the keys loaded in one turn of the event loop and resolves them
 * with one call of `loadMany` per MAX_BATCH keys.
 */
export class Batcher<K, V> {
  private pending: Map<K, {resolve: (v: V) => void; reject: (e: unknown) => void}[]> | undefined;

  constructor(private readonly loadBatch: (keys: K[]) => Promise<V[]>) {}

  load(key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      if (!this.pending) {
        this.pending = new Map();
        setImmediate(() => this.flush());
      }
      const waiters = this.pending.get(key) ?? [];
      waiters.push({resolve, reject});
      this.pending.set(key, waiters);
    });
  }

  /** Loads these keys now, without waiting for the turn to end. */
  async loadMany(keys: K[]): Promise<V[]> {
    const chunks: Promise<V[]>[] = [];
    for (let i = 0; i < keys.length; i += MAX_BATCH) {
      chunks.push(this.loadBatch(keys.slice(i, i + MAX_BATCH)));
    }
    return (await Promise.all(chunks)).flat();
  }

  private flush(): void {
    const batch = this.pending!;
    this.pending = undefined;
    const keys = [...batch.keys()];
    for (let i = 0; i < keys.length; i += MAX_BATCH) {
      const chunk = keys.slice(i, i + MAX_BATCH);
      void this.settle(chunk, (key, outcome) =>
        batch
          .get(key)!
          .forEach(w => ('value' in outcome ? w.resolve(outcome.value) : w.reject(outcome.error))),
      );
    }
  }

  /**
   * Loads `keys` in one call. If the database refused the statement for what
   * one row holds, the halves are loaded separately, down to that row alone:
   * one bad key never fails the others (a few statements per bad key).
   */
  private async settle(
    keys: K[],
    deliver: (key: K, outcome: {value: V} | {error: unknown}) => void,
  ): Promise<void> {
    try {
      const values = await this.loadBatch(keys);
      keys.forEach((key, j) => deliver(key, {value: values[j]}));
    } catch (err) {
      if (keys.length > 1 && isRowError(err)) {
        await Promise.all(halves(keys).map(half => this.settle(half, deliver)));
        return;
      }
      const error = explain(err);
      keys.forEach(key => deliver(key, {error}));
    }
  }
}

function halves<T>(items: T[]): T[][] {
  const middle = Math.ceil(items.length / 2);
  return [items.slice(0, middle), items.slice(middle)];
}
