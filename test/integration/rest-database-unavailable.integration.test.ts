// The REST edge while the database is unavailable, on PostgreSQL and
// MySQL/MariaDB (docs/rest-control.md): every endpoint that needs the
// database answers 503 DatabaseUnavailable, naming the datasource and the
// cause, with Retry-After, within controlTimeout; never a bare 500, never a
// hang. A write whose outcome is unknown says so. The health endpoint never
// needs the database. Once the database is back, every endpoint answers 200
// again and the lock has a master again.
//
// The app reaches the server through a TcpProxy, which makes the database:
//  (a) frozen: connections stay open, nothing is answered (a paused server);
//  (b) down: every connection cut, new ones refused;
//  (c) cut mid-request: every request on an established connection is
//      forwarded, then its connection is cut before the reply; new connections
//      are refused meanwhile (else a query on a fresh connection, which the
//      proxy spares for its first 300 ms, would get through at random).
//
// Each case calls the endpoints twice during the outage: one at a time right
// after the fault, then all at once once the master has expired (the pool then
// holds only dead or stuck connections). The observations are printed, then
// every expectation is checked and all failures are reported together.

import {BindingKey, inject, intercept} from '@loopback/core';
import {juggler, RepositoryMixin} from '@loopback/repository';
import {post, requestBody, RestApplication, RestBindings} from '@loopback/rest';
import {expect} from '@loopback/testlab';
import http from 'http';
import {
  Master,
  TaskQueue,
  MasterJobExecutor,
  MasterJobExecutorBindings,
  MasterJobExecutorComponent,
  MasterJobExecutorConfig,
} from '../../src';
import {
  answerDatabaseUnavailable,
  MasterControlRepository,
  MasterTaskRepository,
  MasterLockRepository,
} from '../../src/extension';
import {
  BackendName,
  disconnect,
  openTestDatabase,
  SQL_BACKENDS,
  TestDatabase,
} from '../fixtures/databases';
import {mono, serverAddress, sleep, waitFor} from '../../cluster-kit';
import {TcpProxy} from '../../cluster-kit';

class App extends RepositoryMixin(RestApplication) {}

const BASE = '/api/MasterControls';
const DATASOURCE_NAME = 'db';
/** ms; the bound of every answer that needs the database is this plus SLACK. */
const CONTROL_TIMEOUT = 1000;
const SLACK = 1000;
/** The health endpoint never waits for the database. */
const HEALTH_BOUND = 1000;
/** The client gives up here, to tell a slow answer from a hang. */
const CLIENT_LIMIT = CONTROL_TIMEOUT + 6000;
/** From the end of the outage to every endpoint answering 200 again, at most. */
const ENDPOINTS_RECOVERY = 5000;
/** From the end of the outage to a master again, at most. */
const MASTER_RECOVERY = 5000;
const LEASE = 1000;

// `controlTimeout` is the setting of docs/configuration.md (ms, default 5000).
const CONFIG: MasterJobExecutorConfig & {controlTimeout: number} = {
  initDelay: 0,
  checkMasterInterval: 200,
  heartbeatInterval: 200,
  leaseDuration: LEASE,
  controlTimeout: CONTROL_TIMEOUT,
};

type Kind = 'frozen' | 'down' | 'cut';

for (const backend of SQL_BACKENDS) {
  describe(`REST edge with the database unavailable on ${backend} (integration)`, function () {
    this.timeout(90000);
    restOutageSuite(backend);
  });
}

// ---- HTTP ----

