#!/usr/bin/env node
// `master-job-run [options] <lockName> <command> [args...]`: runs a command
// on one machine of the cluster at a time, as master of a lock shared with
// the apps. A LoopBack application of its own, with the component,
// on DATABASE_URL or, run from an app's root, on the app's own datasource; the
// command runs with inherited stdio while the lock is renewed, and the lock is
// released when it exits.

import {Application} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {ChildProcess, spawn} from 'child_process';
import debugFactory from 'debug';
import {constants} from 'os';
import {MasterJobExecutorComponent} from '../component';
import {LockBusyError} from '../jobs/exclusive';
import {MasterJobExecutorBindings} from '../keys';
import {MAX_LOCK_NAME_LENGTH, textProblem} from '../models/limits';
import {TimerHandle} from '../types';
import {
  AppDataSourceError,
  COMPILED_DATASOURCES,
  findAppDataSource,
  withConnectorFromApp,
} from './app-datasource';
import {dataSourceConfigFromSettings, dataSourceConfigFromUrl} from './database-url';

const debug = debugFactory('loopback:master-job-executor:cli');

/** sysexits: a bad command line. */
export const EXIT_USAGE = 64;
/** sysexits EX_TEMPFAIL: the lock is held or disabled (`--no-wait`). */
export const EXIT_BUSY = 75;
/** The lock was lost or disabled while the command ran. */
export const EXIT_LOST = 76;
/** The database could not be reached, or the tables made. */
export const EXIT_UNAVAILABLE = 69;

const USAGE = `Usage: master-job-run [options] <lockName> <command> [args...]

Runs <command> on one machine of the cluster at a time: waits for the lock
<lockName> (shared with the apps' masters), runs the command with
MASTER_JOB_LOCK_NAME, MASTER_JOB_FENCING_TOKEN and MASTER_JOB_INSTANCE_ID in
its environment, renews the lock while it runs, releases it when it exits,
and exits with the command's code (128 + n when killed by signal n).

The database: --database-url, else $DATABASE_URL, else, run from an app's root,
the app's own datasource: the class that lb4 datasource made, compiled
(${COMPILED_DATASOURCES}/*.datasource.js), whose static dataSourceName is db (or
--datasource's name), with its static defaultConfig.

Options:
  --database-url <url>     postgres://... or mysql://... (default: $DATABASE_URL)
  --datasource <name>      with neither, the app's datasource of that name (default db)
  --no-wait                exit at once with the busy code if the lock is held or disabled
  --busy-exit-code <n>     the busy code (default ${EXIT_BUSY})
  --kill-grace <ms>        lock lost or disabled while running: SIGTERM to the command,
                           SIGKILL after this long (default 10000); then exit ${EXIT_LOST}
  -h, --help               this text

The timings come from the environment, as for the apps: INIT_DELAY,
CHECK_MASTER_INTERVAL, MASTER_JOB_HEARTBEAT_INTERVAL, MASTER_JOB_LEASE_DURATION,
MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT, MASTER_JOB_STOP_TIMEOUT. DEBUG=loopback:master-job-executor:*
prints diagnostics. Exit codes: the command's; ${EXIT_BUSY} busy; ${EXIT_LOST} lock lost; ${EXIT_USAGE} bad usage;
${EXIT_UNAVAILABLE} database unavailable.`;

export interface RunOptions {
  lockName: string;
  command: string;
  args: string[];
  /** From --database-url or DATABASE_URL; else the app's datasource `dataSourceName`. */
  databaseUrl?: string;
  /** Where databaseUrl came from. */
  databaseUrlFrom?: '--database-url' | 'DATABASE_URL';
  dataSourceName: string;
  /** --datasource was given. */
  dataSourceNamed: boolean;
  wait: boolean;
  busyExitCode: number;
  killGrace: number;
}

export class UsageError extends Error {}

const MAX_DATASOURCE_NAME_LENGTH = 200;

