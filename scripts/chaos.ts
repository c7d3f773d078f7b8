// npm run chaos -- [--duration <s>] [--seed <n>] [--mysql] [--replicas <n>] [--quiet]
//                  [--history <file>]
//
// Runs a cluster of example-app processes on PostgreSQL (MariaDB with
// --mysql), injects random faults into the master for the given time, checks
// the record continuously, and prints one summary. Exits 1 on any violation.
// The whole record is written as a history file (default
// .tmp/chaos-<backend>-<seed>-<time>.jsonl), which `npm run check-history`
// checks again.

import {mkdirSync} from 'fs';
import path from 'path';
import {
  DatabaseServer,
  formatSummary,
  PrivateServer,
  ProcessCluster,
  runChaos,
  writeHistory,
} from '../cluster-kit';

function parseArgs(argv: string[]): {
  durationS: number;
  seed: number;
  mysql: boolean;
  replicas: number;
  quiet: boolean;
  history?: string;
} {
  const args: ReturnType<typeof parseArgs> = {
    durationS: 60,
    seed: 1,
    mysql: false,
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
    else if (flag === '--seed') args.seed = positive('--seed');
    else if (flag === '--replicas') args.replicas = positive('--replicas');
    else if (flag === '--mysql') args.mysql = true;
    else if (flag === '--quiet') args.quiet = true;
    else if (flag === '--history') {
      args.history = argv[++i];
      if (!args.history) throw new Error('--history needs a file name');
    } else throw new Error(`unknown argument ${flag}`);
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  // A server of its own: the chaos stops and restarts it.
  const own = await PrivateServer.create(args.mysql ? 'mysql' : 'postgresql');
  const server = new DatabaseServer(own.backend, 'mje_chaos', own);
  await server.ensureDatabase();
  const cluster = new ProcessCluster({
    server,
    lockNames: [`CHAOS-${args.seed}-${Date.now()}`],
    replicas: args.replicas,
    namePrefix: 'chaos',
    fencedWriteInterval: 100,
  });
  const say = (message: string) => console.error(message);
  say(
    `chaos: ${args.replicas} replicas on ${server.backend} for ${args.durationS} s, seed ${args.seed}`,
  );
  let stopping = false;
  process.on('SIGINT', () => (stopping = true)); // finish the current fault, then clean up
  try {
    await cluster.start();
    const summary = await runChaos(cluster, {
      durationMs: args.durationS * 1000,
      seed: args.seed,
      onProgress: args.quiet ? undefined : say,
      shouldStop: () => stopping,
    });
    console.log(formatSummary(summary, `${args.replicas} replicas on ${server.backend}`));
    const history =
      args.history ??
      path.join(
        '.tmp',
        `chaos-${server.backend}-${args.seed}-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`,
      );
    mkdirSync(path.dirname(path.resolve(history)), {recursive: true});
    const lines = writeHistory(history, cluster.log, cluster.checkBounds());
    say(`history: ${history} (${lines} lines; npm run check-history -- ${history})`);
    return summary.report.violations.length ? 1 : 0;
  } finally {
    await cluster.shutdown();
    await own.destroy();
  }
}

main().then(
  code => process.exit(code),
  err => {
    console.error(`chaos failed: ${err.stack ?? err}`);
    process.exit(2);
  },
);
