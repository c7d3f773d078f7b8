import {expect} from '@loopback/testlab';
import {TIMING_DEFAULTS} from '../../src/extension';
import {resolveTimings, timingsFromEnv} from '../../src/election/timings';
import {resolveListenUrl} from '../../src/settings';
import {TimingSource} from '../../src/election/timings';

const source = (label: string, values: TimingSource['values']): TimingSource => ({
  values,
  describe: name => `${label} ${name}`,
});

describe('configuration', () => {
  it('uses the defaults of the original module, lease = 3 x heartbeat', () => {
    expect(resolveTimings([])).to.eql({
      ...TIMING_DEFAULTS,
      initDelay: 1000,
      checkMasterInterval: 30000,
      heartbeatInterval: 8000,
      maxHeartbeatRetryCount: 3,
      leaseDuration: 24000,
    });
  });

  it('takes each parameter from the highest source that has it', () => {
    const t = resolveTimings([
      source('option', {initDelay: 1}),
      source('env', {initDelay: 2, checkMasterInterval: 20}),
      source('app', {
        initDelay: 3,
        checkMasterInterval: 30,
        heartbeatInterval: 300,
      }),
    ]);
    expect(t.initDelay).to.equal(1);
    expect(t.checkMasterInterval).to.equal(20);
    expect(t.heartbeatInterval).to.equal(300);
    expect(t.maxHeartbeatRetryCount).to.equal(TIMING_DEFAULTS.maxHeartbeatRetryCount);
  });

  it('derives the default lease after merging, from the winning heartbeatInterval', () => {
    const t = resolveTimings([
      source('option', {heartbeatInterval: 100}),
      source('app', {heartbeatInterval: 5000}),
    ]);
    expect(t.leaseDuration).to.equal(300);
  });

  it('rejects a timing that is not a positive finite number, naming where it came from', () => {
    for (const bad of [0, -1, Infinity, NaN, '100', null, 2 ** 31]) {
      expect(() =>
        resolveTimings([source('startMaster option', {heartbeatInterval: bad})]),
      ).to.throw(/startMaster option heartbeatInterval must be a positive finite number/);
    }
    expect(() => resolveTimings([source('option', {maxHeartbeatRetryCount: 1.5})])).to.throw(
      /maxHeartbeatRetryCount must be a non-negative integer/,
    );
    expect(
      resolveTimings([source('option', {initDelay: 0, maxHeartbeatRetryCount: 0})]),
    ).to.containDeep({
      initDelay: 0,
      maxHeartbeatRetryCount: 0,
    });
  });

  it('rejects timings that break the renewal invariant', () => {
    expect(() =>
      resolveTimings([source('option', {heartbeatInterval: 100, leaseDuration: 120})]),
    ).to.throw(
      /heartbeatInterval \(100 ms\) must be less than leaseDuration minus its 20% safety margin/,
    );
    expect(() =>
      resolveTimings([source('option', {heartbeatInterval: 100, leaseDuration: 126})]),
    ).not.to.throw();
  });

  describe('environment', () => {
    it('parses the variables of the original module', () => {
      expect(
        timingsFromEnv({
          INIT_DELAY: '0',
          CHECK_MASTER_INTERVAL: '500',
          MASTER_JOB_HEARTBEAT_INTERVAL: '100',
          MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT: '2',
          MASTER_JOB_LEASE_DURATION: '400',
          UNRELATED: 'x',
        }),
      ).to.eql({
        initDelay: 0,
        checkMasterInterval: 500,
        heartbeatInterval: 100,
        maxHeartbeatRetryCount: 2,
        leaseDuration: 400,
      });
    });

    it('ignores empty variables', () => {
      expect(timingsFromEnv({INIT_DELAY: ''})).to.eql({});
    });

    it('rejects a bad value naming the variable', () => {
      for (const bad of ['abc', '-5', '1e3', '10ms', '0x10']) {
        expect(() => timingsFromEnv({MASTER_JOB_HEARTBEAT_INTERVAL: bad})).to.throw(
          new RegExp(
            `Environment variable MASTER_JOB_HEARTBEAT_INTERVAL must be a number of milliseconds, got "${bad}"`,
          ),
        );
      }
      expect(() => timingsFromEnv({CHECK_MASTER_INTERVAL: '0'})).to.throw(
        /environment variable CHECK_MASTER_INTERVAL must be a positive finite number/,
      );
      expect(() => timingsFromEnv({MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT: '1.5'})).to.throw(
        /MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT must be a non-negative integer/,
      );
    });
  });

  describe('listenUrl', () => {
    it('takes the environment over the component over the app section', () => {
      const url = (n: number) => `postgres://u@db${n}:5432/app`;
      const component = {listenUrl: url(2)};
      const section = {listenUrl: url(3)};
      expect(resolveListenUrl({MASTER_JOB_LISTEN_URL: url(1)}, component, section)).to.equal(
        url(1),
      );
      expect(resolveListenUrl({MASTER_JOB_LISTEN_URL: ''}, component, section)).to.equal(url(2));
      expect(resolveListenUrl({}, {}, section)).to.equal(url(3));
      expect(resolveListenUrl({}, {}, {})).to.be.undefined();
    });

    it('rejects what is not a PostgreSQL URL, naming where it came from, without its password', () => {
      expect(() =>
        resolveListenUrl({MASTER_JOB_LISTEN_URL: 'mysql://u:secret@h/db'}, {}, {}),
      ).to.throw(
        'Environment variable MASTER_JOB_LISTEN_URL must be a PostgreSQL URL (postgres://user:password@host:port/database), got "mysql://***@h/db"',
      );
      expect(() => resolveListenUrl({}, {listenUrl: 'db:5432'}, {})).to.throw(
        /^Component configuration listenUrl must be a PostgreSQL URL/,
      );
      expect(() => resolveListenUrl({}, {}, {listenUrl: 5 as unknown as string})).to.throw(
        /^Application config masterJobExecutor.listenUrl must be a PostgreSQL URL .*got 5$/,
      );
    });
  });
});
