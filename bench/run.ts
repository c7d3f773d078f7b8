// `npm run bench [-- --quick] [-- --mysql]`: failover, handoff, disable/enable
// and database load of this package ("ours", the example app) side by side
// with the naive protocol of the original module ("baseline",
// bench/baseline/replica.ts), both as real processes on one fresh database.
// Prints a table and writes JSON under bench/results/. See bench/README.md.
// This file only starts a run: the options are lib/options.ts, what the
// scenarios share lib/context.ts, their order phases.ts, each scenario one
// module of scenarios/, the output lib/report.ts.

import {mono} from '../cluster-kit';
import {BenchContext, note} from './lib/context';
import {parseOptions} from './lib/options';
import {writeReport} from './lib/report';
import {runPhases} from './phases';

async function main(context: BenchContext): Promise<void> {
  const {options} = context;
  const started = new Date();
  const t0 = mono();
  const command = `npm run bench${options.argv.length ? ' -- ' + options.argv.join(' ') : ''}`;
  note(
    `${command}: ${options.backend} database ${options.database} (recreated), ` +
      `${options.quick ? 'quick' : 'full'} run`,
  );
  await context.prepare();
  const results = await runPhases(context);
  writeReport(context, results, {command, started, t0});
}

/** Runs main() once; SIGINT and SIGTERM close what is open and exit. */
function start(): void {
  const context = new BenchContext(parseOptions(process.argv.slice(2)));
  let exiting = false;
  /** Closes the pools, removes the copy of dist/ and exits; the replicas are killed on exit. */
  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    context
      .close()
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', () => exit(130));
  process.on('SIGTERM', () => exit(143));
  main(context).then(
    () => exit(0),
    err => {
      process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
      exit(1);
    },
  );
}

start();
