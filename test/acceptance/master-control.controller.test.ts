import {Client, expect, validateApiSpec} from '@loopback/testlab';
import {MasterJobExecutorBindings} from '../../src';
import {MasterControlRepository, MasterLockRepository} from '../../src/extension';
import {waitFor} from '../../cluster-kit';
import {RestApp, startedRestApp} from '../fixtures/rest-app';

const FORM = 'application/x-www-form-urlencoded';

describe('MasterControlController (memory)', () => {
  let app: RestApp;
  let client: Client;
  beforeEach(async () => ({app, client} = await startedRestApp()));
  afterEach(() => app.stop());

  it('disables and enables with exactly the curl calls of the README (form-urlencoded)', async () => {
    const disabled = await client
      .post('/api/MasterControls/disable')
      .set('Content-Type', FORM)
      .set('Accept', 'application/json')
      .send('lockName=JOB-SCHEDULER&reason=testing')
      .expect(200);
    expect(disabled.body).to.containDeep({
      lockName: 'JOB-SCHEDULER',
      enabled: false,
      reason: 'testing',
      changed: true,
    });
    expect(disabled.body.message).to.match(/disabled/);
    expect(new Date(disabled.body.updatedAt).getTime()).to.be.greaterThan(0);

    const enabled = await client
      .post('/api/MasterControls/enable')
      .set('Content-Type', FORM)
      .set('Accept', 'application/json')
      .send('lockName=JOB-SCHEDULER')
      .expect(200);
    expect(enabled.body).to.containDeep({
      lockName: 'JOB-SCHEDULER',
      enabled: true,
      changed: true,
    });
  });

  it('accepts JSON bodies and says when a repeat changed nothing', async () => {
    await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'A', reason: 'r1'})
      .expect(200);
    const again = await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'A', reason: 'r2'})
      .expect(200);
    expect(again.body).to.containDeep({
      enabled: false,
      reason: 'r1',
      changed: false,
    });
    expect(again.body.message).to.match(/already disabled/);
    await client.post('/api/MasterControls/enable').send({lockName: 'A'}).expect(200);
    const enableAgain = await client
      .post('/api/MasterControls/enable')
      .send({lockName: 'A'})
      .expect(200);
    expect(enableAgain.body).to.containDeep({enabled: true, changed: false});
    expect(enableAgain.body.message).to.match(/already enabled/);
    const never = await client
      .post('/api/MasterControls/enable')
      .send({lockName: 'NEVER'})
      .expect(200);
    expect(never.body).to.containDeep({
      lockName: 'NEVER',
      enabled: true,
      changed: false,
    });
  });

  it('leaves one control row after concurrent disables', async () => {
    const responses = await Promise.all(
      Array.from({length: 10}, (_, i) =>
        client.post('/api/MasterControls/disable').send({lockName: 'RACE', reason: `r${i}`}),
      ),
    );
    expect(responses.map(r => r.status)).to.eql(Array(10).fill(200));
    expect(responses.filter(r => r.body.changed)).to.have.length(1);
    const controls = await app.getRepository(MasterControlRepository);
    expect(await controls.count({lockName: 'RACE'})).to.eql({count: 1});
  });

  it('tells the other replicas as soon as the control row changed, before reading it back to reply', async () => {
    const order: string[] = [];
    app.bind(MasterJobExecutorBindings.NOTIFIER).to({
      publish: messages =>
        order.push(`publish ${messages.map(m => ('lockName' in m ? m.lockName : '*')).join()}`),
      subscribe: () => () => {},
      close: async () => {},
    });
    // The store announces the control's change: make it anew with this notifier.
    app.getBinding(MasterJobExecutorBindings.LOCK_STORE).refresh(app);
    const proto = MasterControlRepository.prototype as unknown as Record<string, Function>;
    for (const method of ['findById', 'findOne']) {
      const original = proto[method];
      proto[method] = function (this: unknown, ...args: unknown[]) {
        order.push('read');
        return original.apply(this, args);
      };
    }
    try {
      const disable = {lockName: 'JOB', reason: 'x'};
      await client.post('/api/MasterControls/disable').send(disable).expect(200);
      await client.post('/api/MasterControls/disable').send(disable).expect(200); // a repeat
      await client.post('/api/MasterControls/enable').send({lockName: 'JOB'}).expect(200);
    } finally {
      delete proto.findById;
      delete proto.findOne;
    }
    expect(order).to.eql(['publish JOB', 'read', 'read', 'publish JOB', 'read']);
  });

  it('waits, bounded, for a holder that has not renewed since its win, and warns if it never does', async () => {
    await app.stop();
    ({app, client} = await startedRestApp({config: {controlTimeout: 500}}));
    const locks = await app.getRepository(MasterLockRepository);
    const won = new Date();
    const holder = {instanceId: 'ghost', hostname: 'h', heartbeatAt: won, acquiredAt: won};
    await locks.create({lockName: 'WON', fencingToken: 1, renewalId: 'r1', ...holder});
    const sentAt = Date.now();
    const silent = await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'WON', reason: 'r'})
      .expect(200);
    expect(Date.now() - sentAt).to.be.within(390, 2000); // 0.8 x controlTimeout, then the reply
    expect(silent.body.message).to.match(/Warning: replica ghost won the lock just before/);
    // It renews while the next disable waits: the reply comes then, without a warning.
    const renewal = {heartbeatAt: new Date(won.getTime() + 1), renewalId: 'r2'};
    const renewing = setTimeout(() => {
      locks.updateById('WON', renewal).catch(() => {});
    }, 100);
    const again = await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'WON', reason: 'r'})
      .expect(200);
    clearTimeout(renewing);
    expect(again.body.message).to.not.match(/Warning/);
    // A holder that has renewed since its win has called start() already: no wait.
    const t = Date.now();
    await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'WON', reason: 'r'})
      .expect(200);
    expect(Date.now() - t).to.be.below(300);
  });

  it('stops the local master at once on disable and starts it again on enable', async () => {
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    const events: string[] = [];
    const master = executor.startMaster({
      lockName: 'JOB',
      masterJob: {
        start: () => {
          events.push('start');
        },
        stop: ctx => {
          events.push(`stop:${ctx.reason}`);
        },
      },
      checkMasterInterval: 60000,
      heartbeatInterval: 20000,
    });
    await waitFor('mastership', () => master.isMaster, 3000);
    await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'JOB', reason: 'maintenance'})
      .expect(200);
    await waitFor('start and stop', () => events.length === 2, 1000);
    expect(events).to.eql(['start', 'stop:disabled']);
    await client.post('/api/MasterControls/enable').send({lockName: 'JOB'}).expect(200);
    await waitFor('mastership again', () => master.isMaster, 1000);
    expect(events).to.eql(['start', 'stop:disabled', 'start']);
  });

  it('lists the controls and the status of every known lock', async () => {
    const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
    const master = executor.startMaster({
      lockName: 'RUNNING',
      masterJob: {start() {}},
    });
    await waitFor('mastership', () => master.isMaster, 3000);
    await client
      .post('/api/MasterControls/disable')
      .send({lockName: 'OFF', reason: 'not yet'})
      .expect(200);
    const list = await client.get('/api/MasterControls').expect(200);
    expect(list.body).to.containDeep([{lockName: 'OFF', enabled: false, reason: 'not yet'}]);
    const status = await client.get('/api/MasterControls/status').expect(200);
    expect(status.body.instanceId).to.equal(executor.instanceId);
    expect(status.body.locks).to.containDeep([
      {
        lockName: 'OFF',
        enabled: false,
        reason: 'not yet',
        holder: null,
        fencingToken: null,
      },
      {
        lockName: 'RUNNING',
        enabled: true,
        holder: executor.instanceId,
        fencingToken: 1,
      },
    ]);
    const running = status.body.locks.find((l: {lockName: string}) => l.lockName === 'RUNNING');
    expect(running.heartbeatAgeMs).to.be.within(-1000, 10000);
    expect(status.body.local).to.containDeep([{lockName: 'RUNNING', isMaster: true}]);
  });

  describe('bad input: a 4xx naming the field, never a 5xx', () => {
    const cases: [string, string, string | object, string, number, RegExp][] = [
      ['missing lockName', 'disable', {reason: 'x'}, 'json', 422, /lockName/],
      ['empty lockName', 'disable', 'lockName=&reason=x', 'form', 422, /lockName/],
      ['blank lockName', 'enable', {lockName: '   '}, 'json', 422, /lockName/],
      ['over-long lockName', 'enable', {lockName: 'x'.repeat(256)}, 'json', 422, /lockName/],
      ['missing reason', 'disable', 'lockName=JOB', 'form', 422, /reason/],
      ['empty reason', 'disable', {lockName: 'JOB', reason: ''}, 'json', 422, /reason/],
      [
        'over-long reason',
        'disable',
        {lockName: 'JOB', reason: 'r'.repeat(1001)},
        'json',
        422,
        /reason/,
      ],
      ['lockName not a string', 'disable', {lockName: 42, reason: 'x'}, 'json', 422, /lockName/],
      ['lockName an array', 'enable', 'lockName=A&lockName=B', 'form', 422, /lockName/],
      ['unknown field', 'enable', {lockName: 'JOB', force: true}, 'json', 422, /force/],
      ['malformed JSON', 'disable', '{"lockName": "JOB",', 'json', 400, /JSON|parse|Unexpected/i],
      ['wrong content type', 'disable', 'lockName=JOB', 'text', 415, /content-type|text\/plain/i],
      ['no body', 'enable', '', 'json', 400, /body|required/i],
      ['NUL in lockName', 'enable', {lockName: 'JOB\u0000'}, 'json', 422, /lockName/],
      ['NUL in lockName (form)', 'disable', 'lockName=A%00B&reason=x', 'form', 422, /lockName/],
      ['newline in reason', 'disable', {lockName: 'JOB', reason: 'a\nb'}, 'json', 422, /reason/],
      ['DEL in reason', 'disable', 'lockName=JOB&reason=a%7Fb', 'form', 422, /reason/],
      ['C1 control in lockName', 'enable', {lockName: 'A\u0085'}, 'json', 422, /lockName/],
      [
        'unpaired surrogate in lockName',
        'enable',
        '{"lockName": "A\\ud800"}',
        'json',
        422,
        /lockName/,
      ],
      [
        'unpaired surrogate in reason',
        'disable',
        '{"lockName": "A", "reason": "\\udc00"}',
        'json',
        422,
        /reason/,
      ],
    ];
    for (const [what, action, body, type, status, names] of cases) {
      it(`${what} -> ${status}`, async () => {
        const contentType = {
          json: 'application/json',
          form: FORM,
          text: 'text/plain',
        }[type]!;
        const res = await client
          .post(`/api/MasterControls/${action}`)
          .set('Content-Type', contentType)
          .send(typeof body === 'string' ? body : JSON.stringify(body));
        expect(res.status).to.equal(status);
        expect(JSON.stringify(res.body.error)).to.match(names);
      });
    }
  });

  it('documents both content types, with examples, in a valid OpenAPI spec', async () => {
    const spec = await app.restServer.getApiSpec();
    await validateApiSpec(spec);
    for (const action of ['disable', 'enable']) {
      const op = spec.paths[`/api/MasterControls/${action}`].post;
      expect(op.summary).to.be.a.String();
      expect(op.description).to.be.a.String();
      const content = op.requestBody.content;
      expect(Object.keys(content).sort()).to.eql([
        'application/json',
        'application/x-www-form-urlencoded',
      ]);
      expect(content[FORM].example.lockName).to.equal('JOB-SCHEDULER');
      const ref: string = content['application/json'].schema.$ref;
      const schema = spec.components!.schemas![ref.replace('#/components/schemas/', '')] as {
        properties: Record<string, {description?: string}>;
      };
      expect(schema.properties.lockName.description).to.be.a.String();
    }
    expect(spec.paths['/api/MasterControls/status'].get).to.be.ok();
  });
});

