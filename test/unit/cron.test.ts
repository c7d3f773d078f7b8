// MasterCronJob on a FakeClock (its timers and its wall clock) and an in-memory
// claim store: it fires each occurrence at its time and not before, fires
// nothing an earlier claim took, treats missed occurrences by `missed`, and
// stops with the signal.

import {expect} from '@loopback/testlab';
import {CronContext, masterCron} from '../../src';
import {MasterCronRun} from '../../src/extension';
import {CronRunStore, RepositoryCronRunStore} from '../../src/store/cron-run-store';
import {MasterJobContext} from '../../src/types';
import {FakeClock} from '../fixtures/fake-clock';

class MemoryRuns {
  claimed = new Map<number, string>();
  async claim(ctx: MasterJobContext, at: Date): Promise<MasterCronRun | undefined> {
    if (this.claimed.has(at.getTime())) return undefined;
    this.claimed.set(at.getTime(), ctx.instanceId);
    return new MasterCronRun({id: String(at.getTime()), lockName: ctx.lockName, scheduledAt: at});
  }
  async finish(): Promise<void> {}
  async latest(): Promise<Date | undefined> {
    const times = [...this.claimed.keys()];
    return times.length ? new Date(Math.max(...times)) : undefined;
  }
}

describe('cron occurrences (fake clock)', () => {
  const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // on a second
  let clock: FakeClock;
  let controller: AbortController;
  let fired: {scheduledAt: number; at: number}[];

  beforeEach(() => {
    clock = new FakeClock(T0 + 200);
    controller = new AbortController();
    fired = [];
  });
  afterEach(() => {
    controller.abort();
  });

  function start(runs: MemoryRuns, missed?: 'skip' | 'once' | 'all') {
    const job = masterCron({cronTime: '* * * * * *', missed}, (ctx: CronContext) => {
      fired.push({scheduledAt: ctx.scheduledAt.getTime(), at: clock.date().getTime()});
    });
    job.runs = runs as unknown as CronRunStore;
    job.clock = clock;
    job.start({lockName: 'C', instanceId: 'me', fencingToken: 1, signal: controller.signal});
  }

  it('fires each occurrence at its time, not before', async () => {
    start(new MemoryRuns());
    await clock.tick(799);
    expect(fired).to.have.length(0);
    await clock.tick(1);
    await clock.tick(2010);
    expect(fired.map(f => f.scheduledAt - T0)).to.deepEqual([1000, 2000, 3000]);
    // At its time, after the timers due with it (a zero-delay timer: 1 ms at most).
    expect(fired.every(f => f.at - f.scheduledAt <= 1)).to.be.true();
  });

  it('fires nothing another master claimed', async () => {
    const runs = new MemoryRuns();
    runs.claimed.set(T0 + 2000, 'other');
    start(runs);
    await clock.tick(3000);
    expect(fired.map(f => f.scheduledAt - T0)).to.deepEqual([1000, 3000]);
  });

  for (const [missed, expected] of [
    ['skip', [1000]],
    ['once', [0, 1000]],
    ['all', [-3000, -2000, -1000, 0, 1000]],
  ] as const) {
    it(`missed: ${missed}`, async () => {
      const runs = new MemoryRuns();
      // The last master's last occurrence was T0 - 4 s; it is T0 + 200 ms now.
      runs.claimed.set(T0 - 4000, 'gone');
      start(runs, missed);
      await clock.tick(900);
      expect(fired.map(f => f.scheduledAt - T0)).to.deepEqual([...expected]);
    });
  }

  it('does not fire an occurrence whose claim came back after the mastership ended', async () => {
    const runs = new MemoryRuns();
    const claim = runs.claim.bind(runs);
    runs.claim = async (ctx, at) => {
      const run = await claim(ctx, at);
      await clock.sleep(600); // the reply, held up
      return run;
    };
    start(runs);
    await clock.tick(1000); // the claim of T0 + 1 s is under way
    controller.abort();
    await clock.tick(2000);
    expect(fired).to.deepEqual([]);
    expect([...runs.claimed.keys()].map(t => t - T0)).to.deepEqual([1000]); // claimed, not fired
  });

  it('goes on after the catch-up, firing nothing twice, when the read of the missed ones took long', async () => {
    const runs = new MemoryRuns();
    runs.claimed.set(T0 - 1000, 'gone');
    const latest = runs.latest.bind(runs);
    let failures = 4; // 100 + 200 + 400 + 800 ms: the read succeeds at T0 + 1.7 s
    runs.latest = async () => {
      if (failures-- > 0) throw Object.assign(new Error('cut'), {code: 'ECONNRESET'});
      return latest();
    };
    // A claim whose first attempt failed (outcome unknown) takes a row of this
    // master's as its own: so an occurrence tried twice would fire twice.
    const claim = runs.claim.bind(runs);
    runs.claim = async (ctx, at) =>
      runs.claimed.get(at.getTime()) === ctx.instanceId
        ? new MasterCronRun({id: String(at.getTime()), lockName: ctx.lockName, scheduledAt: at})
        : claim(ctx, at);
    start(runs, 'all');
    await clock.tick(4000);
    const times = fired.map(f => f.scheduledAt - T0);
    expect(times).to.deepEqual([0, 1000, 2000, 3000, 4000]);
  });

  it('stops backing off the moment the mastership ends', async () => {
    let calls = 0;
    const rows = {
      findOne: async () => null,
      create: async () => {
        calls++;
        throw Object.assign(new Error('cut'), {code: 'ECONNRESET'});
      },
    };
    const store = new RepositoryCronRunStore(rows as never, clock);
    const ctx = {lockName: 'C', instanceId: 'me', fencingToken: 1, signal: controller.signal};
    const outcome = store.claim(ctx, new Date(T0 + 1000)).then(
      () => 'claimed',
      err => String(err.code),
    );
    await clock.tick(150); // failed at 0 and 100; sleeping until 300
    controller.abort();
    await clock.tick(0);
    expect(await outcome).to.equal('ECONNRESET');
    await clock.tick(5000);
    expect(calls).to.equal(2); // nothing tried after the end
  });

  it('reads the missed occurrences again, backing off, until it can: none is lost to an error', async () => {
    const runs = new MemoryRuns();
    runs.claimed.set(T0 - 2000, 'gone');
    const latest = runs.latest.bind(runs);
    let failures = 3;
    runs.latest = async () => {
      if (failures-- > 0) throw Object.assign(new Error('cut'), {code: 'ECONNRESET'});
      return latest();
    };
    start(runs, 'all');
    await clock.tick(100 + 200 + 400 + 50); // three failures, backing off
    expect(fired.map(f => f.scheduledAt - T0)).to.deepEqual([-1000, 0]);
    await clock.tick(1000);
    expect(fired.map(f => f.scheduledAt - T0)).to.deepEqual([-1000, 0, 1000]);
  });

  it('tries a claim again while master, backing off, however often it fails', async () => {
    const attempts: number[] = [];
    let created = false;
    const rows = {
      findOne: async () => (created ? row : null),
      create: async (data: Partial<MasterCronRun>) => {
        attempts.push(clock.date().getTime() - T0);
        if (attempts.length < 8) throw Object.assign(new Error('cut'), {code: 'ECONNRESET'});
        created = true;
        return (row = new MasterCronRun(data));
      },
    };
    let row: MasterCronRun | undefined;
    const store = new RepositoryCronRunStore(rows as never, clock);
    const ctx = {lockName: 'C', instanceId: 'me', fencingToken: 1, signal: controller.signal};
    const claiming = store.claim(ctx, new Date(T0 + 1000));
    await clock.tick(10000);
    const claimed = await claiming;
    expect(claimed?.instanceId).to.equal('me');
    // 100, 200, 400, 800, then every second: never hot, never given up while master.
    expect(attempts.map((t, i) => (i ? t - attempts[i - 1] : 0))).to.deepEqual([
      0, 100, 200, 400, 800, 1000, 1000, 1000,
    ]);
  });

  it('gives a claim up once the mastership ended', async () => {
    const rows = {
      findOne: async () => null,
      create: async () => {
        throw Object.assign(new Error('cut'), {code: 'ECONNRESET'});
      },
    };
    const store = new RepositoryCronRunStore(rows as never, clock);
    const ctx = {lockName: 'C', instanceId: 'me', fencingToken: 1, signal: controller.signal};
    const claiming = store.claim(ctx, new Date(T0 + 1000));
    const outcome = claiming.then(
      () => 'claimed',
      err => String(err.code),
    );
    await clock.tick(2000);
    controller.abort();
    await clock.tick(2000);
    expect(await outcome).to.equal('ECONNRESET');
  });

  it('claims nothing when woken from a pause with its deadline due too: the deadline runs first', async () => {
    const runs = new MemoryRuns();
    start(runs);
    await clock.tick(0); // the schedule has set its timer for T0 + 1 s
    // The mastership's deadline, due at T0 + 1 s too (as after a SIGSTOP through
    // both): the occurrence's timer, set first, runs first.
    clock.setTimeout(() => controller.abort(), 800);
    await clock.tick(2000);
    expect(fired).to.deepEqual([]);
    expect([...runs.claimed.keys()]).to.deepEqual([]);
  });

  it('stops firing when the signal aborts', async () => {
    start(new MemoryRuns());
    await clock.tick(1000);
    controller.abort();
    await clock.tick(5000);
    expect(fired).to.have.length(1);
  });
});
