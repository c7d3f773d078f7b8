// PgBouncer in front of a PostgreSQL server, as production runs it: Debian's
// `pgbouncer` with its default settings, but for what a private instance must
// say (where to listen, the server, trust auth, the pool mode). The tests and
// `npm run chaos -- --pgbouncer` run the replicas through it.

import {ChildProcess, execFile, spawn} from 'child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'fs';
import os from 'os';
import path from 'path';
import {promisify} from 'util';
import {freePort} from './http';
import type {ServerAddress} from './sql';

const run = promisify(execFile);

export const PGBOUNCER = '/usr/sbin/pgbouncer';

export type PoolMode = 'transaction' | 'session';

export class PgBouncer {
  private constructor(
    private readonly child: ChildProcess,
    readonly dir: string,
    readonly address: ServerAddress,
    readonly mode: PoolMode,
  ) {}

  /** Starts one in front of `server`; resolves once it answers, throws with its log if it does not. */
  static async start(server: ServerAddress, mode: PoolMode): Promise<PgBouncer> {
    if (!existsSync(PGBOUNCER)) {
      throw new Error(`${PGBOUNCER} is not installed (apt-get install pgbouncer)`);
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), `mje-pgbouncer-`));
    const port = await freePort();
    const ini = [
      '[databases]',
      `* = host=${server.host} port=${server.port}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      `pool_mode = ${mode}`,
      `logfile = ${path.join(dir, 'log')}`,
      // Room for every replica of a cluster test; the server's side keeps its default.
      'max_client_conn = 1000',
    ].join('\n');
    writeFileSync(path.join(dir, 'pgbouncer.ini'), ini + '\n');
    writeFileSync(path.join(dir, 'users.txt'), `"${server.user}" ""\n`);
    chmodSync(dir, 0o777);
    const log = openSync(path.join(dir, 'stdout'), 'a');
    // PgBouncer will not run as root.
    const args = [path.join(dir, 'pgbouncer.ini')];
    const child =
      process.getuid?.() === 0
        ? spawn(PGBOUNCER, ['-u', 'postgres', ...args], {stdio: ['ignore', log, log]})
        : spawn(PGBOUNCER, args, {stdio: ['ignore', log, log]});
    const bouncer = new PgBouncer(child, dir, {...server, port}, mode);
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        await run('pg_isready', ['-h', '127.0.0.1', '-p', String(port), '-t', '1']);
        return bouncer;
      } catch {
        if (child.exitCode !== null || Date.now() > deadline) {
          await bouncer.stop();
          throw new Error(`pgbouncer did not answer: ${bouncer.log().slice(-2000)}`);
        }
        await new Promise(resolve => setTimeout(resolve, 100));
      }
    }
  }

  log(): string {
    const read = (file: string) => {
      try {
        return readFileSync(path.join(this.dir, file), 'utf8');
      } catch {
        return '';
      }
    };
    return read('stdout') + read('log');
  }

  /** Stops it (SIGINT: at once) and removes its directory. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise(resolve => this.child.once('exit', resolve));
      this.child.kill('SIGINT');
      await exited;
    }
    rmSync(this.dir, {recursive: true, force: true});
  }
}
