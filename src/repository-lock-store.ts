// LockStore on LoopBack repositories, so it works on any datasource.
// Calls made in the same turn of the event loop (the elections of many locks
// tick on a shared grid) are batched into one statement each, so the database
// work of a replica per tick does not grow with the number of locks.

import {BindingScope, inject, injectable} from '@loopback/core';
import {repository, Where} from '@loopback/repository';
import {randomUUID} from 'crypto';
import {LockObservation, LockRecord, LockStore, RenewResult} from './lock-store';
import {MasterJobExecutorBindings} from './keys';
import {MasterLock} from './models';
import {LockNotifier} from './notifier';
import {MasterControlRepository, MasterLockRepository} from './repositories';

@injectable({scope: BindingScope.SINGLETON})
export class RepositoryLockStore implements LockStore {
  private readonly locks = new Batcher<string, LockRecord | undefined>(async names => {
    const rows = await this.lockRepo.find({
      where: {lockName: {inq: names}},
    });
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

  private readonly renewals = new Batcher<string, boolean>(async keys => {
    const held = keys.map(key => JSON.parse(key) as Holder);
    const renewalId = randomUUID();
    const where = anyOf(held.map(holderWhere));
    const {count} = await retryDeadlock(() =>
      this.lockRepo.updateAll({renewalId, heartbeatAt: new Date()}, where),
    );
    if (count === held.length) return held.map(() => true);
    // Some rows changed hands: read which ones still carry our write.
    const rows = await this.lockRepo.find({
      where: {lockName: {inq: held.map(h => h.lockName)}},
    });
    const renewed = new Set(rows.filter(r => r.renewalId === renewalId).map(r => r.lockName));
    return held.map(h => renewed.has(h.lockName));
  });

  constructor(
    @repository(MasterLockRepository)
    private readonly lockRepo: MasterLockRepository,
    @repository(MasterControlRepository)
    private readonly controlRepo: MasterControlRepository,
    @inject(MasterJobExecutorBindings.NOTIFIER, {optional: true})
    private readonly notifier?: LockNotifier,
  ) {}

  async read(lockName: string): Promise<LockObservation> {
    const [lock, disabled] = await Promise.all([
      this.locks.load(lockName),
      this.disabled.load(lockName),
    ]);
    return {lock, disabled};
  }

  isDisabled(lockName: string): Promise<boolean> {
    return this.disabled.load(lockName);
  }

  async create(lock: LockRecord): Promise<boolean> {
    try {
      await this.lockRepo.create(lock);
      return true;
    } catch (err) {
      if (isDuplicate(err)) return false;
      throw explain(err);
    }
  }

  async takeOver(expected: LockRecord, next: LockRecord): Promise<boolean> {
    const where = compareAndSet({
      lockName: expected.lockName,
      instanceId: expected.instanceId,
      fencingToken: expected.fencingToken,
      renewalId: expected.renewalId,
    });
    const data: Partial<MasterLock> = {...next};
    delete data.lockName; // the id is not updated
    return this.updateOne(data, where);
  }

  async renew(lockName: string, instanceId: string, fencingToken: number): Promise<RenewResult> {
    const key = JSON.stringify(compareAndSet({lockName, instanceId, fencingToken}));
    const [renewed, disabled] = await Promise.all([
      this.renewals.load(key),
      this.disabled.load(lockName),
    ]);
    return {renewed, disabled};
  }

  async release(lockName: string, instanceId: string, fencingToken: number): Promise<boolean> {
    const released = await this.updateOne(
      {instanceId: '', hostname: '', renewalId: randomUUID()},
      compareAndSet({lockName, instanceId, fencingToken}),
    );
    if (released) this.notifier?.publish(lockName); // the others take over now, not at their next poll
    return released;
  }

  private async updateOne(data: Partial<MasterLock>, where: Where<MasterLock>): Promise<boolean> {
    try {
      const {count} = await retryDeadlock(() => this.lockRepo.updateAll(data, where));
      return count === 1;
    } catch (err) {
      throw explain(err);
    }
  }
}

type Holder = Pick<LockRecord, 'lockName' | 'instanceId' | 'fencingToken'>;

function holderWhere(h: Holder): Where<MasterLock> {
  return compareAndSet({
    lockName: h.lockName,
    instanceId: h.instanceId,
    fencingToken: h.fencingToken,
  });
}

function anyOf(conditions: Where<MasterLock>[]): Where<MasterLock> {
  return conditions.length === 1 ? conditions[0] : {or: conditions};
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
 * InnoDB may pick two concurrent single-row UPDATEs as deadlock victims; the
 * victim's statement was rolled back, so running it again is safe.
 */
async function retryDeadlock<T>(statement: () => Promise<T>, attempts = 3): Promise<T> {
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
 * with one call of `loadMany`.
 */
export class Batcher<K, V> {
  private pending: Map<K, {resolve: (v: V) => void; reject: (e: unknown) => void}[]> | undefined;

  constructor(private readonly loadMany: (keys: K[]) => Promise<V[]>) {}

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

  private flush(): void {
    const batch = this.pending!;
    this.pending = undefined;
    const keys = [...batch.keys()];
    this.loadMany(keys).then(
      values => keys.forEach((key, i) => batch.get(key)!.forEach(w => w.resolve(values[i]))),
      err => {
        const error = explain(err);
        batch.forEach(waiters => waiters.forEach(w => w.reject(error)));
      },
    );
  }
}
