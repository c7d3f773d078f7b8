// Database outages on PostgreSQL and MySQL/MariaDB: the process never
// crashes, a master that cannot renew stops (reason 'expired') before anyone
// may take over, the masterships of a lock never overlap in time, every
// replica keeps campaigning, and once the database is back there is again
// exactly one master.
//
// Outages: the server kills the connections (pg_terminate_backend, KILL), once
// and repeatedly; and, through a TCP proxy in front of the server, connections
// cut and refused, or a frozen server whose replies arrive late.

import {expect} from '@loopback/testlab';
import {spawnSync} from 'child_process';
import path from 'path';
import {BackendName, SQL_BACKENDS} from '../fixtures/databases';
import {holdsFor, mono, serverAddress, sleep, waitFor} from '../../cluster-kit';
import {Cluster, clusterPerSuite, FAST, Replica, Tenure} from '../fixtures/cluster';
import {TcpProxy} from '../../cluster-kit';

const L = FAST.leaseDuration;
const OUTAGE = 1500;
/** From the end of an outage to exactly one master again, at most. */
const RECOVERY = 10000;

for (const backend of SQL_BACKENDS) {
  describe(`database outage on ${backend} (integration)`, function () {
    this.timeout(30000);
    outageSuite(backend);
  });
}

function outageSuite(backend: BackendName): void {
  let cluster: Cluster;
  let LOCK: string;
  let proxy: TcpProxy | undefined;
  const log = () => cluster.log;

  clusterPerSuite(backend, 'mje_outage', c => {
    cluster = c;
    LOCK = cluster.name('OUTAGE');
  });
  // After the replicas stopped (clusterPerSuite's afterEach runs first).
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  async function startProxy(): Promise<TcpProxy> {
    const address = serverAddress(backend as 'postgresql' | 'mysql');
    proxy = new TcpProxy({host: address.host, port: address.port});
    await proxy.start();
    return proxy;
  }

  /** Three replicas campaigning for LOCK, one of them master. */
  async function startCluster(options: {port?: number; bare?: boolean} = {}) {
    const replicas = await cluster.addReplicas(3, {
      crashable: true, // to see the renewals; nothing crashes
      ...(options.port ? {host: '127.0.0.1', port: options.port} : {}),
      bare: options.bare,
    });
    for (const r of replicas) r.startMaster(LOCK);
    const master = await cluster.waitForSoleMaster(LOCK, 5000);
    await waitFor(
      'everybody sees the master and it renewed',
      () =>
        replicas.every(
          r => r === master || r.handles.get(LOCK)!.status().observedHolder === master.instanceId,
        ) && master.store!.calls.filter(c => c.op === 'renew').length >= 2,
      3000,
    );
    return {replicas, master};
  }

  /** After the outage: still campaigning, one master again, never two at once. */
  async function expectRecovery(replicas: Replica[], outageEndedAt: number): Promise<Replica> {
    for (const r of replicas) {
      expect(r.handles.get(LOCK)!.state).to.be.oneOf('slave', 'master');
      expect(r.executor.getMaster(LOCK)).to.equal(r.handles.get(LOCK));
    }
    const master = await cluster.waitForSoleMaster(LOCK, RECOVERY);
    const recoveredIn = mono() - outageEndedAt;
    await holdsFor(
      'one master, one running job',
      () => cluster.masters(LOCK).length === 1 && log().running(LOCK).length === 1,
      L,
    );
    await waitFor(
      'every other replica sees the new master',
      () =>
        replicas.every(
          r => r === master || r.handles.get(LOCK)!.status().observedHolder === master.instanceId,
        ),
      3000,
    );
    // Every mastership that ended did so because it could not renew in time.
    const ended = log()
      .of(LOCK)
      .filter(t => t.stoppedAt !== undefined);
    expect(ended.map(t => t.reason)).to.matchEach('expired');
    log().expectNoOverlap();
    const row = await cluster.row(LOCK);
    const [current] = log().running(LOCK);
    expect(row.instanceId).to.equal(master.instanceId);
    expect(row.fencingToken).to.equal(current.fencingToken);
    report(`recovered ${Math.round(recoveredIn)} ms after the outage`);
    return master;
  }

  function errorCount(replicas: Replica[]): number {
    return replicas.reduce((n, r) => n + r.errors.length, 0);
  }

  function report(line: string): void {
    console.log(`      ${line}`);
  }

  /** The first tenure must have ended by itself before anyone could take over. */
  function expectExpiredInTime(first: Tenure, outageAt: number): void {
    expect(first.reason).to.equal('expired');
    // No renewal sent after outageAt succeeded, so its deadline was before
    // outageAt + leaseDuration - margin; nobody may take over before outageAt + L.
    expect(first.stoppedAt! - outageAt).to.be.below(L);
    expect(first.signalAbortedAt!).to.be.belowOrEqual(first.stoppedAt!);
  }

  it(`survives the server killing every connection, once and then repeatedly for ${OUTAGE} ms`, async () => {
    const {replicas} = await startCluster();
    const driverErrorsBefore = cluster.db.driverErrors.length;
    let killed = await cluster.db.terminateConnections();
    expect(killed).to.be.aboveOrEqual(replicas.length); // each pool holds a connection
    const stormStartedAt = mono();
    while (mono() - stormStartedAt < OUTAGE) {
      killed += await cluster.db.terminateConnections();
      await sleep(50);
    }
    const stormEndedAt = mono();
    const electionErrors = errorCount(replicas);
    const driverErrors = cluster.db.driverErrors.length - driverErrorsBefore;
    // The kills were felt: by the pools (idle connections) or the election.
    expect(electionErrors + driverErrors).to.be.above(0);
    await expectRecovery(replicas, stormEndedAt);
    report(
      `${killed} connections killed; ${electionErrors} election errors, ${driverErrors} driver ` +
        `errors; ${log().of(LOCK).length} masterships`,
    );
  });

  for (const kind of ['refused', 'frozen'] as const) {
    const title =
      kind === 'refused'
        ? 'connections cut and refused'
        : 'a frozen server whose replies arrive late';
    it(`stops the master (expired) in time during ${OUTAGE} ms of ${title}, and recovers with one master`, async () => {
      const p = await startProxy();
      const {replicas, master} = await startCluster({port: p.port});
      const [first] = log().of(LOCK);

      const outageAt = mono();
      if (kind === 'refused') p.down();
      else p.freeze();
      await waitFor('the master stops', () => log().running(LOCK).length === 0, L + 1000);
      expectExpiredInTime(first, outageAt);
      expect(master.isMaster(LOCK)).to.be.false();
      // Nobody reaches the database: nobody starts.
      await holdsFor(
        'no master during the outage',
        () => log().running(LOCK).length === 0 && cluster.masters(LOCK).length === 0,
        Math.max(0, outageAt + OUTAGE - mono()),
      );
      expect(errorCount(replicas)).to.be.above(0);
      p.restore();
      const restoredAt = mono();

      await expectRecovery(replicas, restoredAt);
      const last = log().running(LOCK)[0];
      expect(last.fencingToken).to.be.above(first.fencingToken);
      expect(last.startedAt).to.be.above(restoredAt);
    });
  }

  it('is kept alive by the component alone (no error listeners of the app) when connections die idle and mid-query', async () => {
    // In a child process: an uncaught exception must be seen as the crash it
    // is, not be caught by mocha.
    const child = spawnSync(
      process.execPath,
      [path.join(__dirname, '../fixtures/outage-child.js'), backend, 'mje_outage', String(OUTAGE)],
      {encoding: 'utf8', timeout: 25000, env: {...process.env, DEBUG: ''}},
    );
    const stderr = child.stderr
      .split('\n')
      .filter(l => !/DeprecationWarning|trace-deprecation/.test(l));
    if (child.status !== 0) {
      throw new Error(
        `the replica process died (exit ${child.status}, signal ${child.signal}):\n` +
          stderr.join('\n').slice(0, 3000),
      );
    }
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!);
    expect(result.ok).to.be.true();
    expect(result.states).to.matchEach((s: string) => s === 'slave' || s === 'master');
    expect(result.reasons).to.matchEach('expired');
    expect(result.cutMidRequest).to.be.above(0);
    report(
      `${result.connections} connections through the proxy, ${result.cutMidRequest} cut mid-request; ` +
        `${result.errors} election errors; ` +
        `${result.masterships} masterships; recovered ${result.recoveredIn} ms after the outage`,
    );
  });
}
