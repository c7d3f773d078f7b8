// Real processes of the example app on PostgreSQL and on MariaDB servers of
// the suite's own, each replica behind a proxy of its own, faults injected
// into the master one after another: SIGKILL, SIGTERM, SIGSTOP beyond the
// lease, its database connections killed, the database server restarted,
// frozen and killed -9, disable/enable over HTTP and a storm of them, the
// master cut off from the database, slowed down, starved of CPU. After each
// one the checker reads the whole record so far (see cluster-kit/checker.ts
// for what it verifies); a short random run ends each suite, with tasks
// posted to the queue and a cron schedule firing throughout, checked at the
// end (cluster-kit/chaos-work.ts).

import {expect} from '@loopback/testlab';
import {randomBytes} from 'crypto';
import {mkdirSync} from 'fs';
import path from 'path';
import {
  ChaosWork,
  CheckReport,
  ClusterTimings,
  DatabaseServer,
  FAST_TIMINGS,
  FaultRecord,
  formatSummary,
  JobEvent,
  mono,
  PrivateServer,
  ProcessCluster,
  Replica,
  runChaos,
  seededRandom,
  sleep,
  SqlBackend,
  workEnv,
  writeHistory,
} from '../../cluster-kit';
import {note, orSkip} from '../fixtures/real-processes';

const REPLICAS = 3;
/** Lines younger than this may still be in the pipes: the checker looks at older ones. */
const LINE_LAG = 100;
/** The short random run at the end of each suite (`npm run chaos` runs long ones). */
const CHAOS_SECONDS = Number(process.env.CLUSTER_CHAOS_SECONDS ?? 40);
const CHAOS_SEED = 42;

/**
 * PostgreSQL polls faster than the lease (C < L); MariaDB slower (C > L), as
 * the defaults do (30 s > 24 s): non-masters then take over on their expiry
 * timer, with a compare-and-set on a possibly stale observation.
 */
const TIMINGS: Record<SqlBackend, ClusterTimings> = {
  postgresql: FAST_TIMINGS,
  mysql: {...FAST_TIMINGS, checkMasterInterval: 1200},
};

