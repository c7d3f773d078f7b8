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
  | 'stopped';

export interface MasterJobContext {
  lockName: string;
  instanceId: string;
  /**
   * Strictly increases with every new mastership of this lock across the
   * cluster. Pass it to the resources the job writes so they can reject a
   * stale master (see README, "Fencing").
   */
  fencingToken: number;
  /** Aborted the moment this replica must stop acting as master. */
  signal: AbortSignal;
  /** Set for `stop()` only. */
  reason?: StopReason;
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
 * Time as the election sees it: a monotonic `now()` and timers. Only the local
 * clock is ever used; wall clocks of other machines are never compared.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock (not wall-clock time). */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
