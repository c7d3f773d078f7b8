// The process harness of the cluster kit: a cluster of real replica
// processes (the example app, dist/example/index.js, or another script that
// prints the same JSON lines, such as the benchmark's baseline) on one
// database, and the faults the cluster tests, the benchmark and
// `npm run chaos` inject into it. Every JSON line the replicas print, every
// fault, pause and exit goes into one EventLog, timed on CLOCK_MONOTONIC like
// the replicas' lines, for the checker.

import path from 'path';
import {
  checkCluster,
  CheckOptions,
  CheckReport,
  describeLog,
  FaultKind,
  FaultRecord,
  JobEvent,
  WriteEvent,
} from './checker';
import {DatabaseServer} from './database-server';
import {freePort} from './http';
import {EventLog} from './log';
import {Replica} from './replica';
import {TcpProxy} from './tcp-proxy';
import {mono, sleep, waitFor} from './time';

/** The example app as built (dist/example/index.js). */
export const EXAMPLE_SCRIPT = path.resolve(__dirname, '../example/index.js');

export interface ClusterTimings {
  initDelay: number;
  checkMasterInterval: number;
  heartbeatInterval: number;
  leaseDuration: number;
  maxHeartbeatRetryCount: number;
  /** Unset: the replicas' default (10 s). */
  stopTimeout?: number;
}

/** Short timings for the tests (heartbeat < 0.8 x lease). */
export const FAST_TIMINGS: ClusterTimings = {
  initDelay: 0,
  checkMasterInterval: 500,
  heartbeatInterval: 200,
  leaseDuration: 1000,
  maxHeartbeatRetryCount: 3,
  stopTimeout: 2000,
};

/** The environment that sets the election's timings in a replica. */
export function timingEnv(t: ClusterTimings): Record<string, string> {
  const env: Record<string, string> = {
    INIT_DELAY: String(t.initDelay),
    CHECK_MASTER_INTERVAL: String(t.checkMasterInterval),
    MASTER_JOB_HEARTBEAT_INTERVAL: String(t.heartbeatInterval),
    MASTER_JOB_LEASE_DURATION: String(t.leaseDuration),
    MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT: String(t.maxHeartbeatRetryCount),
  };
  if (t.stopTimeout !== undefined) env.MASTER_JOB_STOP_TIMEOUT = String(t.stopTimeout);
  return env;
}

export interface ClusterOptions {
  server: DatabaseServer;
  /** The locks every replica campaigns for (DEMO_LOCKS); faults aim at the master of the first. */
  lockNames: string[];
  /** How many replicas start() starts. */
  replicas?: number;
  /** Instance ids are `${namePrefix}-1`, `${namePrefix}-2`, ... */
  namePrefix: string;
  /** Default: the example app. */
  script?: string;
  timings?: ClusterTimings;
  /** ms between the master's fenced writes (DEMO_FENCED_WRITE_INTERVAL); unset: none. */
  fencedWriteInterval?: number;
  /** The environment the replicas' own is added to; default this process's. */
  baseEnv?: NodeJS.ProcessEnv;
  /** More environment for the replicas (e.g. DEMO_CRON). */
  extraEnv?: Record<string, string>;
  /**
   * 'listening' (default): PORT=0, ready once the replica prints its URL.
   * 'http': a free port chosen here, ready once its REST API answers.
   */
  readiness?: 'listening' | 'http';
  /** A log shared with other clusters; default one of its own. */
  log?: EventLog;
  /** Called with every stderr line (for verbose runs). */
  onStderr?: (instanceId: string, line: string) => void;
  /** Called when a replica exits, whoever caused it. */
  onExit?: (replica: Replica) => void;
  /**
   * Each replica reaches the database through a TCP proxy of its own, so
   * that one replica can be cut off from it (a partition) or slowed down.
   */
  proxied?: boolean;
  /**
   * Where the replicas connect instead of the server, e.g. a PgBouncer in
   * front of it (their proxies forward there).
   */
  via?: {host: string; port: number};
}

export class ProcessCluster {
  readonly log: EventLog;
  readonly replicas: Replica[] = [];
  readonly timings: ClusterTimings;
  readonly lockNames: string[];
  readonly server: DatabaseServer;
  /** Where the timeline of describe() starts. */
  readonly origin = mono();
  private spawned = 0;
  private stopped = false;
  private readonly killOnExit = () => this.replicas.forEach(r => r.signal('SIGKILL'));

