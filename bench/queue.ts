// `npm run bench:queue [-- --quick] [-- --mysql]`: the persisted queue on a
// fresh database, and pg-boss side by side on the same PostgreSQL (installed
// into .tmp/bench-deps at the first run, if the registry answers). Two apps
// in this process, each with its own datasource and pool: one is the queue's
// master, the other submits (a replica elsewhere). Prints, per
// implementation: throughput (tasks/s, 0 ms handler, one at a time, a
// backlog of N submitted before the master starts) and submit-to-start
// latency (one task at a time, 20-100 ms apart). Figures, not assertions.

import {Application} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {execFileSync} from 'child_process';
import {mkdirSync, writeFileSync} from 'fs';
import os from 'os';
import path from 'path';
import {databaseUrl, mono, recreateDatabase, serverAddress, sleep, waitFor} from '../cluster-kit';
import {MasterJobExecutorBindings, MasterJobExecutorComponent, TaskQueue} from '../src';
import {dataSourceConfigFromUrl} from '../src/extension';
import {loadAverage, note, sideBenchArgs} from './lib/side-bench';

const {quick, backend, command} = sideBenchArgs('bench:queue');
const BACKLOG = quick ? 300 : 2000;
const SAMPLES = quick ? 50 : 200;
const DATABASE = 'mje_bench_queue';
const QUEUE = 'BENCH-QUEUE';
const ROOT = path.resolve(__dirname, '..', '..');
const PG_BOSS = 'pg-boss@10'; // 11+ need Node 22
/** Throughput is measured for at most this long (pg-boss one at a time is slow). */
const THROUGHPUT_CAP_MS = 30000;

interface Result {
  implementation: string;
  settings: string;
  throughput: number;
  latency: {p50: number; p90: number; p99: number; max: number};
}

class BenchApp extends RepositoryMixin(Application) {}

async function app(url: string, name: string): Promise<BenchApp> {
  const a = new BenchApp({});
  a.dataSource(new juggler.DataSource({name: 'db', ...dataSourceConfigFromUrl(url)}), 'db');
  a.configure(MasterJobExecutorBindings.COMPONENT).to({
    instanceId: name,
    initDelay: 0,
    heartbeatInterval: 1000,
    leaseDuration: 3000,
    checkMasterInterval: 200,
  });
  a.component(MasterJobExecutorComponent);
  await a.migrateSchema();
  await a.start();
  return a;
}

async function ours(url: string): Promise<Result> {
  const submitterApp = await app(url, 'submitter');
  const masterApp = await app(url, 'master');
  const submitterExecutor = await submitterApp.get(MasterJobExecutorBindings.EXECUTOR);
  const masterExecutor = await masterApp.get(MasterJobExecutorBindings.EXECUTOR);
  const started = new Map<number, number>();
  // The submitter's handle campaigns too, but only after the master has won.
  const submitter: TaskQueue = submitterExecutor.startQueue({
    queueName: QUEUE,
    handler: () => true,
    initDelay: 600000,
  });
  for (let i = 0; i < BACKLOG; i += 20) {
    await Promise.all(
      Array.from({length: Math.min(20, BACKLOG - i)}, (_, j) => submitter.submit({n: i + j})),
    );
  }
  let done = 0;
  const t0 = mono();
  const master = masterExecutor.startQueue({
    queueName: QUEUE,
    handler: (_payload, ctx) => {
      started.set(ctx.taskId, mono());
      done++;
      return true;
    },
  });
  await waitFor('the backlog done', () => done >= BACKLOG, 600000, 5);
  const throughput = BACKLOG / ((mono() - t0) / 1000);
  const latencies: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await sleep(20 + Math.random() * 80);
    const sent = mono();
    const id = await submitter.submit({latency: i});
    await waitFor('the task started', () => started.has(id), 10000, 1);
    latencies.push(started.get(id)! - sent);
  }
  await master.stop();
  await masterApp.stop();
  await submitterApp.stop();
  return {
    implementation: 'ours',
    settings: `startQueue, ${backend === 'postgresql' ? 'NOTIFY on submit' : 'checkMasterInterval 200 ms'}`,
    throughput,
    latency: summary(latencies),
  };
}

