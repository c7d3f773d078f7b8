// The REST control across replicas: several REST apps in this process, each
// with its own datasource (own pool) on the same SQL database.

import {juggler, RepositoryMixin} from '@loopback/repository';
import {RestApplication} from '@loopback/rest';
import {Client, createRestAppClient, expect} from '@loopback/testlab';
import {
  MasterJobContext,
  MasterJobExecutor,
  MasterJobExecutorBindings,
  MasterJobExecutorComponent,
  MasterJobExecutorConfig,
} from '../../src';
import {
  WakeUp,
  MasterControlRepository,
  MasterLock,
  MasterLockRepository,
} from '../../src/extension';
import {holdsFor, mono, sleep, TcpProxy, waitFor, withPg} from '../../cluster-kit';
import {createNotifier} from '../../src/store/dialects';
import {PostgresNotifier} from '../../src/store/postgres/postgres-notifier';
import {sqlBuilder} from '../../src/store/postgres/sql';
import {FAST} from '../fixtures/cluster';
import {
  DataSourceOptions,
  openTestDatabase,
  SQL_BACKENDS,
  TestDatabase,
} from '../fixtures/databases';

class RestApp extends RepositoryMixin(RestApplication) {}

interface Replica {
  app: RestApp;
  client: Client;
  executor: MasterJobExecutor;
}

interface JobEvent {
  kind: 'start' | 'stop';
  instanceId: string;
  at: number;
  reason?: string;
}

const H = FAST.heartbeatInterval;
const C = 1000; // long polls: the control must not depend on them

