// The example app's cluster-singleton cron (DEMO-CRON, every second) in three
// real processes on PostgreSQL for a minute, its master SIGKILLed halfway:
// every firing happens on exactly one replica, the one that is master then.

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {openTestDatabase} from '../fixtures/databases';
import {DatabaseServer, mono, ProcessCluster, sleep, waitFor} from '../../cluster-kit';

const CRON_LOCK = 'DEMO-CRON';
const RUN_SECONDS = Number(process.env.CLUSTER_CRON_SECONDS ?? 60);

describe('cluster-singleton cron in example app processes on postgresql', function () {
  this.timeout((RUN_SECONDS + 60) * 1000);
  let cluster: ProcessCluster | undefined;

  before(async function () {
    const db = await openTestDatabase(this, 'postgresql', 'mje_cron'); // skips if unreachable
    await db.close();
    cluster = new ProcessCluster({
      server: new DatabaseServer('postgresql', 'mje_cron'),
      lockNames: [`CRON-SIDE-${randomBytes(3).toString('hex')}`],
      replicas: 3,
      namePrefix: 'cron',
      fencedWriteInterval: 100,
      extraEnv: {DEMO_CRON: '* * * * * *'},
    });
    await cluster.start();
  });
  after(() => cluster?.shutdown());

  /** The replica whose DEMO-CRON start has no stop yet. */
  function cronMaster(c: ProcessCluster) {
    const open = new Map<string, boolean>();
    for (const e of c.log.jobs.filter(j => j.lockName === CRON_LOCK)) {
      open.set(e.instanceId, e.event === 'start');
    }
    return c.live().find(r => open.get(r.instanceId));
  }

  it('fires each second on exactly one replica over a minute with a failover', async () => {
    const c = cluster!;
    const started = mono();
    await waitFor('a DEMO-CRON master', () => cronMaster(c) !== undefined, 10000, 20);
    await sleep((RUN_SECONDS * 1000) / 2);
    const victim = cronMaster(c)!;
    const firedBefore = c.cronFirings.length;
    victim.kill('SIGKILL');
    const killedAt = mono();
    await sleep(Math.max(0, started + RUN_SECONDS * 1000 - mono()));

    const firings = c.cronFirings.filter(f => f.lockName === CRON_LOCK);
    expect(firings.length).to.be.greaterThan(RUN_SECONDS - 10);
    // each firing second is fired by one replica only
    const bySecond = new Map<string, string[]>();
    for (const f of firings) {
      const second = f.at.slice(0, 19);
      bySecond.set(second, [...(bySecond.get(second) ?? []), f.instanceId]);
    }
    const doubled = [...bySecond].filter(([, who]) => who.length > 1);
    expect(doubled).to.deepEqual([]);
    // before the kill on the victim, after it on another replica with a greater token
    const before = firings.slice(0, firedBefore).filter(f => f.mono < killedAt);
    const after = firings.filter(f => f.mono > killedAt);
    expect(new Set(before.map(f => f.instanceId))).to.deepEqual(new Set([victim.instanceId]));
    expect(after.length).to.be.greaterThan(RUN_SECONDS / 2 - 5);
    expect(after.every(f => f.instanceId !== victim.instanceId)).to.be.true();
    expect(Math.min(...after.map(f => f.fencingToken))).to.be.greaterThan(
      Math.max(...before.map(f => f.fencingToken)),
    );
    // every firing came from the replica holding the cron lock at that moment (token of its start)
    for (const f of firings) {
      const start = c.log.jobs
        .filter(
          j => j.lockName === CRON_LOCK && j.event === 'start' && j.instanceId === f.instanceId,
        )
        .filter(j => j.mono <= f.mono)
        .pop();
      expect(start?.fencingToken).to.equal(f.fencingToken);
    }
    // missed firings: only while nobody was master (lease + check interval after the kill)
    const gap = Math.min(...after.map(f => f.mono)) - killedAt;
    expect(gap).to.be.below(c.recoveryBound + 1000);
    process.stdout.write(
      `      ${firings.length} firings in ${RUN_SECONDS} s, none doubled; ` +
        `first firing on the new master ${Math.round(gap)} ms after the SIGKILL\n`,
    );
    expect(c.live().length).to.equal(2); // no process lost but the one killed
  });
});
