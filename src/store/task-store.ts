// A queue's rows: the TaskStore contract the queue's runner and its submits
// rely on, and its implementation on the component's repository.

import {Clock} from '../types';
import {MasterTask, MAX_TASK_ERROR_LENGTH, TaskState} from '../models/master-task.model';
import {isDuplicate} from './errors';
import type {TaskRepository} from './dialect';

export interface QueueStats {
  pending: number;
  running: number;
  done: number;
  failed: number;
}

/** How an attempt ended, as the runner records it. */
export type Outcome =
  | {state: 'done'}
  | {state: 'failed'; error: string}
  | {state: 'pending'; error: string; notBefore: Date};

/**
 * Every change of a task after its submit is a compare-and-set on what the
 * runner read, and a claim writes the claiming master's fencing token, so a
 * master that lost the queue can no longer finish, retry or fail a task the
 * next master has claimed. Its time stamps are the clock's wall clock.
 */
export interface TaskStore {
  /** Persists a task; with a key, resolves to the id of the task submitted with it before, if any. */
  submit(queueName: string, payload: string, key?: string): Promise<number>;
  /** The first unfinished task in submission order: the one the master runs next. */
  head(queueName: string): Promise<MasterTask | null>;
  /**
   * Starts an attempt of `task` as read, for the master of token
   * `fencingToken`. Resolves to the task as claimed, or undefined if it
   * changed since it was read.
   */
  claim(task: MasterTask, fencingToken: number): Promise<MasterTask | undefined>;
  /** Ends the attempt `claimed`; false if a later master has claimed the task since. */
  finish(claimed: MasterTask, outcome: Outcome): Promise<boolean>;
  /** The queue's tasks counted by state. */
  stats(queueName: string): Promise<QueueStats>;
}

const UNFINISHED: TaskState[] = ['pending', 'running'];

/** Per datasource, shared by the executors of this process that use it. */
const inFlight = new WeakMap<object, Map<string, Promise<number>>>();

/** The TaskStore on the component's MasterTask repository, for any connector. */
export class RepositoryTaskStore implements TaskStore {
  /** Submits of one key in this process, one at a time: the memory connector has no unique index. */
  private readonly submitting: Map<string, Promise<number>>;

  constructor(
    private readonly tasks: TaskRepository,
    private readonly clock: Clock,
  ) {
    const dataSource = tasks.dataSource;
    let submitting = inFlight.get(dataSource);
    if (!submitting) inFlight.set(dataSource, (submitting = new Map()));
    this.submitting = submitting;
  }

  async submit(queueName: string, payload: string, key?: string): Promise<number> {
    if (key === undefined) return (await this.insert(queueName, payload)).id;
    const id = queueKeyOf(queueName, key);
    const previous = this.submitting.get(id);
    if (previous) return previous;
    const submit = (async () => {
      const found = await this.byKey(queueName, key);
      if (found) return found.id;
      try {
        return (await this.insert(queueName, payload, key)).id;
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        const raced = await this.byKey(queueName, key); // another replica's submit won
        if (!raced) throw err;
        return raced.id;
      }
    })();
    this.submitting.set(id, submit);
    try {
      return await submit;
    } finally {
      this.submitting.delete(id);
    }
  }

  head(queueName: string): Promise<MasterTask | null> {
    return this.tasks.findOne({
      where: {queueName, state: {inq: UNFINISHED}},
      order: ['id ASC'],
    });
  }

  async claim(task: MasterTask, fencingToken: number): Promise<MasterTask | undefined> {
    const claimed = {
      state: 'running' as const,
      attempts: task.attempts + 1,
      fencingToken,
      startedAt: this.clock.date(),
    };
    const {count} = await this.tasks.updateAll(claimed, {
      id: task.id,
      state: task.state,
      attempts: task.attempts,
      fencingToken: task.fencingToken,
    });
    return count === 1 ? new MasterTask({...task, ...claimed}) : undefined;
  }

  async finish(claimed: MasterTask, outcome: Outcome): Promise<boolean> {
    const now = this.clock.date();
    const data: Partial<MasterTask> =
      outcome.state === 'done'
        ? {state: 'done', finishedAt: now}
        : outcome.state === 'failed'
          ? {state: 'failed', finishedAt: now, lastError: clip(outcome.error)}
          : {state: 'pending', notBefore: outcome.notBefore, lastError: clip(outcome.error)};
    const {count} = await this.tasks.updateAll(data, {
      id: claimed.id,
      state: 'running',
      attempts: claimed.attempts,
      fencingToken: claimed.fencingToken,
    });
    return count === 1;
  }

  get dataSource() {
    return this.tasks.dataSource;
  }

  async stats(queueName: string): Promise<QueueStats> {
    const states: TaskState[] = ['pending', 'running', 'done', 'failed'];
    const counts = await Promise.all(
      states.map(state => this.tasks.count({queueName, state}).then(c => c.count)),
    );
    return {pending: counts[0], running: counts[1], done: counts[2], failed: counts[3]};
  }

  private insert(queueName: string, payload: string, key?: string): Promise<MasterTask> {
    return this.tasks.create({
      queueName,
      ...(key !== undefined ? {key, queueKey: queueKeyOf(queueName, key)} : {}),
      payload,
      state: 'pending',
      attempts: 0,
      fencingToken: 0,
      submittedAt: this.clock.date(),
    });
  }

  private byKey(queueName: string, key: string): Promise<MasterTask | null> {
    return this.tasks.findOne({where: {queueKey: queueKeyOf(queueName, key)}});
  }
}

function queueKeyOf(queueName: string, key: string): string {
  return `${queueName}\u001f${key}`;
}

function clip(error: string): string {
  return [...error].slice(0, MAX_TASK_ERROR_LENGTH).join('');
}
