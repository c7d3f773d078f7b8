// npm run chaos -- [--faults <n> | --duration <s>] [--seed <n>] [--mysql] [--replicas <n>]
//                  [--pgbouncer [--listen-direct]] [--quiet] [--history <file>]
//
// Runs a cluster of example-app processes on a PostgreSQL server of its own
// (MariaDB with --mysql; with --pgbouncer behind Debian's PgBouncer in
// transaction mode, wake-ups by polling or, with --listen-direct, from a
// direct LISTEN), each replica behind a proxy of its own, keeps tasks
// posted to their queue and a cron schedule firing every second, injects
// random faults (cluster-kit/chaos.ts) for the given time or number of
// faults, checks the record continuously and the work at the end, and prints
// one summary. Exits 1 on any violation.
// The whole record is written as a history file (default
// .tmp/chaos-<backend>-<seed>-<time>.jsonl), which `npm run check-history`
// checks again.

import {mkdirSync} from 'fs';
import path from 'path';
import {
  ChaosWork,
  databaseUrl,
  DatabaseServer,
  formatSummary,
  PrivateServer,
  PgBouncer,
  ProcessCluster,
  runChaos,
  snapshotDist,
  withPg,
  workEnv,
  writeHistory,
} from '../cluster-kit';

function parseArgs(argv: string[]): {
  durationS?: number;
  faults?: number;
  seed: number;
  mysql: boolean;
  pgbouncer: boolean;
  listenDirect: boolean;
  replicas: number;
  quiet: boolean;
  history?: string;
} {
  const args: ReturnType<typeof parseArgs> = {
    seed: 1,
    mysql: false,
    pgbouncer: false,
    listenDirect: false,
    replicas: 3,
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const positive = (name: string) => {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value <= 0)
        throw new Error(`${name} needs a positive integer`);
      return value;
    };
    if (flag === '--duration') args.durationS = positive('--duration');
    else if (flag === '--faults') args.faults = positive('--faults');
    else if (flag === '--seed') args.seed = positive('--seed');
    else if (flag === '--replicas') args.replicas = positive('--replicas');
    else if (flag === '--mysql') args.mysql = true;
    else if (flag === '--pgbouncer') args.pgbouncer = true;
    else if (flag === '--listen-direct') args.listenDirect = true;
    else if (flag === '--quiet') args.quiet = true;
    else if (flag === '--history') {
      args.history = argv[++i];
      if (!args.history) throw new Error('--history needs a file name');
    } else throw new Error(`unknown argument ${flag}`);
  }
  if (args.faults === undefined) args.durationS ??= 60;
  if (args.pgbouncer && args.mysql) throw new Error('--pgbouncer is for PostgreSQL, not --mysql');
  if (args.listenDirect && !args.pgbouncer)
    throw new Error('--listen-direct goes with --pgbouncer');
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const say = (message: string) => console.error(message);
  // A server of its own: the chaos stops and restarts it.
  const own = await PrivateServer.create(args.mysql ? 'mysql' : 'postgresql');
  // Replicas are spawned all along: from a copy, so that a rebuild of dist/ meanwhile is harmless.
  const dist = snapshotDist('mje-chaos-');
  let cluster: ProcessCluster | undefined;
  let bouncer: PgBouncer | undefined;
  let stopping = false;
  process.on('SIGINT', () => (stopping = true)); // finish the current fault, then clean up
  process.on('SIGTERM', () => (stopping = true));
  try {
    const server = new DatabaseServer(own.backend, 'mje_chaos', own);
    await server.ensureDatabase();
    if (args.pgbouncer) bouncer = await PgBouncer.start(own.address, 'transaction');
    const listen: Record<string, string> = args.listenDirect
      ? {MASTER_JOB_LISTEN_URL: databaseUrl('postgresql', own.address, server.database)}
      : {};
    const queue = `CHAOS-Q-${args.seed}-${Date.now()}`;
    const c = (cluster = new ProcessCluster({
      server,
      script: dist.script('example/index.js'),
      lockNames: [`CHAOS-${args.seed}-${Date.now()}`],
      replicas: args.replicas,
      namePrefix: 'chaos',
      fencedWriteInterval: 100,
      proxied: true,
      via: bouncer?.address,
      readiness: 'http',
      extraEnv: {...workEnv(queue), ...listen},
    }));
    const work = new ChaosWork(c, queue);
    const length = args.faults ? `${args.faults} faults` : `${args.durationS} s`;
    const where = bouncer
      ? `${server.backend} behind PgBouncer (transaction), wake-ups ${args.listenDirect ? 'from a direct LISTEN' : 'by polling'}`
      : server.backend;
    say(`chaos: ${args.replicas} replicas on ${where} for ${length}, seed ${args.seed}`);
    const history =
      args.history ??
      path.join(
        '.tmp',
        `chaos-${server.backend}-${args.seed}-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`,
      );
    // The record is written whatever happens next: a run of an hour is not thrown away.
    const writeRecord = () => {
      mkdirSync(path.dirname(path.resolve(history)), {recursive: true});
      const lines = writeHistory(history, c.log, c.checkBounds());
      say(`history: ${history} (${lines} lines; npm run check-history -- ${history})`);
    };
    try {
      await c.start();
      work.start();
      const summary = await runChaos(c, {
        durationMs: args.durationS && args.durationS * 1000,
        faults: args.faults,
        seed: args.seed,
        onProgress: args.quiet ? undefined : say,
        shouldStop: () => stopping,
      });
      console.log(formatSummary(summary, `${args.replicas} replicas on ${where}`));
      const done = await work.finish();
      console.log(
        [
          `  queue:                  ${done.tasks} tasks posted (${done.retriedPosts} posts retried), ` +
            `${done.reruns} run twice, ${done.staleRuns} run late by a master paused meanwhile`,
          `  cron:                   ${done.firings} firings, ${done.unfired} claimed by a master that ended first`,
          `  group:                  ${done.resourceTenures} masterships of its resources`,
          `  work violations:        ${done.violations.length}`,
          ...done.violations.map(v => `    - ${v}`),
        ].join('\n'),
      );
      // Nothing of ours may stay on the server: no advisory lock (a migration's), through a pooler too.
      const {rows} = await withPg(own.address, client =>
        client.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'"),
      ).catch(() => ({rows: [{n: -1}]}));
      if (!args.mysql) console.log(`  advisory locks left:    ${rows[0].n}`);
      const failed =
        summary.report.violations.length +
        done.violations.length +
        summary.harnessErrors.length +
        (!args.mysql && rows[0].n !== 0 ? 1 : 0);
      return failed ? 1 : 0;
    } finally {
      await work.stop(true);
      writeRecord();
    }
  } finally {
    await cluster?.shutdown();
    await bouncer?.stop();
    await own.destroy();
    dist.remove();
  }
}

main().then(
  code => process.exit(code),
  err => {
    console.error(`chaos failed: ${err.stack ?? err}`);
    process.exit(2);
  },
);