/** Parses the command line; throws a UsageError naming the option. */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): RunOptions | 'help' {
  let databaseUrl = env.DATABASE_URL?.trim() || undefined;
  let databaseUrlFrom: RunOptions['databaseUrlFrom'] = databaseUrl ? 'DATABASE_URL' : undefined;
  let dataSourceName = 'db';
  let dataSourceNamed = false;
  let wait = true;
  let busyExitCode = EXIT_BUSY;
  let killGrace = 10000;
  let i = 0;
  const value = (option: string) => {
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`${option} needs a value`);
    return v;
  };
  const integer = (option: string, raw: string, min: number, max: number) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(`${option} must be an integer from ${min} to ${max}, got "${raw}"`);
    }
    return n;
  };
  for (; i < argv.length && argv[i].startsWith('-'); i++) {
    const [option, inline] = argv[i].split(/=(.*)/s, 2);
    const take = () => (inline !== undefined ? inline : value(option));
    switch (option) {
      case '-h':
      case '--help':
        return 'help';
      case '--no-wait':
        wait = false;
        break;
      case '--database-url':
        databaseUrl = take().trim();
        databaseUrlFrom = '--database-url';
        if (!databaseUrl) throw new UsageError(`${option} must be a URL, got an empty value`);
        break;
      case '--datasource': {
        dataSourceName = take();
        dataSourceNamed = true;
        const problem = textProblem(option, dataSourceName, MAX_DATASOURCE_NAME_LENGTH);
        if (problem) throw new UsageError(problem);
        break;
      }
      case '--busy-exit-code':
        busyExitCode = integer(option, take(), 1, 255);
        break;
      case '--kill-grace':
        killGrace = integer(option, take(), 0, 3600000);
        break;
      case '--':
        i++;
        break;
      default:
        throw new UsageError(`unknown option ${option}`);
    }
    if (option === '--') break;
  }
  const [lockName, command, ...args] = argv.slice(i);
  if (lockName === undefined) throw new UsageError('<lockName> is missing');
  const problem = textProblem('<lockName>', lockName, MAX_LOCK_NAME_LENGTH);
  if (problem) throw new UsageError(problem);
  if (!command) throw new UsageError('<command> is missing');
  if (databaseUrl) {
    try {
      dataSourceConfigFromUrl(databaseUrl);
    } catch (err) {
      throw new UsageError(err.message);
    }
  }
  return {
    lockName,
    command,
    args,
    databaseUrl,
    databaseUrlFrom,
    dataSourceName,
    dataSourceNamed,
    wait,
    busyExitCode,
    killGrace,
  };
}

/**
 * The datasource configuration: from the URL, else from the datasource of the
 * app whose root is `cwd`; its connector loaded from the app. Throws a
 * UsageError saying what was looked for when there is none.
 */
export function resolveDataSourceConfig(options: RunOptions, cwd: string): Record<string, unknown> {
  let config: Record<string, unknown>;
  if (options.databaseUrl) {
    if (options.dataSourceNamed) {
      debug('--datasource %s not used: %s is set', options.dataSourceName, options.databaseUrlFrom);
    }
    config = dataSourceConfigFromUrl(options.databaseUrl);
    debug('database: %s (%s)', options.databaseUrlFrom, config.connector);
  } else {
    let found;
    try {
      found = findAppDataSource(cwd, options.dataSourceName);
    } catch (err) {
      if (err instanceof AppDataSourceError) throw new UsageError(err.message);
      throw err;
    }
    try {
      config = dataSourceConfigFromSettings(found.settings);
    } catch (err) {
      throw new UsageError(
        `datasource "${options.dataSourceName}" (${found.className} in ${found.file}): ` +
          `${err.message}; set DATABASE_URL or --database-url for another database`,
      );
    }
    debug(
      'database: datasource "%s", class %s of %s (%s)',
      options.dataSourceName,
      found.className,
      found.file,
      config.connector,
    );
  }
  return withConnectorFromApp(cwd, config);
}

class RunnerApp extends RepositoryMixin(Application) {}

