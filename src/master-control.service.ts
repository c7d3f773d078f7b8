import {BindingScope, inject, injectable} from '@loopback/core';
import {repository} from '@loopback/repository';
import {HttpErrors} from '@loopback/rest';
import {Attempt, withinControlTimeout} from './database-unavailable';
import {ASTRAL_CHARACTER, astralAdvice, carriesAstralCharacters} from './datasource-guard';
import {MasterJobExecutorBindings} from './keys';
import {MasterJobExecutor} from './master-job-executor';
import {
  FORBIDDEN_CHARACTERS,
  MasterControl,
  MAX_LOCK_NAME_LENGTH,
  MAX_REASON_LENGTH,
  MAX_UPDATED_BY_LENGTH,
  textProblem,
} from './models';
import {ControlChange, LockChange, LockNotifier, PostgresNotifier} from './notifier';
import {MasterControlRepository, MasterLockRepository} from './repositories';
import {isDuplicate, retryDeadlock} from './repository-lock-store';
import {MasterStatus} from './types';

export interface ControlResult {
  lockName: string;
  enabled: boolean;
  reason?: string;
  updatedAt?: Date;
  updatedBy?: string;
  /** Whether this call changed anything (false for a repeat). */
  changed: boolean;
  /** Whether any replica has started this lock; false may be a typo. */
  known: boolean;
  message: string;
}

export interface LockStatus {
  lockName: string;
  enabled: boolean;
  reason?: string;
  /** Holder's instanceId; null when nobody holds the lock. */
  holder: string | null;
  hostname: string | null;
  fencingToken: number | null;
  /** Milliseconds since the holder's last renewal, by this replica's wall clock: informative. */
  heartbeatAgeMs: number | null;
  acquiredAt: Date | null;
}

/**
 * Disable and enable locks for the whole cluster. Every replica reads the
 * control before it starts a job and with every renewal, so this only writes.
 * Every call answers within controlTimeout: DatabaseUnavailableError (503) if
 * the database does not.
 */
@injectable({scope: BindingScope.SINGLETON})
export class MasterControlService {
  constructor(
    @repository(MasterControlRepository)
    private readonly controls: MasterControlRepository,
    @repository(MasterLockRepository)
    private readonly locks: MasterLockRepository,
    @inject(MasterJobExecutorBindings.EXECUTOR)
    private readonly executor: MasterJobExecutor,
    @inject(MasterJobExecutorBindings.NOTIFIER, {optional: true})
    private readonly notifier?: LockNotifier,
  ) {}

  async disable(lockName: string, reason: string, updatedBy?: string): Promise<ControlResult> {
    checkText('lockName', lockName, MAX_LOCK_NAME_LENGTH);
    checkText('reason', reason, MAX_REASON_LENGTH);
    return this.guarded({what: `disable ${lockName}`, writes: true}, async () => {
      await this.checkStorable({lockName, reason});
      const change = {enabled: false, reason, updatedAt: new Date(), updatedBy: who(updatedBy)};
      const changed = await this.writeDisable(lockName, change);
      const [row, known] = await Promise.all([
        this.controls.findById(lockName),
        this.isKnown(lockName),
      ]);
      const message = changed
        ? `${lockName} disabled: its master stops within one heartbeat interval, and no replica starts it until it is enabled`
        : `${lockName} was already disabled; nothing changed`;
      return result(row, changed, known, message);
    });
  }

  async enable(lockName: string, updatedBy?: string): Promise<ControlResult> {
    checkText('lockName', lockName, MAX_LOCK_NAME_LENGTH);
    return this.guarded({what: `enable ${lockName}`, writes: true}, async () => {
      await this.checkStorable({lockName});
      const changed = await this.flip(
        lockName,
        {enabled: true, reason: '', updatedAt: new Date(), updatedBy: who(updatedBy)},
        'enabled',
      );
      const [row, known] = await Promise.all([
        this.controls.findOne({where: {lockName}}),
        this.isKnown(lockName),
      ]);
      if (!row) {
        const message = `${lockName} was already enabled (never disabled); nothing changed`;
        return {lockName, enabled: true, changed: false, known, message: warn(message, known)};
      }
      const message = changed
        ? `${lockName} enabled: a replica will start it within one check interval`
        : `${lockName} was already enabled; nothing changed`;
      return result(row, changed, known, message);
    });
  }

  /** Refuses (422) what the datasource would store mangled. */
  private async checkStorable(values: Record<string, string>): Promise<void> {
    const astral = Object.keys(values).filter(field => ASTRAL_CHARACTER.test(values[field]));
    if (!astral.length) return;
    const ds = this.controls.dataSource;
    if (await carriesAstralCharacters(ds)) return;
    throw new HttpErrors.UnprocessableEntity(astralAdvice(ds, astral[0]));
  }

  /** Whether a replica ever campaigned for the lock (its row exists), or this one does. */
  private async isKnown(lockName: string): Promise<boolean> {
    if (this.executor.getMaster(lockName)) return true;
    return (await this.locks.findOne({where: {lockName}, fields: {lockName: true}})) !== null;
  }

