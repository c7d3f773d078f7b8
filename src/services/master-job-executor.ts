// The service that starts and stops masters: one election per lock, the
// timings each gets (options > environment > app configuration > default),
// and the events of all of them, re-emitted with the lock's name. Its one
// clock times all it starts: elections, groups, queues, schedules, watches.

import {juggler} from '@loopback/repository';
import {randomBytes} from 'crypto';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {hostname} from 'os';
import {sharedTimersOf} from '../clock';
import {LockElection} from '../election/election';
import {GroupRunner} from '../groups/group';
import {Quorum} from '../groups/quorum';
import {CheckpointWatch, withCheckpoint} from '../jobs/checkpoint';
import {MasterCronJob} from '../jobs/cron';
import {ExclusiveContext, runExclusive, RunExclusiveOptions} from '../jobs/exclusive';
import {
  resolveTimings,
  TIMING_ENV_VARIABLES,
  TimingSource,
  timingsFromEnv,
} from '../election/timings';
import {MAX_LOCK_NAME_LENGTH, textProblem} from '../models/limits';
import {ANYTHING, describe, unknownKind, WakeUp} from '../wake/messages';
import {LockNotifier} from '../wake/notifier';
import {
  PersistedQueue,
  QueueStatus,
  queueSettings,
  StartQueueOptions,
  TaskQueue,
} from '../queue/queue';
import {APP_CONFIG_SECTION, resolveControlTimeout} from '../settings';
import {CheckpointStore} from '../store/checkpoint-store';
import {CronRunStore} from '../store/cron-run-store';
import {Guard, withinControlTimeout} from '../store/database-unavailable';
import type {ValueDialect} from '../store/dialect';
import {LockStore} from '../store/lock-store';
import {TaskStore} from '../store/task-store';
import {
  Clock,
  CronStatus,
  ElectionTimings,
  GroupStatus,
  Master,
  MasterGroup,
  MasterJob,
  MasterJobExecutorConfig,
  MasterStatus,
  StartGroupOptions,
  StartMasterOptions,
} from '../types';

const debug = debugFactory('loopback:master-job-executor:executor');
// Every wake-up the executor hears or is given (renewals included: one per lock and heartbeat).
const wakeDebug = debugFactory('loopback:master-job-executor:wake');

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

/** What the executor is made of; the component makes it from its bindings. */
export interface MasterJobExecutorOptions {
  /** Where locks, group members and controls live. */
  store: LockStore;
  clock: Clock;
  /** The component configuration (`app.configure(MasterJobExecutorBindings.COMPONENT)`). */
  config?: MasterJobExecutorConfig;
  /** The application config, whose `masterJobExecutor` section is read under the component's. */
  appConfig?: {[APP_CONFIG_SECTION]?: MasterJobExecutorConfig};
  /** Wakes the other replicas (and this one) on releases, controls, submits. */
  notifier?: LockNotifier;
  /** Where `MASTER_JOB_*` variables are read; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** A queue's tasks: without it, startQueue() throws. */
  tasks?: TaskStore;
  /** Checkpoints: without it, `startMaster({checkpoint: true})` throws. */
  checkpoints?: CheckpointStore;
  /** The claimed occurrences of cron schedules. */
  cronRuns?: CronRunStore;
  /**
   * The component's datasource and its dialect: a submit to a queue that the
   * database does not answer within controlTimeout is a 503 naming them.
   * Without it, a submit waits as long as the store does.
   */
  database?: {dataSource: juggler.DataSource; dialect: ValueDialect};
}

/** A master started here: its election, its job as given, and what runs beside it. */
interface StartedMaster {
  election: LockElection;
  job: MasterJob;
  quorum?: Quorum;
  watch?: CheckpointWatch;
}

/**
 * Starts and stops masters. Re-emits the events of every handle with the
 * lockName first: `executor.on('master', (lockName, fencingToken) => ...)`.
 * A registry: each handle it made tells it when it stopped, and leaves it.
 */
