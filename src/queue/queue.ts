// A persisted work queue: tasks submitted on any replica, run one at a time in
// submission order by the master of the queue's lock. The runner is the
// master's job; it reads the head, claims it under its fencing token, runs the
// handler, and records the outcome under the same token. A master that dies
// mid-task leaves the task claimed; the next master runs it again (at least
// once, `ctx.attempt` counts). Nothing lives only in memory. Its waits and
// time stamps are the executor's clock's.

import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {backoff, sleep} from '../clock';
import {MAX_LOCK_NAME_LENGTH, textProblem} from '../models/limits';
import {MasterTask, MAX_TASK_KEY_LENGTH} from '../models/master-task.model';
import type {Guard} from '../store/database-unavailable';
import {Clock, Master, MasterJob, MasterJobContext} from '../types';
import {Outcome, QueueStats, TaskStore} from '../store/task-store';

const debug = debugFactory('loopback:master-job-executor:queue');

/** After a database error, the runner waits 100 ms, doubling up to 5 s. */
const BACKOFF = {base: 100, max: 5000};
/** After a claim that found the head changed under it. */
const CLAIM_LOST_WAIT = 100;

export interface TaskContext extends MasterJobContext {
  queueName: string;
  taskId: number;
  /** 1 for the first attempt; more after a retry or after a master died mid-task. */
  attempt: number;
}

/** Resolves true when the task is done; false or a throw retries it. */
export type TaskHandler = (payload: unknown, ctx: TaskContext) => boolean | Promise<boolean>;

export interface StartQueueOptions {
  queueName: string;
  handler: TaskHandler;
  /** Attempts before a task is marked failed (default 3). */
  maxAttempts?: number;
  /** Before a retry, in ms (default 1000); the task stays at the head meanwhile. */
  retryDelay?: number;
  /** How often the master looks for tasks when nothing woke it, in ms (default: checkMasterInterval). */
  pollInterval?: number;
}

/** A queue in the status endpoint. */
export interface QueueStatus extends QueueStats {
  queueName: string;
  isMaster: boolean;
}

export interface SubmitOptions {
  /** Submitting the same key again resolves with the first task's id, whatever its state. */
  key?: string;
}

/**
 * The handle `startQueue()` returns. Events: `start` and `stop` (with the
 * master's context) as this replica begins and ends running the queue, `task`
 * (an attempt settled here: taskId, attempt, state).
 */
export interface TaskQueue extends EventEmitter {
  readonly queueName: string;
  /** The election of the queue's lock: whether this replica runs the tasks. */
  readonly master: Master;
  /** Persists a task and resolves with its id; rejects if the database does not answer. */
  submit(payload: unknown, options?: SubmitOptions): Promise<number>;
  stats(): Promise<QueueStats>;
  stop(): Promise<void>;
}

export interface QueueSettings {
  queueName: string;
  handler: TaskHandler;
  maxAttempts: number;
  retryDelay: number;
  pollInterval: number;
}

