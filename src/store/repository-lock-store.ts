// LockStore on LoopBack repositories, so it works on any datasource. Calls
// made in the same turn of the event loop are batched into one statement each
// (batcher.ts), so the database work of a replica per tick does not grow with
// the number of locks. A dialect may replace the statements of a batch with
// better ones of its database (postgres/postgres-lock-store.ts). A renewal's
// heartbeatAt is the wall clock of the executor's clock, as a win's is.

import {BindingScope, inject, injectable} from '@loopback/core';
import {Entity, Filter, juggler, repository, Where} from '@loopback/repository';
import {randomUUID} from 'crypto';
import {systemClock} from '../clock';
import {MasterJobExecutorBindings} from '../keys';
import {ASTRAL_CHARACTER, MasterControl, MasterLock} from '../models';
import {Clock} from '../types';
import {WakeUp} from '../wake/messages';
import {LockNotifier} from '../wake/notifier';
import {Batcher, halves} from './batcher';
import {assertOpen} from './datasource-state';
import type {ControlRepository, Dialect, LockRepository} from './dialect';
import {isDuplicate, retryDeadlock} from './errors';
import {
  Acquired,
  ControlRecord,
  ControlWrite,
  ControlWritten,
  LockObservation,
  LockRecord,
  LockStore,
  RenewResult,
} from './lock-store';

/** What a release writes on the row: nobody holds it, and it changed. */
export type LockData = Partial<MasterLock> & {renewalId: string};

@injectable({scope: BindingScope.SINGLETON})
export class RepositoryLockStore implements LockStore {
  private readonly locks = new Batcher<string, LockRecord | undefined>(async names => {
    const rows = await findPlain(this.lockRepo, {where: {lockName: {inq: names}}});
    const byName = new Map(rows.map(row => [row.lockName, toLockRecord(row)]));
    return names.map(name => byName.get(name));
  });

  private readonly groups = new Batcher<string, LockRecord[]>(async names => {
    const rows = await findPlain(this.lockRepo, {where: {groupName: {inq: names}}});
    return names.map(name => rows.filter(row => row.groupName === name).map(toLockRecord));
  });

  private readonly disabled = new Batcher<string, boolean>(async names => {
    const off = await this.disabledAmong(names);
    return names.map(name => off.has(name));
  });

  private readonly creates = new Batcher<LockRecord, LockRecord | undefined>(records =>
    this.createAll(records),
  );

  private readonly takeovers = new Batcher<Takeover, Acquired | undefined>(async batch => {
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
    const {won, disabled} = await this.takeOverAll(
      batch.map(t => t.expected),
      data,
    );
    return batch.map((t, i) =>
      won[i]
        ? {
            lock: {...t.next, fencingToken, renewalId: data.renewalId},
            disabled: disabled.has(t.expected.lockName),
          }
        : undefined,
    );
  });

  private readonly renewals = new Batcher<Condition, boolean>(
    conditions =>
      this.renewAll(conditions, {heartbeatAt: this.clock.date(), renewalId: randomUUID()}),
    sameCondition,
  );

  private readonly releases = new Batcher<Condition, boolean>(
    conditions => this.releaseAll(conditions, true),
    sameCondition,
  );
  /** Releases of disabled locks: nobody is to take them over, so nobody is told. */
  private readonly quietReleases = new Batcher<Condition, boolean>(
    conditions => this.releaseAll(conditions, false),
    sameCondition,
  );

  constructor(
    @repository('MasterLockRepository')
    protected readonly lockRepo: LockRepository,
    @repository('MasterControlRepository')
    protected readonly controlRepo: ControlRepository,
    @inject(MasterJobExecutorBindings.NOTIFIER, {optional: true})
    protected readonly notifier?: LockNotifier,
    @inject(MasterJobExecutorBindings.DIALECT, {optional: true})
    private readonly dialect?: Dialect,
    @inject(MasterJobExecutorBindings.CLOCK, {optional: true})
    private readonly clock: Clock = systemClock,
  ) {}