export class MasterJobExecutor extends EventEmitter {
  readonly instanceId: string;
  /** How long a REST call waits on the database before it answers 503. */
  readonly controlTimeout: number;
  private readonly hostname = hostname();
  private readonly sources: TimingSource[];
  private readonly store: LockStore;
  private readonly clock: Clock;
  private readonly notifier: LockNotifier | undefined;
  private readonly masters = new Map<string, StartedMaster>();
  private readonly groups = new Map<string, GroupRunner>();
  private readonly queues = new Map<string, PersistedQueue>();
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private readonly unsubscribe: (() => void) | undefined;

  /** @internal Made by the component from its bindings; apps get it with `app.get(MasterJobExecutorBindings.EXECUTOR)`. */
  constructor(private readonly options: MasterJobExecutorOptions) {
    super();
    const {store, clock, notifier, config = {}, appConfig = {}, env = process.env} = options;
    this.store = store;
    this.clock = clock;
    this.notifier = notifier;
    this.unsubscribe = notifier?.subscribe(message => this.wake(message));
    const section = appConfig?.[APP_CONFIG_SECTION] ?? {};
    const fromEnv = timingsFromEnv(env); // a bad variable fails the start, naming it
    this.sources = [
      {
        values: fromEnv,
        describe: name => `Environment variable ${TIMING_ENV_VARIABLES[name]}`,
      },
      {
        values: config,
        describe: name => `Component configuration ${name}`,
      },
      {
        values: section,
        describe: name => `Application config ${APP_CONFIG_SECTION}.${name}`,
      },
    ];
    this.instanceId = config.instanceId ?? section.instanceId ?? defaultInstanceId();
    if (typeof this.instanceId !== 'string' || !this.instanceId || this.instanceId.length > 255) {
      throw new Error('instanceId must be a non-empty string of at most 255 characters');
    }
    this.controlTimeout = resolveControlTimeout(env, config, section);
    // Fail at start on bad configuration, not at the first startMaster().
    this.timingsFor({});
  }

  /**
   * Starts campaigning for `options.lockName` after initDelay and returns the
   * handle at once. Throws on invalid options.
   */
  startMaster(options: StartMasterOptions): Master {
    validate(options);
    const {lockName} = options;
    const checkpoints = options.checkpoint ? this.options.checkpoints : undefined;
    // A schedule claims each occurrence in the database before it fires it, on this clock.
    if (options.masterJob instanceof MasterCronJob) {
      options.masterJob.runs ??= this.options.cronRuns;
      options.masterJob.clock ??= this.clock;
    }
    if (options.checkpoint && !checkpoints) {
      throw new Error('startMaster(options): checkpoint needs the component (no checkpoint store)');
    }
    const masterJob = checkpoints
      ? withCheckpoint(options.masterJob, checkpoints, name =>
          this.notifier?.publish([{kind: 'checkpoint', lockName: name}]),
        )
      : options.masterJob;
    const minMembers = checkMinMembers('startMaster', options.minMembers);
    if (this.stopped) throw new Error(`Cannot start master "${lockName}": the executor is stopped`);
    if (this.masters.has(lockName)) {
      throw new Error(`A master for lockName "${lockName}" is already started in this executor`);
    }
    const timings = this.timingsFor(options);
    if (minMembers > 1) memberNameProblem('startMaster', 'lockName', lockName);
    const quorum =
      minMembers > 1
        ? new Quorum(minMembers, {
            ...this.memberOptions(lockName, timings),
            onError: this.reporter(lockName),
          })
        : undefined;
    const election: LockElection = new LockElection({
      lockName,
      instanceId: this.instanceId,
      hostname: this.hostname,
      masterJob,
      timings,
      store: this.store,
      clock: this.clock,
      mayAcquire: quorum && (() => quorum.isMet()),
      // Leave the quorum first: the others count one member less before they may take over.
      onStopping: quorum && (() => quorum.stop()),
      // Forget the handle once stopped, so the lock may be started again.
      onStopped: () => {
        if (this.masters.get(lockName) === started) this.masters.delete(lockName);
      },
    });
    const started: StartedMaster = {election, job: options.masterJob, quorum};
    this.forward(election);
    this.masters.set(lockName, started);
    if (checkpoints) {
      const watch = new CheckpointWatch(
        election,
        checkpoints,
        timings.checkMasterInterval,
        this.clock,
      );
      started.watch = watch;
      election.on('statechange', (_from: string, to: string) => {
        if (to === 'stopped') watch.stop();
      });
    }
    quorum?.begin(election, sharedTimersOf(this.clock).turnTime() + timings.initDelay);
    election.begin();
    debug('started master %s as %s', lockName, this.instanceId);
    return election;
  }

