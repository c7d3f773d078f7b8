// What the scenarios of one benchmark run share, made by main() and passed to
// each: the options, the replicas' scripts (from a private copy of dist/), the
// database server, the one event log every replica prints into, the
// harness's own pool and the server's counters, and the failures so far.

import {execSync} from 'child_process';
import {
  DatabaseServer,
  DistSnapshot,
  EventLog,
  mono,
  openSql,
  PrivateServer,
  recreateDatabase,
  snapshotDist,
  Sql,
} from '../../cluster-kit';
import {createBaselineSchema} from '../baseline/schema';
import {NotifyCounter} from './notify-counter';
import {BenchOptions} from './options';
import {ServerWatch, StatementCounter} from './server-stats';

export type Impl = 'ours' | 'baseline';
export const IMPL_NAMES: Impl[] = ['ours', 'baseline'];

/** A line on stderr with the time of day. */
export function note(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${t}] ${message}\n`);
}

export class BenchContext {
  readonly server: DatabaseServer;
  /** Every job line of every replica of the run. */
  readonly log = new EventLog();
  /** The script of each implementation, in the private copy of dist/. */
  readonly scripts: Record<Impl, string>;
  /** Clock ticks per second of /proc/<pid>/stat. */
  readonly clockTicks: number;
  /** Scenarios (or lanes of one) that failed; the others still report. */
  readonly failures: {what: string; error: string}[] = [];
  /** The harness's own checks go through this pool, so that they are subtracted. */
  harnessSql!: Sql;
  counter!: StatementCounter;
  /** PostgreSQL: the NOTIFYs on the component's channel. */
  notifies = new NotifyCounter();
  watch!: ServerWatch;
  serverVersion = '';
  private readonly distCopy: DistSnapshot;

  /** `own`: a server made for the run instead of the machine's shared one. */
  constructor(
    readonly options: BenchOptions,
    own?: PrivateServer,
  ) {
    this.server = new DatabaseServer(options.backend, options.database, own);
    this.distCopy = snapshotDist('mje-bench-');
    this.scripts = {
      ours: this.distCopy.script('example/index.js'),
      baseline: this.distCopy.script('bench/baseline/replica.js'),
    };
    try {
      this.clockTicks = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
    } catch {
      this.clockTicks = 100;
    }
  }

  /** A fresh database with both implementations' tables, the server's counters started. */
  async prepare(): Promise<void> {
    const {backend, database} = this.options;
    const address = this.server.address;
    await recreateDatabase(backend, address, database);
    execSync(`"${process.execPath}" "${this.distCopy.script('example/migrate.js')}"`, {
      env: {...process.env, DATABASE_URL: this.server.url},
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    this.harnessSql = openSql(backend, address, database, 2, true);
    await createBaselineSchema(this.harnessSql);
    this.watch = new ServerWatch(backend, mono, address);
    this.watch.start();
    this.counter = new StatementCounter(backend, database, [this.watch], address);
    if (backend === 'postgresql') await this.notifies.start(address, database);
    try {
      const {rows} = await this.harnessSql.query('SELECT version() AS v');
      this.serverVersion = String(rows[0]?.v ?? '');
    } catch {
      // informative only
    }
  }

  fail(what: string, err: Error): void {
    this.failures.push({what, error: String(err?.message ?? err)});
    note(`FAILED ${what}: ${err?.stack ?? err}`);
  }

  /** Closes the pools and removes the copy of dist/ (the replicas are killed on exit). */
  async close(): Promise<void> {
    try {
      this.distCopy.remove();
    } catch {
      // a temporary directory
    }
    await Promise.all([
      this.harnessSql?.close(),
      this.counter?.close(),
      this.watch?.stop(),
      this.notifies.close(),
    ]);
  }
}
