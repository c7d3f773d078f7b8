// The example app's persisted queue (DEMO_QUEUE) in three real processes, on
// PostgreSQL and on MariaDB: 1,000 tasks posted across the replicas while the
// queue's master is SIGKILLed and SIGTERMed three times each. Every task is
// done; a task runs twice only when its master's tenure ended in the middle of
// it; a task whose submit was answered before another's was sent runs first;
// each master tenure runs its tasks in order.

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {
  DatabaseServer,
  mono,
  openSql,
  ProcessCluster,
  Replica,
  sleep,
  SqlBackend,
  checkTaskRuns,
  waitFor,
} from '../../cluster-kit';
import {openTestDatabase} from '../fixtures/databases';

const TASKS = Number(process.env.CLUSTER_QUEUE_TASKS ?? 1000);
const FAULTS: ('SIGKILL' | 'SIGTERM')[] = [
  'SIGKILL',
  'SIGTERM',
  'SIGKILL',
  'SIGTERM',
  'SIGKILL',
  'SIGTERM',
];
const SUBMITTERS = 4;

interface Submit {
  index: number;
  key: string;
  sentAt: number;
  answeredAt: number;
}

function note(text: string): void {
  process.stdout.write(text.replace(/^/gm, '      ') + '\n');
}

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  describe(`queue in example app processes on ${backend}`, function () {
    this.timeout(180000);
    let cluster: ProcessCluster | undefined;
    const database = 'mje_queue_cluster';
    const queue = `QUEUE-${randomBytes(3).toString('hex')}`;

    before(async function () {
      const db = await openTestDatabase(this, backend, database); // skips if unreachable
      await db.close();
      cluster = new ProcessCluster({
        server: new DatabaseServer(backend, database),
        lockNames: [`QUEUE-SIDE-${randomBytes(3).toString('hex')}`],
        replicas: 3,
        namePrefix: `q${backend === 'postgresql' ? 'pg' : 'my'}`,
        readiness: 'http',
        extraEnv: {DEMO_QUEUE: queue, DEMO_TASK_MS: '2'},
      });
      await cluster.start();
    });
    after(() => cluster?.shutdown());

    it(`runs ${TASKS} tasks posted across the replicas through 6 master faults`, async () => {
      const c = cluster!;
      const submits: Submit[] = [];
      let next = 0;
      let refused = 0;
      const submitter = async () => {
        while (next < TASKS) {
          const index = next++;
          const key = `task-${String(index).padStart(5, '0')}`;
          const sentAt = mono();
          // Posted until a replica answers 202: a retry of the same key is the same task.
          for (;;) {
            const live = c.live().filter(r => r.url);
            const replica = live[Math.floor(Math.random() * live.length)];
            const answer = await replica
              ?.postJson('/demo/tasks', {id: key}, 5000)
              .catch(() => undefined);
            if (answer?.status === 202) break;
            refused++;
            await sleep(50);
          }
          submits.push({index, key, sentAt, answeredAt: mono()});
        }
      };
      const submitting = Promise.all(Array.from({length: SUBMITTERS}, submitter));

      const faults: {signal: string; victim: string; at: number}[] = [];
      for (const signal of FAULTS) {
        const before = c.log.taskRuns.length;
        await waitFor(
          'tasks running',
          () => c.log.taskRuns.length >= before + TASKS / 10 || next >= TASKS,
          60000,
          20,
        );
        const master: Replica = await c.waitForMaster(30000, 'a queue master', queue);
        faults.push({signal, victim: master.instanceId, at: mono()});
        master.kill(signal);
        await master.exited;
        await c.ensure(3);
      }
      await submitting;

      const sql = openSql(backend, c.server.address, database, 1);
      let rows: {key: string; state: string; attempts: number}[] = [];
      try {
        const statement =
          backend === 'postgresql'
            ? 'SELECT key, state, attempts FROM mastertask WHERE queuename = $1'
            : 'SELECT `key`, state, attempts FROM MasterTask WHERE queueName = ?';
        await waitFor(
          `${TASKS} tasks done`,
          async () => {
            rows = (await sql.query(statement, [queue])).rows.map(r => ({
              key: String(r.key),
              state: String(r.state),
              attempts: Number(r.attempts),
            }));
            return rows.filter(r => r.state === 'done').length === TASKS;
          },
          60000,
          200,
        );
      } finally {
        await sql.close();
      }

      // One row per key; the runs checked against the kills (cluster-kit/work-checker.ts).
      expect(new Set(rows.map(r => r.key)).size).to.equal(TASKS);
      const runs = c.log.taskRuns.filter(r => r.queue === queue);
      const report = checkTaskRuns({
        keys: submits.map(x => x.key),
        runs: runs.map(r => ({...r, key: r.id})),
        exits: c.log.exits,
        submits,
        done: rows.filter(r => r.state === 'done').map(r => r.key),
        stops: c.log.jobs.filter(j => j.lockName === queue && j.event === 'stop'),
      });
      if (report.violations.length) {
        note(`faults: ${JSON.stringify(faults)}`);
        note(
          c.log.jobs
            .filter(j => j.lockName === queue)
            .map(
              j =>
                `${j.event} ${j.instanceId} token ${j.fencingToken} ${j.reason ?? ''} t=${j.mono.toFixed(0)}`,
            )
            .join('\n'),
        );
      }
      expect(report.violations).to.deepEqual([]);
      expect(submits).to.have.length(TASKS);
      const reruns = report.reruns;
      expect(reruns).to.be.below(report.tenures); // at most one per tenure that ended
      runs.sort((a, b) => a.mono - b.mono);

      note(
        `${TASKS} tasks, ${faults.length} faults (${faults.map(f => f.signal).join(', ')}), ` +
          `${reruns} run twice, ${runs.length} runs, ${report.tenures} tenures, ` +
          `${refused} posts retried; first run to last: ${(runs[runs.length - 1].mono - runs[0].mono).toFixed(0)} ms`,
      );
    });
  });
}