  /**
   * Starts a persisted queue: its tasks, submitted on any replica, run one at
   * a time in submission order on the master of the lock `queueName`.
   * Returns the handle at once; throws on invalid options. See docs/queue.md.
   */
  startQueue(options: StartQueueOptions & Partial<ElectionTimings>): TaskQueue {
    const {queueName, handler, maxAttempts, retryDelay, pollInterval, ...timings} = options ?? {};
    const tasks = this.options.tasks;
    if (!tasks)
      throw new Error('startQueue(): this executor has no task store (use the component)');
    const settings = queueSettings(
      {queueName, handler, maxAttempts, retryDelay, pollInterval},
      this.timingsFor(timings).checkMasterInterval,
    );
    if (this.queues.has(queueName)) {
      throw new Error(`A queue "${queueName}" is already started in this executor`);
    }
    const queue = new PersistedQueue(
      {
        store: tasks,
        startMaster: (lockName, masterJob) => this.startMaster({...timings, lockName, masterJob}),
        announce: name => this.notifier?.publish([{kind: 'submitted', lockName: name}]),
        guard: this.guard(),
        clock: this.clock,
      },
      settings,
    );
    this.queues.set(queueName, queue);
    queue.master.on('statechange', (_from: string, to: string) => {
      if (to === 'stopped' && this.queues.get(queueName) === queue) this.queues.delete(queueName);
    });
    return queue;
  }

  /**
   * Starts a balanced group: one lock per resource (`<groupName>/<id>`), each
   * run by exactly one member, the members owning floor(R/M) or ceil(R/M)
   * each once the membership is stable. Returns the handle at once; throws on
   * invalid options. See docs/groups.md.
   */
  startGroup(options: StartGroupOptions): MasterGroup {
    const {groupName, resources, job} = validateGroup(options);
    const minMembers = checkMinMembers('startGroup', options.minMembers);
    if (this.stopped) throw new Error(`Cannot start group "${groupName}": the executor is stopped`);
    if (this.groups.has(groupName)) {
      throw new Error(`A group "${groupName}" is already started in this executor`);
    }
    const checkResource = (id: string) => {
      const problem = textProblem('resourceId', id, MAX_LOCK_NAME_LENGTH - groupName.length - 1);
      if (problem) return problem;
      if (this.masters.has(`${groupName}/${id}`)) {
        return `resourceId "${id}": a master of lockName "${groupName}/${id}" is started already`;
      }
      return undefined;
    };
    if (Array.isArray(resources)) {
      for (const id of resources) {
        const problem = checkResource(id);
        if (problem) throw new TypeError(`startGroup(options): resources: ${problem}`);
      }
    }
    const timings = this.timingsFor(options);
    const group: GroupRunner = new GroupRunner({
      ...this.memberOptions(groupName, timings),
      groupName,
      resources,
      job,
      minMembers,
      checkResource,
      onElection: election => this.forward(election),
      onStopped: () => {
        if (this.groups.get(groupName) === group) this.groups.delete(groupName);
      },
    });
    group.on('error', err => {
      if (this.listenerCount('error') > 0) this.emit('error', err, groupName);
    });
    this.groups.set(groupName, group);
    void group.begin();
    debug('started group %s as %s', groupName, this.instanceId);
    return group;
  }

  getGroup(groupName: string): MasterGroup | undefined {
    return this.groups.get(groupName);
  }

