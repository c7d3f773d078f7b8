// The live record of a process cluster: every job, write and cron line the
// replicas print, every exit, fault, pause and disable, in the order they
// arrived. It is the checker's ClusterLog, plus what a harness needs while
// the cluster runs: which replicas run a lock's job now, and waiting for the
// next line that matches.

import {EventEmitter} from 'events';
import {
  ClusterLog,
  DisableRecord,
  ExitRecord,
  FaultRecord,
  JobEvent,
  PauseRecord,
  WriteEvent,
} from './checker';

/** A `cron` line of the example's DEMO-CRON job. */
export interface CronFiring {
  lockName: string;
  instanceId: string;
  fencingToken: number;
  /** The occurrence it fired, ISO time. */
  scheduledAt: string;
  /** When it fired, ISO time. */
  at: string;
  mono: number;
}

/** A `task` line of the example's DEMO_QUEUE: one execution of a task. */
export interface TaskRun {
  queue: string;
  taskId: number;
  /** The task's key (the id posted). */
  id: string;
  attempt: number;
  instanceId: string;
  fencingToken: number;
  mono: number;
}

export class EventLog implements ClusterLog {
  readonly jobs: JobEvent[] = [];
  readonly writes: WriteEvent[] = [];
  readonly faults: FaultRecord[] = [];
  readonly pauses: PauseRecord[] = [];
  readonly exits: ExitRecord[] = [];
  readonly disables: DisableRecord[] = [];
  readonly cronFirings: CronFiring[] = [];
  readonly taskRuns: TaskRun[] = [];
  /** Emits 'job' (JobEvent), 'write' (WriteEvent) and 'exit' (ExitRecord) as they are added. */
  readonly lines = new EventEmitter();
  /** lockName -> instanceId -> the start line of the mastership it runs, in order of arrival. */
  private readonly open = new Map<string, Map<string, JobEvent>>();

  constructor() {
    this.lines.setMaxListeners(0);
  }

  /** Records a JSON line a replica printed; other lines are ignored. */
  addLine(parsed: {event?: unknown; mono?: unknown}): void {
    if ((parsed.event === 'start' || parsed.event === 'stop') && typeof parsed.mono === 'number') {
      this.addJob(parsed as JobEvent);
    } else if (parsed.event === 'write') {
      this.writes.push(parsed as WriteEvent);
      this.lines.emit('write', parsed);
    } else if (parsed.event === 'cron') {
      this.cronFirings.push(parsed as unknown as CronFiring);
    } else if (parsed.event === 'task') {
      this.taskRuns.push(parsed as unknown as TaskRun);
    }
  }

  addJob(e: JobEvent): void {
    this.jobs.push(e);
    let running = this.open.get(e.lockName);
    if (!running) this.open.set(e.lockName, (running = new Map()));
    // A start without a stop (a replica that never stopped) keeps its first start.
    if (e.event === 'start') {
      if (!running.has(e.instanceId)) running.set(e.instanceId, e);
    } else running.delete(e.instanceId);
    this.lines.emit('job', e);
  }

  /** The process is gone: whatever it ran ends here. */
  addExit(x: ExitRecord): void {
    this.exits.push(x);
    for (const running of this.open.values()) running.delete(x.instanceId);
    this.lines.emit('exit', x);
  }

  /** The start lines of the masterships of `lockName` running now (as the lines arrived), oldest first. */
  running(lockName: string): JobEvent[] {
    return [...(this.open.get(lockName)?.values() ?? [])];
  }

  /**
   * The first job line, recorded already or to come, at or after `since`
   * that matches; undefined after `timeout` ms. Waits on the lines as they
   * arrive, without polling.
   */
  nextJob(
    match: (e: JobEvent) => boolean,
    since: number,
    timeout: number,
  ): Promise<JobEvent | undefined> {
    const found = this.jobs.find(e => e.mono >= since && match(e));
    if (found) return Promise.resolve(found);
    return new Promise(resolve => {
      const timer = setTimeout(() => {
        this.lines.off('job', listener);
        resolve(undefined);
      }, timeout);
      const listener = (e: JobEvent) => {
        if (e.mono >= since && match(e)) {
          clearTimeout(timer);
          this.lines.off('job', listener);
          resolve(e);
        }
      };
      this.lines.on('job', listener);
    });
  }
}