  async read(lockName: string): Promise<LockObservation> {
    assertOpen(this.lockRepo.dataSource);
    const [lock, disabled] = await Promise.all([
      this.locks.load(lockName),
      this.disabled.load(lockName),
    ]);
    return {lock, disabled};
  }

  async readGroup(groupName: string): Promise<LockRecord[]> {
    assertOpen(this.lockRepo.dataSource);
    return this.groups.load(groupName);
  }

  async forget(lock: LockRecord): Promise<boolean> {
    assertOpen(this.lockRepo.dataSource);
    const {lockName, instanceId, fencingToken, renewalId} = lock;
    const where = compareAndSet({lockName, instanceId, fencingToken, renewalId});
    return (await this.lockRepo.deleteAll(where)).count > 0;
  }

  async isDisabled(lockName: string): Promise<boolean> {
    assertOpen(this.lockRepo.dataSource);
    return this.disabled.load(lockName);
  }

  async create(lock: LockRecord): Promise<Acquired | undefined> {
    const dataSource = this.lockRepo.dataSource;
    assertOpen(dataSource);
    if (
      ASTRAL_CHARACTER.test(lock.lockName) &&
      this.dialect &&
      !(await this.dialect.carriesAstralCharacters(dataSource))
    ) {
      // Stored mangled, the row would never match its name again.
      throw new Error(this.dialect.astralAdvice(dataSource, `lockName "${lock.lockName}"`));
    }
    const created = await this.creates.load({...lock});
    if (!created) return undefined;
    const disabled = await this.controlAfterWin([lock.lockName], lock, () =>
      this.disabled.load(lock.lockName),
    );
    return {lock: created, disabled};
  }

  async takeOver(expected: LockRecord, next: LockRecord): Promise<Acquired | undefined> {
    assertOpen(this.lockRepo.dataSource);
    const condition = compareAndSet({
      lockName: expected.lockName,
      instanceId: expected.instanceId,
      fencingToken: expected.fencingToken,
      renewalId: expected.renewalId,
    });
    return this.takeovers.load({expected: condition, next});
  }

