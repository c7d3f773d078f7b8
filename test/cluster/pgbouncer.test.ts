// Real processes of the example app on PostgreSQL behind PgBouncer (Debian's,
// default settings), on a server of the suite's own: the replicas migrate at
// once through it, elect one master, and keep every guarantee through
// SIGKILL, SIGTERM, SIGSTOP beyond the lease and disable/enable over HTTP; no
// advisory lock is left. In transaction pooling, once with wake-ups from a
// direct connection (MASTER_JOB_LISTEN_URL) and once without (the replicas
// say so and poll); in session pooling, as direct; and once without the
// pooler, for the figures beside them (printed at the end).

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {
  CheckReport,
  databaseUrl,
  DatabaseServer,
  FAST_TIMINGS,
  FaultRecord,
  mono,
  PgBouncer,
  PrivateServer,
  ProcessCluster,
  sleep,
  withPg,
} from '../../cluster-kit';
import {note, orSkip} from '../fixtures/real-processes';

const REPLICAS = 3;
const LINE_LAG = 100;
const T = FAST_TIMINGS;

const SETUPS = {
  'no-pooler': 'without a pooler (the figures to compare with)',
  direct: 'behind PgBouncer (transaction pooling), wake-ups from a direct LISTEN',
  polling: 'behind PgBouncer (transaction pooling), wake-ups by polling',
  session: 'behind PgBouncer (session pooling), wake-ups through it',
};
describe('example app processes on PostgreSQL behind PgBouncer', () => {
  const figures: string[] = [];

  after(() => {
    if (figures.length) note(`PostgreSQL, ${REPLICAS} replicas, one run:\n${figures.join('\n')}`);
  });

  for (const wakeUps of ['no-pooler', 'direct', 'polling', 'session'] as const) {
    describe(`cluster on PostgreSQL ${SETUPS[wakeUps]}`, function () {
      this.timeout(30000);
      let own: PrivateServer | undefined;
      let bouncer: PgBouncer | undefined;
      let server: DatabaseServer;
      let cluster: ProcessCluster | undefined;
      const stderr: string[] = [];
      const mine: string[] = [];

      before(async function () {
        this.timeout(60000);
        own = await orSkip(this, () => PrivateServer.create('postgresql'));
        server = new DatabaseServer('postgresql', 'mje_pgbouncer_cluster', own);
        await server.ensureDatabase();
        if (wakeUps !== 'no-pooler') {
          const mode = wakeUps === 'session' ? 'session' : 'transaction';
          bouncer = await PgBouncer.start(own.address, mode);
        }
        cluster = new ProcessCluster({
          server,
          lockNames: [`POOLED-${randomBytes(3).toString('hex')}`],
          replicas: REPLICAS,
          namePrefix: {'no-pooler': 'pgd', direct: 'pgb', polling: 'pgbp', session: 'pgbs'}[
            wakeUps
          ],
          timings: T,
          fencedWriteInterval: 100,
          proxied: true,
          via: bouncer?.address,
          readiness: 'http',
          extraEnv:
            wakeUps === 'direct'
              ? {MASTER_JOB_LISTEN_URL: databaseUrl('postgresql', own.address, server.database)}
              : {},
          onStderr: (_id, line) => stderr.push(line),
        });
        // Every replica migrates at start, all at once, through the pooler.
        await cluster.start();
      });

      after(async function () {
        this.timeout(60000);
        await cluster?.shutdown();
        await bouncer?.stop();
        await own?.destroy();
        figures.push(`  ${SETUPS[wakeUps]}: ${mine.join(', ')}`);
      });

      async function expectHealthy(fault?: FaultRecord): Promise<CheckReport> {
        const c = cluster!;
        const since = mono();
        await c.waitForMaster(c.recoveryBound);
        await c.waitForAcceptedWrite(since, c.recoveryBound);
        await sleep(LINE_LAG);
        const report = c.check(LINE_LAG);
        expect(report.violations).to.deepEqual([]);
        if (fault) {
          const recovery = report.recoveries.find(r => r.fault === fault);
          expect(recovery?.ms).to.be.a.Number();
          mine.push(`${fault.kind} ${Math.round(recovery!.ms!)} ms`);
        }
        return report;
      }

      it('elects exactly one master, whose fenced writes are accepted', async () => {
        const report = await expectHealthy();
        expect(report.tenures).to.have.length(1);
        expect(report.writes.accepted).to.be.above(0);
        const warned = stderr.filter(line => /wake-ups do not arrive through/.test(line));
        if (wakeUps === 'polling') {
          // Said once by each replica, a proof's wait (5 s) after its start.
          await waitForWarnings();
        } else {
          expect(warned).to.deepEqual([]);
        }
      });

      /** Each replica says once that its wake-ups do not arrive. */
      async function waitForWarnings(): Promise<void> {
        const deadline = mono() + 15000;
        const count = () =>
          stderr.filter(line => /wake-ups do not arrive through/.test(line)).length;
        while (count() < REPLICAS && mono() < deadline) await sleep(100);
        expect(count()).to.equal(REPLICAS);
      }

      it('SIGKILL of the master: another takes over with a greater token', async () => {
        const c = cluster!;
        const {fault} = await c.signalMaster('SIGKILL');
        await c.spawnReplica();
        await expectHealthy(fault);
      });

      it('SIGTERM of the master: stop() there, then start() elsewhere, before the lease', async () => {
        const c = cluster!;
        const {victim, fault} = await c.signalMaster('SIGTERM');
        const stop = c.log.jobs.find(
          e =>
            e.lockName === c.lockName &&
            e.event === 'stop' &&
            e.instanceId === victim.instanceId &&
            e.mono >= fault.at,
        );
        expect(stop?.reason).to.equal('stopped');
        const next = await c.waitForJobEvent(
          'a start elsewhere',
          e => e.lockName === c.lockName && e.event === 'start',
          fault.at,
          c.recoveryBound,
        );
        const handoff = next.mono - stop!.mono;
        mine.push(`SIGTERM stop() -> start() ${handoff.toFixed(1)} ms`);
        // Woken through the direct LISTEN at once; else at the next check.
        expect(handoff).to.be.below(wakeUps === 'polling' ? T.checkMasterInterval + 250 : 250);
        await c.spawnReplica();
        await expectHealthy(fault);
      });

      it('SIGSTOP of the master beyond the lease: another takes over; the woken one stops, fenced', async () => {
        const c = cluster!;
        const {victim, fault} = await c.pauseMaster(c.recoveryBound);
        await c.waitForJobEvent(
          'the woken master to stop',
          e =>
            e.lockName === c.lockName && e.event === 'stop' && e.instanceId === victim.instanceId,
          fault.at,
          T.leaseDuration,
        );
        await expectHealthy(fault);
      });

      it('disable and enable over HTTP on a replica that is not the master', async () => {
        const c = cluster!;
        const {fault} = await c.disableAndEnable(T.leaseDuration + T.checkMasterInterval);
        await expectHealthy(fault);
      });

      it('leaves no advisory lock on the server', async () => {
        const {rows} = await withPg(own!.address, client =>
          client.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'"),
        );
        expect(rows[0].n).to.equal(0);
      });
    });
  }
});