  /** The cron schedules started here, with their last runs as stored (latest first). */
  async cronStatus(): Promise<CronStatus[]> {
    const crons: CronStatus[] = [];
    for (const [lockName, {job}] of this.masters) {
      if (!(job instanceof MasterCronJob)) continue;
      const runs = (await job.runs?.recent(lockName)) ?? [];
      crons.push({
        lockName,
        runs: runs.map(r => ({
          scheduledAt: new Date(r.scheduledAt),
          startedAt: r.startedAt ? new Date(r.startedAt) : null,
          finishedAt: r.finishedAt ? new Date(r.finishedAt) : null,
          instanceId: r.instanceId,
          fencingToken: Number(r.fencingToken),
          outcome: r.outcome ?? null,
        })),
      });
    }
    return crons;
  }

  /** The queues started here, with their tasks' states as stored (one read per state). */
  queueStatus(): Promise<QueueStatus[]> {
    return Promise.all(
      [...this.queues.values()].map(async q => ({
        queueName: q.queueName,
        isMaster: q.master.isMaster,
        ...(await q.stats()),
      })),
    );
  }

  groupStatus(): GroupStatus[] {
    return [...this.groups.values()].map(g => g.status());
  }

  /** How a caller's database call answers: within controlTimeout, when the database is known. */
  private guard(): Guard {
    const {database} = this.options;
    if (!database) return (_attempt, work) => work();
    const {dataSource, dialect} = database;
    return (attempt, work) =>
      withinControlTimeout(this.clock, dataSource, dialect, attempt, this.controlTimeout, work);
  }

  /** What a membership of this replica needs. */
  private memberOptions(groupName: string, timings: ElectionTimings) {
    return {
      groupName,
      instanceId: this.instanceId,
      hostname: this.hostname,
      timings,
      store: this.store,
      clock: this.clock,
      // Tell the others at once (PostgreSQL), so they rebalance without waiting for a read.
      onJoined: (lockName: string) => this.notifier?.publish([{kind: 'joined', lockName}]),
    };
  }

  private reporter(lockName: string): (err: Error) => void {
    return err => {
      if (this.listenerCount('error') > 0) this.emit('error', err, lockName);
    };
  }

  /** Re-emits an election's events with its lockName. */
  private forward(election: LockElection): void {
    const {lockName} = election;
    for (const event of FORWARDED_EVENTS) {
      election.on(event, (...args: unknown[]) => this.emit(event, lockName, ...args));
    }
    // Always listened to, so an error never throws out of the handle.
    election.on('error', this.reporter(lockName));
  }

  /**
   * Runs `fn` once, as master of `lockName` (waiting for the lock, unless
   * `wait: false`: then a LockBusyError at once if it is held or disabled),
   * and resolves with its result after the lock is released. If the
   * mastership ends first (lost, expired, disabled), `ctx.signal` aborts and
   * `ctx.lostReason` says why; the lock is not campaigned for again.
   */
  runExclusive<T>(
    lockName: string,
    fn: (ctx: ExclusiveContext) => T | Promise<T>,
    options: RunExclusiveOptions = {},
  ): Promise<T> {
    return runExclusive(o => this.startMaster(o), this.store, lockName, fn, options);
  }

  getMaster(lockName: string): Master | undefined {
    return this.masters.get(lockName)?.election;
  }

  /**
   * Act at once on a wake-up (every lock, queue and checkpoint watch for
   * `anything`, the default), e.g. re-check a lock after a disable or enable;
   * after a release, `freed` lets a replica try the takeover without a read
   * first.
   */
  wake(message: WakeUp = ANYTHING): void {
    if (wakeDebug.enabled) wakeDebug('%s', describe(message));
    switch (message.kind) {
      // A submit or a checkpoint concerns one queue or one watch, not the election.
      case 'submitted':
        this.queues.get(message.lockName)?.runner.wake();
        return;
      case 'checkpoint':
        this.masters
          .get(message.lockName)
          ?.watch?.look()
          .catch(() => {});
        return;
      case 'released':
      case 'control':
      case 'renewed':
      case 'joined':
        this.masters.get(message.lockName)?.election.wake(message);
        break;
      case 'anything':
        this.queues.forEach(q => q.runner.wake());
        for (const {election, watch} of this.masters.values()) {
          watch?.look().catch(() => {});
          election.wake();
        }
        break;
      default:
        return this.wake(unknownKind(message));
    }
    this.masters.forEach(m => m.quorum?.wake(message));
    this.groups.forEach(g => g.wake(message));
  }