/** The master job of a queue: runs its tasks while this replica is the queue's master. */
export class QueueRunner extends EventEmitter implements MasterJob {
  private running: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly settings: QueueSettings,
    private readonly clock: Clock,
  ) {
    super();
  }

  start(ctx: MasterJobContext): void {
    this.emit('start', ctx);
    this.running = this.run(ctx).catch(err => debug('%s: runner failed: %s', ctx.lockName, err));
  }

  /**
   * The mastership ended: says so at once (at its deadline another replica
   * may take over while the task under way finishes), then waits for that
   * task (its handler sees `ctx.signal` aborted), bounded by stopTimeout.
   */
  async stop(ctx: MasterJobContext): Promise<void> {
    this.emit('stop', ctx);
    this.wake();
    await this.running;
    this.running = undefined;
  }

  /** A task was submitted: look at once. */
  wake(): void {
    this.wakeUp?.();
  }

  private async run(ctx: MasterJobContext): Promise<void> {
    const {queueName} = this.settings;
    let failures = 0;
    while (!ctx.signal.aborted) {
      try {
        const next = await this.step(ctx);
        failures = 0;
        if (next > 0) await this.sleep(next, ctx.signal);
      } catch (err) {
        const wait = backoff(++failures, BACKOFF);
        debug('%s: database call failed, again in %d ms: %s', queueName, wait, err);
        await this.sleep(wait, ctx.signal);
      }
    }
  }

  /** Runs the head if it is due; resolves how long to wait before the next step (0: at once). */
  private async step(ctx: MasterJobContext): Promise<number> {
    const {queueName, pollInterval} = this.settings;
    const head = await this.store.head(queueName);
    if (!head) return pollInterval;
    if (head.fencingToken > ctx.fencingToken) {
      // A later master claimed it: this replica is no longer master, whatever it thinks.
      debug(
        '%s: task %d claimed by token %d, stepping aside',
        queueName,
        head.id,
        head.fencingToken,
      );
      return pollInterval;
    }
    const due =
      head.state === 'pending' && head.notBefore
        ? head.notBefore.getTime() - this.clock.date().getTime()
        : 0;
    if (due > 0) return Math.min(due, pollInterval);
    if (ctx.signal.aborted) return 0;
    const claimed = await this.store.claim(head, ctx.fencingToken);
    if (!claimed) return CLAIM_LOST_WAIT; // changed under us (a submit of a key? a later master?)
    // The mastership ended while the claim was under way (its reply held up, say behind a
    // partition): a later master may have run the task already. Left claimed, as if cut short.
    if (ctx.signal.aborted) return 0;
    const outcome = await this.attempt(claimed, ctx);
    // Cut short by the end of the mastership: left claimed, the next master runs it again.
    if (ctx.signal.aborted && outcome.state !== 'done') return 0;
    const recorded = await this.finishFenced(claimed, outcome, ctx);
    if (recorded) this.emit('task', {taskId: claimed.id, attempt: claimed.attempts, ...outcome});
    return 0;
  }

  private async attempt(task: MasterTask, ctx: MasterJobContext): Promise<Outcome> {
    const {handler, maxAttempts, retryDelay, queueName} = this.settings;
    let error: string;
    try {
      const payload: unknown = JSON.parse(task.payload);
      const ok = await handler(payload, {
        ...ctx,
        queueName,
        taskId: task.id,
        attempt: task.attempts,
      });
      if (ok === true) return {state: 'done'};
      error = `the handler resolved ${String(ok)}, not true`;
    } catch (err) {
      error = String((err as Error)?.stack ?? err);
    }
    if (task.attempts >= maxAttempts) return {state: 'failed', error};
    const notBefore = new Date(this.clock.date().getTime() + retryDelay);
    return {state: 'pending', error, notBefore};
  }

  /**
   * Records the outcome, retrying a database error while still master (the
   * token fences it either way). Resolves false if a later master claimed
   * the task, or if this replica stopped being master first: the next master
   * runs the task again.
   */
  private async finishFenced(
    task: MasterTask,
    outcome: Outcome,
    ctx: MasterJobContext,
  ): Promise<boolean> {
    for (let failures = 1; ; failures++) {
      try {
        return await this.store.finish(task, outcome);
      } catch (err) {
        if (ctx.signal.aborted) return false;
        const wait = backoff(failures, BACKOFF);
        debug(
          '%s: recording task %d failed, again in %d ms: %s',
          task.queueName,
          task.id,
          wait,
          err,
        );
        await this.sleep(wait, ctx.signal);
      }
    }
  }

  /** Waits `ms`, less if the mastership ends or wake() is called meanwhile. */
  private async sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const nap = new AbortController();
    const done = () => nap.abort();
    signal.addEventListener('abort', done, {once: true});
    this.wakeUp = done;
    try {
      await sleep(this.clock, ms, nap.signal);
    } finally {
      signal.removeEventListener('abort', done);
      if (this.wakeUp === done) this.wakeUp = undefined;
    }
  }
}

