// The REST edge as docs/rest-control.md states it, on the memory connector: the
// `known` flag, the OpenAPI document, and authentication that fails closed.

import {AuthenticationBindings} from '@loopback/authentication';
import {DefaultSequence} from '@loopback/rest';
import {Client, expect, validateApiSpec} from '@loopback/testlab';
import {MasterJobExecutorBindings} from '../../src';
import {givenRestApp, RestApp, startedRestApp} from '../fixtures/rest-app';

const TOKEN = {Authorization: 'Bearer secret'};

describe('REST edge (memory)', () => {
  describe('known: whether any replica started the lock', () => {
    let app: RestApp;
    let client: Client;
    before(async () => ({app, client} = await startedRestApp()));
    after(() => app.stop());

    it('warns of a possible typo when no replica has started the lock', async () => {
      const res = await client
        .post('/api/MasterControls/disable')
        .send({lockName: 'JOB-SCHEDULR', reason: 'typo'})
        .expect(200);
      expect(res.body).to.containDeep({lockName: 'JOB-SCHEDULR', known: false, changed: true});
      expect(res.body.message).to.match(/no replica has started this lock yet; check the spelling/);
      const enabled = await client
        .post('/api/MasterControls/enable')
        .send({lockName: 'NEVER-DISABLED'})
        .expect(200);
      expect(enabled.body).to.containDeep({known: false, changed: false});
      expect(enabled.body.message).to.match(/check the spelling/);
    });

    it('says known: true, without the warning, for a lock a replica started', async () => {
      const executor = await app.get(MasterJobExecutorBindings.EXECUTOR);
      executor.startMaster({lockName: 'JOB-SCHEDULER', masterJob: {start() {}}});
      const res = await client
        .post('/api/MasterControls/disable')
        .send({lockName: 'JOB-SCHEDULER', reason: 'maintenance'})
        .expect(200);
      expect(res.body).to.containDeep({known: true, changed: true});
      expect(res.body.message).to.not.match(/spelling/);
      const enabled = await client
        .post('/api/MasterControls/enable')
        .send({lockName: 'JOB-SCHEDULER'})
        .expect(200);
      expect(enabled.body).to.containDeep({known: true, changed: true});
    });
  });

  describe('OpenAPI', () => {
    let app: RestApp;
    before(
      async () =>
        ({app} = await startedRestApp({config: {controllerAuthentication: ['token']}, auth: true})),
    );
    after(() => app.stop());

    it('tags the operations MasterControls, describes the tag, documents every error with an example', async () => {
      const spec = await app.restServer.getApiSpec();
      await validateApiSpec(spec);
      const tag = spec.tags?.find(t => t.name === 'MasterControls');
      expect(tag?.description).to.match(/disable a job on every replica/);
      const op = (path: string, verb: 'get' | 'post') =>
        spec.paths[`/api/MasterControls${path}`][verb];
      for (const [path, verb, codes] of [
        ['/disable', 'post', ['200', '400', '401', '415', '422', '503']],
        ['/enable', 'post', ['200', '400', '401', '415', '422', '503']],
        ['', 'get', ['200', '401', '503']],
        ['/status', 'get', ['200', '401', '503']],
        ['/health', 'get', ['200', '503']],
      ] as const) {
        const operation = op(path, verb);
        expect(operation.tags).to.eql(['MasterControls']);
        expect(Object.keys(operation.responses).sort()).to.eql([...codes].sort());
        for (const code of codes.filter(c => c !== '200' && path !== '/health')) {
          const example = operation.responses[code].content['application/json'].example;
          expect(example.error.statusCode).to.equal(Number(code));
        }
      }
      const unavailable = op('/disable', 'post').responses['503'];
      expect(unavailable.content['application/json'].example.error.name).to.equal(
        'DatabaseUnavailable',
      );
      expect(unavailable.headers['Retry-After']).to.be.ok();
      expect(unavailable.content['application/json'].example.error.message).to.match(
        /outcome unknown/,
      );
      const readUnavailable = op('/status', 'get').responses['503'].content['application/json'];
      expect(readUnavailable.example.error.message).to.not.match(/outcome|applied/);
      const replied = op('/disable', 'post').responses['200'].content['application/json'].example;
      expect(replied).to.containDeep({known: true, changed: true});
    });
  });

  describe('authentication fails closed', () => {
    let app: RestApp | undefined;
    afterEach(async () => {
      // An app whose start failed stays 'initializing': LoopBack refuses to stop it.
      await app?.stop().catch(() => {});
      app = undefined;
    });

    it('protects the endpoints whether app.configure() comes before or after app.component()', async () => {
      for (const configureLate of [false, true]) {
        const s = await startedRestApp({
          config: {controllerAuthentication: ['token']},
          auth: true,
          configureLate,
        });
        app = s.app;
        await s.client.post('/api/MasterControls/enable').send({lockName: 'JOB'}).expect(401);
        await s.client.get('/api/MasterControls/status').expect(401);
        await s.client.get('/api/MasterControls').set(TOKEN).expect(200);
        await s.app.stop();
      }
    });

    it('is a startup error when AuthenticationComponent is not mounted', async () => {
      app = givenRestApp({config: {controllerAuthentication: ['token']}});
      await expect(app.start()).to.be.rejectedWith(/AuthenticationComponent is not mounted/);
    });

    it('is a startup error when a strategy is not registered', async () => {
      app = givenRestApp({config: {controllerAuthentication: {control: ['tokn']}}, auth: true});
      await expect(app.start()).to.be.rejectedWith(/names strategy tokn.*registered: token/);
    });

    it('is a startup error when the setting has a wrong shape, naming it', async () => {
      for (const [value, message] of [
        ['token', /controllerAuthentication must be a list of strategy names/],
        [[], /controllerAuthentication must be a non-empty list/],
        [
          {control: [''], read: ['token']},
          /controllerAuthentication.control must be a non-empty list/,
        ],
        [{admin: ['token']}, /unknown group admin/],
      ] as const) {
        const a = givenRestApp({config: {controllerAuthentication: value as never}, auth: true});
        await expect(a.start()).to.be.rejectedWith(message);
      }
    });

    it('leaves the health endpoint open unless its group is listed', async () => {
      const open = await startedRestApp({
        config: {controllerAuthentication: ['token']},
        auth: true,
      });
      app = open.app;
      await open.client.get('/api/MasterControls/health').expect(200);
      await open.app.stop();
      const closed = await startedRestApp({
        config: {controllerAuthentication: {health: ['token']}},
        auth: true,
      });
      app = closed.app;
      await closed.client.get('/api/MasterControls/health').expect(401);
      await closed.client.get('/api/MasterControls/health').set(TOKEN).expect(200);
      await closed.client.get('/api/MasterControls/status').expect(200); // read not listed: open
    });

    it('leaves the health endpoint open when the app protects everything by default metadata', async () => {
      const s = await startedRestApp({
        auth: true,
        before: a =>
          a
            .configure(AuthenticationBindings.COMPONENT)
            .to({defaultMetadata: [{strategy: 'token'}]}),
      });
      app = s.app;
      await s.client.get('/api/MasterControls/health').expect(200);
      await s.client.get('/api/MasterControls/status').expect(401);
    });

    it('protects control and read-only endpoints separately', async () => {
      const s = await startedRestApp({
        config: {controllerAuthentication: {control: ['token']}},
        auth: true,
      });
      app = s.app;
      await s.client.get('/api/MasterControls/status').expect(200);
      await s.client.get('/api/MasterControls').expect(200);
      await s.client
        .post('/api/MasterControls/disable')
        .send({lockName: 'J', reason: 'r'})
        .expect(401);
      const res = await s.client
        .post('/api/MasterControls/disable')
        .set(TOKEN)
        .send({lockName: 'J', reason: 'r'})
        .expect(200);
      expect(res.body.updatedBy).to.equal('alice');
    });

    it('answers 401 when the sequence of the app never authenticates', async () => {
      // A hand-written sequence without the authentication step.
      const s = await startedRestApp({
        config: {controllerAuthentication: ['token']},
        auth: true,
        before: a => a.sequence(DefaultSequence),
      });
      app = s.app;
      const res = await s.client
        .post('/api/MasterControls/enable')
        .set(TOKEN)
        .send({lockName: 'J'});
      expect(res.status).to.equal(401);
      expect(res.body.error.message).to.match(/requires authentication \(token\)/);
      await s.client.get('/api/MasterControls/health').expect(200);
    });

    it('refuses a controllerPath configured after app.component(), whose routes exist already', async () => {
      app = givenRestApp({config: {controllerPath: '/ops'}, configureLate: true});
      await expect(app.start()).to.be.rejectedWith(
        /controllerPath was configured after app.component/,
      );
    });
  });
});