  async stopMaster(lockName: string): Promise<boolean> {
    const master = this.masters.get(lockName);
    if (!master) return false;
    await master.election.stop();
    return true;
  }

  status(): MasterStatus[] {
    return [...this.masters.values()].map(m => m.election.status());
  }

  /**
   * Unhealthy when this replica holds a lock past its renewal deadline: it
   * should have stopped, so its event loop is stalled or its clock is off.
   */
  health(): {healthy: boolean; instanceId: string; locks: MasterStatus[]} {
    const locks = this.status();
    const late = [...this.groups.values()].some(g => g.isLate());
    return {
      healthy: !late && !locks.some(s => s.deadlinePassed),
      instanceId: this.instanceId,
      locks,
    };
  }

  /**
   * Stops every master (jobs stopped, locks released); used on app.stop().
   * Every call resolves when all of it is done, the first as the later ones.
   */
  stopAll(): Promise<void> {
    this.stopping ??= this.stopEverything();
    return this.stopping;
  }

  private async stopEverything(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    await Promise.all([
      ...[...this.masters.values()].map(m => m.election.stop()),
      ...[...this.groups.values()].map(g => g.stop()),
    ]);
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
  if (options.checkpoint !== undefined && typeof options.checkpoint !== 'boolean') {
    throw new TypeError('startMaster(options): checkpoint must be true or false');
  }
  const {lockName, masterJob} = options;
  const problem = textProblem('lockName', lockName, MAX_LOCK_NAME_LENGTH);
  if (problem) throw new TypeError(`startMaster(options): ${problem}`);
  checkJob('startMaster(options)', 'masterJob', masterJob);
}

function validateGroup(options: StartGroupOptions): StartGroupOptions {
  const where = 'startGroup(options)';
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${where}: options must be an object`);
  }
  memberNameProblem('startGroup', 'groupName', options.groupName);
  const {groupName, resources, job} = options;
  if (groupName.includes('/')) throw new TypeError(`${where}: groupName must not contain "/"`);
  if (!Array.isArray(resources) && typeof resources !== 'function') {
    throw new TypeError(
      `${where}: resources must be an array of resource ids or a function returning one`,
    );
  }
  if (Array.isArray(resources) && new Set(resources).size !== resources.length) {
    throw new TypeError(`${where}: resources must not repeat an id`);
  }
  checkJob(where, 'job', job);
  return options;
}

/** A name that also names member rows: room for `\u001f` and 16 characters of hash. */
function memberNameProblem(method: string, field: string, name: string): void {
  const problem = textProblem(field, name, MAX_LOCK_NAME_LENGTH - 17);
  if (problem) throw new TypeError(`${method}(options): ${problem}`);
}

function checkMinMembers(method: string, value: unknown): number {
  if (value === undefined) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1000) {
    throw new TypeError(`${method}(options): minMembers must be an integer from 1 to 1000`);
  }
  return value;
}

function checkJob(where: string, field: string, job: MasterJob): void {
  if (job === null || typeof job !== 'object') {
    throw new TypeError(`${where}: ${field} must be an object with start() and stop()`);
  }
  if (typeof job.start !== 'function') {
    throw new TypeError(`${where}: ${field}.start must be a function`);
  }
  if (job.stop !== undefined && typeof job.stop !== 'function') {
    throw new TypeError(`${where}: ${field}.stop, when given, must be a function`);
  }
}

function defaultInstanceId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}