export type {QueueStats};

/** What a queue needs of the executor. */
export interface QueueHost {
  store: TaskStore;
  startMaster(lockName: string, job: MasterJob): Master;
  /** Tells the queue's master, wherever it runs, that a task was submitted. */
  announce(queueName: string): void;
  /** Answers a submit within controlTimeout: 503 if the database does not, 422 if it refuses the value. */
  guard: Guard;
  clock: Clock;
}

export class PersistedQueue extends EventEmitter implements TaskQueue {
  readonly master: Master;
  readonly runner: QueueRunner;

  constructor(
    private readonly host: QueueHost,
    private readonly settings: QueueSettings,
  ) {
    super();
    this.runner = new QueueRunner(host.store, settings, host.clock);
    for (const event of ['task', 'start', 'stop']) this.runner.on(event, e => this.emit(event, e));
    this.master = host.startMaster(settings.queueName, this.runner);
  }

  get queueName(): string {
    return this.settings.queueName;
  }

  async submit(payload: unknown, options: SubmitOptions = {}): Promise<number> {
    const text = payloadText(payload);
    const key = options?.key;
    if (key !== undefined) {
      const problem = textProblem('key', key, MAX_TASK_KEY_LENGTH);
      if (problem) throw new TypeError(`submit(): ${problem}`);
    }
    const id = await this.persist(text, key);
    if (this.master.isMaster) this.runner.wake();
    else this.host.announce(this.queueName);
    return id;
  }

  stats(): Promise<QueueStats> {
    return this.host.store.stats(this.queueName);
  }

  /** The submit's write, answered within the control timeout: a 503 at a REST edge, never a hang. */
  private persist(text: string, key: string | undefined): Promise<number> {
    const {store, guard} = this.host;
    return guard(
      {
        what: `submit to queue "${this.queueName}"`,
        writes: true,
        ifUnknown:
          key === undefined
            ? 'give the task a key to submit it again safely'
            : 'submit it again with the same key',
      },
      () => store.submit(this.queueName, text, key),
    );
  }

  stop(): Promise<void> {
    return this.master.stop();
  }
}

/** The payload as stored: JSON text, so every connector keeps it the same. */
function payloadText(payload: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw new TypeError(`submit(): payload must be a JSON value: ${(err as Error).message}`);
  }
  if (text === undefined)
    throw new TypeError('submit(): payload must be a JSON value, not undefined');
  return text;
}

/** Checks startQueue's options; throws naming the bad one. */
export function queueSettings(
  options: StartQueueOptions,
  defaultPollInterval: number,
): QueueSettings {
  if (!options || typeof options !== 'object')
    throw new TypeError('startQueue(options): options are missing');
  const problem = textProblem('queueName', options.queueName, MAX_LOCK_NAME_LENGTH);
  if (problem) throw new TypeError(`startQueue(): ${problem}`);
  if (typeof options.handler !== 'function')
    throw new TypeError('startQueue(): handler must be a function');
  const number = (
    name: keyof StartQueueOptions,
    value: unknown,
    fallback: number,
    min: number,
    integer: boolean,
  ) => {
    if (value === undefined) return fallback;
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < min ||
      (integer && !Number.isInteger(value))
    ) {
      throw new TypeError(
        `startQueue(): ${name} must be ${integer ? 'an integer' : 'a number'} of at least ${min}`,
      );
    }
    return value;
  };
  return {
    queueName: options.queueName,
    handler: options.handler,
    maxAttempts: number('maxAttempts', options.maxAttempts, 3, 1, true),
    retryDelay: number('retryDelay', options.retryDelay, 1000, 0, false),
    pollInterval: number('pollInterval', options.pollInterval, defaultPollInterval, 1, false),
  };
}