/* eslint-disable @typescript-eslint/no-explicit-any */
interface Answer {
  /** HTTP status; 0: no answer within CLIENT_LIMIT; -1: the connection failed. */
  status: number;
  elapsed: number;
  headers: http.IncomingHttpHeaders;
  body: any;
  text: string;
  error?: string;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** One request on a connection of its own, timed from before it is sent to the end of the reply. */
function call(
  url: string,
  method: 'GET' | 'POST',
  path: string,
  body?: object,
  limit = CLIENT_LIMIT,
): Promise<Answer> {
  return new Promise(resolve => {
    const started = mono();
    const payload = body ? JSON.stringify(body) : undefined;
    let done = false;
    const finish = (answer: Omit<Answer, 'elapsed'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({...answer, elapsed: Math.round(mono() - started)});
    };
    const req = http.request(
      new URL(path, url),
      {
        method,
        agent: false,
        headers: {
          Accept: 'application/json',
          ...(payload
            ? {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload)}
            : {}),
        },
      },
      res => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', chunk => (text += chunk));
        res.on('error', err =>
          finish({status: -1, headers: res.headers, body: undefined, text, error: err.message}),
        );
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          finish({status: res.statusCode ?? -1, headers: res.headers, body: parsed, text});
        });
      },
    );
    const timer = setTimeout(() => {
      finish({
        status: 0,
        headers: {},
        body: undefined,
        text: '',
        error: `no answer in ${limit} ms`,
      });
      req.destroy();
    }, limit);
    req.on('error', err =>
      finish({status: -1, headers: {}, body: undefined, text: '', error: err.message}),
    );
    req.end(payload);
  });
}

interface Endpoint {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: object;
  write: boolean;
}

function databaseEndpoints(lockName: string): Endpoint[] {
  return [
    {
      name: 'POST disable',
      method: 'POST',
      path: `${BASE}/disable`,
      body: {lockName, reason: 'REST outage test'},
      write: true,
    },
    {name: 'POST enable', method: 'POST', path: `${BASE}/enable`, body: {lockName}, write: true},
    {name: 'GET list', method: 'GET', path: BASE, write: false},
    {name: 'GET status', method: 'GET', path: `${BASE}/status`, write: false},
    // An app's own endpoint that submits to a queue (a 503, never a hang).
    {
      name: 'POST task',
      method: 'POST',
      path: '/tasks',
      body: {id: `${lockName}-task`},
      write: true,
    },
  ];
}

const QUEUE_KEY = BindingKey.create<TaskQueue>('test.queue');

class TaskController {
  constructor(@inject(QUEUE_KEY) private readonly queue: TaskQueue) {}

  @intercept(answerDatabaseUnavailable)
  @post('/tasks')
  async submit(@requestBody() body: {id: string}): Promise<{taskId: number}> {
    return {taskId: await this.queue.submit(body, {key: body.id})};
  }
}

const HEALTH: Endpoint = {name: 'GET health', method: 'GET', path: `${BASE}/health`, write: false};

function describeAnswer(a: Answer, max = 300): string {
  const what =
    a.status === 0 ? 'no answer' : a.status === -1 ? `connection failed (${a.error})` : a.status;
  const retryAfter =
    a.headers['retry-after'] !== undefined ? ` Retry-After: ${a.headers['retry-after']}` : '';
  const text = a.text.length > max ? `${a.text.slice(0, max)}...` : a.text;
  return `${what} in ${a.elapsed} ms${retryAfter}${text ? ` ${text}` : ''}`;
}

/** Words of a cause: the message must say more than that the datasource is unavailable. */
const CAUSE =
  /time|respond|answer|within|refus|connect|reset|clos|terminat|lost|ECONN|EPIPE|unreachable|down|pause|hang/i;

