// The README's Usage, followed literally in an app the real generator made.
// `lb4 app` and `lb4 datasource` of @loopback/cli (pinned, installed once into
// .tmp/), the README's Install lines for this Node version (the packed tarball
// in place of the registry's package), then every addition the README's Usage
// marks (`<!-- add: ... -->`, `<!-- file: ... -->`) applied where it says, as a
// user would paste it. Then: the app builds, its own generated tests pass, the
// additions bring no lint problem of their own, two replicas migrate at once
// on an empty database, the README's deploy line (`npx master-job-run ...`)
// runs from the app's root with no DATABASE_URL, and replicas started with
// `node .` run the queue's task once, obey the README's curl lines, and hand
// REPORT over within a bound on SIGTERM and on SIGINT (Ctrl-C), exiting soon
// after the job's stop(). On PostgreSQL and MariaDB, each in a database of its
// own; skipped when a server is unreachable, failed under CI=true.

import {expect} from '@loopback/testlab';
import {ChildProcess, spawn} from 'child_process';
import {existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'fs';
import os from 'os';
import path from 'path';
import readline from 'readline';
import {
  databaseUrl,
  freePort,
  recreateDatabase,
  serverAddress,
  ServerAddress,
  SqlBackend,
  waitFor,
} from '../../cluster-kit';
import {openTestDatabase} from '../fixtures/databases';
import {applyAddition, blocks, readmeAdditions, section} from '../fixtures/readme';

const ROOT = path.resolve(__dirname, '../../..');
const CLI_VERSION = '7.0.17';
const CLI_DIR = path.join(ROOT, '.tmp', `lb4-cli-${CLI_VERSION}`);
const LB4 = path.join(CLI_DIR, 'node_modules', '.bin', 'lb4');
const APP_NAME = 'report-app';
const DATABASE = 'mje_generated_app';
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

const LEASE = 1000;
const TIMINGS = {
  INIT_DELAY: '50',
  CHECK_MASTER_INTERVAL: '300',
  MASTER_JOB_HEARTBEAT_INTERVAL: '200',
  MASTER_JOB_LEASE_DURATION: String(LEASE),
};
/** From the old master's stop() to start() elsewhere, and from stop() to the exit. */
const HANDOFF_BOUND = 1000;
const EXIT_BOUND = 1000;

function note(text: string): void {
  process.stdout.write(text.replace(/^/gm, '      ') + '\n');
}

// ---- child processes: each in a process group of its own, all killed in `after` ----

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  children.clear();
}

/** The environment without what an outer `npm test` put there, nor DATABASE_URL. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('npm_') || k === 'DATABASE_URL' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return {...env, DEBUG: '', ...extra};
}

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, interleaved as they came */
  output: string;
  stdout: string;
  ms: number;
}

/** Runs a command to its end; rejects, with its output, unless it exits 0 (or `allowFailure`). */
function exec(
  command: string,
  args: string[],
  options: {cwd: string; env?: NodeJS.ProcessEnv; timeout?: number; allowFailure?: boolean},
): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.add(child);
    let output = '';
    let stdout = '';
    child.stdout!.on('data', chunk => {
      output += chunk;
      stdout += chunk;
    });
    child.stderr!.on('data', chunk => (output += chunk));
    const timer = setTimeout(() => {
      output += `\n[killed after ${options.timeout} ms]`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }, options.timeout ?? 180000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const ran = {code, signal, output, stdout, ms: Date.now() - started};
      if (code === 0 || options.allowFailure) resolve(ran);
      else {
        const shown = `${command} ${args.join(' ')}`.slice(0, 300);
        reject(new Error(`${shown} exited ${code ?? signal} in ${options.cwd}:\n${output}`));
      }
    });
  });
}

const npm = (args: string[], cwd: string, timeout?: number) => exec('npm', args, {cwd, timeout});

