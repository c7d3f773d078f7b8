import {expect} from '@loopback/testlab';
import {backoff, SharedTimers, sleep} from '../../src/clock';
import {FakeClock} from '../fixtures/fake-clock';

describe('SharedTimers (fake clock)', () => {
  let clock: FakeClock;
  let timers: SharedTimers;
  let fired: string[];

  beforeEach(() => {
    clock = new FakeClock();
    timers = new SharedTimers(clock);
    fired = [];
  });

  it('runs the callbacks due at one instant from one timer, in one turn', async () => {
    timers.at(100, () => fired.push('a'));
    timers.at(100, () => fired.push('b'));
    timers.at(150, () => fired.push('c'));
    expect(clock.pendingTimers).to.equal(2);
    await clock.tick(99);
    expect(fired).to.deepEqual([]);
    await clock.tick(1);
    expect(fired).to.deepEqual(['a', 'b']);
    await clock.tick(50);
    expect(fired).to.deepEqual(['a', 'b', 'c']);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('runs everything already due together, however long ago it fell due', async () => {
    await clock.tick(10);
    timers.at(3, () => fired.push('a'));
    timers.at(10, () => fired.push('b'));
    expect(clock.pendingTimers).to.equal(1);
    await clock.tick(0);
    expect(fired).to.deepEqual(['a', 'b']);
  });

  it('cancels one callback, and the timer with the last one', async () => {
    const a = timers.at(100, () => fired.push('a'));
    const b = timers.at(100, () => fired.push('b'));
    timers.cancel(a);
    expect(clock.pendingTimers).to.equal(1);
    timers.cancel(a); // twice is harmless
    timers.cancel(b);
    expect(clock.pendingTimers).to.equal(0);
    await clock.tick(200);
    expect(fired).to.deepEqual([]);
  });

  it('still runs the others when one callback throws', async () => {
    const uncaught: unknown[] = [];
    const original = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', err => uncaught.push(err));
    try {
      timers.at(5, () => {
        throw new Error('boom');
      });
      timers.at(5, () => fired.push('after'));
      await clock.tick(5);
    } finally {
      process.removeAllListeners('uncaughtException');
      original.forEach(l => process.on('uncaughtException', l));
    }
    expect(fired).to.deepEqual(['after']);
    expect(uncaught.map(e => (e as Error).message)).to.deepEqual(['boom']);
  });

  it('reads the time once per turn of the event loop, however long the turn takes', async () => {
    await clock.tick(7);
    const first = timers.turnTime();
    clock.jump(25); // a long synchronous loop
    expect(timers.turnTime()).to.equal(first);
    await new Promise(resolve => setImmediate(resolve));
    expect(timers.turnTime()).to.equal(32);
  });
});

describe('sleep and backoff (fake clock)', () => {
  let clock: FakeClock;

  beforeEach(() => {
    clock = new FakeClock();
  });

  it('sleeps for its time, and resolves true', async () => {
    let result: boolean | undefined;
    void sleep(clock, 100).then(r => (result = r));
    await clock.tick(99);
    expect(result).to.be.undefined();
    await clock.tick(1);
    expect(result).to.be.true();
  });

  it('ends at once, false, when its signal aborts, and leaves no timer behind', async () => {
    const controller = new AbortController();
    let result: boolean | undefined;
    void sleep(clock, 100, controller.signal).then(r => (result = r));
    await clock.tick(10);
    controller.abort();
    await clock.tick(0);
    expect(result).to.be.false();
    expect(clock.pendingTimers).to.equal(0);
    expect(await sleep(clock, 100, controller.signal)).to.be.false(); // aborted already
    expect(clock.pendingTimers).to.equal(0);
  });

  it('backs off from base, doubling to max', () => {
    const waits = [1, 2, 3, 4, 5, 6, 100].map(n => backoff(n, {base: 100, max: 1000}));
    expect(waits).to.deepEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(backoff(1000, {base: 100, max: 2 ** 31 - 1})).to.equal(100 * 2 ** 16);
  });

  it('spreads a wait over its jitter, after the cap', () => {
    for (let i = 0; i < 200; i++) {
      expect(backoff(1, {base: 100, max: 5000, jitter: 0.25})).to.be.within(75, 125);
      expect(backoff(20, {base: 100, max: 5000, jitter: 0.25})).to.be.within(3750, 6250);
    }
  });
});
