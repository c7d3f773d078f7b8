// Disable and enable locks for the whole cluster, and read what the cluster
// and this replica know of them: the service behind the REST controller. Its
// waits and time stamps are the executor's clock's.

import {juggler} from '@loopback/repository';
import {HttpErrors} from '@loopback/rest';
import {
  ASTRAL_CHARACTER,
  FORBIDDEN_CHARACTERS,
  MAX_LOCK_NAME_LENGTH,
  MAX_REASON_LENGTH,
  MAX_UPDATED_BY_LENGTH,
  textProblem,
} from '../models';
import {ValueDialect} from '../store/dialect';
import {
  ControlRecord,
  ControlStore,
  ControlWrite,
  ElectionStore,
  LockRecord,
} from '../store/lock-store';
import {backoff, sleep} from '../clock';
import {isMemberRow} from '../groups/membership';
import {QueueStatus} from '../queue/queue';
import {Clock, CronStatus, GroupStatus, MasterStatus} from '../types';
import {Attempt, withinControlTimeout} from '../store/database-unavailable';
import {MasterJobExecutor} from './master-job-executor';

/** The share of controlTimeout a disable waits for a fresh winner to renew; the rest is for the reply. */
const CONFIRM_SHARE = 0.8;
/** The reads of that wait: 2 ms apart, doubling to 100 ms. */
const CONFIRM_POLL = {base: 2, max: 100};

/** A holder that has not renewed since it won: its heartbeat is still the win's. */
function justWon(lock: LockRecord): boolean {
  return lock.heartbeatAt.getTime() <= lock.acquiredAt.getTime();
}

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

/** A group as stored: its members' rows and who holds its resources. */
export interface StoredGroupStatus {
  groupName: string;
  resources: number;
  /** Resources nobody holds (free rows). */
  unowned: number;
  /**
   * Members that have not left. In a group this replica runs, only those it
   * counts alive (as its quorum and plan do): a crashed one is gone once its
   * row has not changed for a lease. In a group it does not run, every row
   * that names a holder, with its heartbeat age (wall clock, informative).
   */
  members: {instanceId: string; hostname: string; owned: number; heartbeatAgeMs: number | null}[];
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

/** What the control service is made of; the component makes it from its bindings. */
export interface MasterControlServiceOptions {
  /** The controls, and the locks it reads (`read` to tell a known lock from a typo). */
  store: ControlStore & Pick<ElectionStore, 'read'>;
  executor: MasterJobExecutor;
  /** The component's datasource: named in 503 answers, asked what it can store. */
  dataSource: juggler.DataSource;
  dialect: ValueDialect;
  clock: Clock;
}

/**
 * Disable and enable locks for the whole cluster. Every replica reads the
 * control before it starts a job and with every renewal, so this only writes.
 * Every call answers within controlTimeout: DatabaseUnavailableError (503) if
 * the database does not.
 */
export class MasterControlService {
  private readonly store: MasterControlServiceOptions['store'];
  private readonly executor: MasterJobExecutor;
  private readonly dataSource: juggler.DataSource;
  private readonly dialect: ValueDialect;
  private readonly clock: Clock;

  /** @internal Made by the component; apps get it with `app.get(MasterJobExecutorBindings.CONTROL_SERVICE)`. */
  constructor(options: MasterControlServiceOptions) {
    this.store = options.store;
    this.executor = options.executor;
    this.dataSource = options.dataSource;
    this.dialect = options.dialect;
    this.clock = options.clock;
  }

  async disable(lockName: string, reason: string, updatedBy?: string): Promise<ControlResult> {
    checkText('lockName', lockName, MAX_LOCK_NAME_LENGTH);
    checkText('reason', reason, MAX_REASON_LENGTH);
    const confirmBy = this.clock.now() + CONFIRM_SHARE * this.executor.controlTimeout;
    return this.guarded({what: `disable ${lockName}`, writes: true}, async () => {
      await this.checkStorable({lockName, reason});
      const changed = await this.write(lockName, {
        enabled: false,
        reason,
        updatedAt: this.clock.date(),
        updatedBy: who(updatedBy),
      });
      const [row, known, unconfirmed] = await Promise.all([
        this.store.readControl(lockName),
        this.isKnown(lockName),
        this.awaitWinnerRenewal(lockName, confirmBy),
      ]);
      let message = changed
        ? `${lockName} disabled: its master stops within one heartbeat interval, and no replica starts it until it is enabled`
        : `${lockName} was already disabled; nothing changed`;
      if (unconfirmed) {
        message +=
          `. Warning: replica ${unconfirmed} won the lock just before and has not answered since; ` +
          'if it is alive but slow it may still start the job, and then stops it within one heartbeat interval';
      }
      return result(row ?? {lockName, enabled: false, reason}, changed, known, message);
    });
  }

