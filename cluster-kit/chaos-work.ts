// The work a chaos run keeps going while it injects faults: tasks posted to
// the example app's persisted queue (DEMO_QUEUE) through random live
// replicas, its every-second cron schedule (DEMO-CRON, missed: all), and a
// balanced group of resources (DEMO_GROUP), which every replica killed or
// spawned leaves or joins. At the end it waits for every task to be done and
// checks the runs and the firings with the work checker (nothing lost,
// nothing run twice without its master's tenure ending, no occurrence fired
// twice or lost), and the masterships of every lock but the faulted one (the
// queue's, the schedule's, each resource's): one unpaused master at a time.

import type {ProcessCluster} from './cluster';
import {openSql, SqlBackend} from './sql';
import {mono, sleep, waitFor} from './time';
import {checkMasterships} from './checker';
import {checkCronFirings, checkTaskRuns, SubmitRecord} from './work-checker';

export const CRON_LOCK = 'DEMO-CRON';
export const GROUP = 'CHAOS-G';
const GROUP_RESOURCES = 6;

/** The replicas' environment for the work: the queue, and a schedule every second. */
export function workEnv(queue: string): Record<string, string> {
  return {
    DEMO_QUEUE: queue,
    DEMO_TASK_MS: '2',
    DEMO_CRON: '* * * * * *',
    DEMO_CRON_MISSED: 'all',
    DEMO_GROUP: `${GROUP}:${GROUP_RESOURCES}`,
  };
}

export interface WorkReport {
  violations: string[];
  tasks: number;
  reruns: number;
  /** Runs by a master paused past the next master's run of the task (fenced, excused). */
  staleRuns: number;
  /** Posts answered otherwise than 202 (a replica down, a 503), retried. */
  retriedPosts: number;
  firings: number;
  /** Occurrences claimed by a master that ended before firing them. */
  unfired: number;
  /** Masterships of the group's resources. */
  resourceTenures: number;
}