for (const backend of ['postgresql', 'mysql'] as SqlBackend[]) {
  const T = TIMINGS[backend];
  const title = `cluster of example app processes on ${backend} (C ${T.checkMasterInterval}, L ${T.leaseDuration})`;
  describe(title, function () {
    this.timeout(30000);
    let server: DatabaseServer;
    let cluster: ProcessCluster | undefined;
    let work: ChaosWork | undefined;
    /** Recovery times, printed at the end. */
    const recoveries: string[] = [];

    let own: PrivateServer | undefined;

    before(async function () {
      this.timeout(60000);
      // A server of this suite's own: it is stopped and restarted below.
      own = await orSkip(this, () => PrivateServer.create(backend));
      server = new DatabaseServer(backend, 'mje_cluster', own);
      await server.ensureDatabase();
      const queue = `CLUSTER-Q-${randomBytes(3).toString('hex')}`;
      cluster = new ProcessCluster({
        server,
        lockNames: [`CLUSTER-${randomBytes(3).toString('hex')}`],
        replicas: REPLICAS,
        namePrefix: backend === 'postgresql' ? 'pg' : 'my',
        timings: T,
        fencedWriteInterval: 100,
        proxied: true,
        readiness: 'http',
        extraEnv: workEnv(queue),
      });
      await cluster.start();
      // Tasks posted and occurrences fired through every fault below; checked at the end.
      work = new ChaosWork(cluster, queue);
      work.start();
    });

    afterEach(function () {
      if (this.currentTest?.state === 'failed' && cluster) {
        note(`timeline (ms since the cluster started):\n${cluster.describe()}`);
        // The whole record, for npm run check-history and a closer look.
        const file = path.join('.tmp', `cluster-${backend}-${Date.now()}.jsonl`);
        mkdirSync('.tmp', {recursive: true});
        writeHistory(file, cluster.log, cluster.checkBounds());
        note(`history: ${file}`);
      }
    });

    after(async function () {
      this.timeout(60000);
      if (process.env.CLUSTER_VERBOSE && cluster) note(cluster.describe());
      await work?.stop(true);
      await cluster?.shutdown();
      await own?.destroy();
      if (recoveries.length) note(`recoveries: ${recoveries.join(', ')}`);
    });

    /**
     * Waits for a master and its accepted write, then runs the checker on
     * everything so far; with a fault, also returns how soon a master acted.
     */
    async function expectHealthy(fault?: FaultRecord): Promise<CheckReport> {
      const c = cluster!;
      const since = mono();
      await c.waitForMaster(c.recoveryBound);
      await c.waitForAcceptedWrite(since, c.recoveryBound);
      await sleep(LINE_LAG);
      const report = c.check(LINE_LAG);
      expect(report.violations).to.deepEqual([]);
      expect(c.live()).to.have.length(REPLICAS);
      if (fault) {
        const recovery = report.recoveries.find(r => r.fault === fault);
        expect(recovery?.ms).to.be.a.Number(); // the checker held it to the bound
        recoveries.push(`${fault.kind} ${Math.round(recovery!.ms!)} ms`);
      }
      return report;
    }

    /** The victim's stop line since the fault, if any. */
    function stopSince(victim: Replica, fault: FaultRecord): JobEvent | undefined {
      const c = cluster!;
      return c.log.jobs.find(
        e =>
          e.lockName === c.lockName &&
          e.event === 'stop' &&
          e.instanceId === victim.instanceId &&
          e.mono >= fault.at,
      );
    }

    /** The first start line of the job since the fault, waited for up to the recovery bound. */
    function nextStart(fault: FaultRecord): Promise<JobEvent> {
      const c = cluster!;
      return c.waitForJobEvent(
        'a start elsewhere',
        e => e.lockName === c.lockName && e.event === 'start',
        fault.at,
        c.recoveryBound,
      );
    }

    /** Cut off by the database beyond the lease, the victim stopped ('expired') before it was back. */
    function expectExpiredBeforeRecovery(victim: Replica, fault: FaultRecord): void {
      const stop = stopSince(victim, fault);
      expect(stop?.reason).to.equal('expired');
      expect(stop!.mono).to.be.below(fault.recoverFrom);
    }

    /** The fenced resource row holds the highest token of any accepted write. */
    async function expectHighestTokenStored(): Promise<void> {
      const c = cluster!;
      const row = await server.readFencedResource(c.lockName);
      const highest = Math.max(...c.log.writes.filter(w => w.accepted).map(w => w.fencingToken));
      expect(row?.fencingToken).to.equal(highest);
    }

    it('elects exactly one master, whose fenced writes are accepted', async () => {
      const report = await expectHealthy();
      expect(report.tenures).to.have.length(1);
      expect(report.writes.accepted).to.be.above(0);
      expect(report.writes.rejected).to.equal(0);
    });

    it('SIGKILL of the master: another replica takes over with a greater token', async () => {
      const c = cluster!;
      const {victim, fault} = await c.signalMaster('SIGKILL');
      const next = await nextStart(fault);
      expect(next.instanceId).to.not.equal(victim.instanceId);
      const victimStart = c.log.jobs
        .filter(
          e =>
            e.lockName === c.lockName && e.event === 'start' && e.instanceId === victim.instanceId,
        )
        .pop();
      expect(next.fencingToken).to.be.above(victimStart!.fencingToken!);
      await c.spawnReplica();
      await expectHealthy(fault);
    });

    it('SIGTERM of the master: stop() runs there, and the release hands over before the lease', async () => {
      const c = cluster!;
      const {victim, fault} = await c.signalMaster('SIGTERM');
      const stop = stopSince(victim, fault);
      expect(stop?.reason).to.equal('stopped');
      const next = await nextStart(fault);
      // Released and told: the others are woken at once (NOTIFY on PostgreSQL, the doorbell
      // on MariaDB), not at their next poll (C) nor at expiry (L); tens of ms in the bench.
      note(`stop() -> start() elsewhere: ${(next.mono - stop!.mono).toFixed(1)} ms`);
      expect(next.mono - stop!.mono).to.be.below(250);
      await c.spawnReplica();
      await expectHealthy(fault);
    });

    it('SIGSTOP of the master beyond the lease: another takes over; the woken one stops and is fenced', async () => {
      const c = cluster!;
      const {victim, fault} = await c.pauseMaster(c.recoveryBound);
      const resumed = mono();
      const stop = await c.waitForJobEvent(
        'the woken master to stop',
        e => e.lockName === c.lockName && e.event === 'stop' && e.instanceId === victim.instanceId,
        fault.at,
        T.leaseDuration,
      );
      expect(['expired', 'lost']).to.containEql(stop.reason);
      const report = await expectHealthy(fault);
      expect(report.fencedOverlaps).to.equal(1);
      // Whatever the woken master wrote with its old token was rejected: the new master
      // has written by then. (Whether it writes at all depends on which of its overdue
      // timers runs first, the job's or the election's.)
      const stale = c.log.writes.filter(
        w => w.instanceId === victim.instanceId && w.monoBefore >= resumed,
      );
      expect(stale.filter(w => w.accepted || w.error)).to.deepEqual([]);
      recoveries.push(`(${stale.length} stale write(s) rejected)`);
    });

    it('SIGSTOP of a replica that is not the master, beyond the lease: on waking it does not take over', async () => {
      const c = cluster!;
      const master = c.master()!;
      const {victim, fault} = await c.pauseNonMaster(c.recoveryBound);
      // Its observation of the lock is old now: a takeover it tries must fail the compare-and-set.
      await sleep(T.checkMasterInterval + T.heartbeatInterval);
      expect(
        c.log.jobs.filter(
          e =>
            e.lockName === c.lockName && e.instanceId === victim.instanceId && e.mono >= fault.at,
        ),
      ).to.deepEqual([]);
      expect(c.master()).to.equal(master);
      await expectHealthy(fault);
    });

    it("the master's database connections terminated: it never crashes, a master again soon", async () => {
      const c = cluster!;
      const {fault, killed} = await c.cutMasterConnections();
      expect(killed).to.be.above(0);
      await expectHealthy(fault);
    });

    it('the database server stopped and restarted: the master expires, then one master again', async function () {
      const c = cluster!;
      this.timeout(90000);
      // Down for longer than the lease: the master must give up on its own.
      const {victim, fault} = await c.restartDatabase(T.leaseDuration + 500);
      expectExpiredBeforeRecovery(victim, fault);
      await expectHealthy(fault);
      // The resource row holds the highest token accepted.
      await expectHighestTokenStored();
    });

    it('disable and enable over HTTP on a replica that is not the master', async () => {
      const c = cluster!;
      const {victim, fault} = await c.disableAndEnable(T.leaseDuration + T.checkMasterInterval);
      const stop = stopSince(victim, fault);
      expect(stop?.reason).to.equal('disabled');
      await expectHealthy(fault);
    });

    it('the master cut off from the database beyond the lease: it stops on its own clock, before another starts', async () => {
      const c = cluster!;
      const fencedBefore = c.check().fencedOverlaps;
      const {victim, fault} = await c.partitionMaster(c.recoveryBound);
      const stop = stopSince(victim, fault);
      expect(['expired', 'lost']).to.containEql(stop?.reason);
      const next = c.log.jobs.find(
        e =>
          e.lockName === c.lockName &&
          e.event === 'start' &&
          e.instanceId !== victim.instanceId &&
          e.mono >= fault.at,
      );
      // Not a pause: no overlap is excused, the cut-off master stopped first.
      expect(next!.mono).to.be.above(stop!.mono);
      const report = await expectHealthy(fault);
      expect(report.fencedOverlaps).to.equal(fencedBefore);
    });

    it('every packet of the master delayed by half a lease: one master throughout or a clean handover', async () => {
      const c = cluster!;
      const {fault} = await c.slowMaster(T.leaseDuration / 2, 2 * T.leaseDuration);
      await expectHealthy(fault);
    });

    it('the master starved of CPU (20 % of a core for two leases): fenced if overtaken, one master after', async () => {
      const c = cluster!;
      const {fault} = await c.starveMaster(0.2, 2 * T.leaseDuration);
      await expectHealthy(fault);
    });

    it('the database server frozen beyond the lease: the master expires, then one master again', async function () {
      const c = cluster!;
      this.timeout(90000);
      const {victim, fault} = await c.freezeDatabase(T.leaseDuration + 500);
      expectExpiredBeforeRecovery(victim, fault);
      await expectHealthy(fault);
    });

    it('the database server killed -9: crash recovery, then one master with the highest token written', async function () {
      const c = cluster!;
      this.timeout(90000);
      const {fault} = await c.crashDatabase(500);
      await expectHealthy(fault);
      await expectHighestTokenStored();
    });

    it('a storm of 10 disables and enables through random replicas: nothing starts while disabled, one master after', async () => {
      const c = cluster!;
      const {fault} = await c.restStorm(10, 2 * T.heartbeatInterval, seededRandom(7));
      await expectHealthy(fault);
    });

    it(`survives ${CHAOS_SECONDS} s of random faults (seed ${CHAOS_SEED}), losing no task and no cron occurrence`, async function () {
      this.timeout(CHAOS_SECONDS * 1000 + 180000);
      const summary = await runChaos(cluster!, {
        durationMs: CHAOS_SECONDS * 1000,
        seed: CHAOS_SEED,
      });
      // The fault counts are this run's; the rest covers the whole suite.
      const text = formatSummary(summary, `${REPLICAS} replicas on ${backend}`);
      note(text);
      expect(summary.report.violations).to.deepEqual([]);
      expect(summary.harnessErrors).to.deepEqual([]);
      await expectHealthy();
      // The work of the whole suite: every task posted since the start done, every occurrence once.
      const done = await work!.finish();
      note(
        `work: ${done.tasks} tasks (${done.reruns} run twice, ${done.retriedPosts} posts retried), ` +
          `${done.firings} cron firings (${done.unfired} claimed by a master that ended first)`,
      );
      expect(done.violations).to.deepEqual([]);
      expect(done.tasks).to.be.above(100);
      expect(done.firings).to.be.above(CHAOS_SECONDS / 2);
    });
  });
}
