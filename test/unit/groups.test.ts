import {expect} from '@loopback/testlab';
import fc from 'fast-check';
import {MasterGroup, MasterJobContext, MasterJobExecutor} from '../../src';
import {balance} from '../../src/groups/balance';
import {TIMING_DEFAULTS} from '../../src/election/timings';
import {LocalNotifier} from '../../src/wake/local';
import {LockNotifier} from '../../src/wake/notifier';
import {ElectionTimings} from '../../src';
import {FakeClock} from '../fixtures/fake-clock';
import {TIMINGS} from '../fixtures/fake-cluster';
import {FakeDatabase, FakeStore} from '../fixtures/fake-store';

/** An executor on a database of its own, never started: for validation. */
function lonelyExecutor(): MasterJobExecutor {
  const fake = new FakeClock();
  return new MasterJobExecutor({
    store: new FakeStore(new FakeDatabase(), fake),
    clock: fake,
    env: {},
  });
}

describe('balanced groups', () => {
  describe('balance()', () => {
    const snapshot = fc
      .record({
        members: fc.uniqueArray(fc.stringMatching(/^[a-e][0-9]$/), {minLength: 1, maxLength: 8}),
        resources: fc.uniqueArray(fc.stringMatching(/^r[0-9]{1,3}$/), {maxLength: 60}),
        strangers: fc.array(fc.constantFrom('', 'dead1', 'dead2')),
        seed: fc.integer(),
      })
      .map(({members, resources, strangers, seed}) => {
        // Each resource held by a member, nobody, or a member that died.
        const candidates = [...members, ...strangers, ''];
        const holders = new Map(
          resources.map((r, i) => [r, candidates[Math.abs(seed + i * 7919) % candidates.length]]),
        );
        return {members, holders};
      });

    it('gives every resource to one live member, each floor(R/M) or ceil(R/M)', () => {
      fc.assert(
        fc.property(snapshot, ({members, holders}) => {
          const plan = balance(members, holders);
          expect([...plan.keys()].sort()).to.eql([...holders.keys()].sort());
          const counts = members.map(m => [...plan.values()].filter(o => o === m).length);
          const low = Math.floor(holders.size / members.length);
          for (const count of counts) expect(count).to.be.within(low, low + 1);
        }),
      );
    });

    it('is a fixed point: applied, it moves nothing more', () => {
      fc.assert(
        fc.property(snapshot, ({members, holders}) => {
          const plan = balance(members, holders);
          expect(balance(members, plan)).to.eql(plan);
        }),
      );
    });

    it('moves only what it must: a resource whose holder keeps within quota stays', () => {
      fc.assert(
        fc.property(snapshot, ({members, holders}) => {
          const plan = balance(members, holders);
          const high = Math.ceil(holders.size / members.length);
          for (const member of members) {
            const held = [...holders].filter(([, h]) => h === member).map(([r]) => r);
            const kept = held.filter(r => plan.get(r) === member).length;
            expect(kept).to.equal(Math.min(held.length, kept, high));
            expect(kept).to.be.aboveOrEqual(Math.min(held.length, high - 1));
          }
        }),
      );
    });

    it('a member joining takes about R/M, from everyone', () => {
      const members = ['a', 'b', 'c', 'd'];
      const resources = Array.from({length: 1000}, (_, i) => `r${i}`);
      const before = balance(members, new Map(resources.map(r => [r, ''])));
      const after = balance([...members, 'e'], before);
      const moved = resources.filter(r => before.get(r) !== after.get(r));
      expect(moved.length).to.equal(200);
      expect(moved.every(r => after.get(r) === 'e')).to.be.true();
    });

    it('a member dying: only its resources move, spread over the survivors', () => {
      const members = ['a', 'b', 'c', 'd', 'e'];
      const resources = Array.from({length: 1000}, (_, i) => `r${i}`);
      const before = balance(members, new Map(resources.map(r => [r, ''])));
      const after = balance(['a', 'b', 'c', 'd'], before);
      const moved = resources.filter(r => before.get(r) !== after.get(r));
      expect(moved.every(r => before.get(r) === 'e')).to.be.true();
      for (const m of ['a', 'b', 'c', 'd']) {
        expect(moved.filter(r => after.get(r) === m).length).to.equal(50);
      }
    });
  });

  describe('startGroup() on a fake clock', () => {
    const clock = () => new FakeClock();
    let fake: FakeClock;
    let db: FakeDatabase;
    let replicas: {executor: MasterJobExecutor; store: FakeStore; group: MasterGroup}[];
    /** Every start and stop, per resource: who, when. */
    let running: Map<string, string>;
    let violations: string[];
    let stops: {resourceId: string; reason: string}[];

    beforeEach(() => {
      fake = clock();
      db = new FakeDatabase();
      replicas = [];
      running = new Map();
      violations = [];
      stops = [];
    });

    /** Stops every replica; a frozen one's calls time out on the fake clock. */
    async function stopAll() {
      for (const r of replicas) r.store.fault = 'none';
      const stopped = Promise.all(replicas.map(r => r.executor.stopAll()));
      await fake.tick(5000);
      await stopped;
    }

    afterEach(stopAll);

    /** A replica of the group; `timings` replace the test timings, `notifier` tells joins and releases. */
    function join(
      name: string,
      resources: string[],
      minMembers?: number,
      {timings = TIMINGS, notifier}: {timings?: ElectionTimings; notifier?: LockNotifier} = {},
    ) {
      const store = new FakeStore(db, fake, name);
      const executor = new MasterJobExecutor({
        store,
        clock: fake,
        env: {},
        config: {...timings, instanceId: name},
        notifier,
      });
      const group = executor.startGroup({
        groupName: 'G',
        resources,
        minMembers,
        job: {
          start: (ctx: MasterJobContext) => {
            const other = running.get(ctx.resourceId!);
            if (other) violations.push(`${ctx.resourceId} started on ${name} while on ${other}`);
            running.set(ctx.resourceId!, name);
          },
          stop: (ctx: MasterJobContext) => {
            if (running.get(ctx.resourceId!) === name) running.delete(ctx.resourceId!);
            stops.push({resourceId: ctx.resourceId!, reason: ctx.reason!});
          },
        },
      });
      const replica = {executor, store, group};
      replicas.push(replica);
      return replica;
    }

    function counts(): number[] {
      return replicas
        .filter(r => r.store.fault === 'none' && r.group.status().state !== 'stopped')
        .map(r => r.group.owned().length);
    }

    const resources = (n: number) => Array.from({length: n}, (_, i) => `r${i}`);

    describe('at the default timings, with notifications', () => {
      const timings: ElectionTimings = {
        ...TIMING_DEFAULTS,
        leaseDuration: 3 * TIMING_DEFAULTS.heartbeatInterval,
      };

      it('a cold group of replicas started together runs every resource within initDelay + 2 s, by one plan', async () => {
        const notifier = new LocalNotifier(db);
        // Started 0, 400 and 900 ms apart, as a deploy starts replicas.
        for (const [name, at] of [
          ['a', 0],
          ['b', 400],
          ['c', 900],
        ] as const) {
          await fake.tick(at - fake.now());
          join(name, resources(12), undefined, {timings, notifier});
        }
        await fake.tick(timings.initDelay + 2000);
        expect(running.size).to.equal(12);
        expect(counts()).to.eql([4, 4, 4]);
        expect(stops).to.eql([]); // one plan: nothing taken and handed over again
        expect(violations).to.eql([]);
      });
    });

    it('three members share 20 resources 7/7/6, every resource run once', async () => {
      for (const name of ['a', 'b', 'c']) join(name, resources(20));
      await fake.tick(2000);
      expect(counts().sort()).to.eql([6, 7, 7]);
      expect(running.size).to.equal(20);
      expect(violations).to.eql([]);
      // Nothing moves once balanced.
      const before = stops.length;
      await fake.tick(5000);
      expect(stops.length).to.equal(before);
    });

    it('a joining member takes its share by handover, within a few heartbeats', async () => {
      join('a', resources(12));
      join('b', resources(12));
      await fake.tick(2000);
      expect(counts()).to.eql([6, 6]);
      const before = stops.length;
      join('c', resources(12));
      await fake.tick(4 * TIMINGS.heartbeatInterval);
      expect(counts()).to.eql([4, 4, 4]);
      const moves = stops.slice(before);
      expect(moves.map(s => s.reason)).to.matchEach('rebalanced');
      expect(moves.length).to.equal(4);
      expect(violations).to.eql([]);
    });

    it('a member leaving gracefully hands over; a crashed one loses its share after the lease', async () => {
      for (const name of ['a', 'b', 'c']) join(name, resources(12));
      await fake.tick(2000);
      await replicas[0].group.stop();
      await fake.tick(3 * TIMINGS.heartbeatInterval);
      expect(counts()).to.eql([6, 6]);
      expect(running.size).to.equal(12);
      replicas[1].store.fault = 'hang'; // frozen: its elections stop themselves at their deadlines
      await fake.tick(TIMINGS.leaseDuration + 4 * TIMINGS.heartbeatInterval);
      expect(replicas[2].group.owned().length).to.equal(12);
      expect(violations).to.eql([]);
    });

    it('converges whatever the order of joins, leaves and crashes', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.constantFrom('join', 'leave', 'crash'), {minLength: 1, maxLength: 6}),
          async steps => {
            await stopAll();
            db.locks.clear();
            replicas = [];
            running = new Map();
            violations = [];
            let n = 0;
            join(`m${n++}`, resources(17));
            for (const step of steps) {
              const alive = replicas.filter(
                r => r.store.fault === 'none' && r.group.status().state !== 'stopped',
              );
              if (step === 'join' || alive.length < 2) join(`m${n++}`, resources(17));
              else if (step === 'leave') await alive[0].group.stop();
              else alive[alive.length - 1].store.fault = 'hang';
              await fake.tick(TIMINGS.leaseDuration + 6 * TIMINGS.heartbeatInterval);
              const c = counts();
              expect(Math.max(...c) - Math.min(...c)).to.be.belowOrEqual(1);
              expect(c.reduce((a, b) => a + b, 0)).to.equal(17);
              expect(violations).to.eql([]);
            }
          },
        ),
        {numRuns: 6},
      );
    });

    it('add() starts a resource on a member with room; remove() stops it where it runs', async () => {
      for (const name of ['a', 'b']) join(name, resources(4));
      await fake.tick(2000);
      expect(counts()).to.eql([2, 2]);
      for (const r of replicas) r.group.add('extra');
      await fake.tick(4 * TIMINGS.heartbeatInterval);
      expect(running.get('extra')).to.be.ok();
      expect(counts().sort()).to.eql([2, 3]);
      const owner = replicas.find(r => r.group.owned().includes('extra'))!;
      await owner.group.remove('extra');
      expect(running.has('extra')).to.be.false();
      expect(stops.find(s => s.resourceId === 'extra')?.reason).to.equal('stopped');
      expect(() => owner.group.add('')).to.throw(/resourceId must be a non-empty string/);
    });

    it('re-reads a resources function every check interval; a bad id is reported, not run', async () => {
      let ids = ['x', 'y'];
      const store = new FakeStore(db, fake, 'f');
      const executor = new MasterJobExecutor({
        store,
        clock: fake,
        env: {},
        config: {...TIMINGS, instanceId: 'f'},
      });
      const errors: string[] = [];
      executor.on('error', (err: Error) => errors.push(err.message));
      const group = executor.startGroup({
        groupName: 'F',
        resources: async () => ids,
        job: {start() {}},
      });
      replicas.push({executor, store, group});
      await fake.tick(2000);
      expect(group.owned().sort()).to.eql(['x', 'y']);
      ids = ['y', 'z', 'bad\u0000id'];
      await fake.tick(TIMINGS.checkMasterInterval + 4 * TIMINGS.heartbeatInterval);
      expect(group.owned().sort()).to.eql(['y', 'z']);
      expect(
        errors.some(e => /resourceId must not contain control characters/.test(e)),
      ).to.be.true();
    });

    it('deletes the row of a member that left or is dead, so a newcomer does not count it alive', async () => {
      for (const name of ['a', 'b', 'c']) join(name, resources(3));
      await fake.tick(2000);
      const memberRows = () => [...db.locks.keys()].filter(k => k.includes('\u001f'));
      expect(memberRows()).to.have.length(3);
      await replicas[0].group.stop(); // left: its row is released
      await fake.tick(2 * TIMINGS.heartbeatInterval);
      expect(memberRows()).to.have.length(2);
      replicas[1].store.fault = 'hang'; // crashed: its row stays as it was
      await fake.tick(TIMINGS.leaseDuration / 2);
      expect(memberRows()).to.have.length(2); // not yet dead
      await fake.tick(TIMINGS.leaseDuration / 2 + 2 * TIMINGS.heartbeatInterval);
      expect(memberRows()).to.have.length(1);
      // A replica joining now sees c alone: it takes its share at once, not a lease later.
      const d = join('d', resources(3));
      await fake.tick(TIMINGS.leaseDuration / 2);
      expect(d.group.members().map(m => m.instanceId)).to.eql(['c', 'd']);
      expect(counts().sort()).to.eql([1, 2]);
      expect(violations).to.eql([]);
    });

    it('quorum: nothing runs below minMembers; the owners stop with reason quorum', async () => {
      join('a', resources(4), 2);
      await fake.tick(2000);
      expect(running.size).to.equal(0);
      expect(replicas[0].group.status().state).to.equal('quorum');
      join('b', resources(4), 2);
      await fake.tick(2000);
      expect(counts()).to.eql([2, 2]);
      replicas[1].store.fault = 'hang';
      await fake.tick(TIMINGS.leaseDuration + 4 * TIMINGS.heartbeatInterval);
      expect(running.size).to.equal(0);
      expect(stops.filter(s => s.reason === 'quorum').length).to.equal(2);
      await fake.tick(3 * TIMINGS.leaseDuration);
      expect(running.size).to.equal(0); // still nobody, however long
      replicas[1].store.fault = 'none'; // b is back: so is the quorum
      await fake.tick(TIMINGS.leaseDuration + 6 * TIMINGS.heartbeatInterval);
      expect(running.size).to.equal(4);
      expect(counts()).to.eql([2, 2]);
      expect(violations).to.eql([]);
    });
  });

  describe('startMaster({minMembers})', () => {
    it('runs the job only while the quorum is alive', async () => {
      const fake = new FakeClock();
      const db = new FakeDatabase();
      const events: string[] = [];
      const start = (name: string) => {
        const store = new FakeStore(db, fake, name);
        const executor = new MasterJobExecutor({
          store,
          clock: fake,
          env: {},
          config: {...TIMINGS, instanceId: name},
        });
        executor.startMaster({
          lockName: 'Q',
          minMembers: 2,
          masterJob: {
            start: () => {
              events.push(`start ${name}`);
            },
            stop: ctx => {
              events.push(`stop ${name} ${ctx.reason}`);
            },
          },
        });
        return {executor, store};
      };
      const a = start('a');
      await fake.tick(2000);
      expect(events).to.eql([]);
      const b = start('b');
      await fake.tick(2000);
      expect(events.length).to.equal(1);
      const master = events[0].endsWith('a') ? a : b;
      const other = master === a ? b : a;
      await other.executor.stopAll();
      await fake.tick(4 * TIMINGS.heartbeatInterval);
      expect(events[1]).to.match(/^stop . quorum$/);
      await master.executor.stopAll();
    });

    it('refuses a minMembers that is not a positive integer', () => {
      const executor = lonelyExecutor();
      for (const minMembers of [0, 1.5, -1, '2', NaN]) {
        expect(() =>
          executor.startMaster({
            lockName: 'Q',
            masterJob: {start() {}},
            minMembers: minMembers as number,
          }),
        ).to.throw(/minMembers must be an integer from 1 to 1000/);
      }
    });
  });

  describe('startGroup() validation', () => {
    const executor = lonelyExecutor();
    const job = {start() {}};
    const cases: [string, unknown, RegExp][] = [
      ['options missing', undefined, /options must be an object/],
      ['groupName missing', {resources: [], job}, /groupName must be a non-empty string/],
      ['groupName with a slash', {groupName: 'a/b', resources: [], job}, /must not contain "\/"/],
      ['groupName too long', {groupName: 'g'.repeat(239), resources: [], job}, /at most 238/],
      ['resources missing', {groupName: 'G', job}, /resources must be an array/],
      [
        'resource id empty',
        {groupName: 'G', resources: [''], job},
        /resourceId must be a non-empty/,
      ],
      ['resource id repeated', {groupName: 'G', resources: ['a', 'a'], job}, /must not repeat/],
      ['resource id with NUL', {groupName: 'G', resources: ['a\u0000'], job}, /control characters/],
      ['job missing', {groupName: 'G', resources: []}, /job must be an object/],
      [
        'job.start not a function',
        {groupName: 'G', resources: [], job: {}},
        /job.start must be a function/,
      ],
    ];
    for (const [what, options, message] of cases) {
      it(`throws on ${what}`, () => {
        expect(() => executor.startGroup(options as never)).to.throw(message);
      });
    }
  });
});