/** What is wrong with an answer given during the outage; empty when it is right. */
function verdict(kind: Kind, endpoint: Endpoint, a: Answer): string[] {
  const failed: string[] = [];
  if (endpoint === HEALTH) {
    if (a.elapsed >= HEALTH_BOUND) failed.push(`took ${a.elapsed} ms (bound ${HEALTH_BOUND} ms)`);
    if (!(a.status === 200 || (a.status === 503 && a.body?.healthy === false))) {
      failed.push(`status ${a.status} (want 200, or 503 with healthy: false)`);
    }
    return failed;
  }
  if (a.elapsed >= CONTROL_TIMEOUT + SLACK) {
    failed.push(`took ${a.elapsed} ms (bound controlTimeout ${CONTROL_TIMEOUT} + ${SLACK} ms)`);
  }
  if (a.status !== 503) failed.push(`status ${a.status} (want 503)`);
  const retryAfter = a.headers['retry-after'];
  if (!/^[1-9]\d*$/.test(String(retryAfter))) {
    failed.push(`Retry-After ${JSON.stringify(retryAfter)} (want a positive integer of seconds)`);
  }
  const error = a.body?.error;
  if (error?.statusCode !== 503)
    failed.push(`error.statusCode ${JSON.stringify(error?.statusCode)} (want 503)`);
  if (error?.name !== 'DatabaseUnavailable') {
    failed.push(`error.name ${JSON.stringify(error?.name)} (want 'DatabaseUnavailable')`);
  }
  const message = error?.message;
  if (typeof message !== 'string') {
    failed.push('no error.message');
    return failed;
  }
  if (!new RegExp(`\\b${DATASOURCE_NAME}\\b`).test(message)) {
    failed.push(`error.message does not name the datasource '${DATASOURCE_NAME}'`);
  }
  if (!CAUSE.test(message)) failed.push(`error.message gives no cause (${CAUSE})`);
  if (kind === 'frozen' && endpoint.write && !/may|unknown/i.test(message)) {
    failed.push('error.message does not say the outcome of the write is unknown (/may|unknown/i)');
  }
  return failed;
}

/** Distinct lines with their counts. */
function summarise(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([l, n]) => (n > 1 ? `${l} (x${n})` : l));
}

// ---- the suite ----

