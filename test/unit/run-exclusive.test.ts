import {expect} from '@loopback/testlab';
import {LockBusyError, MasterJobExecutor} from '../../src';
import {FakeClock} from '../fixtures/fake-clock';
import {TIMINGS} from '../fixtures/fake-cluster';
import {FakeDatabase, FakeStore} from '../fixtures/fake-store';

describe('executor.runExclusive() (fake clock)', () => {
  const clock = new FakeClock();
  const db = new FakeDatabase();
  const executor = (name: string) =>
    new MasterJobExecutor({
      store: new FakeStore(db, clock, name),
      clock,
      env: {},
      config: {...TIMINGS, instanceId: name},
    });
  const a = executor('a');
  const b = executor('b');

  /** Settles `promise` while the fake clock runs. */
  async function settle<T>(promise: Promise<T>, ms = 2000): Promise<T> {
    let done = false;
    const watched = promise.finally(() => (done = true));
    await clock.until(() => done, ms);
    return watched;
  }

  it('resolves with the result after the lock is released, the token in the context', async () => {
    const result = await settle(a.runExclusive('X', ctx => `ran with token ${ctx.fencingToken}`));
    expect(result).to.equal('ran with token 1');
    expect(db.locks.get('X')!.instanceId).to.equal(''); // released
    expect(a.getMaster('X')).to.be.undefined();
  });

  it('runs one at a time: the second waits for the first', async () => {
    const order: string[] = [];
    const slow = (name: string) => async () => {
      order.push(`start ${name}`);
      await clock.sleep(300);
      order.push(`end ${name}`);
    };
    await settle(
      Promise.all([a.runExclusive('Y', slow('a')), b.runExclusive('Y', slow('b'))]),
      5000,
    );
    expect(order.map(o => o.split(' ')[0])).to.eql(['start', 'end', 'start', 'end']);
  });

  it('with wait: false, rejects at once with a LockBusyError while held or disabled', async () => {
    const holding = a.runExclusive('Z', () => clock.sleep(1000));
    await clock.tick(50);
    const busy = await settle(b.runExclusive('Z', () => 'never', {wait: false}).catch(e => e));
    expect(busy).to.be.instanceOf(LockBusyError);
    expect(busy.message).to.match(/held by another replica/);
    await settle(holding);
    db.disabled.add('Z');
    const off = await settle(b.runExclusive('Z', () => 'never', {wait: false}).catch(e => e));
    expect(off.message).to.match(/Lock "Z" is disabled/);
    db.disabled.delete('Z');
  });

  it('rejects with what the function threw, after the release', async () => {
    const err = await settle(
      a
        .runExclusive('W', () => {
          throw new Error('boom');
        })
        .catch(e => e),
    );
    expect(err.message).to.equal('boom');
    expect(db.locks.get('W')!.instanceId).to.equal('');
  });

  it('aborts the signal with the reason when the lock is disabled meanwhile, and does not run again', async () => {
    let runs = 0;
    let reason: unknown;
    const running = a.runExclusive('V', async ctx => {
      runs++;
      await new Promise(resolve => ctx.signal.addEventListener('abort', resolve));
      reason = ctx.signal.reason;
      return ctx.lostReason;
    });
    await clock.tick(50);
    db.disabled.add('V');
    const lost = await settle(running);
    expect(reason).to.equal('disabled');
    expect(lost).to.equal('disabled');
    db.disabled.delete('V');
    await clock.tick(3000);
    expect(runs).to.equal(1);
  });
});
