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
        '--innodb-flush-log-at-trx-commit=0',
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

  /** Stops the server whatever its state, and removes its directory. */
  async destroy(): Promise<void> {
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
