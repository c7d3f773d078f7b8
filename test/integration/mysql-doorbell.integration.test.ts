// The MySQL/MariaDB doorbell on its own (the elections it wakes are in
// election.integration.test.ts): a ring wakes every other replica of the
// database and not the ringer, at once even when rings come close together,
// a storm of rings wakes a replica at most once per MIN_WAKE_GAP, a killed
// connection comes back by itself, and close() leaves no wait on the server.
// The ring of watches: a replica whose connections close (a crash) is rung
// about at once by the one watching it; every replica is watched by exactly
// one other through joins and leaves.

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {mono, sleep, waitFor} from '../../cluster-kit';
import {
  DOORBELL_LOCK_PREFIX,
  MIN_WAKE_GAP,
  MysqlDoorbell,
} from '../../src/store/mysql/mysql-doorbell';
import {openTestDatabase, TestDatabase} from '../fixtures/databases';

describe('MySQL doorbell (integration)', function () {
  let db: TestDatabase | undefined;
  const bells: MysqlDoorbell[] = [];

  before(async function () {
    this.timeout(20000);
    db = await openTestDatabase(this, 'mysql', 'mje_doorbell');
  });

  afterEach(async () => {
    await Promise.all(bells.splice(0).map(b => b.close()));
  });

  after(async function () {
    this.timeout(20000);
    await db?.close();
  });

  /** A doorbell on a datasource of its own (a replica), counting its wakes once asleep. */
  async function replica(poolSize = 5): Promise<{
    bell: MysqlDoorbell;
    ds: juggler.DataSource;
    wakes: number[];
  }> {
    const ds = db!.createDataSource({poolSize});
    const bell = new MysqlDoorbell(ds);
    bells.push(bell);
    const wakes: number[] = [];
    bell.subscribe(message => {
      if (message.kind === 'anything') wakes.push(mono());
    });
    await waitFor('the doorbell listening', () => bell.listening, 5000);
    await waitFor('its wait in the process list', async () => (await sleepers(ds)) > 0, 3000);
    await sleep(MIN_WAKE_GAP * 2); // the wake of its first sleep is told
    wakes.length = 0;
    return {bell, ds, wakes};
  }

  /**
   * The ring as the server shows it: for each replica, in the order given,
   * the index of the replica whose doorbell it watches (-1: none, or a lock
   * of no replica given).
   */
  async function watched(rs: {ds: juggler.DataSource}[]): Promise<number[]> {
    const rows = (await rs[0].ds.execute(
      'SELECT ID AS id, INFO AS info FROM information_schema.PROCESSLIST WHERE DB <=> DATABASE() AND INFO LIKE ?',
      [`%GET_LOCK('${DOORBELL_LOCK_PREFIX}%`],
    )) as {id: number; info: string}[];
    const owner = (id: number) => rs.findIndex(r => db!.threadIdsOf(r.ds).includes(Number(id)));
    const bellOf = new Map<string, number>(); // a lock -> the replica whose doorbell waits on it
    const watchOf = new Map<number, string>(); // a replica -> the lock it watches
    for (const {id, info} of rows) {
      const name = /GET_LOCK\('([^']+)'/.exec(info)![1];
      if (info.startsWith('SELECT 1 AS watching')) watchOf.set(owner(id), name);
      else bellOf.set(name, owner(id));
    }
    return rs.map((_, i) => bellOf.get(watchOf.get(i) ?? '') ?? -1);
  }

  /** Every replica watches another, and following the watches visits all of them: one ring. */
  async function isOneRing(rs: {ds: juggler.DataSource}[]): Promise<boolean> {
    const next = await watched(rs);
    const seen = new Set<number>();
    for (let i = 0; !seen.has(i) && i >= 0; i = next[i]) seen.add(i);
    return next.every((n, i) => n >= 0 && n !== i) && seen.size === rs.length;
  }

  async function sleepers(ds: juggler.DataSource): Promise<number> {
    const rows = (await ds.execute(
      'SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE DB <=> DATABASE() AND INFO LIKE ?',
      [`SELECT GET_LOCK('${DOORBELL_LOCK_PREFIX}%`],
    )) as {n: number}[];
    return Number(rows[0].n);
  }

  it('wakes every other replica of the database at a ring, not the ringer', async () => {
    const [a, b, c] = [await replica(), await replica(), await replica()];
    const rungAt = mono();
    a.bell.publish([{kind: 'control', lockName: 'X', control: 'enabled'}]);
    await waitFor('b and c woken', () => b.wakes.length > 0 && c.wakes.length > 0, 2000);
    expect(b.wakes[0] - rungAt).to.be.below(500);
    await sleep(100);
    expect(a.wakes).to.deepEqual([]);
  });

  it('wakes every replica within 50 ms of every ring, 60 rings 5-200 ms apart among 4 replicas', async () => {
    const rs = [await replica(), await replica(), await replica(), await replica()];
    const late: string[] = [];
    for (let i = 0; i < 60; i++) {
      await sleep(5 + Math.random() * 195);
      const ringer = rs[i % rs.length];
      const others = rs.filter(r => r !== ringer);
      const before = others.map(r => r.wakes.length);
      const at = mono();
      ringer.bell.publish([{kind: 'joined', lockName: 'X'}]);
      await waitFor(
        'every other replica woken',
        () => others.every((r, j) => r.wakes.length > before[j]),
        3000,
      );
      const worst = Math.max(...others.map(r => r.wakes[r.wakes.length - 1] - at));
      if (worst > 50) late.push(`ring ${i}: ${worst.toFixed(1)} ms`);
    }
    // SELECT SLEEP() instead of a lock wait: several rings of 2 s here.
    expect(late).to.deepEqual([]);
  });

  it('tells a storm of rings at most once per MIN_WAKE_GAP, and the last ring after it', async () => {
    const [a, b] = [await replica(), await replica()];
    const from = mono();
    for (let i = 0; i < 40; i++) {
      a.bell.publish([{kind: 'joined', lockName: 'X'}]);
      await sleep(2);
    }
    const to = mono();
    await sleep(MIN_WAKE_GAP * 3);
    const gaps = b.wakes.slice(1).map((t, i) => t - b.wakes[i]);
    expect(b.wakes.length).to.be.above(0);
    expect(b.wakes.length).to.be.belowOrEqual(Math.ceil((to - from) / MIN_WAKE_GAP) + 2);
    expect(gaps.every(g => g >= MIN_WAKE_GAP - 2)).to.be.true();
    // Nothing rung after the last wake is left untold.
    expect(b.wakes[b.wakes.length - 1]).to.be.above(to - MIN_WAKE_GAP - 5);
  });

  it('comes back by itself when its connection is killed, and wakes its listeners then', async () => {
    const a = await replica();
    await db!.terminateConnections();
    await waitFor('waiting again', async () => (await sleepers(a.ds).catch(() => 0)) > 0, 5000);
    expect(a.wakes.length).to.be.above(0); // rings may have been missed: re-check everything
  });

  it('leaves no wait on the server once closed, nor a watch', async () => {
    const a = await replica();
    const other = db!.createDataSource();
    const waits = async () =>
      Number(
        (
          (await other.execute(
            'SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE DB <=> DATABASE() AND INFO LIKE ?',
            [`%GET_LOCK('${DOORBELL_LOCK_PREFIX}%`],
          )) as {n: number}[]
        )[0].n,
      );
    expect(await sleepers(other)).to.equal(1);
    await waitFor('its watch (of itself, alone)', async () => (await waits()) === 2, 3000);
    await a.bell.close();
    await waitFor('no wait, no watch', async () => (await waits()) === 0, 1000);
  });

  it('rings every replica within 200 ms when one dies (its connections close), through the one watching it', async () => {
    const rs = [await replica(), await replica(), await replica(), await replica()];
    await waitFor('one ring of watches', () => isOneRing(rs), 3000);
    for (const victim of rs.slice(0, 2)) {
      const others = rs.filter(r => r !== victim);
      await sleep(MIN_WAKE_GAP * 2);
      others.forEach(r => (r.wakes.length = 0));
      const at = mono();
      // The first kill frees its lock: the rest of its connections may close by themselves.
      expect(await db!.terminateConnectionsOf(victim.ds)).to.be.above(0);
      await waitFor('the others woken', () => others.every(r => r.wakes.length > 0), 2000);
      expect(Math.max(...others.map(r => r.wakes[0] - at))).to.be.below(200);
      // The victim comes back by itself, under a new name, and is watched again.
      await waitFor('one ring again', () => isOneRing(rs), 5000);
    }
  });

  it('keeps every replica watched by exactly one other through joins and leaves', async () => {
    const rs = [await replica(), await replica()];
    await waitFor('a ring of 2', () => isOneRing(rs), 3000);
    rs.push(await replica(), await replica(), await replica());
    await waitFor('a ring of 5', () => isOneRing(rs), 3000);
    const leaving = rs.splice(1, 2);
    const before = rs.map(r => r.wakes.length);
    await Promise.all(leaving.map(r => r.bell.close()));
    await waitFor('a ring of 3', () => isOneRing(rs), 3000);
    // A leave is not a crash: nobody rang.
    await sleep(200);
    expect(rs.map(r => r.wakes.length)).to.deepEqual(before);
  });

  it('forms one ring of replicas started at the same moment', async () => {
    const rs = await Promise.all([replica(), replica(), replica(), replica()]);
    await waitFor('a ring of 4', () => isOneRing(rs), 8000);
  });

  it('leaves a replica that does not watch (a pool of 4) out of the ring, which stays whole', async () => {
    const rs = [await replica(), await replica(), await replica()];
    const bystander = await replica(4);
    await waitFor('a ring of the 3 that watch', () => isOneRing(rs), 5000);
    expect((await watched([...rs, bystander]))[3]).to.equal(-1);
  });

  it('does not watch with a pool of 4 (the doorbell only): a dead replica goes unnoticed until the polls', async () => {
    const rs = [await replica(4), await replica(4), await replica(4)];
    expect(await watched(rs)).to.deepEqual([-1, -1, -1]);
    await db!.terminateConnectionsOf(rs[0].ds);
    await sleep(500);
    expect(rs.slice(1).map(r => r.wakes.length)).to.deepEqual([0, 0]);
  });
});
