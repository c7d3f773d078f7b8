// The example app's cluster-singleton cron (DEMO-CRON, every second, missed:
// all) in three real processes, on PostgreSQL and on MariaDB, its master
// SIGKILLed three times at occurrence boundaries (right after a firing, just
// before the next occurrence, right at it). No occurrence fires twice; none is
// lost: each second of the run fired once, late if nobody was master then, or
// was claimed by a master killed before it could fire it.

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {openTestDatabase} from '../fixtures/databases';
import {
  checkCronFirings,
  DatabaseServer,
  openSql,
  ProcessCluster,
  sleep,
  SqlBackend,
  waitFor,
} from '../../cluster-kit';

const CRON_LOCK = 'DEMO-CRON';
/** When each kill lands, in ms from the occurrence it aims at (negative: before it). */
const KILL_OFFSETS = [30, -15, 2];

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  describe(`cluster-singleton cron in example app processes on ${backend}`, function () {
    this.timeout(120000);
    let cluster: ProcessCluster | undefined;
    const database = 'mje_cron';

    before(async function () {
      const db = await openTestDatabase(this, backend, database); // skips if unreachable
      await db.close();
      const server = new DatabaseServer(backend, database);
      // The schedule's occurrences of earlier runs: 'all' would fire the ones since.
      const sql = openSql(backend, server.address, database, 1);
      await sql
        .query(
          backend === 'postgresql'
            ? 'DELETE FROM mastercronrun WHERE lockname = $1'
            : 'DELETE FROM MasterCronRun WHERE lockName = ?',
          [CRON_LOCK],
        )
        .catch(() => {}); // no table yet
      await sql.close();
      cluster = new ProcessCluster({
        server,
        lockNames: [`CRON-SIDE-${randomBytes(3).toString('hex')}`],
        replicas: 3,
        namePrefix: `cron${backend === 'postgresql' ? 'pg' : 'my'}`,
        extraEnv: {DEMO_CRON: '* * * * * *', DEMO_CRON_MISSED: 'all'},
      });
      await cluster.start();
    });
    after(() => cluster?.shutdown());

    /** The live replica whose DEMO-CRON start has no stop yet. */
    function cronMaster(c: ProcessCluster) {
      const open = new Map<string, boolean>();
      for (const e of c.log.jobs.filter(j => j.lockName === CRON_LOCK)) {
        open.set(e.instanceId, e.event === 'start');
      }
      return c.live().find(r => open.get(r.instanceId));
    }

    it('fires every occurrence once through SIGKILLs at occurrence boundaries', async () => {
      const c = cluster!;
      const firings = () => c.cronFirings.filter(f => f.lockName === CRON_LOCK);
      await waitFor('two firings', () => firings().length >= 2, 15000, 20);
      const kills: {victim: string; offset: number}[] = [];
      for (const offset of KILL_OFFSETS) {
        const victim = await waitFor('a DEMO-CRON master', () => cronMaster(c), 15000, 20);
        const seen = firings().length;
        await waitFor('a firing of this master', () => firings().length > seen, 5000, 5);
        const last = firings()[firings().length - 1];
        // The occurrence after the one just fired, on this process's wall clock.
        const target = new Date(last.scheduledAt).getTime() + 1000 + offset;
        await sleep(Math.max(0, target - Date.now()));
        victim.kill('SIGKILL');
        kills.push({victim: victim.instanceId, offset});
        await victim.exited;
        await c.ensure(3);
      }
      const seen = firings().length;
      await waitFor(
        'three firings after the last kill',
        () => firings().length >= seen + 3,
        15000,
        20,
      );

      const all = firings();
      // Every second from the first firing to the last: fired once, or claimed by a killed master.
      const sql = openSql(backend, c.server.address, database, 1);
      const rows = (
        await sql.query(
          backend === 'postgresql'
            ? 'SELECT scheduledat AS "at", instanceid AS "by", outcome FROM mastercronrun WHERE lockname = $1'
            : 'SELECT scheduledAt AS `at`, instanceId AS `by`, outcome FROM MasterCronRun WHERE lockName = ?',
          [CRON_LOCK],
        )
      ).rows;
      await sql.close();
      const report = checkCronFirings({
        firings: all.map(f => ({
          scheduledAt: new Date(f.scheduledAt).getTime(),
          instanceId: f.instanceId,
        })),
        claims: rows.map(r => ({
          scheduledAt: new Date(r.at as string).getTime(),
          instanceId: String(r.by),
          outcome: r.outcome as string | null,
        })),
        exits: c.log.exits,
        periodMs: 1000,
      });
      expect(report.violations).to.deepEqual([]);
      const unfired = report.unfired;
      // Each firing came from the master of that moment (the token of its start line).
      for (const f of all) {
        const start = c.log.jobs
          .filter(
            j => j.lockName === CRON_LOCK && j.event === 'start' && j.instanceId === f.instanceId,
          )
          .filter(j => j.mono <= f.mono)
          .pop();
        expect(start?.fencingToken).to.equal(f.fencingToken);
      }
      const late = all.filter(
        f => new Date(f.at).getTime() - new Date(f.scheduledAt).getTime() > 500,
      );
      process.stdout.write(
        `      ${all.length} firings, ${kills.length} SIGKILLs at ${KILL_OFFSETS.join(', ')} ms from an occurrence: ` +
          `none twice, none lost (${late.length} fired late by the next master, ${unfired} claimed by a killed one before it fired)\n`,
      );
      expect(late.length).to.be.above(0); // the lease after each kill: nobody fired then
      expect(c.live().length).to.equal(3);
    });
  });
}
