// The package as a user gets it: packed with `npm pack`, the tarball unpacked
// into node_modules of an app shaped as `lb4 app` + `lb4 datasource` make one
// (test/cli-app), compiled with tsc against the installed typings. Two
// replicas run their deploy step (`npm run migrate`) at once on an empty
// database, start, and the master gets SIGTERM, handled by LoopBack itself:
// the lock goes over at once (PostgreSQL: NOTIFY; MariaDB: the next check)
// and the process exits right after the job's stop(). Each replica submits a
// task to a persisted queue at start: both run once, on the queue's master.

import {expect} from '@loopback/testlab';
import {ChildProcess, execFile, spawn} from 'child_process';
import {chmodSync, cpSync, mkdirSync, readFileSync, rmSync, symlinkSync} from 'fs';
import path from 'path';
import readline from 'readline';
import {promisify} from 'util';
import {openTestDatabase} from '../fixtures/databases';
import {DatabaseServer, SqlBackend, waitFor} from '../../cluster-kit';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../../..');
const FIXTURE = path.join(ROOT, 'test', 'cli-app');
const CHECK_MASTER_INTERVAL = 300;
const TIMINGS = {
  INIT_DELAY: '50',
  CHECK_MASTER_INTERVAL: String(CHECK_MASTER_INTERVAL),
  MASTER_JOB_HEARTBEAT_INTERVAL: '200',
  MASTER_JOB_LEASE_DURATION: '1000',
};

function note(text: string): void {
  process.stdout.write(text.replace(/^/gm, '      ') + '\n');
}

interface JobLine {
  event: 'start' | 'stop';
  lockName: string;
  instanceId: string;
  fencingToken: number;
  reason?: string;
  at: number;
}

class AppProcess {
  readonly lines: JobLine[] = [];
  readonly output: string[] = [];
  exit?: {code: number | null; signal: NodeJS.Signals | null; at: number};
  listening = false;

  constructor(readonly child: ChildProcess) {
    const onLine = (line: string) => {
      this.output.push(line);
      if (line.startsWith('Server is running at')) this.listening = true;
      if (line.startsWith('{')) this.lines.push(JSON.parse(line));
    };
    readline.createInterface({input: child.stdout!}).on('line', onLine);
    readline.createInterface({input: child.stderr!}).on('line', onLine);
    child.once('exit', (code, signal) => (this.exit = {code, signal, at: Date.now()}));
  }

  /** Whether the last REPORT line of this replica is a start. */
  get isMaster(): boolean {
    return this.lines.filter(l => l.lockName === 'REPORT').at(-1)?.event === 'start';
  }
}