for (const backend of SQL_BACKENDS) {
  describe(`MasterControlController across replicas on ${backend} (acceptance)`, function () {
    this.timeout(30000);
    let db: TestDatabase;
    let replicas: Replica[] = [];
    let events: JobEvent[] = [];
    let lockName: string;
    let seq = 0;

    before(async function () {
      db = await openTestDatabase(this, backend, 'mje_control');
    });
    after(() => db?.close());

    beforeEach(async () => {
      events = [];
      lockName = `CTL-${process.pid}-${++seq}`;
      replicas = [];
      for (let i = 0; i < 3; i++) replicas.push(await givenReplica(`r${i}`));
    });
    afterEach(async () => {
      await Promise.all(replicas.map(r => r.app.stop()));
    });

    async function givenReplica(
      instanceId: string,
      dataSourceOptions: DataSourceOptions = {},
      config: MasterJobExecutorConfig = {},
    ): Promise<Replica> {
      const app = new RestApp({rest: {port: 0, host: '127.0.0.1'}});
      app.dataSource(db.createDataSource(dataSourceOptions));
      app
        .configure(MasterJobExecutorBindings.COMPONENT)
        .to({...FAST, checkMasterInterval: C, instanceId, ...config});
      app.component(MasterJobExecutorComponent);
      await app.migrateSchema();
      await app.start();
      return {
        app,
        client: createRestAppClient(app),
        executor: await app.get(MasterJobExecutorBindings.EXECUTOR),
      };
    }

    function startAll(): void {
      const record = (kind: 'start' | 'stop') => (ctx: MasterJobContext) => {
        events.push({
          kind,
          instanceId: ctx.instanceId,
          at: mono(),
          reason: ctx.reason,
        });
      };
      for (const r of replicas) {
        r.executor.startMaster({
          lockName,
          masterJob: {start: record('start'), stop: record('stop')},
        });
      }
    }

    const masters = () => replicas.filter(r => r.executor.getMaster(lockName)?.isMaster);

    async function soleMaster(): Promise<Replica> {
      await waitFor('one master', () => masters().length === 1, 5000);
      return masters()[0];
    }

    if (backend === 'postgresql') {
      it('writes a disable or enable and its NOTIFY in one statement', async () => {
        startAll();
        const master = await soleMaster();
        const other = replicas.find(r => r !== master)!;
        const ds = await other.app.get<juggler.DataSource>('datasources.db');
        const connector = ds.connector as unknown as {execute: (...args: unknown[]) => unknown};
        const execute = connector.execute;
        const sql: string[] = [];
        connector.execute = function (this: unknown, ...args: unknown[]) {
          sql.push(String(args[0]));
          return execute.apply(this, args);
        };
        try {
          // The first disable of a lock creates its row (INSERT, then NOTIFY); later ones flip it.
          for (const round of [1, 2]) {
            sql.length = 0;
            await soleMaster();
            await other.client.post('/api/MasterControls/disable').send({lockName, reason: 'x'});
            await waitFor(`the master stopped (${round})`, () => masters().length === 0, H);
            await other.client.post('/api/MasterControls/enable').send({lockName}).expect(200);
          }
        } finally {
          connector.execute = execute;
        }
        // (A takeover's statement reads the control: not a write of it.)
        const controlWrites = sql.filter(q =>
          /^(WITH updated AS \()?(UPDATE|INSERT INTO) "public"."mastercontrol"/.test(q),
        );
        expect(controlWrites).to.have.length(2);
        for (const q of controlWrites) {
          expect(q).to.match(/^WITH updated AS \(UPDATE "public"."mastercontrol" .*pg_notify\(/s);
        }
        expect(sql.filter(q => /^SELECT pg_notify/.test(q))).to.eql([]);
      });
    }

    if (backend === 'postgresql') {
      it('tells, with an enable, what the disabled master left on the lock for a takeover unread', async () => {
        startAll();
        const master = await soleMaster();
        const other = replicas.find(r => r !== master)!;
        await other.client.post('/api/MasterControls/disable').send({lockName, reason: 'x'});
        const locks = await other.app.getRepository(MasterLockRepository);
        const freeRow = async () => {
          const row = await locks.findById(lockName);
          return row.instanceId === '' ? row : undefined;
        };
        await waitFor('the disabled master released', async () => !!(await freeRow()), 2000);
        const row = (await freeRow())!;
        // Another replica's ear.
        const listener = createNotifier(db.createDataSource());
        const heard: WakeUp[] = [];
        listener.subscribe(m => m.kind === 'control' && m.lockName === lockName && heard.push(m));
        try {
          await waitFor('LISTEN', () => (listener as PostgresNotifier).listening, 5000);
          await other.client.post('/api/MasterControls/enable').send({lockName}).expect(200);
          await waitFor('the enable heard', () => heard.length > 0, 2000);
          expect(heard).to.deepEqual([
            {
              kind: 'control',
              lockName,
              control: 'enabled',
              freed: {fencingToken: Number(row.fencingToken), renewalId: row.renewalId},
            },
          ]);
          const next = await soleMaster();
          expect(next.executor.getMaster(lockName)!.fencingToken).to.equal(
            Number(row.fencingToken) + 1,
          );
        } finally {
          await listener.close();
        }
      });
    }

    it('disable on a non-master replica stops the master within one heartbeat; enable elsewhere restarts it', async () => {
      startAll();
      const master = await soleMaster();
      const [other, third] = replicas.filter(r => r !== master);
      const sent = mono();
      const res = await other.client
        .post('/api/MasterControls/disable')
        .type('form')
        .send(`lockName=${lockName}&reason=testing`)
        .expect(200);
      expect(res.body).to.containDeep({
        lockName,
        enabled: false,
        changed: true,
      });
      await waitFor('the master stops', () => events.some(e => e.kind === 'stop'), H + 500);
      const stop = events.find(e => e.kind === 'stop')!;
      expect(stop).to.containDeep({
        instanceId: master.executor.instanceId,
        reason: 'disabled',
      });
      // within one heartbeat, plus round trips on a machine shared with other tests
      expect(stop.at - sent).to.be.below(H + 500);
      await holdsFor(
        'nobody starts while disabled',
        () => events.filter(e => e.kind === 'start').length === 1,
        2 * C,
      );
      const status = await third.client.get('/api/MasterControls/status').expect(200);
      expect(status.body.locks).to.containDeep([
        {lockName, enabled: false, reason: 'testing', holder: null},
      ]);

      const enabledAt = mono();
      await third.client
        .post('/api/MasterControls/enable')
        .type('form')
        .send(`lockName=${lockName}`)
        .expect(200);
      await waitFor(
        'a replica starts again',
        () => events.filter(e => e.kind === 'start').length === 2,
        C + 500,
      );
      expect(events[events.length - 1].at - enabledAt).to.be.below(C);
      await soleMaster();
    });

    it('no replica starts after disable returns, even one acquiring at that moment', async () => {
      startAll();
      for (let round = 0; round < 5; round++) {
        const master = await soleMaster();
        const other = replicas.find(r => r !== master)!;
        // The master hands over (the others race to acquire) while the disable runs.
        const handover = master.executor.stopMaster(lockName);
        const res = await other.client
          .post('/api/MasterControls/disable')
          .send({lockName, reason: `round ${round}`});
        const disabledAt = mono();
        expect(res.status).to.equal(200);
        await handover;
        await holdsFor(
          'nobody starts after the disable returned',
          () => !events.some(e => e.kind === 'start' && e.at > disabledAt),
          3 * H,
        );
        await waitFor('nobody is master', () => masters().length === 0, H + 500);
        await holdsFor('still nobody', () => masters().length === 0, 2 * H);
        // back to the start: the stopped replica campaigns again, then enable
        master.executor.startMaster({
          lockName,
          masterJob: {
            start: ctx => {
              events.push({
                kind: 'start',
                instanceId: ctx.instanceId,
                at: mono(),
              });
            },
            stop: ctx => {
              events.push({
                kind: 'stop',
                instanceId: ctx.instanceId,
                at: mono(),
                reason: ctx.reason,
              });
            },
          },
        });
        await other.client.post('/api/MasterControls/enable').send({lockName}).expect(200);
      }
      expectNoOverlap(events);
    });

    it('no start() after disable returns, even by a winner whose replies are slow', async () => {
      // The winner's replies come `latency` after the database answered: its
      // win (and, on MySQL, its read of the control after the win) happened
      // before the disable committed, and its start() would come after the
      // disable returned, unless the disable waits for it.
      const latency = 300;
      const proxy = new TcpProxy({host: db.address!.host, port: db.address!.port});
      await proxy.start();
      const slow = await givenReplica('slow', {host: '127.0.0.1', port: proxy.port});
      try {
        await raceDisableWith(slow, proxy, latency);
      } finally {
        proxy.latency = 0;
        await slow.app.stop();
        await proxy.close();
      }
    });

    async function raceDisableWith(slow: Replica, proxy: TcpProxy, latency: number) {
      const timings = {leaseDuration: 4000, heartbeatInterval: 1000, checkMasterInterval: 2000};
      const job = (instanceId: string) => ({
        start: () => {
          events.push({kind: 'start', instanceId, at: mono()});
        },
        stop: () => {
          events.push({kind: 'stop', instanceId, at: mono()});
        },
      });
      const [first, caller] = replicas;
      first.executor.startMaster({lockName, ...timings, masterJob: job('r0')});
      await waitFor('r0 master', () => first.executor.getMaster(lockName)?.isMaster === true, 5000);
      slow.executor.startMaster({lockName, ...timings, masterJob: job('slow')});
      await waitFor(
        'slow campaigns',
        () => slow.executor.getMaster(lockName)?.state === 'slave',
        5000,
      );
      proxy.latency = latency;
      const locks = await first.app.getRepository(MasterLockRepository);
      const handover = first.executor.stopMaster(lockName);
      await waitFor(
        'the slow replica wins',
        async () => (await locks.findOne({where: {lockName}}))?.instanceId === 'slow',
        10000,
        1,
      );
      // PostgreSQL reads the control in the statement of the win; MySQL in
      // the next one, which reaches the server 2 latencies after the win.
      if (backend === 'mysql') await sleep(2.5 * latency);
      const res = await caller.client
        .post('/api/MasterControls/disable')
        .send({lockName, reason: 'race'});
      const returnedAt = mono();
      expect(res.status).to.equal(200);
      await handover;
      await holdsFor(
        'nobody starts after the disable returned',
        () => !events.some(e => e.kind === 'start' && e.at > returnedAt),
        3 * latency,
      );
      const all = [...replicas, slow];
      await waitFor(
        'nobody is master',
        () => !all.some(r => r.executor.getMaster(lockName)?.isMaster),
        5000,
      );
      expect(res.body.message).to.not.match(/Warning/);
    }

    if (backend === 'postgresql') {
      it('a first disable waits for a takeover in flight, and sees its winner', async () => {
        // The takeover's statement began before the disable's INSERT of the
        // control row, so it reads no control: enabled. The disable must see
        // the winner all the same, and wait for it.
        const caller = await givenReplica('caller', {}, {controlTimeout: 1000});
        const ds = await caller.app.get<juggler.DataSource>('datasources.db');
        const locks = await caller.app.getRepository(MasterLockRepository);
        const past = new Date(Date.now() - 5000);
        await locks.create({
          lockName,
          instanceId: 'old',
          hostname: 'h',
          fencingToken: 1,
          renewalId: 'old-1',
          acquiredAt: past,
          heartbeatAt: new Date(), // renewed since its win: started long ago
        });
        const now = new Date();
        const takeover = sqlBuilder(ds).buildUpdate(
          MasterLock.modelName,
          {lockName},
          {
            instanceId: 'winner',
            fencingToken: 2,
            renewalId: 'won',
            heartbeatAt: now,
            acquiredAt: now,
          },
        );
        try {
          await withPg(
            db.address!,
            async client => {
              await client.query('BEGIN');
              await client.query(takeover.sql, takeover.params);
              let answered = false;
              const disabling = caller.client
                .post('/api/MasterControls/disable')
                .send({lockName, reason: 'first'})
                .then(res => {
                  answered = true;
                  return res;
                });
              await holdsFor('the disable waits for the takeover to commit', () => !answered, 300);
              await client.query('COMMIT');
              const res = await disabling;
              expect(res.status).to.equal(200);
              // The winner never renews here: the disable waited for it, then said so.
              expect(res.body.message).to.match(/Warning: replica winner won the lock just before/);
            },
            {database: db.database},
          );
        } finally {
          await caller.app.stop();
        }
      });
    }

    it('leaves one control row after concurrent disables on every replica', async () => {
      const responses = await Promise.all(
        replicas.flatMap(r =>
          [1, 2, 3].map(i =>
            r.client.post('/api/MasterControls/disable').send({lockName, reason: `r${i}`}),
          ),
        ),
      );
      expect(responses.map(r => r.status)).to.eql(Array(9).fill(200));
      expect(responses.filter(r => r.body.changed)).to.have.length(1);
      const controls = await replicas[0].app.getRepository(MasterControlRepository);
      expect(await controls.count({lockName})).to.eql({count: 1});
    });
  });
}

function expectNoOverlap(events: JobEvent[]): void {
  let running: JobEvent | undefined;
  for (const e of [...events].sort((a, b) => a.at - b.at)) {
    if (e.kind === 'start') {
      if (running) throw new Error(`${e.instanceId} started while ${running.instanceId} ran`);
      running = e;
    } else if (running?.instanceId === e.instanceId) {
      running = undefined;
    }
  }
}