describe('MasterControlController options', () => {
  it('mounts under a configured path prefix', async () => {
    const {app, client} = await startedRestApp({config: {controllerPath: '/ops/masters'}});
    await client.post('/ops/masters/enable').send({lockName: 'JOB'}).expect(200);
    await client.post('/api/MasterControls/enable').send({lockName: 'JOB'}).expect(404);
    await app.stop();
  });

  it('can be left unmounted', async () => {
    const {app, client} = await startedRestApp({config: {mountController: false}});
    await client.post('/api/MasterControls/enable').send({lockName: 'JOB'}).expect(404);
    expect(
      (await app.restServer.getApiSpec()).paths['/api/MasterControls/enable'],
    ).to.be.undefined();
    await app.stop();
  });

  describe('protected by the host app authentication', () => {
    it('refuses an unauthenticated disable and accepts an authenticated one (controllerAuthentication)', async () => {
      const {app, client} = await startedRestApp({
        config: {controllerAuthentication: ['token']},
        auth: true,
      });
      await client
        .post('/api/MasterControls/disable')
        .send({lockName: 'JOB', reason: 'x'})
        .expect(401);
      const controls = await app.getRepository(MasterControlRepository);
      expect(await controls.count()).to.eql({count: 0});
      const res = await client
        .post('/api/MasterControls/disable')
        .set('Authorization', 'Bearer secret')
        .send({lockName: 'JOB', reason: 'x'})
        .expect(200);
      expect(res.body.updatedBy).to.equal('alice');
      await client.get('/api/MasterControls/status').expect(401);
      await app.stop();
    });

    it('is protected by the authentication default metadata of the app too', async () => {
      const {app, client} = await startedRestApp({
        auth: true,
        before: a =>
          a.configure('components.AuthenticationComponent').to({
            defaultMetadata: [{strategy: 'token'}],
          }),
      });
      await client.post('/api/MasterControls/enable').send({lockName: 'JOB'}).expect(401);
      await client
        .post('/api/MasterControls/enable')
        .set('Authorization', 'Bearer secret')
        .send({lockName: 'JOB'})
        .expect(200);
      await app.stop();
    });
  });
});
