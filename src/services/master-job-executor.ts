// The service that starts and stops masters: one election per lock, the
// timings each gets (options > environment > app configuration > default),
// and the events of all of them, re-emitted with the lock's name.

import {randomBytes} from 'crypto';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {hostname} from 'os';
import {LockElection} from '../election/election';
import {
  resolveTimings,
  TIMING_ENV_VARIABLES,
  TimingSource,
  timingsFromEnv,
} from '../election/timings';
import {MAX_LOCK_NAME_LENGTH, textProblem} from '../models/limits';
import {LockNotifier} from '../notify/notifier';
import {APP_CONFIG_SECTION, resolveControlTimeout} from '../settings';
import {LockChange, LockStore} from '../store/lock-store';
import {
  Clock,
  ElectionTimings,
  Master,
  MasterJobExecutorConfig,
  MasterStatus,
  StartMasterOptions,
} from '../types';

const debug = debugFactory('loopback:master-job-executor:executor');

const FORWARDED_EVENTS = [
  'master',
  'slave',
  'statechange',
  'newMaster',
  // for metrics
  'renewed',
  'renewalFailed',
  'leaderless',
];

/**
 * Starts and stops masters. Re-emits the events of every handle with the
 * lockName first: `executor.on('master', (lockName, fencingToken) => ...)`.
 */
export class MasterJobExecutor extends EventEmitter {
  readonly instanceId: string;
  /** How long a REST call waits on the database before it answers 503. */
  readonly controlTimeout: number;
  private readonly hostname = hostname();
  private readonly sources: TimingSource[];
  private readonly masters = new Map<string, LockElection>();
  private stopped = false;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: LockStore,
    private readonly clock: Clock,
    componentConfig: MasterJobExecutorConfig = {},
    appConfig: {[APP_CONFIG_SECTION]?: MasterJobExecutorConfig} = {},
    notifier?: LockNotifier,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    super();
    this.unsubscribe = notifier?.subscribe(change => this.wake(change));
    const section = appConfig?.[APP_CONFIG_SECTION] ?? {};
    const fromEnv = timingsFromEnv(env); // a bad variable fails the start, naming it
    this.sources = [
      {
        values: fromEnv,
        describe: name => `Environment variable ${TIMING_ENV_VARIABLES[name]}`,
      },
      {
        values: componentConfig,
        describe: name => `Component configuration ${name}`,
      },
      {
        values: section,
        describe: name => `Application config ${APP_CONFIG_SECTION}.${name}`,
      },
    ];
    this.instanceId = componentConfig.instanceId ?? section.instanceId ?? defaultInstanceId();
    if (typeof this.instanceId !== 'string' || !this.instanceId || this.instanceId.length > 255) {
      throw new Error('instanceId must be a non-empty string of at most 255 characters');
    }
    this.controlTimeout = resolveControlTimeout(env, componentConfig, section);
    // Fail at start on bad configuration, not at the first startMaster().
    this.timingsFor({});
  }

  /**
   * Starts campaigning for `options.lockName` after initDelay and returns the
   * handle at once. Throws on invalid options.
   */
  startMaster(options: StartMasterOptions): Master {
    validate(options);
    const {lockName, masterJob} = options;
    if (this.stopped) throw new Error(`Cannot start master "${lockName}": the executor is stopped`);
    if (this.masters.has(lockName)) {
      throw new Error(`A master for lockName "${lockName}" is already started in this executor`);
    }
    const election = new LockElection({
      lockName,
      instanceId: this.instanceId,
      hostname: this.hostname,
      masterJob,
      timings: this.timingsFor(options),
      store: this.store,
      clock: this.clock,
    });
    for (const event of FORWARDED_EVENTS) {
      election.on(event, (...args: unknown[]) => this.emit(event, lockName, ...args));
    }
    // Always listened to, so an error never throws out of the handle.
    election.on('error', err => {
      if (this.listenerCount('error') > 0) this.emit('error', err, lockName);
    });
    const stop = election.stop.bind(election);
    // Forget the handle once stopped, so the lock may be started again.
    Object.defineProperty(election, 'stop', {
      value: async () => {
        await stop();
        if (this.masters.get(lockName) === election) this.masters.delete(lockName);
      },
    });
    this.masters.set(lockName, election);
    election.begin();
    debug('started master %s as %s', lockName, this.instanceId);
    return election;
  }

  getMaster(lockName: string): Master | undefined {
    return this.masters.get(lockName);
  }

  /**
   * Re-check the lock that changed at once (every lock if undefined), e.g.
   * after a disable or enable; after a release, `freed` lets a replica try the
   * takeover without a read first.
   */
  wake(change?: LockChange): void {
    if (change === undefined) this.masters.forEach(m => m.wake());
    else this.masters.get(change.lockName)?.wake(change);
  }

  async stopMaster(lockName: string): Promise<boolean> {
    const master = this.masters.get(lockName);
    if (!master) return false;
    await master.stop();
    return true;
  }

  status(): MasterStatus[] {
    return [...this.masters.values()].map(m => m.status());
  }

  /**
   * Unhealthy when this replica holds a lock past its renewal deadline: it
   * should have stopped, so its event loop is stalled or its clock is off.
   */
  health(): {healthy: boolean; instanceId: string; locks: MasterStatus[]} {
    const locks = this.status();
    return {healthy: !locks.some(s => s.deadlinePassed), instanceId: this.instanceId, locks};
  }

  /** Stops every master (jobs stopped, locks released); used on app.stop(). */
  async stopAll(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    await Promise.all([...this.masters.values()].map(m => m.stop()));
  }

  /** The merged timings for these options (options > env > app config > defaults). */
  timingsFor(options: Partial<ElectionTimings>): ElectionTimings {
    return resolveTimings([
      {values: options, describe: name => `startMaster option ${name}`},
      ...this.sources,
    ]);
  }
}

function validate(options: StartMasterOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('startMaster(options): options must be an object');
  }
  const {lockName, masterJob} = options;
  const problem = textProblem('lockName', lockName, MAX_LOCK_NAME_LENGTH);
  if (problem) throw new TypeError(`startMaster(options): ${problem}`);
  if (masterJob === null || typeof masterJob !== 'object') {
    throw new TypeError(
      'startMaster(options): masterJob must be an object with start() and stop()',
    );
  }
  if (typeof masterJob.start !== 'function') {
    throw new TypeError('startMaster(options): masterJob.start must be a function');
  }
  if (masterJob.stop !== undefined && typeof masterJob.stop !== 'function') {
    throw new TypeError('startMaster(options): masterJob.stop, when given, must be a function');
  }
}

function defaultInstanceId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}