  constructor(private readonly options: ClusterOptions) {
    if (!options.lockNames.length) throw new Error('a cluster needs a lock name');
    this.timings = options.timings ?? FAST_TIMINGS;
    this.lockNames = options.lockNames;
    this.server = options.server;
    this.log = options.log ?? new EventLog();
    // Never leave replicas campaigning behind a run that ends abruptly.
    process.on('exit', this.killOnExit);
  }

  /** The lock the faults and the checker look at. */
  get lockName(): string {
    return this.lockNames[0];
  }

  /** leaseDuration + checkMasterInterval + 1 s: the longest a fault may leave the lock masterless. */
  get recoveryBound(): number {
    return this.timings.leaseDuration + this.timings.checkMasterInterval + 1000;
  }

  /** The `cron` lines of the example's DEMO-CRON job. */
  get cronFirings() {
    return this.log.cronFirings;
  }

  /** Starts `options.replicas` at once; each migrates at start, as the example app does. */
  async start(): Promise<void> {
    await this.ensure(this.options.replicas ?? 0);
  }

  /** Replicas alive and not being killed or terminated. */
  live(): Replica[] {
    return this.replicas.filter(r => r.live);
  }

  /** Replicas whose process still runs. */
  alive(): Replica[] {
    return this.replicas.filter(r => r.alive);
  }