  async enable(lockName: string, updatedBy?: string): Promise<ControlResult> {
    checkText('lockName', lockName, MAX_LOCK_NAME_LENGTH);
    return this.guarded({what: `enable ${lockName}`, writes: true}, async () => {
      await this.checkStorable({lockName});
      const changed = await this.write(lockName, {
        enabled: true,
        reason: '',
        updatedAt: this.clock.date(),
        updatedBy: who(updatedBy),
      });
      const [row, known] = await Promise.all([
        this.store.readControl(lockName),
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

  /**
   * After a disable has committed: a replica that won the lock just before
   * may have read the control before the disable and not yet called start().
   * Waits until a holder that has not renewed since its win writes the row
   * again (it calls start() before its first renewal, and renews at once when
   * told of the disable; invariant 7 of election.ts), so that no start()
   * follows the reply. Resolves to the holder if it has not by `until`.
   */
  private async awaitWinnerRenewal(lockName: string, until: number): Promise<string | undefined> {
    const read = () => this.store.readSettled(lockName);
    const first = await read();
    if (!first?.instanceId || !justWon(first)) return undefined;
    for (let poll = 1; ; poll++) {
      const wait = Math.min(backoff(poll, CONFIRM_POLL), until - this.clock.now());
      if (wait <= 0) return first.instanceId;
      await sleep(this.clock, wait);
      if ((await read())?.renewalId !== first.renewalId) return undefined;
    }
  }

  /** Refuses (422) what the datasource would store mangled. */
  private async checkStorable(values: Record<string, string>): Promise<void> {
    const astral = Object.keys(values).filter(field => ASTRAL_CHARACTER.test(values[field]));
    if (!astral.length) return;
    const ds = this.dataSource;
    if (await this.dialect.carriesAstralCharacters(ds)) return;
    throw new HttpErrors.UnprocessableEntity(this.dialect.astralAdvice(ds, astral[0]));
  }

  /** Whether a replica ever campaigned for the lock (its row exists), or this one does. */
  private async isKnown(lockName: string): Promise<boolean> {
    if (this.executor.getMaster(lockName)) return true;
    return (await this.store.read(lockName)).lock !== undefined;
  }

  private guarded<T>(attempt: Attempt, work: () => Promise<T>): Promise<T> {
    return withinControlTimeout(
      this.clock,
      this.dataSource,
      this.dialect,
      attempt,
      this.executor.controlTimeout,
      work,
    );
  }

  /**
   * Writes the control, unless it is so already. What the store announced to
   * the other replicas wakes this one's executor too, before we reply.
   */
  private async write(lockName: string, write: ControlWrite): Promise<boolean> {
    const {changed, announced} = await this.store.setControl(lockName, write);
    announced.forEach(message => this.executor.wake(message));
    return changed;
  }

  health() {
    return this.executor.health();
  }

  list(): Promise<ControlRecord[]> {
    return this.guarded({what: 'reading the controls', writes: false}, () =>
      this.store.listControls(),
    );
  }

  /** Every lock known to the database, and what this replica sees of its own. */
  async status(): Promise<{
    instanceId: string;
    locks: LockStatus[];
    groups: StoredGroupStatus[];
    local: MasterStatus[];
    localGroups: GroupStatus[];
    queues: QueueStatus[];
    cron: CronStatus[];
  }> {
    const [locks, controls, queues, cron] = await this.guarded(
      {what: 'reading the status', writes: false},
      () =>
        Promise.all([
          this.store.listLocks(),
          this.store.listControls(),
          this.executor.queueStatus(),
          this.executor.cronStatus(),
        ]),
    );
    const byName = new Map<string, LockStatus>();
    const now = this.clock.date().getTime();
    const localGroups = this.executor.groupStatus();
    const alive = new Map(
      localGroups.map(g => [g.groupName, new Set(g.members.map(m => m.instanceId))]),
    );
    const groups = storedGroups(locks, now, alive);
    for (const lock of locks) {
      if (isMemberRow(lock.lockName)) continue; // shown under groups
      const held = !!lock.instanceId;
      byName.set(lock.lockName, {
        lockName: lock.lockName,
        enabled: true,
        holder: held ? lock.instanceId : null,
        hostname: held ? lock.hostname : null,
        fencingToken: lock.fencingToken,
        heartbeatAgeMs: held ? now - lock.heartbeatAt.getTime() : null,
        acquiredAt: held ? lock.acquiredAt : null,
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
      groups,
      local: this.executor.status(),
      localGroups,
      queues,
      cron,
    };
  }
}

/**
 * Groups from their rows: member rows, and resource rows `<groupName>/<id>`.
 * `alive`: the live members of the groups this replica runs, as it judges them.
 */
function storedGroups(
  locks: LockRecord[],
  now: number,
  alive: ReadonlyMap<string, ReadonlySet<string>>,
): StoredGroupStatus[] {
  const groups = new Map<string, StoredGroupStatus>();
  const group = (groupName: string) => {
    let g = groups.get(groupName);
    if (!g) groups.set(groupName, (g = {groupName, resources: 0, unowned: 0, members: []}));
    return g;
  };
  const owned = new Map<string, number>();
  for (const lock of locks) {
    if (!lock.groupName) continue;
    const g = group(lock.groupName);
    if (isMemberRow(lock.lockName)) {
      if (!lock.instanceId) continue; // left
      if (alive.get(lock.groupName)?.has(lock.instanceId) === false) continue; // dead, as judged here
      g.members.push({
        instanceId: lock.instanceId,
        hostname: lock.hostname,
        owned: 0,
        heartbeatAgeMs: now - lock.heartbeatAt.getTime(),
      });
    } else {
      g.resources++;
      if (!lock.instanceId) g.unowned++;
      const key = `${lock.groupName}\u0000${lock.instanceId}`;
      owned.set(key, (owned.get(key) ?? 0) + 1);
    }
  }
  for (const g of groups.values()) {
    for (const m of g.members) m.owned = owned.get(`${g.groupName}\u0000${m.instanceId}`) ?? 0;
    g.members.sort((a, b) => (a.instanceId < b.instanceId ? -1 : 1));
  }
  return [...groups.values()].sort((a, b) => (a.groupName < b.groupName ? -1 : 1));
}

function result(
  row: ControlRecord,
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
