// A database server of the kit's own, for the faults that stop, restart or
// freeze a server: a PostgreSQL cluster made with initdb, or a MariaDB made
// with mariadb-install-db, in a temporary directory on a free port, removed
// by destroy(). The machine's shared servers are never stopped by a test or
// by `npm run chaos`.

import {ChildProcess, execFile, spawn} from 'child_process';
import {existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync} from 'fs';
import os from 'os';
import path from 'path';
import {promisify} from 'util';
import {freePort} from './http';
import type {ServerAddress} from './sql';

const run = promisify(execFile);

export type PrivateBackend = 'postgresql' | 'mysql';

function pgBin(tool: string): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort() : [];
  const dir = versions
    .map(v => path.join(root, v, 'bin'))
    .find(d => existsSync(path.join(d, tool)));
  if (!dir) throw new Error(`${tool} not found under ${root}/*/bin`);
  return path.join(dir, tool);
}

/** PostgreSQL refuses to run as root: its tools run as the `postgres` user then. */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0
    ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
    : [command, args];
}

export class PrivateServer {
  private mariadb: ChildProcess | undefined;
  /** The processes freeze() stopped, for thaw(). */
  private frozen: number[] = [];

  private constructor(
    readonly backend: PrivateBackend,
    readonly dir: string,
    readonly address: ServerAddress,
  ) {}

