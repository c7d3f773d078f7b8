// The public types of the component: what a job, its options and the
// handles look like. A leaf: it imports nothing of the package.

import type {EventEmitter} from 'events';

/** Why a master job is being stopped. */
export type StopReason =
  /** an operator disabled the lock */
  | 'disabled'
  /** another replica holds the lock */
  | 'lost'
  /** this replica could not renew the lock before its deadline */
  | 'expired'
  /** the handle, the executor or the app was stopped */
  | 'stopped'
  /** a group handed the resource to another member, to balance the group */
  | 'rebalanced'
  /** fewer members than `minMembers` are alive */
  | 'quorum';

export interface MasterJobContext {
  lockName: string;
  instanceId: string;
  /**
   * Strictly increases with every new mastership of this lock across the
   * cluster. Pass it to the resources the job writes so they can reject a
   * stale master (see README, "Fencing").
   */
  fencingToken: number;
  /** Aborted the moment this replica must stop acting as master; `signal.reason` is the StopReason. */
  signal: AbortSignal;
  /** Set for `stop()` only. */
  reason?: StopReason;
  /** The resource, for a job of a group (`startGroup()`); the lock is `<groupName>/<resourceId>`. */
  resourceId?: string;
  /** With `startMaster({checkpoint: true})`: the value the last master saved, undefined if none. */
  checkpoint?: unknown;
  /**
   * With `startMaster({checkpoint: true})`: saves a JSON value for the next
   * master, fenced by this mastership's token; rejects once another master
   * has started. The other replicas' handles emit `synchronize` (value, token).
   */
  saveCheckpoint?: (value: unknown) => Promise<void>;
}

export interface MasterJob {
  start(ctx: MasterJobContext): void | Promise<void>;
  stop?(ctx: MasterJobContext): void | Promise<void>;
}

/** The timing parameters of one lock, all in milliseconds (README, "Configuration"). */
export interface ElectionTimings {
  /** Delay after `startMaster()` before campaigning. */
  initDelay: number;
  /** How often a non-master reads the lock. */
  checkMasterInterval: number;
  /** How often the master renews the lock. */
  heartbeatInterval: number;
  /** Failed renewals retried before the master gives up. */
  maxHeartbeatRetryCount: number;
  /** How long a lock with no observed renewal stays valid. */
  leaseDuration: number;
  /** Upper bound on the job's `stop()`; it is then abandoned and logged. */
  stopTimeout: number;
}

export interface StartMasterOptions extends Partial<ElectionTimings> {
  lockName: string;
  masterJob: MasterJob;
  /**
   * Quorum: the job runs only while at least this many replicas that started
   * this lock are alive (default 1: no quorum). See docs/groups.md.
   */
  minMembers?: number;
  /** Give the job `ctx.checkpoint` and `ctx.saveCheckpoint` (default false). See docs/jobs.md. */
  checkpoint?: boolean;
}

export interface StartGroupOptions extends Partial<ElectionTimings> {
  groupName: string;
  /**
   * The ids of the resources, the same on every member: an array, or a
   * function (maybe async) re-read every checkMasterInterval.
   */
  resources: string[] | (() => string[] | Promise<string[]>);
  /** Run once per resource, on its owner; `ctx.resourceId` says which. */
  job: MasterJob;
  /** Quorum: resources are run only while at least this many members are alive. */
  minMembers?: number;
}

/** A replica that runs a group, as this replica sees it. */
export interface GroupMember {
  instanceId: string;
  hostname: string;
  /** How many of this replica's resources it holds. */
  owned: number;
  /** This replica itself. */
  self: boolean;
}

export interface GroupStatus {
  groupName: string;
  state: 'idle' | 'running' | 'quorum' | 'stopped';
  minMembers: number;
  resources: number;
  /** The resources this replica owns. */
  owned: string[];
  members: GroupMember[];
  /** Resources nobody alive holds, as last read. */
  unowned: number;
}

/** The handle `startGroup()` returns. Events: `master`/`slave` (resourceId, ...), `members` (GroupMember[]). */
export interface MasterGroup extends EventEmitter {
  readonly groupName: string;
  /** Adds a resource (on this replica's list); it starts on a member with room. */
  add(resourceId: string): void;
  /** Removes a resource (from this replica's list); it stops where it runs. */
  remove(resourceId: string): Promise<void>;
  /** The resources this replica runs now. */
  owned(): string[];
  /** The live members, as last read (this replica among them once registered). */
  members(): GroupMember[];
  status(): GroupStatus;
  /** Leaves the group: hands the resources over at once, then stops. */
  stop(): Promise<void>;
}