export class ChaosWork {
  private readonly submits: SubmitRecord[] = [];
  private retriedPosts = 0;
  private stopping = false;
  private abandoned = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly queue: string,
    /** ms between two posts. */
    private readonly intervalMs = 50,
  ) {}

  /** Starts posting tasks in the background. */
  start(): void {
    this.running = this.submitLoop();
  }

  /** Stops posting: the post under way is finished, or given up with `abandon` (after a failure). */
  async stop(abandon = false): Promise<void> {
    this.stopping = true;
    this.abandoned ||= abandon;
    await this.running;
  }

  /** Stops posting, waits for every task to be done (up to `timeout` ms), and checks. */
  async finish(timeout = 120000): Promise<WorkReport> {
    // The post under way gets a minute to be answered (the database may be down): then it is dropped.
    const giveUp = setTimeout(() => (this.abandoned = true), 60000);
    await this.stop();
    clearTimeout(giveUp);
    const c = this.cluster;
    // The firings recorded so far: later ones may have claims the query below does not see.
    const firings = c.cronFirings.filter(f => f.lockName === CRON_LOCK);
    const backend = c.server.backend as SqlBackend;
    const sql = openSql(backend, c.server.address, c.server.database, 1);
    const pg = backend === 'postgresql';
    let done: string[] = [];
    let claims: {at: unknown; by: unknown; outcome: unknown}[] = [];
    const violations: string[] = [];
    try {
      const keys = this.submits.map(s => s.key);
      await waitFor(
        `${keys.length} tasks done`,
        async () => {
          const {rows} = await sql.query(
            pg
              ? `SELECT key FROM mastertask WHERE queuename = $1 AND state = 'done'`
              : "SELECT `key` FROM MasterTask WHERE queueName = ? AND state = 'done'",
            [this.queue],
          );
          done = rows.map(r => String(r.key));
          return done.length >= keys.length;
        },
        timeout,
        500,
      ).catch((err: Error) => violations.push(err.message));
      claims = (
        await sql.query(
          pg
            ? 'SELECT scheduledat AS "at", instanceid AS "by", outcome FROM mastercronrun WHERE lockname = $1'
            : 'SELECT scheduledAt AS `at`, instanceId AS `by`, outcome FROM MasterCronRun WHERE lockName = ?',
          [CRON_LOCK],
        )
      ).rows as typeof claims;
    } finally {
      await sql.close();
    }
    const runs = c.log.taskRuns.filter(r => r.queue === this.queue);
    // A rerun, or an occurrence not fired, counts as caused by its master's end only if that
    // end came within a pause or an outage of the longest kind plus a lease.
    const endBound = c.recoveryBound + c.timings.leaseDuration;
    const tasks = checkTaskRuns({
      endBound,
      pauses: c.log.pauses,
      staleStopBound: c.checkBounds().staleStopBound,
      keys: this.submits.map(s => s.key),
      runs: runs.map(r => ({...r, key: r.id})),
      exits: c.log.exits,
      submits: this.submits,
      done,
      stops: c.log.jobs.filter(j => j.lockName === this.queue && j.event === 'stop'),
    });
    // Wall time of the replicas' stop lines: this host's clock, as their occurrences.
    const wallOffset = Date.now() - mono();
    const cron = checkCronFirings({
      endBound,
      killedAt: new Map(
        c.log.exits
          .filter(x => x.causedBy === 'SIGKILL')
          .map(x => [x.instanceId, x.at + wallOffset]),
      ),
      firings: firings.map(f => ({
        scheduledAt: new Date(f.scheduledAt).getTime(),
        instanceId: f.instanceId,
      })),
      claims: claims.map(r => ({
        scheduledAt: new Date(r.at as string).getTime(),
        instanceId: String(r.by),
        outcome: r.outcome as string | null,
      })),
      exits: c.log.exits,
      stops: c.log.jobs
        .filter(j => j.lockName === CRON_LOCK && j.event === 'stop')
        .map(j => ({instanceId: j.instanceId, at: j.mono + wallOffset})),
      periodMs: 1000,
    });
    // Every other lock: the queue's, the schedule's, the group's resources.
    const others = [...new Set(c.log.jobs.map(j => j.lockName))].filter(l => l !== c.lockName);
    const masterships = checkMasterships(c.log, {
      lockNames: others,
      pauses: c.log.pauses,
      staleStopBound: c.checkBounds().staleStopBound,
      until: mono() - 100,
    });
    const resourceTenures = [...masterships.byLock.entries()]
      .filter(([lock]) => lock.startsWith(`${GROUP}/`))
      .reduce((n, [, m]) => n + m.tenures.length, 0);
    return {
      violations: [
        ...violations,
        ...tasks.violations.map(v => `queue: ${v}`),
        ...cron.violations.map(v => `cron: ${v}`),
        ...masterships.violations,
      ],
      resourceTenures,
      tasks: this.submits.length,
      reruns: tasks.reruns,
      staleRuns: tasks.staleRuns,
      retriedPosts: this.retriedPosts,
      firings: firings.length,
      unfired: cron.unfired,
    };
  }

  private async submitLoop(): Promise<void> {
    for (let index = 0; !this.stopping; index++) {
      const key = `chaos-${String(index).padStart(6, '0')}`;
      const sentAt = mono();
      // Posted until a replica answers 202: a retry of the same key is the same task.
      for (;;) {
        const live = this.cluster.live().filter(r => r.url && !r.paused);
        const replica = live[Math.floor(Math.random() * live.length)];
        const answer = await replica
          ?.postJson('/demo/tasks', {id: key}, 5000)
          .catch(() => undefined);
        if (answer?.status === 202) break;
        if (this.abandoned) return;
        this.retriedPosts++;
        await sleep(100);
      }
      this.submits.push({key, sentAt, answeredAt: mono()});
      await sleep(this.intervalMs);
    }
  }
}