  /** Makes and starts a server; throws with the reason when this machine cannot. */
  static async create(backend: PrivateBackend): Promise<PrivateServer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), `mje-${backend}-`));
    const port = await freePort();
    const user = backend === 'postgresql' ? 'postgres' : 'root';
    const server = new PrivateServer(backend, dir, {host: '127.0.0.1', port, user, password: ''});
    try {
      if (process.getuid?.() === 0) {
        await run('chown', [backend === 'postgresql' ? 'postgres:postgres' : 'mysql:mysql', dir]);
      }
      if (backend === 'postgresql') {
        const [cmd, args] = asPostgres(pgBin('initdb'), [
          ...['-D', path.join(dir, 'data'), '-U', 'postgres', '-A', 'trust'],
          ...['-E', 'UTF8', '--no-sync'],
        ]);
        await run(cmd, args, {timeout: 60000});
      } else {
        await run(
          'mariadb-install-db',
          [
            '--no-defaults',
            ...(process.getuid?.() === 0 ? ['--user=mysql'] : []),
            `--datadir=${path.join(dir, 'data')}`,
            '--auth-root-authentication-method=normal',
            '--skip-test-db',
          ],
          {timeout: 60000},
        );
      }
      await server.start();
      return server;
    } catch (err) {
      await server.destroy();
      throw new Error(`cannot make a private ${backend} server: ${err.message ?? err}`);
    }
  }

  /** Starts the server; resolves once it answers. */
  async start(timeout = 30000): Promise<void> {
    const {port} = this.address;
    if (this.backend === 'postgresql') {
      const options = `-p ${port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=500`;
      const [cmd, args] = asPostgres(pgBin('pg_ctl'), [
        ...['-D', path.join(this.dir, 'data'), '-l', path.join(this.dir, 'log')],
        ...['-o', options, '-w', '-t', String(Math.ceil(timeout / 1000)), 'start'],
      ]);
      await run(cmd, args, {timeout});
      return;
    }
    const log = openSync(path.join(this.dir, 'log'), 'a');
    this.mariadb = spawn(
      '/usr/sbin/mariadbd',
      [
        '--no-defaults',
        ...(process.getuid?.() === 0 ? ['--user=mysql'] : []),
        `--datadir=${path.join(this.dir, 'data')}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${path.join(this.dir, 'sock')}`,
        `--pid-file=${path.join(this.dir, 'pid')}`,
        '--skip-log-bin',
        // Commits reach the OS at once (not every second): they survive a kill -9 of the server.
        '--innodb-flush-log-at-trx-commit=2',
        '--max-connections=500',
      ],
      {stdio: ['ignore', log, log]},
    );
    const deadline = Date.now() + timeout;
    for (;;) {
      try {
        await run('mariadb-admin', [
          '-h127.0.0.1',
          `-P${port}`,
          '-uroot',
          '--connect-timeout=1',
          'ping',
        ]);
        return;
      } catch (err) {
        if (this.mariadb.exitCode !== null || Date.now() > deadline) {
          throw new Error(
            `mariadbd did not answer: ${readFileSync(path.join(this.dir, 'log'), 'utf8').slice(-2000)}`,
          );
        }
        await new Promise(resolve => setTimeout(resolve, 100));
      }
    }
  }

  /** Stops the server at once (clients are disconnected); resolves when it has exited. */
  async stop(): Promise<void> {
    if (this.backend === 'postgresql') {
      const [cmd, args] = asPostgres(pgBin('pg_ctl'), [
        ...['-D', path.join(this.dir, 'data'), '-m', 'fast', '-w', 'stop'],
      ]);
      await run(cmd, args, {timeout: 30000});
      return;
    }
    const child = this.mariadb;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise(resolve => child.once('exit', resolve));
    child.kill('SIGTERM'); // a clean shutdown
    await exited;
  }

  /** The server's main process, for SIGSTOP/SIGCONT and SIGKILL. */
  get pid(): number | undefined {
    if (this.backend === 'mysql')
      return this.mariadb?.exitCode === null ? this.mariadb.pid : undefined;
    try {
      return Number(
        readFileSync(path.join(this.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0],
      );
    } catch {
      return undefined;
    }
  }

  /** The server's processes: its main one and, on PostgreSQL, every backend and worker. */
  processes(): number[] {
    const main = this.pid;
    if (!main) return [];
    return [main, ...childrenOf(main)];
  }

  /** A hung server: every process stopped (SIGSTOP); connections stay open, nothing answers. */
  freeze(): void {
    // The main process first: it forks no new backend meanwhile; then its children until no
    // new one shows up (one may have been forked while we looked).
    const main = this.pid;
    if (!main) return;
    signal(main, 'SIGSTOP');
    this.frozen = [main];
    for (let fresh = childrenOf(main); fresh.length;) {
      for (const pid of fresh) signal(pid, 'SIGSTOP');
      this.frozen.push(...fresh);
      fresh = childrenOf(main).filter(pid => !this.frozen.includes(pid));
    }
  }

  /** Lets a frozen server run again. */
  thaw(): void {
    for (const pid of this.frozen.slice().reverse()) signal(pid, 'SIGCONT');
    this.frozen = [];
  }

  /** kill -9 of every process of the server; resolves once they are gone (start() recovers it). */
  async crash(): Promise<void> {
    // Stopped first, so that the list is complete (no backend forked meanwhile), then killed.
    this.freeze();
    const pids = this.frozen;
    for (const pid of pids) signal(pid, 'SIGKILL');
    this.frozen = [];
    const deadline = Date.now() + 10000;
    while (pids.some(isRunning)) {
      if (Date.now() > deadline) throw new Error(`server processes ${pids} did not die`);
      await new Promise(resolve => setTimeout(resolve, 20));
    }
    // A dead postmaster may linger as a zombie nobody reaps, and its lock files would make the
    // next one refuse to start ("lock file already exists").
    if (this.backend === 'postgresql') {
      const socket = path.join(this.dir, `.s.PGSQL.${this.address.port}`);
      for (const file of [
        path.join(this.dir, 'data', 'postmaster.pid'),
        socket,
        `${socket}.lock`,
      ]) {
        rmSync(file, {force: true});
      }
    }
  }

  /** Stops the server whatever its state, and removes its directory. */
  async destroy(): Promise<void> {
    this.thaw();
    const pid = this.pid;
    if (pid) {
      try {
        process.kill(pid, 'SIGCONT'); // a frozen server cannot shut down
      } catch {
        // gone already
      }
    }
    await this.stop().catch(() => {
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    });
    rmSync(this.dir, {recursive: true, force: true});
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

/** Alive and not a zombie. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The direct children of a process, from /proc (Linux). */
function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}