describe('the packed package in a CLI-shaped app (real processes)', function () {
  this.timeout(60000);
  const appDir = path.join(ROOT, '.tmp', `cli-app-${process.pid}`);
  const processes: AppProcess[] = [];

  before(async function () {
    this.timeout(180000);
    rmSync(appDir, {recursive: true, force: true});
    mkdirSync(appDir, {recursive: true});
    // What `npm install <tarball>` unpacks: only the files the package ships.
    const {stdout} = await run('npm', ['pack', '--silent', '--pack-destination', appDir], {
      cwd: ROOT,
    });
    const tarball = path.join(appDir, stdout.trim().split('\n').pop()!);
    const installed = path.join(appDir, 'node_modules', 'loopback4-master-job-executor');
    mkdirSync(installed, {recursive: true});
    await run('tar', ['xzf', tarball, '-C', installed, '--strip-components=1']);
    // As `npm install` links a package's bins: node_modules/.bin/<name>, executable.
    const {bin} = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8'));
    mkdirSync(path.join(appDir, 'node_modules', '.bin'), {recursive: true});
    for (const [name, file] of Object.entries(bin as Record<string, string>)) {
      chmodSync(path.join(installed, file), 0o755);
      symlinkSync(
        path.join('..', 'loopback4-master-job-executor', file),
        path.join(appDir, 'node_modules', '.bin', name),
      );
    }
    for (const entry of ['package.json', 'tsconfig.json', 'src']) {
      cpSync(path.join(FIXTURE, entry), path.join(appDir, entry), {recursive: true});
    }
    // The app's other dependencies (@loopback/*, connectors) resolve from the
    // project's node_modules above it, as a user's would from the app's.
    await run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', appDir]);
  });

  after(() => {
    for (const p of processes) if (!p.exit) p.child.kill('SIGKILL');
    rmSync(appDir, {recursive: true, force: true});
  });

  for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
    describe(`on ${backend}`, () => {
      let url: string;

      before(async function () {
        const db = await openTestDatabase(this, backend, 'mje_cli_app'); // skips if unreachable
        const admin = db.createDataSource();
        const tables =
          backend === 'postgresql'
            ? ['masterlock', 'mastercontrol']
            : ['MasterLock', 'MasterControl'];
        for (const table of tables) await admin.execute(`DROP TABLE IF EXISTS ${table}`);
        await db.close();
        url = new DatabaseServer(backend, 'mje_cli_app').url;
      });

      const env = () => ({
        ...process.env,
        ...TIMINGS,
        DATABASE_URL: url,
        PORT: '0',
        HOST: '127.0.0.1',
        DEBUG: '',
      });

      it('runs a command under a lock with the installed bin (npx master-job-run)', async () => {
        const npx = (args: string[]) =>
          new Promise<{code: number | null; stdout: string}>(resolve => {
            const child = spawn('npx', ['--no-install', 'master-job-run', ...args], {
              cwd: appDir,
              env: env(),
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            let stdout = '';
            child.stdout!.on('data', chunk => (stdout += chunk));
            child.on('exit', code => resolve({code, stdout}));
          });
        expect((await npx(['--help'])).stdout).to.match(/^Usage: master-job-run/);
        const lock = `BIN-${process.pid}`;
        const {code, stdout} = await npx([
          lock,
          'sh',
          '-c',
          'echo "token $MASTER_JOB_FENCING_TOKEN"; exit 3',
        ]);
        expect(code).to.equal(3);
        expect(stdout).to.match(/^token \d+$/m);
      });

      it('migrates from two replicas at once, then hands over on SIGTERM and exits at once', async () => {
        // the deploy step of both replicas, at the same moment, on an empty database
        const migrations = await Promise.allSettled(
          ['a', 'b'].map(id =>
            run(process.execPath, [path.join(appDir, 'dist', 'migrate.js')], {env: env()}),
          ),
        );
        expect(migrations.map(m => m.status)).to.deepEqual(['fulfilled', 'fulfilled']);

        const replicas = ['a', 'b'].map(id => {
          const child = spawn(process.execPath, [path.join(appDir, 'dist', 'index.js')], {
            env: env(),
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          const p = new AppProcess(child);
          processes.push(p);
          return p;
        });
        const describeAll = () => replicas.map(r => r.output.join('\n')).join('\n---\n');
        await waitFor(
          'both replicas to listen and one to run REPORT',
          () => {
            if (replicas.some(r => r.exit)) throw new Error(`a replica exited:\n${describeAll()}`);
            return (
              replicas.every(r => r.listening) && replicas.filter(r => r.isMaster).length === 1
            );
          },
          20000,
        );
        const master = replicas.find(r => r.isMaster)!;
        const other = replicas.find(r => r !== master)!;
        const before = master.lines.filter(l => l.lockName === 'REPORT').at(-1)!;
        // The queue: each replica submitted one task; one master ran each, once.
        const tasks = () =>
          replicas.flatMap(r => r.lines as unknown as {event: string; payload: {hello: string}}[]);
        await waitFor(
          'both tasks to run',
          () => tasks().filter(l => l.event === 'task').length >= 2,
          10000,
        );
        const ran = tasks()
          .filter(l => l.event === 'task')
          .map(l => l.payload.hello);
        expect(ran).to.have.length(2);
        expect(new Set(ran).size).to.equal(2);

        master.child.kill('SIGTERM');
        const started = await waitFor(
          'the other replica to start REPORT',
          () => other.lines.find(l => l.lockName === 'REPORT' && l.event === 'start'),
          10000,
        );
        await waitFor('the old master to exit', () => master.exit, 10000);
        const stopped = master.lines.find(l => l.lockName === 'REPORT' && l.event === 'stop')!;

        expect(stopped).to.containDeep({reason: 'stopped', fencingToken: before.fencingToken});
        expect(started.fencingToken).to.be.above(before.fencingToken);
        // LoopBack's shutdown: app.stop(), then the process kills itself with the signal
        expect(master.exit).to.containDeep({signal: 'SIGTERM'});
        const handoff = started.at - stopped.at;
        const exitAfterStop = master.exit!.at - stopped.at;
        note(
          `${backend}: handoff ${handoff} ms (stop -> start elsewhere), exit ${exitAfterStop} ms after stop()`,
        );
        // PostgreSQL: NOTIFY wakes the other at once; MariaDB: it finds the lock free at its next check.
        const handoffBound = backend === 'postgresql' ? 250 : CHECK_MASTER_INTERVAL + 250;
        expect(handoff).to.be.below(handoffBound);
        expect(exitAfterStop).to.be.below(1000);
        expect(master.output.join('\n')).to.not.match(/timed out|outcome unknown|Error/);

        other.child.kill('SIGTERM');
        await waitFor('the last replica to exit', () => other.exit, 10000);
        expect(other.lines.filter(l => l.lockName === 'REPORT').at(-1)).to.containDeep({
          event: 'stop',
          reason: 'stopped',
        });
      });
    });
  }
});
