// What the side benchmarks (`npm run bench:groups`, `npm run bench:queue`)
// share: their command line (`--quick`, `--mysql`) and their notes on stderr.

import os from 'os';
import {SqlBackend} from '../../cluster-kit';

/** The command line of the side benchmark `script`: `--quick` for a short run, `--mysql` for MariaDB. */
export function sideBenchArgs(script: string, argv = process.argv.slice(2)) {
  return {
    quick: argv.includes('--quick'),
    backend: (argv.includes('--mysql') ? 'mysql' : 'postgresql') as SqlBackend,
    /** The command as typed, for the first note. */
    command: `npm run ${script}${argv.length ? ' -- ' + argv.join(' ') : ''}`,
  };
}

/** A line on stderr (stdout has the figures). */
export function note(line: string): void {
  process.stderr.write(line + '\n');
}

/** The machine's load average (or `values`), as `0.52 0.40 0.33`. */
export function loadAverage(values = os.loadavg()): string {
  return values.map(v => v.toFixed(2)).join(' ');
}