/** Runs the command under the lock; resolves to the exit code. */
export async function run(
  options: RunOptions,
  env: NodeJS.ProcessEnv,
  dataSourceConfig: Record<string, unknown>,
): Promise<number> {
  // Our own signal handling: forwarded to the command, then the lock released.
  const app = new RunnerApp({shutdown: {signals: []}});
  const dataSource = new juggler.DataSource(dataSourceConfig);
  // A failed first connection is an 'error' event: unheard, it would end the process.
  dataSource.on('error', () => {});
  app.dataSource(dataSource, 'db');
  app.configure(MasterJobExecutorBindings.COMPONENT).to({mountController: false});
  app.component(MasterJobExecutorComponent);
  try {
    // Creates the tables if missing; concurrent runs are serialised by the component.
    await app.migrateSchema({existingSchema: 'alter'});
    await app.start();
  } catch (err) {
    process.stderr.write(`master-job-run: database unavailable: ${err.message}\n`);
    await app.stop().catch(() => {});
    return EXIT_UNAVAILABLE;
  }
  const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
  const clock = await app.get(MasterJobExecutorBindings.CLOCK);
  let child: ChildProcess | undefined;
  let forwarded: NodeJS.Signals | undefined;
  const forward = (signal: NodeJS.Signals) => {
    forwarded = signal;
    if (child) child.kill(signal);
  };
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  try {
    return await executor.runExclusive(
      options.lockName,
      ctx =>
        new Promise<number>(resolve => {
          if (forwarded) return resolve(128 + constants.signals[forwarded]);
          child = spawn(options.command, options.args, {
            stdio: 'inherit',
            env: {
              ...env,
              MASTER_JOB_LOCK_NAME: ctx.lockName,
              MASTER_JOB_FENCING_TOKEN: String(ctx.fencingToken),
              MASTER_JOB_INSTANCE_ID: ctx.instanceId,
            },
          });
          let killTimer: TimerHandle | undefined;
          ctx.signal.addEventListener('abort', () => {
            if (!child || child.exitCode !== null || child.signalCode !== null) return;
            process.stderr.write(
              `master-job-run: lock ${options.lockName} ${ctx.signal.reason}: stopping the command\n`,
            );
            child.kill('SIGTERM');
            killTimer = clock.setTimeout(() => child?.kill('SIGKILL'), options.killGrace);
          });
          child.on('error', err => {
            process.stderr.write(`master-job-run: cannot run ${options.command}: ${err.message}\n`);
            resolve(127);
          });
          child.on('exit', (code, signal) => {
            if (killTimer !== undefined) clock.clearTimeout(killTimer);
            if (ctx.signal.aborted) return resolve(EXIT_LOST);
            resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
          });
        }),
      {wait: options.wait},
    );
  } catch (err) {
    if (err instanceof LockBusyError) {
      process.stderr.write(`master-job-run: ${err.message}\n`);
      return options.busyExitCode;
    }
    process.stderr.write(`master-job-run: ${err.message}\n`);
    return EXIT_UNAVAILABLE;
  } finally {
    process.off('SIGTERM', forward);
    process.off('SIGINT', forward);
    await app.stop().catch(() => {});
  }
}

export async function main(
  argv = process.argv.slice(2),
  env = process.env,
  cwd = process.cwd(),
): Promise<number> {
  let options: RunOptions | 'help';
  let dataSourceConfig: Record<string, unknown>;
  try {
    options = parseArgs(argv, env);
    if (options === 'help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    dataSourceConfig = resolveDataSourceConfig(options, cwd);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`master-job-run: ${err.message} (master-job-run --help for usage)\n`);
    return EXIT_USAGE;
  }
  return run(options, env, dataSourceConfig);
}

if (require.main === module) {
  main().then(
    code => process.exit(code),
    err => {
      process.stderr.write(`master-job-run: ${err.stack ?? err}\n`);
      process.exit(EXIT_UNAVAILABLE);
    },
  );
}
