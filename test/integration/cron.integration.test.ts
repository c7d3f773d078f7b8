// Cron schedules through real repositories, on the memory connector,
// PostgreSQL and MySQL/MariaDB: each occurrence is claimed in the database
// before it fires, so a handoff fires none twice; a new master treats the
// occurrences nobody fired as `missed` says; the status lists the last runs.
// The store's own contract is in work-store-contracts.integration.test.ts.

import {expect} from '@loopback/testlab';
import {waitFor} from '../../cluster-kit';
import {CronContext, masterCron, MasterCronOptions} from '../../src';
import {MasterCronRunRepository} from '../../src/extension';
import {systemClock} from '../../src/clock';
import {RepositoryCronRunStore} from '../../src/store/cron-run-store';
import {BACKENDS, BackendName} from '../fixtures/databases';
import {Cluster, clusterPerSuite, FAST, Replica} from '../fixtures/cluster';

for (const backend of BACKENDS) {
  describe(`cron occurrences on ${backend} (integration)`, function () {
    this.timeout(30000);
    cronSuite(backend);
  });
}

interface Firing {
  lockName: string;
  instanceId: string;
  scheduledAt: number;
  firedAt: number;
}

function cronSuite(backend: BackendName): void {
  let cluster: Cluster;
  let firings: Firing[];

  clusterPerSuite(backend, 'mje_cron_runs', c => (cluster = c));

  beforeEach(() => (firings = []));

  async function repo(): Promise<MasterCronRunRepository> {
    return (await cluster.adminApp()).getRepository(MasterCronRunRepository);
  }

  function everySecond(r: Replica, lockName: string, options: Partial<MasterCronOptions> = {}) {
    return r.executor.startMaster({
      ...FAST,
      lockName,
      masterJob: masterCron({cronTime: '* * * * * *', ...options}, (ctx: CronContext) => {
        firings.push({
          lockName,
          instanceId: ctx.instanceId,
          scheduledAt: ctx.scheduledAt.getTime(),
          firedAt: Date.now(),
        });
      }),
    });
  }

  it('fires each occurrence once across a handoff, and lists the runs in the status', async () => {
    const LOCK = cluster.name('EVERY-SECOND');
    const [a, b] = await cluster.addReplicas(2);
    const ha = everySecond(a, LOCK);
    await waitFor('a is master', () => ha.isMaster, 5000);
    everySecond(b, LOCK);
    await waitFor('two firings', () => firings.length >= 2, 5000);
    await ha.stop(); // graceful: b takes over at once
    const handedOver = firings.length;
    await waitFor('two firings on b', () => firings.length >= handedOver + 2, 5000);
    const seconds = firings.map(f => f.scheduledAt);
    expect(new Set(seconds).size).to.equal(seconds.length);
    // consecutive: the handoff skipped no occurrence
    for (let i = 1; i < seconds.length; i++) expect(seconds[i] - seconds[i - 1]).to.equal(1000);
    expect(firings.slice(0, handedOver).every(f => f.instanceId === a.instanceId)).to.be.true();
    expect(firings.slice(handedOver).every(f => f.instanceId === b.instanceId)).to.be.true();
    const rows = await (await repo()).find({where: {lockName: LOCK}});
    expect(new Set(rows.map(r => new Date(r.scheduledAt).getTime())).size).to.equal(rows.length);
    for (const f of firings) {
      expect(rows.some(r => new Date(r.scheduledAt).getTime() === f.scheduledAt)).to.be.true();
    }
    const [cron] = await b.executor.cronStatus();
    expect(cron.lockName).to.equal(LOCK);
    expect(cron.runs[0].outcome === 'ok' || cron.runs[0].outcome === null).to.be.true();
    expect(cron.runs.map(r => r.scheduledAt.getTime())).to.deepEqual(
      [...cron.runs.map(r => r.scheduledAt.getTime())].sort((x, y) => y - x),
    );
  });

  it('finds its own claim whose reply was lost (a connection cut under it), and only its own', async () => {
    const rows = await repo();
    const create = rows.create.bind(rows);
    let cut = 1;
    rows.create = (async (data: object) => {
      const row = await create(data);
      if (cut-- > 0) throw new Error('Connection terminated unexpectedly'); // landed, reply lost
      return row;
    }) as typeof rows.create;
    const store = new RepositoryCronRunStore(rows, systemClock);
    const LOCK = cluster.name('LOST-REPLY');
    const at = new Date(Date.UTC(2026, 0, 1, 13));
    const ctx = (fencingToken: number) => ({
      lockName: LOCK,
      instanceId: `replica-${fencingToken}`,
      fencingToken,
      signal: new AbortController().signal,
    });
    const mine = await store.claim(ctx(1), at);
    expect(mine?.instanceId).to.equal('replica-1');
    expect(await store.claim(ctx(2), at)).to.be.undefined();
    // The same master claiming twice (its timer and its catch-up): the second is not ours to fire.
    expect(await store.claim(ctx(1), at)).to.be.undefined();
    const twice = await Promise.all([store.claim(ctx(3), at), store.claim(ctx(3), at)]);
    expect(twice.filter(c => c !== undefined)).to.have.length(0); // taken by replica-1 already
    const next = new Date(at.getTime() + 1000);
    const both = await Promise.all([store.claim(ctx(3), next), store.claim(ctx(3), next)]);
    expect(both.filter(c => c !== undefined)).to.have.length(1);
  });

  it("treats the occurrences nobody fired as 'missed' says: skip, once, all", async () => {
    const locks = {
      skip: cluster.name('MISSED-SKIP'),
      once: cluster.name('MISSED-ONCE'),
      all: cluster.name('MISSED-ALL'),
    };
    const [a, b] = await cluster.addReplicas(2);
    const policies = ['skip', 'once', 'all'] as const;
    const first = policies.map(missed => everySecond(a, locks[missed], {missed}));
    await waitFor(
      'a fired each',
      () => policies.every(p => firings.some(f => f.lockName === locks[p])),
      5000,
    );
    await Promise.all(first.map(h => h.stop()));
    const lastFired = Object.fromEntries(
      policies.map(p => [
        p,
        Math.max(...firings.filter(f => f.lockName === locks[p]).map(f => f.scheduledAt)),
      ]),
    );
    await new Promise(resolve => setTimeout(resolve, 2600)); // nobody master: 2 or 3 occurrences pass
    const restartedAt = Date.now();
    policies.forEach(missed => everySecond(b, locks[missed], {missed}));
    await waitFor(
      'b fired each twice',
      () =>
        policies.every(
          p =>
            firings.filter(f => f.lockName === locks[p] && f.instanceId === b.instanceId).length >=
            2,
        ),
      6000,
    );
    const onB = (p: (typeof policies)[number]) =>
      firings
        .filter(f => f.lockName === locks[p] && f.instanceId === b.instanceId)
        .map(f => f.scheduledAt);
    const passed = (p: (typeof policies)[number]) => {
      const list: number[] = [];
      for (let t = lastFired[p] + 1000; t <= restartedAt; t += 1000) list.push(t);
      return list;
    };
    // skip: nothing of the past
    expect(onB('skip')[0]).to.be.above(restartedAt - 1000);
    expect(onB('skip')[0]).to.be.above(lastFired.skip + 2000);
    // once: the latest passed occurrence, then on schedule
    expect(passed('once').length).to.be.aboveOrEqual(2);
    expect(onB('once')[0]).to.equal(passed('once').at(-1));
    expect(onB('once').filter(t => t <= restartedAt)).to.have.length(1);
    // all: every passed occurrence, oldest first, then on schedule
    expect(onB('all').slice(0, passed('all').length)).to.deepEqual(passed('all'));
    for (const p of policies) expect(new Set(onB(p)).size).to.equal(onB(p).length);
  });
}