  async renew(lockName: string, instanceId: string, fencingToken: number): Promise<RenewResult> {
    assertOpen(this.lockRepo.dataSource);
    const [renewed, disabled] = await Promise.all([
      this.renewals.load(held({lockName, instanceId, fencingToken})),
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
    const condition = held({lockName, instanceId, fencingToken});
    return (handOver ? this.releases : this.quietReleases).load(condition);
  }

  async readSettled(lockName: string): Promise<LockRecord | undefined> {
    assertOpen(this.lockRepo.dataSource);
    return (await this.locks.loadUnbatched([lockName]))[0];
  }

  async readControl(lockName: string): Promise<ControlRecord | undefined> {
    assertOpen(this.controlRepo.dataSource);
    const row = await this.controlRepo.findOne({where: {lockName}});
    return row ? toControlRecord(row) : undefined;
  }

  async listControls(): Promise<ControlRecord[]> {
    assertOpen(this.controlRepo.dataSource);
    return (await this.controlRepo.find({order: ['lockName ASC']})).map(toControlRecord);
  }

  async listLocks(): Promise<LockRecord[]> {
    assertOpen(this.lockRepo.dataSource);
    return (await findPlain(this.lockRepo, {})).map(toLockRecord);
  }

  async setControl(lockName: string, write: ControlWrite): Promise<ControlWritten> {
    assertOpen(this.controlRepo.dataSource);
    const to = write.enabled ? 'enabled' : 'disabled';
    const change = {...write};
    // Usually the row exists (disabled and enabled before): flip it in one statement.
    const flipped = await this.flipControl(lockName, change);
    if (flipped.changed || write.enabled) return flipped;
    // One row per lock, by its id: concurrent disables cannot duplicate it.
    try {
      await retryDeadlock(() => this.controlRepo.create({lockName, ...change}));
    } catch (err) {
      if (!isDuplicate(err)) throw err;
      // Created meanwhile: by a concurrent disable, or since enabled again.
      return this.flipControl(lockName, change);
    }
    return {changed: true, announced: this.publish([{kind: 'control', lockName, control: to}])};
  }

  /**
   * Sets the control row to `write` where it is the other way, in one
   * statement, and tells the others if it was.
   */
  protected async flipControl(lockName: string, write: ControlWrite): Promise<ControlWritten> {
    const where = {lockName, enabled: !write.enabled};
    const {count} = await this.controlRepo.updateAll(write, where);
    if (!count) return {changed: false, announced: []};
    const control = write.enabled ? 'enabled' : 'disabled';
    return {changed: count === 1, announced: this.publish([{kind: 'control', lockName, control}])};
  }

  /**
   * Writes `data` over the rows still as `expected` and reads the control of
   * those it won, after the win (invariant 7 of election.ts). Resolves, per
   * condition, whether it won, and the names of the disabled locks among those.
   */
  protected async takeOverAll(
    expected: Condition[],
    data: LockData,
  ): Promise<{won: boolean[]; disabled: Set<string>}> {
    const won = (await this.writeWhereHeld(expected, data)).map(Boolean);
    const names = expected.filter((_, i) => won[i]).map(c => c.lockName);
    if (!names.length) return {won, disabled: new Set()};
    const disabled = await this.controlAfterWin(names, data, () => this.disabledAmong(names));
    return {won, disabled};
  }

  /**
   * The control read right after a win. If it fails, the locks won are freed
   * (best effort: nobody will use them) before the failure is passed on.
   */
  private async controlAfterWin<T>(
    names: string[],
    holder: Partial<MasterLock>,
    read: () => Promise<T>,
  ): Promise<T> {
    try {
      return await read();
    } catch (err) {
      const {instanceId, fencingToken} = holder;
      await Promise.all(
        names.map(name => this.release(name, instanceId!, fencingToken!).catch(() => false)),
      );
      throw err;
    }
  }

  /** The locks among `names` whose control says disabled. */
  protected async disabledAmong(names: string[]): Promise<Set<string>> {
    const rows = await findPlain(this.controlRepo, {
      where: {lockName: {inq: names}, enabled: false},
      fields: {lockName: true},
    });
    return new Set(rows.map(row => row.lockName));
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
    const rows = await this.locks.loadUnbatched(records.map(r => r.lockName));
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

  /** Renews the rows still held as the conditions say; resolves, per condition, whether it did. */
  protected async renewAll(conditions: Condition[], data: LockData): Promise<boolean[]> {
    return (await this.writeWhereHeld(conditions, data)).map(Boolean);
  }

  /** Frees the rows still held as the conditions say; with `handOver`, tells the others which. */
  private async releaseAll(conditions: Condition[], handOver: boolean): Promise<boolean[]> {
    const data = {instanceId: '', hostname: '', renewalId: randomUUID()};
    if (!handOver) return (await this.writeWhereHeld(conditions, data)).map(Boolean);
    // The others take over now, not at their next poll, and without a read.
    const freed = conditions.map((c): WakeUp => ({
      kind: 'released',
      lockName: c.lockName,
      freed: {fencingToken: +c.fencingToken, renewalId: data.renewalId},
    }));
    return this.releaseAndPublish(conditions, data, freed);
  }

  /** Frees the rows, then publishes those freed. */
  protected async releaseAndPublish(
    conditions: Condition[],
    data: LockData,
    freed: WakeUp[],
  ): Promise<boolean[]> {
    const released = (await this.writeWhereHeld(conditions, data)).map(Boolean);
    if (released.some(Boolean)) this.publish(freed.filter((_, i) => released[i]));
    return released;
  }

  /** Tells the other replicas; returns what was told. */
  protected publish(messages: WakeUp[]): WakeUp[] {
    this.notifier?.publish(messages);
    return messages;
  }

  /**
   * Writes `data` (with a new renewalId) to every row that matches one of the
   * compare-and-set conditions, in one statement. Resolves, per condition, to
   * the renewalId written, or undefined where the row had changed.
   */
  private async writeWhereHeld(
    conditions: Condition[],
    data: LockData,
  ): Promise<(string | undefined)[]> {
    const {renewalId} = data;
    const {count} = await retryDeadlock(() => this.lockRepo.updateAll(data, anyOf(conditions)));
    if (count === conditions.length) return conditions.map(() => renewalId);
    if (count === 0) return conditions.map(() => undefined);
    // Some rows changed hands: read which ones carry this write. Where the
    // write keeps the token, it also tells two conditions on one row apart
    // (a stale release next to a current one); a takeover has one per lock.
    const rows = await this.locks.loadUnbatched(conditions.map(c => c.lockName));
    return rows.map((row, i) =>
      row?.renewalId === renewalId &&
      (data.fencingToken !== undefined || row.fencingToken === conditions[i].fencingToken)
        ? renewalId
        : undefined,
    );
  }
}

interface Takeover {
  /** The compare-and-set condition on the expected record. */
  expected: Condition;
  next: LockRecord;
}

/** A compare-and-set condition on one row. */
export type Condition = {lockName: string} & Record<string, string | number>;

/**
 * The condition that the row still names this holder and token. Checked where
 * the call is made: one bad call must not fail the whole batch.
 */
function held(h: Pick<LockRecord, 'lockName' | 'instanceId' | 'fencingToken'>): Condition {
  const {lockName, instanceId, fencingToken} = h;
  return compareAndSet({lockName, instanceId, fencingToken});
}

/** Equal conditions made by different calls share one entry of a batch. */
function sameCondition(c: Condition): string {
  return `${c.lockName}\u0000${c.instanceId}\u0000${c.fencingToken}`;
}

/**
 * Rows matching any of the conditions. Conditions that differ only in the
 * lock name become one `lockName IN (...)`: the locks of a replica share their
 * holder, and a batch of takeovers or renewals its token and renewalId, so 1000
 * renewals are one IN list, not an OR of 1000 branches (about 25 times cheaper
 * for PostgreSQL and for the connector to build).
 */
export function anyOf(conditions: Condition[]): Where<MasterLock> {
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

/** What a SQL connector (loopback-connector's SQLConnector) answers a find with. */
interface SqlConnectorFind {
  buildSelect(model: string, filter: object): unknown;
  all(
    model: string,
    filter: object,
    options: object,
    callback: (err: Error | null, rows?: object[]) => void,
  ): void;
}

/**
 * `repository.find(filter)` as plain rows, straight from a SQL connector:
 * the same statement, without a model instance and operation hooks per row.
 * Every replica reads every lock it campaigns for at each poll, and at 1000
 * locks building those instances was most of a replica's CPU at rest.
 */
export async function findPlain<T extends Entity>(
  repo: {
    dataSource: juggler.DataSource;
    modelClass: {modelName: string};
    find(filter: Filter<T>): Promise<T[]>;
  },
  filter: Filter<T>,
): Promise<T[]> {
  const connector = repo.dataSource.connector as Partial<SqlConnectorFind> | undefined;
  if (typeof connector?.buildSelect !== 'function' || typeof connector.all !== 'function') {
    return repo.find(filter);
  }
  return new Promise((resolve, reject) =>
    connector.all!(repo.modelClass.modelName, filter, {}, (err, rows) =>
      err ? reject(err) : resolve((rows ?? []) as T[]),
    ),
  );
}

/** A control row without the connector's nulls. */
export function toControlRecord(row: MasterControl): ControlRecord {
  const record: ControlRecord = {lockName: row.lockName, enabled: Boolean(row.enabled)};
  if (row.reason != null) record.reason = row.reason;
  if (row.updatedAt != null) record.updatedAt = new Date(row.updatedAt);
  if (row.updatedBy != null) record.updatedBy = row.updatedBy;
  return record;
}

export function toLockRecord(row: MasterLock): LockRecord {
  return {
    lockName: row.lockName,
    instanceId: row.instanceId ?? '',
    hostname: row.hostname ?? '',
    fencingToken: Number(row.fencingToken),
    renewalId: row.renewalId,
    heartbeatAt: row.heartbeatAt ? new Date(row.heartbeatAt) : new Date(0),
    acquiredAt: row.acquiredAt ? new Date(row.acquiredAt) : new Date(0),
    ...(row.groupName ? {groupName: row.groupName} : {}),
  };
}