/** The README's Install, for this Node version: package specs and package.json overrides. */
function readmeInstall(tarball: string): {specs: string[]; overrides?: object} {
  const install = section('Install');
  const commands = blocks('Install', 'sh')
    .join('\n')
    .split('\n')
    .map(line => line.replace(/#.*/, '').trim())
    .filter(line => line.startsWith('npm install '));
  expect(commands).to.deepEqual([
    'npm install loopback4-master-job-executor',
    'npm install loopback-connector-postgresql',
  ]);
  // "loopback-connector-postgresql        # or loopback-connector-mysql": both, to switch between
  let connectorSpec = '';
  let overrides: object | undefined;
  if (NODE_MAJOR < 22) {
    const pinned = /`npm install loopback-connector-postgresql(@[^`\s]+)`/.exec(install);
    if (!pinned) throw new Error('the README Install says no connector version for Node 20');
    connectorSpec = pinned[1];
    const json = blocks('Install', 'json').find(b => b.includes('"overrides"'));
    if (!json) throw new Error('the README Install shows no overrides for Node 20');
    overrides = JSON.parse(`{${json.trim()}}`).overrides;
  }
  return {
    specs: [
      tarball, // in place of `loopback4-master-job-executor`
      `loopback-connector-postgresql${connectorSpec}`,
      `loopback-connector-mysql${connectorSpec}`,
    ],
    overrides,
  };
}

// ---- the generator ----

/** @loopback/cli at CLI_VERSION in .tmp/, installed once and reused by later runs. */
async function ensureCli(): Promise<void> {
  const installed = path.join(CLI_DIR, 'node_modules', '@loopback', 'cli', 'package.json');
  if (existsSync(installed) && existsSync(LB4)) return;
  const tmp = `${CLI_DIR}.${process.pid}`;
  rmSync(tmp, {recursive: true, force: true});
  mkdirSync(tmp, {recursive: true});
  writeFileSync(
    path.join(tmp, 'package.json'),
    JSON.stringify({private: true, dependencies: {'@loopback/cli': CLI_VERSION}}),
  );
  try {
    await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], tmp);
    rmSync(CLI_DIR, {recursive: true, force: true});
    renameSync(tmp, CLI_DIR);
  } finally {
    rmSync(tmp, {recursive: true, force: true});
  }
}

/** `lb4 <args>` with no terminal: `--yes` and `--config` answer every prompt. */
function lb4(args: string[], cwd: string, config: object): Promise<Ran> {
  return exec(LB4, [...args, '--yes', '--skip-install', '--config', JSON.stringify(config)], {
    cwd,
    timeout: 60000,
  });
}

function datasourceConfig(backend: SqlBackend, a: ServerAddress) {
  return {
    name: 'db',
    connector: backend,
    url: '',
    host: a.host,
    port: a.port,
    user: a.user,
    password: a.password,
    database: DATABASE,
  };
}

/** `lb4 datasource db` for this backend, in place of the one the app has. */
async function generateDatasource(appDir: string, backend: SqlBackend): Promise<void> {
  for (const file of ['db.datasource.ts', 'index.ts']) {
    rmSync(path.join(appDir, 'src', 'datasources', file), {force: true});
  }
  await lb4(['datasource', 'db'], appDir, datasourceConfig(backend, serverAddress(backend)));
}

interface LintProblem {
  file: string;
  rule: string | null;
  message: string;
}

/** The app's eslint problems (its own `lb-eslint`), without line numbers. */
async function eslintProblems(appDir: string): Promise<LintProblem[]> {
  const ran = await exec(
    process.execPath,
    [
      path.join(appDir, 'node_modules', '@loopback', 'build', 'bin', 'run-eslint.js'),
      '-f',
      'json',
      '.',
    ],
    {cwd: appDir, allowFailure: true, env: cleanEnv()},
  );
  const start = ran.output.indexOf('[');
  const results = JSON.parse(ran.output.slice(start)) as {
    filePath: string;
    messages: {ruleId: string | null; message: string}[];
  }[];
  return results.flatMap(r =>
    r.messages.map(m => ({
      file: path.relative(appDir, r.filePath),
      rule: m.ruleId,
      message: m.message,
    })),
  );
}

// ---- replicas ----

interface Line {
  text: string;
  at: number;
}

interface ReportEvent {
  event: 'start' | 'stop';
  token?: number;
  reason?: string;
  at: number;
}

class Replica {
  readonly lines: Line[] = [];
  exit?: {code: number | null; signal: NodeJS.Signals | null; at: number};

  constructor(
    readonly name: string,
    readonly port: number,
    readonly child: ChildProcess,
  ) {
    const onLine = (text: string) => this.lines.push({text, at: Date.now()});
    readline.createInterface({input: child.stdout!}).on('line', onLine);
    readline.createInterface({input: child.stderr!}).on('line', onLine);
    child.once('exit', (code, signal) => (this.exit = {code, signal, at: Date.now()}));
  }

  static start(name: string, appDir: string, port: number): Replica {
    const child = spawn(process.execPath, ['.'], {
      cwd: appDir,
      env: cleanEnv({...TIMINGS, PORT: String(port), HOST: '127.0.0.1'}),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.add(child);
    return new Replica(name, port, child);
  }

  get listening(): boolean {
    return this.lines.some(l => l.text.startsWith('Server is running at'));
  }

  /** The REPORT job's lines: `REPORT starts here, token N` and `REPORT stops here: reason`. */
  get report(): ReportEvent[] {
    const events: ReportEvent[] = [];
    for (const l of this.lines) {
      let m = /^REPORT starts here, token (\d+)$/.exec(l.text);
      if (m) events.push({event: 'start', token: Number(m[1]), at: l.at});
      m = /^REPORT stops here: (\w+)$/.exec(l.text);
      if (m) events.push({event: 'stop', reason: m[1], at: l.at});
    }
    return events;
  }

  get isReportMaster(): boolean {
    return this.report.at(-1)?.event === 'start';
  }

  linesMatching(re: RegExp): Line[] {
    return this.lines.filter(l => re.test(l.text));
  }

  get text(): string {
    return `--- ${this.name} (port ${this.port}):\n` + this.lines.map(l => l.text).join('\n');
  }
}

// ---- the test ----

describe('the README Usage in an app made by lb4 app + lb4 datasource (real processes)', function () {
  this.timeout(120000);
  const suiteStarted = Date.now();
  const workDir = path.join(os.tmpdir(), `mje-generated-app-${process.pid}`);
  const appDir = path.join(workDir, APP_NAME);
  const additions = readmeAdditions();
  let datasourceOf: SqlBackend | undefined;
  let lintBefore: LintProblem[] = [];
  const timings: string[] = [];
  const timed = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    const result = await work();
    timings.push(`${what} ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return result;
  };

  before(async function () {
    this.timeout(600000);
    rmSync(workDir, {recursive: true, force: true});
    mkdirSync(workDir, {recursive: true});
    await timed('lb4 cli', ensureCli);
    await timed('lb4 app', () =>
      lb4(['app', APP_NAME], workDir, {
        description: 'An app of the README',
        outdir: APP_NAME,
        // every feature, as the generator's prompt has them all checked
        eslint: true,
        prettier: true,
        mocha: true,
        loopbackBuild: true,
        editorconfig: true,
        vscode: true,
        docker: true,
        repositories: true,
        services: true,
      }),
    );
    // The README's Install, with the packed package in place of the registry's.
    const packed = await npm(['pack', '--silent', '--pack-destination', workDir], ROOT);
    const tarball = path.join(workDir, packed.output.trim().split('\n').pop()!);
    const {specs, overrides} = readmeInstall(tarball);
    if (overrides) {
      const file = path.join(appDir, 'package.json');
      const pkg = JSON.parse(readFileSync(file, 'utf8'));
      writeFileSync(file, JSON.stringify({...pkg, overrides}, null, 2) + '\n');
    }
    await timed('npm install', () =>
      npm(
        ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs],
        appDir,
        300000,
      ),
    );
    const versions = [
      'loopback4-master-job-executor',
      'loopback-datasource-juggler',
      'loopback-connector',
      'loopback-connector-postgresql',
      'loopback-connector-mysql',
    ].map(name => {
      const file = path.join(appDir, 'node_modules', name, 'package.json');
      return `${name}@${JSON.parse(readFileSync(file, 'utf8')).version}`;
    });
    note(`installed as the README says for Node ${NODE_MAJOR}: ${versions.join(', ')}`);
    await timed('lb4 datasource', () => generateDatasource(appDir, 'postgresql'));
    datasourceOf = 'postgresql';
    lintBefore = await timed('eslint (generated)', () => eslintProblems(appDir));
    for (const a of additions) applyAddition(appDir, a);
    await timed('npm run build', () => npm(['run', 'build'], appDir));
  });

  after(function () {
    this.timeout(60000);
    killAll();
    if (process.env.MJE_KEEP_APP !== '1') rmSync(workDir, {recursive: true, force: true});
    else note(`kept ${appDir} (MJE_KEEP_APP=1)`);
    note(
      `${timings.join(', ')}; ${((Date.now() - suiteStarted) / 1000).toFixed(0)} s in all ` +
        `(node ${process.versions.node})`,
    );
  });

  it('finds the README additions and applies each where it says, leaving the generated code', () => {
    expect(additions.map(a => `${a.kind}: ${a.where}`)).to.containDeep([
      'add: src/application.ts imports',
      'add: src/application.ts constructor',
      'file: src/jobs/report.job.ts',
      'add: src/index.ts config',
    ]);
    // what the generator made is still there: explorer, sequence, ServiceMixin, main, the exports
    const application = readFileSync(path.join(appDir, 'src', 'application.ts'), 'utf8');
    expect(application).to.match(/this\.component\(RestExplorerComponent\);/);
    expect(application).to.match(/this\.sequence\(MySequence\);/);
    expect(application).to.match(/ServiceMixin\(RepositoryMixin\(RestApplication\)\)/);
    expect(application).to.match(/^export \{ApplicationConfig\};$/m);
    expect(application).to.match(/^ {4}this\.component\(MasterJobExecutorComponent\);$/m);
    const index = readFileSync(path.join(appDir, 'src', 'index.ts'), 'utf8');
    expect(index).to.match(/^export \* from '\.\/application';$/m);
    expect(index).to.match(/^if \(require\.main === module\) \{$/m);
    expect(index).to.match(/^ {4}shutdown: \{signals: \['SIGTERM', 'SIGINT'\]/m);
  });

  it('resolves the /extension subpath of the installed package, typings and code', async () => {
    // what a store author imports, through package.json exports (node) and typesVersions (tsc)
    const dir = path.join(appDir, 'src', '__extension_check__');
    mkdirSync(dir, {recursive: true});
    writeFileSync(
      path.join(dir, 'check.ts'),
      [
        "import {LockRecord, TIMING_DEFAULTS} from 'loopback4-master-job-executor/extension';",
        "const lock: Pick<LockRecord, 'lockName'> = {lockName: 'X'};",
        'console.log(lock.lockName, TIMING_DEFAULTS.heartbeatInterval);',
        '',
      ].join('\n'),
    );
    try {
      const tsc = path.join(appDir, 'node_modules', 'typescript', 'bin', 'tsc');
      const out = path.join(appDir, '.extension-check');
      await exec(process.execPath, [tsc, '-p', '.', '--outDir', out], {
        cwd: appDir,
        env: cleanEnv(),
      });
      // under out/ as the app's rootDir lays it out
      const built = ['src', '.']
        .map(root => path.join(out, root, '__extension_check__', 'check.js'))
        .find(f => existsSync(f));
      expect(built).to.be.ok();
      const ran = await exec(process.execPath, [built!], {cwd: appDir, env: cleanEnv()});
      expect(ran.stdout.trim()).to.equal('X 8000');
      rmSync(out, {recursive: true, force: true});
    } finally {
      rmSync(dir, {recursive: true, force: true});
    }
  });

  it('builds, and the additions bring no lint problem of their own', async () => {
    const key = (p: LintProblem) => `${p.file}: ${p.rule}: ${p.message}`;
    const before = new Set(lintBefore.map(key));
    const added = (await eslintProblems(appDir)).filter(p => !before.has(key(p)));
    expect(added.map(key)).to.deepEqual([]);
    // prettier, the app's settings, on every file the README touched
    const touched = [...new Set(additions.map(a => a.where.split(' ')[0]))];
    const prettier = await exec(
      process.execPath,
      [
        path.join(appDir, 'node_modules', '@loopback', 'build', 'bin', 'run-prettier.js'),
        '-l',
        ...touched,
      ],
      {cwd: appDir, allowFailure: true, env: cleanEnv()},
    );
    expect(prettier.output.trim()).to.equal('');
    if (lintBefore.length) {
      note(
        `the generator's own lint problems (not the README's): ${lintBefore.map(key).join('; ')}`,
      );
    }
  });

  for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
    describe(`on ${backend}`, () => {
      const replicas: Replica[] = [];
      const describeAll = () => replicas.map(r => r.text).join('\n');

      before(async function () {
        this.timeout(180000);
        const db = await openTestDatabase(this, backend, DATABASE); // skips if unreachable
        await db.close();
        await recreateDatabase(backend, serverAddress(backend), DATABASE); // empty
        if (datasourceOf !== backend) {
          await timed(`lb4 datasource (${backend})`, () => generateDatasource(appDir, backend));
          datasourceOf = backend;
          await timed(`npm run build (${backend})`, () => npm(['run', 'build'], appDir));
        }
      });

      after(() => {
        for (const r of replicas) {
          if (!r.exit) {
            try {
              process.kill(-r.child.pid!, 'SIGKILL');
            } catch {
              // gone already
            }
          }
        }
      });

      it('migrates from two replicas at once on an empty database (npm run migrate)', async () => {
        const runs = await timed(`2 x npm run migrate (${backend})`, () =>
          Promise.all([1, 2].map(() => npm(['run', 'migrate'], appDir))),
        );
        for (const run of runs) expect(run.output).to.match(/Migrating schemas/);
      });

      it("passes the app's own generated tests (its mocha tests, on the built app)", async () => {
        // `npm test` without its pre/post scripts: pretest rebuilds (done above) and posttest
        // lints, which fails on the generator's own code (see the lint test).
        const ran = await timed(`app tests (${backend})`, () =>
          npm(['test', '--ignore-scripts'], appDir),
        );
        expect(ran.output).to.match(/\d+ passing/);
        expect(ran.output).to.not.match(/failing/);
      });

      it('runs a command under a lock with the installed bin (npx master-job-run, DATABASE_URL)', async () => {
        const env = cleanEnv({
          DATABASE_URL: databaseUrl(backend, serverAddress(backend), DATABASE),
        });
        const npx = (args: string[]) =>
          exec('npx', ['--no-install', 'master-job-run', ...args], {
            cwd: appDir,
            env,
            allowFailure: true,
          });
        expect((await npx(['--help'])).stdout).to.match(/^Usage: master-job-run/);
        const ran = await npx([
          `BIN-${process.pid}`,
          'sh',
          '-c',
          'echo "token $MASTER_JOB_FENCING_TOKEN"; exit 3',
        ]);
        expect(ran.code).to.equal(3);
        expect(ran.stdout).to.match(/^token \d+$/m);
      });

      it("runs the README's deploy line from the app's root, with no DATABASE_URL", async () => {
        const deploy = blocks('A command under a cluster lock', 'sh')
          .join('\n')
          .split('\n')
          .find(line => line.startsWith('npx master-job-run SCHEMA-MIGRATION'));
        expect(deploy).to.be.ok();
        // the migration under the lock; `&& node .` (a replica) is what the tests below start
        const command = deploy!.split(' && node .')[0];
        expect(command).to.equal('npx master-job-run SCHEMA-MIGRATION npm run migrate');
        const ran = await timed(`deploy line (${backend})`, () =>
          exec('sh', ['-c', command], {cwd: appDir, allowFailure: true}),
        );
        expect({code: ran.code, output: ran.output}).to.containDeep({code: 0});
        expect(ran.output).to.match(/Migrating schemas/);
      });

      it('starts replicas (node .): one runs REPORT, the queue task runs once, the README curl lines disable and enable', async () => {
        const [a, b] = await Promise.all(
          ['a', 'b'].map(async name => Replica.start(name, appDir, await freePort())),
        );
        replicas.push(a, b);
        await waitFor(
          'both replicas to listen and one to run REPORT',
          () => {
            if (replicas.some(r => r.exit)) throw new Error(`a replica exited:\n${describeAll()}`);
            return (
              replicas.every(r => r.listening) &&
              replicas.filter(r => r.isReportMaster).length === 1
            );
          },
          30000,
        );
        // Both submitted {key: 'welcome-ann'} before they listened: one task, run once.
        const sends = () => replicas.flatMap(r => r.linesMatching(/^sending /));
        await waitFor('the MAIL task to run', () => sends().length > 0, 10000);
        await new Promise(resolve => setTimeout(resolve, 1000));
        expect(sends().map(l => l.text)).to.deepEqual([
          'sending {"to":"ann@example.com"}, attempt 1',
        ]);

        // The README's curl lines, as written but for the port.
        const curls = blocks('REST in brief', 'sh')
          .join('\n')
          .replace(/\\\n\s*/g, '')
          .split('\n')
          .filter(line => line.startsWith('curl '));
        expect(curls).to.have.length(2);
        const [disable, enable] = curls.map(c =>
          c.replace('localhost:3000', `localhost:${a.port}`),
        );
        expect(disable).to.match(/\/disable'$/);
        expect(enable).to.match(/\/enable'$/);
        const scheduling = () =>
          replicas.flatMap(r => r.linesMatching(/^scheduling, token \d+$/).map(l => ({r, ...l})));
        await waitFor('a replica to run JOB-SCHEDULER', () => scheduling().length > 0, 10000);
        const scheduler = scheduling()[0].r;

        const disabled = JSON.parse((await exec('sh', ['-c', disable], {cwd: appDir})).stdout);
        expect(disabled).to.containDeep({lockName: 'JOB-SCHEDULER', enabled: false, changed: true});
        await waitFor(
          'JOB-SCHEDULER to stop on its master',
          () => scheduler.linesMatching(/^scheduler stopped: disabled$/).length > 0,
          5000,
        );
        const startsBefore = scheduling().length;
        const enabled = JSON.parse((await exec('sh', ['-c', enable], {cwd: appDir})).stdout);
        expect(enabled).to.containDeep({lockName: 'JOB-SCHEDULER', enabled: true, changed: true});
        await waitFor(
          'JOB-SCHEDULER to start again',
          () => scheduling().length > startsBefore,
          5000,
        );
      });

      /** Sends `signal` to REPORT's master; the other replica must take over within the bounds. */
      async function handOver(signal: 'SIGTERM' | 'SIGINT'): Promise<void> {
        const live = replicas.filter(r => !r.exit);
        expect(live).to.have.length(2);
        const master = live.find(r => r.isReportMaster)!;
        const other = live.find(r => r !== master)!;
        expect(master).to.be.ok();
        const before = master.report.at(-1)!;
        const sentAt = Date.now();
        master.child.kill(signal);
        const started = await waitFor(
          `the other replica to start REPORT after ${signal}`,
          () => other.report.find(e => e.event === 'start' && e.at >= sentAt),
          10000,
        );
        await waitFor(`the old master to exit on ${signal}`, () => master.exit, 10000);
        const stopped = master.report.find(e => e.event === 'stop' && e.at >= sentAt);
        expect(stopped).to.containDeep({reason: 'stopped'});
        expect(started.token).to.be.above(before.token!);
        // LoopBack's shutdown: app.stop(), then the process kills itself with the signal
        expect(master.exit).to.containDeep({signal});
        const handoff = started.at - stopped!.at;
        const exitAfterStop = master.exit!.at - stopped!.at;
        note(
          `${backend}, ${signal}: stop -> start elsewhere ${handoff} ms, exit ${exitAfterStop} ms after stop()`,
        );
        expect(handoff).to.be.below(HANDOFF_BOUND);
        expect(exitAfterStop).to.be.below(EXIT_BOUND);
        expect(master.text).to.not.match(/timed out|outcome unknown|Error/);
      }

      it(`hands REPORT over on SIGTERM (within ${HANDOFF_BOUND} ms at a ${LEASE} ms lease) and exits at once`, async () => {
        await handOver('SIGTERM');
      });

      it('hands REPORT over on SIGINT (Ctrl-C) too, as the README config line asks', async () => {
        const c = Replica.start('c', appDir, await freePort());
        replicas.push(c);
        await waitFor('replica c to listen', () => c.listening || c.exit, 30000);
        expect(c.exit).to.be.undefined();
        await handOver('SIGINT');
        // the last one stops cleanly too, and the queue task still ran once in all
        const last = replicas.find(r => !r.exit)!;
        last.child.kill('SIGTERM');
        await waitFor('the last replica to exit', () => last.exit, 10000);
        expect(last.report.at(-1)).to.containDeep({event: 'stop', reason: 'stopped'});
        expect(replicas.flatMap(r => r.linesMatching(/^sending /))).to.have.length(1);
      });
    });
  }
});