/** pg-boss on the same database, installed on first use (none if it cannot be): one at a time, then in batches. */
async function pgBoss(url: string): Promise<Result[]> {
  const dir = path.join(ROOT, '.tmp', 'bench-deps');
  let PgBoss: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    try {
      PgBoss = require(path.join(dir, 'node_modules', 'pg-boss'));
    } catch {
      note(`installing ${PG_BOSS} into ${dir} (for the comparison only)`);
      mkdirSync(dir, {recursive: true});
      execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--prefix', dir, PG_BOSS], {
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: 300000,
      });
      PgBoss = require(path.join(dir, 'node_modules', 'pg-boss'));
    }
  } catch (err) {
    note(`pg-boss skipped: ${(err as Error).message}`);
    return [];
  }
  PgBoss = PgBoss.default ?? PgBoss;
  const version = require(path.join(dir, 'node_modules', 'pg-boss', 'package.json')).version;
  const boss = new PgBoss({connectionString: url, schema: 'pgboss_bench', max: 4});
  boss.on('error', (err: Error) => note(`pg-boss: ${err.message}`));
  await boss.start();
  const results: Result[] = [];
  for (const batchSize of [1, 100]) {
    const queue = `bench-queue-${batchSize}`;
    await boss.createQueue(queue);
    for (let i = 0; i < BACKLOG; i += 20) {
      await Promise.all(
        Array.from({length: Math.min(20, BACKLOG - i)}, (_, j) => boss.send(queue, {n: i + j})),
      );
    }
    const started = new Map<string, number>();
    let done = 0;
    const t0 = mono();
    await boss.work(
      queue,
      {batchSize, pollingIntervalSeconds: 0.5},
      async (jobs: {id: string}[]) => {
        for (const job of jobs) started.set(job.id, mono());
        done += jobs.length;
      },
    );
    // Capped: one at a time, pg-boss waits a polling interval between jobs.
    await waitFor(
      'the backlog done',
      () => done >= BACKLOG || mono() - t0 > THROUGHPUT_CAP_MS,
      600000,
      5,
    );
    const throughput = done / ((mono() - t0) / 1000);
    await boss.offWork(queue);
    // Latency on an empty queue of its own: the capped backlog may not be drained.
    const idle = `${queue}-latency`;
    await boss.createQueue(idle);
    await boss.work(
      idle,
      {batchSize, pollingIntervalSeconds: 0.5},
      async (jobs: {id: string}[]) => {
        for (const job of jobs) started.set(job.id, mono());
      },
    );
    const latencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      await sleep(20 + Math.random() * 80);
      const sent = mono();
      const id = await boss.send(idle, {latency: i});
      await waitFor('the job started', () => started.has(id), 10000, 1);
      latencies.push(started.get(id)! - sent);
    }
    await boss.offWork(idle);
    results.push({
      implementation: `pg-boss ${version}`,
      settings:
        `work(batchSize ${batchSize}, pollingIntervalSeconds 0.5: its minimum)` +
        (batchSize > 1 ? ', not one at a time' : '') +
        (done < BACKLOG ? `, ${done} of ${BACKLOG} done in ${THROUGHPUT_CAP_MS / 1000} s` : ''),
      throughput,
      latency: summary(latencies),
    });
  }
  await boss.stop({graceful: true, wait: true});
  return results;
}

function summary(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1));
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: Number(sorted[sorted.length - 1].toFixed(1)),
  };
}

async function main(): Promise<void> {
  const address = serverAddress(backend);
  const loadStart = os.loadavg();
  note(
    `${command}: ${backend}, backlog ${BACKLOG}, ` +
      `${SAMPLES} latency samples, ${os.cpus().length} cores, Node ${process.version}, load average ` +
      loadAverage(loadStart),
  );
  await recreateDatabase(backend, address, DATABASE);
  const url = databaseUrl(backend, address, DATABASE);
  const results: Result[] = [await ours(url)];
  if (backend === 'postgresql') {
    results.push(...(await pgBoss(url)));
  }
  const lines = [
    `queue, ${backend}: ${BACKLOG} tasks of a 0 ms handler, then ${SAMPLES} single submits`,
    `${'implementation'.padEnd(16)} ${'tasks/s'.padStart(8)}  submit -> start p50 / p90 / p99 / max ms   settings`,
    ...results.map(
      r =>
        `${r.implementation.padEnd(16)} ${r.throughput.toFixed(0).padStart(8)}  ` +
        `${[r.latency.p50, r.latency.p90, r.latency.p99, r.latency.max].join(' / ').padEnd(36)} ${r.settings}`,
    ),
    `load average at start ${loadAverage(loadStart)}, at end ${loadAverage()}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  const file = path.join(
    ROOT,
    'bench',
    'results',
    `${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}-queue-${backend}${quick ? '-quick' : ''}.json`,
  );
  writeFileSync(
    file,
    JSON.stringify({backend, backlog: BACKLOG, samples: SAMPLES, results}, null, 2),
  );
  note(`results: ${path.relative(ROOT, file)}`);
  process.exit(0);
}

main().catch(err => {
  note(err.stack ?? String(err));
  process.exit(1);
});
