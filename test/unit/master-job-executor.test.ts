import {expect} from '@loopback/testlab';
import {MasterJob, MasterJobExecutor, StartMasterOptions} from '../../src';
import {FakeClock} from '../fixtures/fake-clock';
import {FakeDatabase, FakeStore} from '../fixtures/fake-store';

const job: MasterJob = {start: () => {}};

function executor(config = {}, env: NodeJS.ProcessEnv = {}, appConfig = {}) {
  const clock = new FakeClock();
  const store = new FakeStore(new FakeDatabase(), clock);
  return {
    clock,
    executor: new MasterJobExecutor({store, clock, config, appConfig, env}),
  };
}

describe('MasterJobExecutor', () => {
  describe('startMaster() validation', () => {
    const cases: [string, unknown, RegExp][] = [
      ['options missing', undefined, /options must be an object/],
      ['lockName missing', {masterJob: job}, /lockName must be a non-empty string/],
      ['lockName empty', {lockName: '  ', masterJob: job}, /lockName must be a non-empty string/],
      [
        'lockName not a string',
        {lockName: 42, masterJob: job},
        /lockName must be a non-empty string/,
      ],
      ['lockName too long', {lockName: 'x'.repeat(256), masterJob: job}, /at most 255 characters/],
      [
        'lockName with NUL',
        {lockName: 'A\u0000B', masterJob: job},
        /lockName must not contain control/,
      ],
      [
        'lockName with newline',
        {lockName: 'A\nB', masterJob: job},
        /lockName must not contain control/,
      ],
      ['masterJob missing', {lockName: 'A'}, /masterJob must be an object/],
      [
        'start not a function',
        {lockName: 'A', masterJob: {start: 1}},
        /masterJob.start must be a function/,
      ],
      [
        'stop not a function',
        {lockName: 'A', masterJob: {start() {}, stop: 'x'}},
        /masterJob.stop, when given, must be a function/,
      ],
      [
        'bad timing',
        {lockName: 'A', masterJob: job, heartbeatInterval: -1},
        /startMaster option heartbeatInterval must be a positive/,
      ],
      [
        'broken invariant',
        {
          lockName: 'A',
          masterJob: job,
          heartbeatInterval: 900,
          leaseDuration: 1000,
        },
        /safety margin/,
      ],
    ];
    for (const [what, options, message] of cases) {
      it(`throws synchronously when ${what}`, () => {
        const {executor: e} = executor();
        expect(() => e.startMaster(options as StartMasterOptions)).to.throw(message);
        expect(e.status()).to.eql([]);
      });
    }

    it('throws when the same lockName is started twice, and allows it again after stop', async () => {
      const {executor: e} = executor();
      const m = e.startMaster({lockName: 'A', masterJob: job});
      expect(() => e.startMaster({lockName: 'A', masterJob: job})).to.throw(/already started/);
      await m.stop();
      const again = e.startMaster({lockName: 'A', masterJob: job});
      expect(again).to.not.equal(m);
      await e.stopAll();
      expect(() => e.startMaster({lockName: 'B', masterJob: job})).to.throw(/executor is stopped/);
    });
  });

  it('applies options over environment over component config over the app section', () => {
    const {executor: e} = executor(
      {checkMasterInterval: 3000, heartbeatInterval: 300},
      {CHECK_MASTER_INTERVAL: '2000', INIT_DELAY: '20'},
      {
        masterJobExecutor: {
          checkMasterInterval: 4000,
          heartbeatInterval: 400,
          maxHeartbeatRetryCount: 7,
          initDelay: 40,
        },
      },
    );
    const t = e.timingsFor({initDelay: 10});
    expect(t).to.containDeep({
      initDelay: 10,
      checkMasterInterval: 2000,
      heartbeatInterval: 300,
      leaseDuration: 900,
      maxHeartbeatRetryCount: 7,
    });
  });

  it('fails at construction on a bad environment value, naming the variable', () => {
    expect(() => executor({}, {MASTER_JOB_LEASE_DURATION: 'soon'})).to.throw(
      /MASTER_JOB_LEASE_DURATION/,
    );
    expect(() =>
      executor(
        {},
        {
          MASTER_JOB_HEARTBEAT_INTERVAL: '20000',
          MASTER_JOB_LEASE_DURATION: '21000',
        },
      ),
    ).to.throw(/safety margin/);
  });

  it('re-emits the events of its masters with the lockName, and reports status', async () => {
    const {executor: e, clock} = executor({initDelay: 0, instanceId: 'me'});
    const seen: unknown[][] = [];
    for (const event of ['master', 'slave', 'statechange', 'newMaster']) {
      e.on(event, (...args: unknown[]) => seen.push([event, ...args]));
    }
    const m = e.startMaster({lockName: 'JOB', masterJob: job});
    await clock.until(() => m.isMaster, 1000);
    expect(seen).to.containDeep([
      ['statechange', 'JOB', 'idle', 'slave', 'campaigning'],
      ['slave', 'JOB', 'campaigning'],
      ['statechange', 'JOB', 'slave', 'master', 'acquired'],
      ['master', 'JOB', 1],
      ['newMaster', 'JOB', 'me', 1],
    ]);
    expect(e.status()).to.eql([
      {
        lockName: 'JOB',
        state: 'master',
        isMaster: true,
        fencingToken: 1,
        observedHolder: 'me',
        disabled: false,
        renewalAgeMs: 1,
        deadlinePassed: false,
      },
    ]);
    const stopping = e.stopMaster('JOB');
    await clock.tick(10);
    expect(await stopping).to.be.true();
    expect(e.status()).to.eql([]);
  });

  it('is unhealthy while it holds a lock past its renewal deadline', async () => {
    const {executor: e, clock} = executor({
      initDelay: 0,
      heartbeatInterval: 100,
      leaseDuration: 500,
    });
    const m = e.startMaster({lockName: 'JOB', masterJob: job});
    await clock.until(() => m.isMaster, 1000);
    expect(e.health().healthy).to.be.true();
    expect(e.health().locks[0].renewalAgeMs).to.be.within(0, 100);
    clock.jump(1000); // the event loop was stalled: no timer ran
    expect(e.health()).to.containDeep({
      healthy: false,
      locks: [{lockName: 'JOB', deadlinePassed: true}],
    });
    const reasons: string[] = [];
    e.on('slave', (_lock: string, reason: string) => reasons.push(reason));
    await clock.tick(1); // the overdue timers run: it resigns, then (alone) wins again
    expect(reasons).to.eql(['expired']);
    expect(m.fencingToken).to.equal(2);
    expect(e.health().healthy).to.be.true();
    const stopping = e.stopAll();
    await clock.tick(1000);
    await stopping;
  });
});