/** Component-level configuration, see README "Configuration". */
export interface MasterJobExecutorConfig extends Partial<ElectionTimings> {
  /** Name of the datasource binding (`datasources.<name>`); default `db`. */
  dataSourceName?: string;
  /** Unique per process start; default `hostname:pid:random`. */
  instanceId?: string;
  /** Path prefix of the REST controller; default `/api/MasterControls`. */
  controllerPath?: string;
  /** Set to false to leave the REST controller unmounted. */
  mountController?: boolean;
  /**
   * Authentication strategies the controller requires, as given to
   * `@authenticate(...)` of @loopback/authentication (which the app mounts).
   * A list protects the control and read-only endpoints; per group, each
   * its own. The health endpoint stays open (a liveness probe) unless listed.
   */
  controllerAuthentication?: string[] | ControllerAuthentication;
  /**
   * Longest wait, in ms, of a REST call on the database before it answers
   * 503 DatabaseUnavailable; default 5000 (env MASTER_JOB_CONTROL_TIMEOUT).
   */
  controlTimeout?: number;
  /**
   * Whether the component runs every schema migration of its datasource
   * (`app.migrateSchema()`) under a lock of the database, so replicas that
   * migrate at once take turns; default true. Set false where another tool
   * serialises migrations, or the lock cannot be taken.
   */
  migrationLock?: boolean;
  /**
   * PostgreSQL: a direct connection to the server (`postgres://...`) for the
   * LISTEN of wake-ups, where the datasource goes through a pooler in
   * transaction mode (PgBouncer); env MASTER_JOB_LISTEN_URL wins. Without
   * it, behind such a pooler, replicas poll (said once in the log).
   */
  listenUrl?: string;
}

/** Strategies per group of endpoints; a group left out is open. */
export interface ControllerAuthentication {
  /** POST disable and enable. */
  control?: string[];
  /** GET the controls and the status. */
  read?: string[];
  /** GET health. */
  health?: string[];
}

export type MasterState =
  /** waiting for `initDelay` */
  | 'idle'
  /** campaigning, somebody else (or nobody) is master */
  | 'slave'
  /** this replica holds the lock */
  | 'master'
  /** handle stopped; terminal */
  | 'stopped';

export interface MasterStatus {
  lockName: string;
  state: MasterState;
  isMaster: boolean;
  fencingToken: number | undefined;
  /** The holder this replica last observed (itself when master). */
  observedHolder: string | undefined;
  disabled: boolean;
  /** Master only: since the last successful renewal was sent, by this replica's clock. */
  renewalAgeMs: number | undefined;
  /** Master only: true if it holds the lock past its renewal deadline (unhealthy). */
  deadlinePassed: boolean;
}

/** A cron schedule started on this replica, with its last runs as stored (latest first). */
export interface CronStatus {
  lockName: string;
  runs: {
    scheduledAt: Date;
    startedAt: Date | null;
    finishedAt: Date | null;
    instanceId: string;
    fencingToken: number;
    /** 'ok', the error, or null while it runs (or if its master died meanwhile). */
    outcome: string | null;
  }[];
}

/** The handle `startMaster()` returns. */
export interface Master extends EventEmitter {
  readonly lockName: string;
  readonly isMaster: boolean;
  /** The fencing token of the current mastership; undefined when not master. */
  readonly fencingToken: number | undefined;
  readonly state: MasterState;
  status(): MasterStatus;
  /** Stop campaigning; if master, stop the job and then release the lock. */
  stop(): Promise<void>;
}

export type TimerHandle = unknown;

/**
 * Time as the package sees it: every timer and time read of the elections,
 * groups, queues, cron schedules, checkpoints and the control service, so
 * that one fake clock drives them all in tests. Only the local clock is ever
 * used; wall clocks of other machines are never compared.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock (not wall-clock time): what durations are measured on. */
  now(): number;
  /**
   * The wall-clock time: for what is stored or shown (heartbeatAt, updatedAt,
   * a task's notBefore) and for cron occurrences, which are wall-clock times.
   */
  date(): Date;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
