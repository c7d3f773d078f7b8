// `master-job-run`, the package's bin, as real processes on PostgreSQL and
// MariaDB: concurrent runs never overlap, --no-wait, exit codes, a disable
// mid-run, a SIGKILLed runner, a lock shared with an app's master, and the
// database found from an app's root (the datasource `lb4 datasource` made).

import {Application} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {spawn} from 'child_process';
import {randomBytes} from 'crypto';
import {mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'fs';
import {tmpdir} from 'os';
import path from 'path';
import {DatabaseServer, holdsFor, mono, SqlBackend, waitFor} from '../../cluster-kit';
import {MasterJobExecutorBindings, MasterJobExecutorComponent} from '../../src';
import {dataSourceConfigFromUrl} from '../../src/extension';
import {note, orSkip} from '../fixtures/real-processes';

const BIN = path.resolve(__dirname, '../../src/cli/master-job-run.js');
const ROOT = path.resolve(__dirname, '../../..');
const TIMINGS = {
  INIT_DELAY: '0',
  CHECK_MASTER_INTERVAL: '500',
  MASTER_JOB_HEARTBEAT_INTERVAL: '200',
  MASTER_JOB_LEASE_DURATION: '1000',
};
const L = 1000;

interface Run {
  code: Promise<number>;
  pid: number;
  /** Both pipes read to the end (a command's orphan holding them delays it). */
  closed: Promise<void>;
  stdout: () => string;
  stderr: () => string;
  kill: (signal: NodeJS.Signals) => void;
}

interface GeneratedDataSource {
  name: string;
  className: string;
  config: Record<string, unknown>;
}

/**
 * `dist/datasources/<name>.datasource.js` as `lb4 datasource` (@loopback/cli 7)
 * generates it and the app's `npm run build` (lb-tsc) compiles it.
 */
function compiledDataSource({name, className, config}: GeneratedDataSource): string {
  const cls = `${className}DataSource`;
  return `"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.${cls} = void 0;
const tslib_1 = require("tslib");
const core_1 = require("@loopback/core");
const repository_1 = require("@loopback/repository");
const config = ${JSON.stringify(config, null, 4)};
// Observe application's life cycle to disconnect the datasource when
// application is stopped. This allows the application to be shut down
// gracefully. The \`stop()\` method is inherited from \`juggler.DataSource\`.
// Learn more at https://loopback.io/doc/en/lb4/Life-cycle.html
let ${cls} = class ${cls} extends repository_1.juggler.DataSource {
    constructor(dsConfig = config) {
        super(dsConfig);
    }
};
exports.${cls} = ${cls};
${cls}.dataSourceName = '${name}';
${cls}.defaultConfig = config;
exports.${cls} = ${cls} = tslib_1.__decorate([
    (0, core_1.lifeCycleObserver)('datasource'),
    tslib_1.__param(0, (0, core_1.inject)('datasources.config.${name}', { optional: true })),
    tslib_1.__metadata("design:paramtypes", [Object])
], ${cls});
//# sourceMappingURL=${name}.datasource.js.map
`;
}

/**
 * A temporary app root: its package.json, its node_modules (this project's,
 * where @loopback/* and the connectors are) and its compiled datasources.
 */
function appRoot(datasources: GeneratedDataSource[], extra: {srcOnly?: boolean} = {}): string {
  const root = mkdtempSync(path.join(tmpdir(), 'mje-cli-app-'));
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({name: 'app', version: '1.0.0'}));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');
  const dir = path.join(root, extra.srcOnly ? 'src' : 'dist', 'datasources');
  mkdirSync(dir, {recursive: true});
  for (const ds of datasources) {
    writeFileSync(path.join(dir, `${ds.name}.datasource.js`), compiledDataSource(ds));
  }
  return root;
}

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  describe(`master-job-run on ${backend} (real processes)`, function () {
    this.timeout(30000);
    const server = new DatabaseServer(backend, 'mje_cli');
    const dir = mkdtempSync(path.join(tmpdir(), 'mje-cli-'));
    let lock: string;

    before(async function () {
      await orSkip(this, () => server.ensureDatabase());
    });
    beforeEach(() => {
      lock = `CLI-${randomBytes(3).toString('hex')}`;
    });

    /** The CLI; an env value undefined removes the variable (DATABASE_URL is set otherwise). */
    function run(
      args: string[],
      env: Record<string, string | undefined> = {},
      options: {cwd?: string} = {},
    ): Run {
      const fullEnv: Record<string, string | undefined> = {
        PATH: process.env.PATH,
        ...TIMINGS,
        DATABASE_URL: server.url,
        ...env,
      };
      for (const key of Object.keys(fullEnv)) if (fullEnv[key] === undefined) delete fullEnv[key];
      const child = spawn(process.execPath, [BIN, ...args], {
        env: fullEnv,
        cwd: options.cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', chunk => (stdout += chunk));
      child.stderr!.on('data', chunk => (stderr += chunk));
      const code = new Promise<number>(resolve =>
        child.on('exit', (c, signal) => resolve(c ?? 128 + (signal === 'SIGKILL' ? 9 : 15))),
      );
      const closed = new Promise<void>(resolve => child.on('close', () => resolve()));
      return {
        code,
        closed,
        pid: child.pid!,
        stdout: () => stdout,
        stderr: () => stderr,
        kill: s => child.kill(s),
      };
    }

    /** What `lb4 datasource <name>` writes for this server (`unreachable`: port 1). */
    function generated(name: string, unreachable = false): GeneratedDataSource {
      const {host, port, user, password} = server.address;
      return {
        name,
        className: name[0].toUpperCase() + name.slice(1),
        config: {
          name,
          connector: backend,
          url: '',
          host,
          port: unreachable ? 1 : port,
          user,
          password,
          database: server.database,
        },
      };
    }

    const roots: string[] = [];
    after(() => {
      for (const root of roots) rmSync(root, {recursive: true, force: true});
    });
    function tempApp(...args: Parameters<typeof appRoot>): string {
      const root = appRoot(...args);
      roots.push(root);
      return root;
    }

    const TOKEN = ['sh', '-c', 'echo "token=$MASTER_JOB_FENCING_TOKEN"'];
    const DEBUG = 'loopback:master-job-executor:*';

    /** A command that records its start and end, with the fencing token it was given. */
    function recorder(file: string, ms: number): string[] {
      return [
        'sh',
        '-c',
        `echo "start $$ $MASTER_JOB_FENCING_TOKEN" >> ${file}; sleep ${ms / 1000}; echo "end $$" >> ${file}`,
      ];
    }

    const lines = (file: string): string[] => {
      try {
        return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
      } catch {
        return [];
      }
    };

    it('runs five concurrent runs one at a time, each with a greater fencing token', async () => {
      const file = path.join(dir, `${lock}.log`);
      const runs = Array.from({length: 5}, () => run([lock, ...recorder(file, 200)]));
      const codes = await Promise.all(runs.map(r => r.code));
      expect(codes).to.eql([0, 0, 0, 0, 0]);
      const log = lines(file);
      expect(log).to.have.length(10);
      const tokens: number[] = [];
      for (let i = 0; i < log.length; i += 2) {
        const [kind, pid, token] = log[i].split(' ');
        expect(kind).to.equal('start');
        expect(log[i + 1]).to.equal(`end ${pid}`); // nothing started in between
        tokens.push(Number(token));
      }
      expect(tokens).to.eql([...tokens].sort((a, b) => a - b));
      expect(new Set(tokens).size).to.equal(5);
    });

    it('with --no-wait, exits 75 (or --busy-exit-code) at once while another run holds the lock', async () => {
      const file = path.join(dir, `${lock}.log`);
      const release = path.join(dir, `${lock}.release`);
      // The holder holds until told: the --no-wait runs must answer while it does.
      const holder = run([
        lock,
        'sh',
        '-c',
        `echo "start $$" >> ${file}; while [ ! -f ${release} ]; do sleep 0.05; done; echo "end $$" >> ${file}`,
      ]);
      await waitFor('the holder runs', () => lines(file).length === 1, 10000);
      const t = mono();
      expect(await run(['--no-wait', lock, 'true']).code).to.equal(75);
      expect(await run(['--no-wait', '--busy-exit-code', '9', lock, 'true']).code).to.equal(9);
      note(`two --no-wait runs answered busy in ${Math.round(mono() - t)} ms`);
      expect(lines(file)).to.have.length(1); // the holder still held the lock
      writeFileSync(release, '');
      expect(await holder.code).to.equal(0);
      expect(lines(file)).to.have.length(2);
    });

    it("exits with the command's code: 0, 3, and 128 + 9 when it is SIGKILLed", async () => {
      expect(await run([lock, 'sh', '-c', 'exit 0']).code).to.equal(0);
      expect(await run([lock, 'sh', '-c', 'exit 3']).code).to.equal(3);
      expect(await run([lock, 'sh', '-c', 'kill -9 $$']).code).to.equal(137);
      expect(await run([lock, 'no-such-command-here']).code).to.equal(127);
    });

    it('refuses bad usage with 64, naming what is wrong', async () => {
      const cases: [string[], Record<string, string>, RegExp][] = [
        [[], {}, /<lockName> is missing/],
        [[lock], {}, /<command> is missing/],
        [['--kill-grace', 'soon', lock, 'true'], {}, /--kill-grace must be an integer/],
        [['--bogus', lock, 'true'], {}, /unknown option --bogus/],
        [[lock, 'true'], {DATABASE_URL: ''}, /no database: DATABASE_URL and --database-url are/],
        [['--datasource', '', lock, 'true'], {}, /--datasource must be a non-empty string/],
        [['--database-url=', lock, 'true'], {}, /--database-url must be a URL, got an empty value/],
        [['--datasource=a\nb', lock, 'true'], {}, /--datasource must not contain control/],
        [
          [lock, 'true'],
          {DATABASE_URL: 'redis://x'},
          /must start with postgres:\/\/ or mysql:\/\//,
        ],
        [['bad\u0001name', 'true'], {}, /<lockName> must not contain control characters/],
      ];
      for (const [args, env, message] of cases) {
        const r = run(args, env, {cwd: dir});
        expect(await r.code).to.equal(64);
        expect(r.stderr()).to.match(message);
      }
    });

    it('shares the lock with an app: the app master waits; a disable stops the command (76)', async () => {
      const app = new (class extends RepositoryMixin(Application) {})({shutdown: {signals: []}});
      app.dataSource(new juggler.DataSource(dataSourceConfigFromUrl(server.url)), 'db');
      app.configure(MasterJobExecutorBindings.COMPONENT).to({
        initDelay: 0,
        checkMasterInterval: 500,
        heartbeatInterval: 200,
        leaseDuration: L,
        mountController: false,
      });
      app.component(MasterJobExecutorComponent);
      await app.migrateSchema();
      await app.start();
      try {
        const file = path.join(dir, `${lock}.log`);
        const cli = run(['--kill-grace', '500', lock, ...recorder(file, 20000)]);
        await waitFor('the command runs', () => lines(file).length === 1, 10000);
        const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
        let appStarted = false;
        executor.startMaster({
          lockName: lock,
          masterJob: {
            start: () => {
              appStarted = true;
            },
          },
        });
        await holdsFor('the app master stays out', () => !appStarted, 2 * L);
        const service = await app.get(MasterJobExecutorBindings.CONTROL_SERVICE);
        const disabledAt = mono();
        await service.disable(lock, 'testing the runner');
        expect(await cli.code).to.equal(76);
        note(`disable -> runner exited 76 in ${Math.round(mono() - disabledAt)} ms`);
        expect(cli.stderr()).to.match(/disabled: stopping the command/);
        expect(lines(file)).to.have.length(1); // SIGTERMed: no end line
        expect(await run(['--no-wait', lock, 'true']).code).to.equal(75); // disabled: busy
        await service.enable(lock);
        await waitFor('the app takes the lock once enabled', () => appStarted, 5000);
      } finally {
        await app.stop();
      }
    });

    it('forwards SIGTERM to the command, and releases the lock once the command exits', async () => {
      const file = path.join(dir, `${lock}.log`);
      const script = `trap 'echo term >> ${file}; exit 0' TERM; echo start >> ${file}; while :; do sleep 0.05; done`;
      const runner = run([lock, 'sh', '-c', script]);
      await waitFor('the command runs', () => lines(file).length === 1, 10000);
      runner.kill('SIGTERM');
      expect(await runner.code).to.equal(0); // the command's own exit code
      expect(lines(file)).to.eql(['start', 'term']);
      // Released, not left to expire: a --no-wait run gets it at once.
      expect(await run(['--no-wait', lock, 'true']).code).to.equal(0);
    });

    it('exits 69, saying so, when the database cannot be reached', async () => {
      const url =
        backend === 'postgresql'
          ? 'postgres://postgres@127.0.0.1:1/nowhere'
          : 'mysql://root@127.0.0.1:1/nowhere';
      const r = run([lock, 'true'], {DATABASE_URL: url});
      expect(await r.code).to.equal(69);
      expect(r.stderr()).to.match(/database unavailable/);
    });

    it('after a SIGKILL of the runner, the next run starts once the lease has expired', async () => {
      const file = path.join(dir, `${lock}.log`);
      const first = run([lock, 'sh', '-c', `echo "start $$" >> ${file}; exec sleep 3`]);
      await waitFor('the first command runs', () => lines(file).length === 1, 10000);
      first.kill('SIGKILL');
      const killedAt = mono();
      const second = run([lock, 'sh', '-c', `echo "second" >> ${file}`]);
      expect(await second.code).to.equal(0);
      const waited = mono() - killedAt;
      note(
        `the next run started and finished ${Math.round(waited)} ms after the SIGKILL (lease ${L})`,
      );
      expect(waited).to.be.within(L - 200 - 100, L + 500 + 3000);
    });

    it("run from an app's root with no DATABASE_URL, uses its datasource db (dist/datasources)", async () => {
      const root = tempApp([generated('db')]);
      const r = run([lock, ...TOKEN], {DATABASE_URL: undefined, DEBUG}, {cwd: root});
      expect(await r.code).to.equal(0);
      await r.closed;
      expect(r.stdout()).to.match(/^token=[1-9]\d*$/m);
      const file = path.join(root, 'dist', 'datasources', 'db.datasource.js');
      expect(r.stderr()).to.containEql(`datasource "db", class DbDataSource of ${file}`);
    });

    it('with --datasource other, uses dist/datasources/other.datasource.js; a URL comes first', async () => {
      const root = tempApp([generated('db', true), generated('other')]);
      const picked = run(
        ['--datasource', 'other', lock, ...TOKEN],
        {DATABASE_URL: undefined, DEBUG},
        {cwd: root},
      );
      expect(await picked.code).to.equal(0);
      await picked.closed;
      expect(picked.stdout()).to.match(/^token=[1-9]\d*$/m);
      expect(picked.stderr()).to.containEql(
        path.join(root, 'dist', 'datasources', 'other.datasource.js'),
      );
      // Without the flag: db, whose server does not answer (port 1).
      const byDefault = run([lock, 'true'], {DATABASE_URL: undefined}, {cwd: root});
      expect(await byDefault.code).to.equal(69);
      await byDefault.closed;
      expect(byDefault.stderr()).to.match(/database unavailable/);
      // DATABASE_URL, then --database-url, before any datasource.
      expect(await run([lock, 'true'], {}, {cwd: root}).code).to.equal(0);
      const flag = run(
        ['--database-url', server.url, '--datasource', 'db', lock, 'true'],
        {DATABASE_URL: undefined},
        {cwd: root},
      );
      expect(await flag.code).to.equal(0);
    });

    it('with no datasource to use, exits 64 saying what it looked for and the other ways', async () => {
      const noEnv = {DATABASE_URL: undefined};
      const check = async (root: string, args: string[], ...messages: (string | RegExp)[]) => {
        const r = run([...args, lock, 'true'], noEnv, {cwd: root});
        expect(await r.code).to.equal(64);
        await r.closed;
        for (const m of messages) {
          if (typeof m === 'string') expect(r.stderr()).to.containEql(m);
          else expect(r.stderr()).to.match(m);
        }
        return r.stderr().trim();
      };
      const ways = 'Set DATABASE_URL or --database-url';
      // Not built yet: src/datasources, no dist.
      const unbuilt = tempApp([generated('db')], {srcOnly: true});
      const dist = path.join(unbuilt, 'dist', 'datasources');
      note(
        await check(
          unbuilt,
          [],
          `${dist}${path.sep}*.datasource.js has no class with static dataSourceName "db"`,
          `${dist} does not exist`,
          ways,
          'build the app first (npm run build)',
        ),
      );
      // Built, but no datasource of that name.
      const built = tempApp([generated('db')]);
      await check(
        built,
        ['--datasource', 'other'],
        'dataSourceName "other"',
        'only db.datasource.js there',
        ways,
      );
      // A datasource of another connector.
      const memory = tempApp([
        {name: 'db', className: 'Db', config: {name: 'db', connector: 'memory'}},
      ]);
      await check(
        memory,
        [],
        /connector must be "postgresql" or "mysql", got "memory"/,
        'set DATABASE_URL or --database-url',
      );
    });
  });
}