  /**
   * Starts replicas until `n` are live and ready. One that dies while
   * booting (e.g. the server refused it a connection) is replaced, after
   * `retryDelay` ms, up to `attempts - 1` times; then its error is thrown.
   */
  async ensure(n: number, {attempts = 1, retryDelay = 2000, timeout = 30000} = {}): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      // Launched one after the other, in order, then awaited together.
      const starting: Replica[] = [];
      while (this.live().length < n) starting.push(await this.launch());
      const failed = (await Promise.allSettled(starting.map(r => this.ready(r, timeout)))).filter(
        r => r.status === 'rejected',
      );
      if (!failed.length) return;
      if (attempt >= attempts) throw (failed[0] as PromiseRejectedResult).reason;
      await sleep(retryDelay);
    }
  }

  /** Starts one more replica and waits until it is ready. */
  async spawnReplica(timeout = 30000): Promise<Replica> {
    const replica = await this.launch();
    await this.ready(replica, timeout);
    return replica;
  }

  /** Spawns one more replica, not waiting for it. */
  private async launch(): Promise<Replica> {
    const instanceId = `${this.options.namePrefix}-${++this.spawned}`;
    const port = this.options.readiness === 'http' ? await freePort() : 0;
    let proxy: TcpProxy | undefined;
    if (this.options.proxied) {
      proxy = new TcpProxy(this.options.via ?? this.server.address);
      await proxy.start();
    }
    const env: NodeJS.ProcessEnv = {
      ...(this.options.baseEnv ?? process.env),
      ...timingEnv(this.timings),
      ...(this.options.fencedWriteInterval !== undefined
        ? {DEMO_FENCED_WRITE_INTERVAL: String(this.options.fencedWriteInterval)}
        : {}),
      ...this.options.extraEnv,
      PORT: String(port), // 0: the OS picks a free port; the replica prints its URL
      HOST: '127.0.0.1',
      DATABASE_URL: proxy
        ? this.server.urlVia(proxy.port)
        : this.options.via
          ? this.server.urlVia(this.options.via.port)
          : this.server.url,
      INSTANCE_ID: instanceId,
      DEMO_LOCKS: this.lockNames.join(','),
    };
    const onStderr = this.options.onStderr;
    const replica = new Replica({
      instanceId,
      script: this.options.script ?? EXAMPLE_SCRIPT,
      env,
      port,
      log: this.log,
      onStderr: onStderr && (line => onStderr(instanceId, line)),
      proxy,
    });
    this.replicas.push(replica);
    const onExit = this.options.onExit;
    if (onExit) void replica.exited.then(() => onExit(replica));
    return replica;
  }

  private ready(replica: Replica, timeout: number): Promise<unknown> {
    return this.options.readiness === 'http' ? replica.ready(timeout) : replica.listening(timeout);
  }

  // ---- observing ----

  /** The live, running replica that started last as master of the lock and is not paused, if any. */
  master(lockName = this.lockName): Replica | undefined {
    const byId = new Map(this.live().map(r => [r.instanceId, r]));
    const running = this.log.running(lockName);
    for (let i = running.length - 1; i >= 0; i--) {
      const replica = byId.get(running[i].instanceId);
      if (replica && !replica.paused) return replica;
    }
    return undefined;
  }

  waitForMaster(timeout: number, what = 'a master', lockName = this.lockName): Promise<Replica> {
    return waitFor(what, () => this.master(lockName), timeout, 20);
  }

  /** Waits for a job line with mono >= since that matches; fails after `timeout` ms. */
  async waitForJobEvent(
    what: string,
    match: (e: JobEvent) => boolean,
    since: number,
    timeout: number,
  ): Promise<JobEvent> {
    const event = await this.log.nextJob(match, since, timeout);
    if (!event) throw new Error(`timed out after ${timeout} ms waiting for: ${what}`);
    return event;
  }

  /** Waits until the master has made an accepted fenced write at or after `since`. */
  waitForAcceptedWrite(since: number, timeout: number): Promise<WriteEvent> {
    return waitFor(
      'an accepted fenced write',
      () => this.log.writes.find(w => w.monoBefore >= since && w.accepted),
      timeout,
      20,
    );
  }

  /** Checks everything recorded until `lag` ms ago (lines younger than that may be in flight). */
  check(lag = 100): CheckReport {
    return checkCluster(this.log, {...this.checkBounds(), until: mono() - lag});
  }

  /** The lock the checker looks at and its bounds, from the timings. */
  checkBounds(): Omit<CheckOptions, 'until'> {
    return {
      lockName: this.lockName,
      recoveryBound: this.recoveryBound,
      // NOTIFY or the next renewal, plus a heartbeat of slack for the renewal's round trip and lag
      disableStopBound: 2 * this.timings.heartbeatInterval,
      // its deadline timer is overdue when it wakes; this leaves room for stop() and lag
      staleStopBound: this.timings.leaseDuration / 2,
    };
  }

  /** The timeline and the replicas' last stderr lines, for failure output. */
  describe(): string {
    const stderr = this.replicas
      .filter(r => r.stderrTail.length)
      .map(r => `--- ${r.instanceId} stderr (last lines):\n${r.stderr(8)}`);
    return [describeLog(this.log, this.lockName, this.origin), ...stderr].join('\n');
  }

  // ---- faults: each aims at the current master and records itself ----

  private async requireMaster(): Promise<Replica> {
    return this.waitForMaster(this.recoveryBound, 'a master to aim the fault at');
  }

  private recordFault(
    kind: FaultKind,
    target: Replica | undefined,
    at = mono(),
    note?: string,
  ): FaultRecord {
    const fault = {kind, target: target?.instanceId, at, recoverFrom: at, note};
    this.log.faults.push(fault);
    return fault;
  }

  /** SIGKILL or SIGTERM to the master; waits for its exit. */
  async signalMaster(
    signal: 'SIGKILL' | 'SIGTERM',
  ): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const at = victim.kill(signal);
    const fault = this.recordFault(signal === 'SIGKILL' ? 'sigkill' : 'sigterm', victim, at);
    await waitFor(
      `${victim.instanceId} to exit after ${signal}`,
      () => !victim.alive,
      (this.timings.stopTimeout ?? 10000) + 5000,
      20,
    );
    return {victim, fault};
  }

  /**
   * SIGSTOP to the master for `ms`, then SIGCONT. The stop comes right after
   * one of its writes, while its write loop sleeps: if that sleep's timer runs
   * before the election's on waking, the job makes a write with its old token.
   */
  async pauseMaster(ms: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    await this.nextWriteOf(victim, this.recoveryBound);
    return this.pause(victim, 'sigstop', ms);
  }

  /** Resolves in the turn in which the replica's next write line arrives. */
  private nextWriteOf(replica: Replica, timeout: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.log.lines.off('write', onWrite);
      };
      const onWrite = (w: WriteEvent) => {
        if (w.instanceId !== replica.instanceId) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no write of ${replica.instanceId} in ${timeout} ms`));
      }, timeout);
      this.log.lines.on('write', onWrite);
    });
  }

  /** SIGSTOP to a replica that is not the master for `ms`, then SIGCONT. */
  async pauseNonMaster(ms: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const master = await this.requireMaster();
    const victim = this.live().find(r => r !== master && !r.paused);
    if (!victim) throw new Error('no replica other than the master to pause');
    return this.pause(victim, 'sigstop-replica', ms);
  }

  private async pause(
    victim: Replica,
    kind: FaultKind,
    ms: number,
  ): Promise<{victim: Replica; fault: FaultRecord}> {
    const pause = {
      instanceId: victim.instanceId,
      from: mono(),
      to: undefined as number | undefined,
    };
    victim.signal('SIGSTOP');
    victim.paused = true;
    this.log.pauses.push(pause);
    const fault = this.recordFault(kind, victim, pause.from, `${ms} ms`);
    try {
      await sleep(ms);
    } finally {
      // Read before the SIGCONT: the process may run (and print) before the next line here.
      pause.to = mono();
      victim.signal('SIGCONT');
      victim.paused = false;
    }
    return {victim, fault};
  }

  /** Kills the master's database connections (MariaDB unproxied: every replica's). */
  async cutMasterConnections(): Promise<{victim: Replica; fault: FaultRecord; killed: number}> {
    const victim = await this.requireMaster();
    const at = mono();
    let killed: number;
    if (victim.proxy) {
      killed = victim.proxy.open;
      victim.proxy.down();
      victim.proxy.restore();
    } else killed = await this.server.terminateConnections(victim.instanceId);
    const fault = this.recordFault('connections', victim, at, `${killed} killed`);
    return {victim, fault, killed};
  }

  /** Stops the database server for at least `downMs`, starts it again; always restarts it. */
  restartDatabase(downMs: number): Promise<{victim: Replica; fault: FaultRecord}> {
    return this.databaseDown('db-restart', () => this.server.stop(), downMs);
  }

  /**
   * The fault `kind`: takes the database server down (`takeDown`) for at
   * least `downMs`, then starts it again, whatever happened; masters are due
   * from when it answers again.
   */
  private async databaseDown(
    kind: FaultKind,
    takeDown: () => Promise<void>,
    downMs: number,
  ): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const fault = this.recordFault(kind, victim);
    try {
      await takeDown();
      await sleep(Math.max(0, fault.at + downMs - mono()));
    } finally {
      fault.recoverFrom = await this.server.start();
      fault.note = `down ${Math.round(fault.recoverFrom - fault.at)} ms`;
    }
    return {victim, fault};
  }

  /**
   * Cuts the master off from the database for `ms` (a proxied cluster): its
   * proxy forwards nothing, connections stay open and new ones hang, as
   * behind a partition; what it held is delivered late. Its lease runs out
   * on its own clock; the others take over.
   */
  async partitionMaster(ms: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const proxy = this.proxyOf(victim);
    proxy.freeze();
    const fault = this.recordFault('partition', victim, mono(), `${ms} ms`);
    try {
      await sleep(ms);
    } finally {
      proxy.restore();
      // Its mastership may have lasted (a short cut); a master is due within the bound of the end.
      fault.recoverFrom = mono();
    }
    return {victim, fault};
  }

  /** Delays every packet between the master and the database by `latency` ms each way, for `ms`. */
  async slowMaster(latency: number, ms: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const proxy = this.proxyOf(victim);
    proxy.latency = latency;
    const fault = this.recordFault(
      'latency',
      victim,
      mono(),
      `${latency} ms each way for ${ms} ms`,
    );
    try {
      await sleep(ms);
    } finally {
      proxy.latency = 0;
      fault.recoverFrom = mono();
    }
    return {victim, fault};
  }

  /**
   * Gives the master `share` of the time (SIGSTOP/SIGCONT every 50 ms) for
   * `ms`: its timers run late. Each stopped slice is recorded as a pause (a
   * starved master may be overtaken; its writes must then be fenced, and it
   * must stop soon after it runs again); due to recover from its end.
   */
  async starveMaster(share: number, ms: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const from = mono();
    const fault = this.recordFault(
      'cpu-starve',
      victim,
      from,
      `${Math.round(share * 100)} % for ${ms} ms`,
    );
    const slice = 50;
    let pause: {instanceId: string; from: number; to?: number} | undefined;
    try {
      while (mono() - from < ms && victim.alive) {
        victim.signal('SIGSTOP');
        pause = {instanceId: victim.instanceId, from: mono()};
        this.log.pauses.push(pause);
        await sleep(slice * (1 - share));
        pause.to = mono(); // before the SIGCONT, as in pause()
        victim.signal('SIGCONT');
        await sleep(slice * share);
      }
    } finally {
      if (pause && pause.to === undefined) pause.to = mono();
      victim.signal('SIGCONT');
      fault.recoverFrom = mono();
    }
    return {victim, fault};
  }

  /** Freezes every process of the database server for `ms` (SIGSTOP), then lets it run. */
  async freezeDatabase(ms: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const fault = this.recordFault('db-freeze', victim, mono(), `${ms} ms`);
    this.server.freeze();
    try {
      await sleep(ms);
    } finally {
      this.server.thaw();
      fault.recoverFrom = mono();
    }
    return {victim, fault};
  }

  /** kill -9 of the database server, down for at least `downMs`, then started (crash recovery). */
  crashDatabase(downMs: number): Promise<{victim: Replica; fault: FaultRecord}> {
    return this.databaseDown('db-kill', () => this.server.crash(), downMs);
  }

  /**
   * `pairs` disables and enables in quick succession, each through a random
   * replica (the master included), held 0 to `maxHoldMs`; ends enabled.
   */
  async restStorm(
    pairs: number,
    maxHoldMs: number,
    random: () => number,
  ): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const fault = this.recordFault('rest-storm', victim, mono(), `${pairs} pairs`);
    const pick = () => {
      const callable = this.live().filter(r => !r.paused);
      return callable[Math.floor(random() * callable.length)];
    };
    for (let i = 0; i < pairs; i++) {
      const hold = random() * maxHoldMs;
      const through = pick();
      if (!through) break;
      await this.holdDisabled(fault, through, 'storm', hold, () => [pick(), ...this.live()]);
    }
    return {victim, fault};
  }

  /**
   * Disables the lock through `through`, keeps it disabled for `holdMs`, and
   * enables it through the first of `enablers()` that answers, even after a
   * failed disable call (it may have landed). Logged for the checker: from
   * the disable's reply (no start may follow it) to the enable's call, from
   * which `fault` recovers.
   */
  private async holdDisabled(
    fault: FaultRecord,
    through: Replica,
    reason: string,
    holdMs: number,
    enablers: () => (Replica | undefined)[],
    sent = mono(),
  ): Promise<void> {
    const disable = {
      lockName: this.lockName,
      sent,
      from: Infinity,
      to: undefined as number | undefined,
    };
    this.log.disables.push(disable);
    try {
      await this.postControl(through, 'disable', {lockName: this.lockName, reason});
      disable.from = mono();
      await sleep(holdMs);
    } finally {
      disable.to = fault.recoverFrom = mono();
      await this.enableThroughAny(enablers().filter((r): r is Replica => r !== undefined));
    }
  }

  private proxyOf(replica: Replica): TcpProxy {
    if (!replica.proxy) throw new Error('the cluster is not proxied (ClusterOptions.proxied)');
    return replica.proxy;
  }

  /**
   * Disables the lock through a replica that is not the master, keeps it
   * disabled for `holdMs`, enables it through another non-master.
   */
  async disableAndEnable(holdMs: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const others = this.live().filter(r => r !== victim && !r.paused);
    if (!others.length) throw new Error('no replica other than the master to call');
    const sent = mono();
    const fault = this.recordFault('disable', victim, sent);
    await this.holdDisabled(fault, others[0], 'cluster test', holdMs, () => others.reverse(), sent);
    return {victim, fault};
  }

  private async enableThroughAny(replicas: Replica[]): Promise<void> {
    let error: Error | undefined;
    for (const replica of replicas.filter(r => r.alive && !r.paused)) {
      try {
        await this.postControl(replica, 'enable', {lockName: this.lockName});
        return;
      } catch (err) {
        error = err;
      }
    }
    throw error ?? new Error('no replica to call enable on');
  }

  /** The curl of the README: a form post to /api/MasterControls/<action>. */
  async postControl(
    replica: Replica,
    action: 'disable' | 'enable',
    form: Record<string, string>,
  ): Promise<unknown> {
    return replica.post(`/api/MasterControls/${action}`, form, 200, 5000);
  }

  /** SIGTERMs every replica left and waits for their exits (SIGKILL after `graceMs`). */
  async stop(graceMs = 15000): Promise<void> {
    this.stopped = true;
    await Promise.all(this.replicas.map(r => r.terminate(graceMs)));
    process.off('exit', this.killOnExit);
  }

  /** SIGKILLs every replica left; for after hooks. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const r of this.replicas) {
      if (!r.alive) continue;
      r.signal('SIGCONT'); // a stopped process still dies of SIGKILL; this keeps its exit prompt
      r.kill('SIGKILL');
    }
    await Promise.all(this.replicas.map(r => Promise.race([r.exited, sleep(5000)])));
    process.off('exit', this.killOnExit);
  }
}