function restOutageSuite(backend: BackendName): void {
  let db: TestDatabase | undefined;
  let proxy: TcpProxy | undefined;
  let dataSource: juggler.DataSource | undefined;
  let app: App | undefined;
  let url: string;
  let executor: MasterJobExecutor;
  let handle: Master;
  const prefix = `t${Math.random().toString(16).slice(2, 8)}-`;
  const LOCK = `${prefix}REST-OUTAGE`;
  /** Only for the writes of the recovery check: the lock of the master stays as it is. */
  const PROBE = `${prefix}REST-PROBE`;
  const QUEUE = `${prefix}REST-QUEUE`;
  const jobEvents: {event: 'start' | 'stop'; at: number; reason?: string}[] = [];
  const executorErrors: string[] = [];
  /** What the server logged of the requests it failed (LoopBack's LOG_ERROR), instead of stack traces. */
  const serverErrors: string[] = [];

  before(async function () {
    this.timeout(30000);
    db = await openTestDatabase(this, backend, 'mje_rest_outage');
    const address = serverAddress(backend as 'postgresql' | 'mysql');
    proxy = new TcpProxy({host: address.host, port: address.port});
    await proxy.start();
    dataSource = db.createDataSource({host: '127.0.0.1', port: proxy.port});
    app = new App({rest: {port: 0, host: '127.0.0.1'}});
    app.dataSource(dataSource, DATASOURCE_NAME);
    app.configure(MasterJobExecutorBindings.COMPONENT).to(CONFIG);
    app.component(MasterJobExecutorComponent);
    app
      .bind(RestBindings.SequenceActions.LOG_ERROR)
      .to((err: Error, statusCode: number, request: {method: string; url: string}) =>
        serverErrors.push(`${statusCode} ${request.method} ${request.url}: ${err.message}`),
      );
    await app.migrateSchema({existingSchema: 'alter'});
    await app.start();
    url = app.restServer.url!;
    executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    executor.on('error', (err: Error) => executorErrors.push(err.message));
    handle = executor.startMaster({
      lockName: LOCK,
      masterJob: {
        start: () => {
          jobEvents.push({event: 'start', at: mono()});
        },
        stop: ({reason}) => {
          jobEvents.push({event: 'stop', at: mono(), reason});
        },
      },
    });
    app.bind(QUEUE_KEY).to(executor.startQueue({queueName: QUEUE, handler: () => true}));
    app.controller(TaskController);
    await waitFor(`master of ${LOCK}`, () => handle.isMaster, 10000);
  });

  afterEach(async function () {
    this.timeout(30000);
    if (!app || !proxy) return;
    // Best effort: a failure here would skip the other cases.
    restoreProxy();
    const deadline = mono() + 10000;
    while (mono() < deadline) {
      const enabled = await call(url, 'POST', `${BASE}/enable`, {lockName: LOCK}, 2000);
      if (enabled.status === 200 && handle.isMaster) break;
      await sleep(200);
    }
  });

  after(async function () {
    this.timeout(30000);
    restoreProxy();
    if (app) {
      try {
        await executor?.stopAll(); // releases the lock, then its rows go
        for (const repo of [
          await app.getRepository(MasterControlRepository),
          await app.getRepository(MasterLockRepository),
        ]) {
          await repo.deleteAll({lockName: {inq: [LOCK, PROBE, QUEUE]}});
        }
        await (await app.getRepository(MasterTaskRepository)).deleteAll({queueName: QUEUE});
      } catch (err) {
        console.log(`      cleanup failed: ${err.message}`);
      }
      await app.stop();
    }
    if (dataSource) await disconnect(dataSource);
    await proxy?.close();
    await db?.close();
  });

  // ---- the proxy ----

  /** Case (c): every request on an established connection is cut; new connections are refused. */
  function cutEveryRequest(p: TcpProxy): void {
    p.refuseNew = true;
    p.cutNextRequests(Number.MAX_SAFE_INTEGER);
  }

  function restoreProxy(): void {
    if (!proxy) return;
    proxy.refuseNew = false;
    proxy.cutNextRequests(0);
    proxy.restore();
  }

  // ---- observations ----

  interface Observation {
    round: string;
    endpoint: Endpoint;
    answer: Answer;
    /** Case (c): connections the proxy cut mid-request while this call ran (any caller's). */
    cuts?: number;
  }

  async function callEndpoint(e: Endpoint, limit?: number): Promise<Answer> {
    return call(url, e.method, e.path, e.body, limit);
  }

  /** Every endpoint answers 200 (the pool warmed up with concurrent calls), before the fault. */
  async function baseline(): Promise<void> {
    await waitFor(`master of ${LOCK} before the fault`, () => handle.isMaster, 10000);
    for (let i = 0; i < 2; i++) {
      const answers = await Promise.all(
        [...databaseEndpoints(PROBE), HEALTH].map(async e => ({e, a: await callEndpoint(e, 5000)})),
      );
      for (const {e, a} of answers) {
        if (a.status !== 200) throw new Error(`before the fault, ${e.name}: ${describeAnswer(a)}`);
      }
    }
    const enabled = await call(url, 'POST', `${BASE}/enable`, {lockName: LOCK});
    if (enabled.status !== 200)
      throw new Error(`before the fault, enable: ${describeAnswer(enabled)}`);
    // The pool's connections are now past the proxy's 300 ms of a handshake.
    await sleep(400);
  }

  interface Recovery {
    restoredAt: number;
    /** Per endpoint: ms from the restore to its first 200, or its last answer. */
    endpoints: {endpoint: Endpoint; okIn?: number; last: Answer}[];
    masterIn?: number;
    /** The lock was found disabled after the restore: a write of the outage landed late. */
    lateDisable: boolean;
    holder?: string | null;
  }

  async function recover(): Promise<Recovery> {
    restoreProxy();
    const restoredAt = mono();
    const endpoints = [
      {endpoint: databaseEndpoints(PROBE)[0]},
      {endpoint: databaseEndpoints(LOCK)[1]},
      {endpoint: databaseEndpoints(LOCK)[2]},
      {endpoint: databaseEndpoints(LOCK)[3]},
      {endpoint: databaseEndpoints(LOCK)[4]},
      {endpoint: HEALTH},
    ].map(e => ({
      ...e,
      okIn: undefined as number | undefined,
      last: undefined as unknown as Answer,
    }));
    while (mono() - restoredAt < ENDPOINTS_RECOVERY) {
      for (const e of endpoints) {
        if (e.okIn !== undefined) continue;
        e.last = await callEndpoint(e.endpoint, 2000);
        if (e.last.status === 200) e.okIn = Math.round(mono() - restoredAt);
      }
      if (endpoints.every(e => e.okIn !== undefined)) break;
      await sleep(100);
    }
    // A master again; a disable of the outage may land late, then enable again.
    let lateDisable = false;
    let masterIn: number | undefined;
    let holder: string | null | undefined;
    while (mono() - restoredAt < MASTER_RECOVERY + 2000) {
      const list = await call(url, 'GET', BASE, undefined, 2000);
      const control = Array.isArray(list.body)
        ? list.body.find((c: {lockName: string}) => c.lockName === LOCK)
        : undefined;
      if (control && control.enabled === false) {
        lateDisable = true;
        await call(url, 'POST', `${BASE}/enable`, {lockName: LOCK}, 2000);
      }
      if (handle.isMaster) {
        masterIn = Math.round(mono() - restoredAt);
        break;
      }
      await sleep(50);
    }
    if (masterIn !== undefined) {
      const status = await call(url, 'GET', `${BASE}/status`, undefined, 2000);
      holder = status.body?.locks?.find((l: {lockName: string}) => l.lockName === LOCK)?.holder;
    }
    return {restoredAt, endpoints, masterIn, lateDisable, holder};
  }

  async function runCase(kind: Kind): Promise<void> {
    const p = proxy!;
    await baseline();
    const cutsBefore = p.cutMidRequest;
    const refusedBefore = proxy!.refused;
    const errorsBefore = executorErrors.length;
    const stopsBefore = jobEvents.filter(e => e.event === 'stop').length;

    const faultAt = mono();
    if (kind === 'frozen') p.freeze();
    else if (kind === 'down') p.down();
    else cutEveryRequest(p);

    const serverErrorsBefore = serverErrors.length;
    const observations: Observation[] = [];
    // Round 1: one at a time, right after the fault.
    for (const e of [...databaseEndpoints(LOCK), HEALTH]) {
      const cutsAtStart = p.cutMidRequest;
      const answer = await callEndpoint(e);
      observations.push({round: '1', endpoint: e, answer, cuts: p.cutMidRequest - cutsAtStart});
    }
    // Round 2: all at once, once the master has stopped (or its lease is over).
    const waitedFrom = mono();
    const expiredIn = await waitFor(
      'the master stops during the outage',
      () => !handle.isMaster,
      Math.max(0, faultAt + LEASE + 1000 - mono()),
    ).then(
      () => mono() - waitedFrom,
      () => undefined,
    );
    const round2 = await Promise.all(
      [...databaseEndpoints(LOCK), HEALTH].map(async e => ({
        round: '2',
        endpoint: e,
        answer: await callEndpoint(e),
      })),
    );
    observations.push(...round2);
    const masterStoppedInOutage = jobEvents
      .filter(e => e.event === 'stop')
      .slice(stopsBefore)
      .map(e => e.reason);
    const outageMs = Math.round(mono() - faultAt);
    const cuts = p.cutMidRequest - cutsBefore;
    const refused = proxy!.refused - refusedBefore;
    const modeDuringOutage = p.mode;

    const recovery = await recover();

    // ---- report ----
    const lines = [
      `${backend} ${kind}: outage of ${outageMs} ms; master stopped ${
        expiredIn === undefined ? 'NOT' : `(${masterStoppedInOutage.join(', ')})`
      } during it; proxy mode ${modeDuringOutage}` +
        (kind === 'cut' ? `, ${cuts} requests cut mid-way, ${refused} connections refused` : '') +
        `; ${executorErrors.length - errorsBefore} election errors`,
      ...observations.map(
        o =>
          `  round ${o.round} ${o.endpoint.name}: ${describeAnswer(o.answer)}` +
          (kind === 'cut' && o.cuts !== undefined ? ` [${o.cuts} cut meanwhile]` : ''),
      ),
      ...summarise(serverErrors.slice(serverErrorsBefore)).map(l => `  server logged: ${l}`),
      `  after restore: ${recovery.endpoints
        .map(
          e =>
            `${e.endpoint.name} ${e.okIn !== undefined ? `200 in ${e.okIn} ms` : describeAnswer(e.last)}`,
        )
        .join('; ')}`,
      `  master again ${recovery.masterIn !== undefined ? `in ${recovery.masterIn} ms` : 'NOT'}` +
        ` (holder in the database: ${recovery.holder ?? 'none'})` +
        (recovery.lateDisable ? '; a disable of the outage landed late' : ''),
    ];
    // Printed when something failed, or with VERBOSE=1.
    const report = lines.map(l => `      ${l}`).join('\n');
    if (process.env.VERBOSE) console.log(report);

    // ---- checks ----
    const problems: string[] = [];
    const check = (what: string, assertion: () => void) => {
      try {
        assertion();
      } catch (err) {
        problems.push(`${what}: ${err.message}`);
      }
    };
    // The fault took effect.
    check('the master stopped during the outage', () => expect(expiredIn).to.not.be.undefined());
    if (kind === 'frozen') check('proxy frozen', () => expect(modeDuringOutage).to.equal('frozen'));
    if (kind === 'down') check('proxy down', () => expect(modeDuringOutage).to.equal('down'));
    if (kind === 'cut') {
      check('requests were cut mid-way', () => expect(cuts).to.be.above(0));
      check('the first request of the outage met a connection cut mid-request', () =>
        expect(observations[0].cuts).to.be.above(0),
      );
    }

    for (const {round, endpoint, answer} of observations) {
      const failed = verdict(kind, endpoint, answer);
      if (failed.length) {
        problems.push(
          `round ${round} ${endpoint.name} (${describeAnswer(answer, 160)}): ${failed.join('; ')}`,
        );
      }
    }

    // After the restore: still up, every endpoint 200 again, one master again.
    check('the process still serves HTTP after the outage', () =>
      expect(recovery.endpoints.find(e => e.endpoint === HEALTH)!.last.status).to.be.oneOf(
        200,
        503,
      ),
    );
    for (const e of recovery.endpoints) {
      check(
        `after the restore, ${e.endpoint.name} answers 200 within ${ENDPOINTS_RECOVERY} ms (last: ${
          e.last ? describeAnswer(e.last) : 'none'
        })`,
        () => expect(e.okIn).to.not.be.undefined(),
      );
    }
    check(`after the restore, the master again within ${MASTER_RECOVERY} ms`, () => {
      expect(recovery.masterIn).to.not.be.undefined();
      expect(recovery.masterIn!).to.be.below(MASTER_RECOVERY + (recovery.lateDisable ? 2000 : 0));
    });
    check('after the restore, exactly one master: this replica, the holder in the database', () => {
      expect(executor.getMaster(LOCK)).to.equal(handle);
      expect(handle.isMaster).to.be.true();
      expect(recovery.holder).to.equal(executor.instanceId);
    });

    if (problems.length) {
      if (!process.env.VERBOSE) console.log(report);
      throw new Error(`${problems.length} expectations failed:\n  ${problems.join('\n  ')}`);
    }
  }

  it('(a) a frozen server (replies withheld): every endpoint 503 DatabaseUnavailable in time, writes say the outcome is unknown; then 200 and one master again', async () => {
    await runCase('frozen');
  });

  it('(b) a refusing server (connections cut, new ones refused): every endpoint 503 DatabaseUnavailable in time; then 200 and one master again', async () => {
    await runCase('down');
  });

  it('(c) connections dropped mid-request: every endpoint 503 DatabaseUnavailable in time; then 200 and one master again', async () => {
    await runCase('cut');
  });
}