  private guarded<T>(attempt: Attempt, work: () => Promise<T>): Promise<T> {
    return withinControlTimeout(
      this.controls.dataSource,
      attempt,
      this.executor.controlTimeout,
      work,
    );
  }

  /** Whether this call disabled the lock (false if it already was). */
  private async writeDisable(lockName: string, change: Partial<MasterControl>): Promise<boolean> {
    // Usually the row exists (disabled and enabled before): flip it in one statement.
    if (await this.flip(lockName, change, 'disabled')) return true;
    // One row per lock, by its id: concurrent disables cannot duplicate it.
    try {
      await retryDeadlock(() => this.controls.create({lockName, ...change}));
    } catch (err) {
      if (!isDuplicate(err)) throw err;
      // Created meanwhile: by a concurrent disable, or since enabled again.
      return this.flip(lockName, change, 'disabled');
    }
    this.announce({lockName, control: 'disabled'});
    return true;
  }

  /**
   * Sets `change` on the control row if it is not `to` already; if it was,
   * every replica concerned re-checks the lock now instead of at its next
   * tick. Announced as soon as it landed, before we reply: on PostgreSQL the
   * NOTIFY is part of the UPDATE.
   */
  private async flip(
    lockName: string,
    change: Partial<MasterControl>,
    to: ControlChange,
  ): Promise<boolean> {
    const where = {lockName, enabled: to === 'disabled'};
    const announced: LockChange = {lockName, control: to};
    if (this.notifier instanceof PostgresNotifier) {
      const {rows, published} = await this.notifier.updateAndPublish<MasterControl>(
        this.controls.modelClass.modelName,
        where,
        change,
        ['lockName'],
        1,
        [announced],
        // An enable tells the others what the disabled master left on the
        // lock's row, so they take it over without reading it first.
        to === 'enabled' ? this.locks.modelClass.modelName : undefined,
      );
      if (rows.length) (published ?? [announced]).forEach(c => this.executor.wake(c));
      return rows.length === 1;
    }
    const {count} = await this.controls.updateAll(change, where);
    if (count) this.announce(announced);
    return count === 1;
  }

  private announce(change: LockChange): void {
    this.executor.wake(change);
    this.notifier?.publish([change]);
  }

  health() {
    return this.executor.health();
  }

  list(): Promise<MasterControl[]> {
    return this.guarded({what: 'reading the controls', writes: false}, () =>
      this.controls.find({order: ['lockName ASC']}),
    );
  }

  /** Every lock known to the database, and what this replica sees of its own. */
  async status(): Promise<{
    instanceId: string;
    locks: LockStatus[];
    local: MasterStatus[];
  }> {
    const [locks, controls] = await this.guarded({what: 'reading the status', writes: false}, () =>
      Promise.all([this.locks.find(), this.controls.find()]),
    );
    const byName = new Map<string, LockStatus>();
    const now = Date.now();
    for (const lock of locks) {
      const held = !!lock.instanceId;
      byName.set(lock.lockName, {
        lockName: lock.lockName,
        enabled: true,
        holder: held ? lock.instanceId : null,
        hostname: held ? lock.hostname : null,
        fencingToken: Number(lock.fencingToken),
        heartbeatAgeMs:
          held && lock.heartbeatAt ? now - new Date(lock.heartbeatAt).getTime() : null,
        acquiredAt: held && lock.acquiredAt ? new Date(lock.acquiredAt) : null,
      });
    }
    for (const control of controls) {
      const entry = byName.get(control.lockName) ?? {
        lockName: control.lockName,
        enabled: true,
        holder: null,
        hostname: null,
        fencingToken: null,
        heartbeatAgeMs: null,
        acquiredAt: null,
      };
      entry.enabled = control.enabled;
      if (!control.enabled) entry.reason = control.reason;
      byName.set(control.lockName, entry);
    }
    return {
      instanceId: this.executor.instanceId,
      locks: [...byName.values()].sort((a, b) => a.lockName.localeCompare(b.lockName)),
      local: this.executor.status(),
    };
  }
}

function result(
  row: MasterControl,
  changed: boolean,
  known: boolean,
  message: string,
): ControlResult {
  return {
    lockName: row.lockName,
    enabled: row.enabled,
    reason: row.reason,
    updatedAt: row.updatedAt,
    updatedBy: row.updatedBy,
    changed,
    known,
    message: warn(message, known),
  };
}

function warn(message: string, known: boolean): string {
  if (known) return message;
  return (
    `${message}. Note: no replica has started this lock yet; check the spelling ` +
    '(the control is kept, and applies when a replica starts it)'
  );
}

/** For calls from code; the REST edge refuses the same in its schema. */
function checkText(field: string, value: unknown, maxLength: number): void {
  const problem = textProblem(field, value, maxLength);
  if (problem) throw new HttpErrors.UnprocessableEntity(problem);
}

/** The authenticated user's name as it fits the column. */
function who(user: string | undefined): string | undefined {
  if (user === undefined) return undefined;
  const clean = [...String(user).replace(new RegExp(FORBIDDEN_CHARACTERS, 'g'), '')];
  return clean.slice(0, MAX_UPDATED_BY_LENGTH).join('');
}
