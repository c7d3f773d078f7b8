// A cluster of real example-app processes (dist/example/index.js) on one
// database, and the faults the cluster tests and `npm run chaos` inject into
// it. Every JSON line the replicas print, every fault, pause and exit goes
// into one ClusterLog, timed on CLOCK_MONOTONIC like the replicas' lines, for
// the checker.

import {ChildProcess, spawn} from 'child_process';
import {EventEmitter} from 'events';
import path from 'path';
import readline from 'readline';
import {
  checkCluster,
  CheckReport,
  ClusterLog,
  describeLog,
  emptyLog,
  FaultKind,
  FaultRecord,
  JobEvent,
  mono,
  WriteEvent,
} from './checker';
import {DatabaseServer} from './database-server';

const EXAMPLE_DIR = path.resolve(__dirname, '../../example');

export {mono};

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined/false; fails after `timeout` ms. */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeout: number,
  interval = 20,
): Promise<T> {
  const deadline = mono() + timeout;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (mono() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

export interface ClusterTimings {
  initDelay: number;
  checkMasterInterval: number;
  heartbeatInterval: number;
  leaseDuration: number;
  maxHeartbeatRetryCount: number;
  stopTimeout: number;
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

export interface ClusterOptions {
  server: DatabaseServer;
  lockName: string;
  replicas: number;
  timings?: ClusterTimings;
  /** ms between the master's fenced writes. */
  fencedWriteInterval?: number;
  /** Instance ids are `${namePrefix}-1`, `${namePrefix}-2`, ... */
  namePrefix: string;
  /** Called with every stderr line (for verbose runs). */
  onStderr?: (instanceId: string, line: string) => void;
  /** More environment for the replicas (e.g. DEMO_CRON). */
  extraEnv?: Record<string, string>;
}

/** One process of the example app. */
export class Replica {
  url: string | undefined;
  paused = false;
  /** Set by the harness before it kills or terminates the process. */
  causedExit: 'SIGKILL' | 'SIGTERM' | undefined;
  exitedAt: number | undefined;
  readonly exited: Promise<void>;
  readonly stderrTail: string[] = [];

  constructor(
    readonly instanceId: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise(resolve => child.once('exit', () => resolve()));
  }

  get alive(): boolean {
    return this.exitedAt === undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }
}

export class ProcessCluster {
  readonly log: ClusterLog = emptyLog();
  /** The `cron` lines of the example's DEMO-CRON job. */
  readonly cronFirings: {
    lockName: string;
    instanceId: string;
    fencingToken: number;
    at: string;
    mono: number;
  }[] = [];
  readonly replicas: Replica[] = [];
  readonly timings: ClusterTimings;
  readonly lockName: string;
  readonly server: DatabaseServer;
  /** Where the timeline of describe() starts. */
  readonly origin = mono();
  /** Emits each parsed line as it arrives: 'write' (WriteEvent). */
  private readonly lines = new EventEmitter();
  private spawned = 0;
  private readonly killOnExit = () => this.replicas.forEach(r => r.signal('SIGKILL'));

  constructor(private readonly options: ClusterOptions) {
    this.timings = options.timings ?? FAST_TIMINGS;
    this.lockName = options.lockName;
    this.server = options.server;
    // Never leave replicas campaigning behind a test run that ends abruptly.
    process.on('exit', this.killOnExit);
  }

  /** leaseDuration + checkMasterInterval + 1 s: the longest a fault may leave the lock masterless. */
  get recoveryBound(): number {
    return this.timings.leaseDuration + this.timings.checkMasterInterval + 1000;
  }

  /** Spawns the replicas at once; each migrates at start, as the example app does. */
  async start(): Promise<void> {
    await Promise.all(Array.from({length: this.options.replicas}, () => this.spawnReplica()));
  }

  live(): Replica[] {
    return this.replicas.filter(r => r.alive && !r.causedExit);
  }

  /** Starts one more replica and waits until it listens. */
  async spawnReplica(timeout = 30000): Promise<Replica> {
    const instanceId = `${this.options.namePrefix}-${++this.spawned}`;
    const t = this.timings;
    const child = spawn(process.execPath, [path.join(EXAMPLE_DIR, 'index.js')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PORT: '0', // the OS picks a free port; the replica prints its URL
        HOST: '127.0.0.1',
        DATABASE_URL: this.server.url,
        INSTANCE_ID: instanceId,
        DEMO_LOCKS: this.lockName,
        DEMO_FENCED_WRITE_INTERVAL: String(this.options.fencedWriteInterval ?? 100),
        INIT_DELAY: String(t.initDelay),
        CHECK_MASTER_INTERVAL: String(t.checkMasterInterval),
        MASTER_JOB_HEARTBEAT_INTERVAL: String(t.heartbeatInterval),
        MASTER_JOB_LEASE_DURATION: String(t.leaseDuration),
        MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT: String(t.maxHeartbeatRetryCount),
        MASTER_JOB_STOP_TIMEOUT: String(t.stopTimeout),
        ...this.options.extraEnv,
      },
    });
    const replica = new Replica(instanceId, child);
    this.replicas.push(replica);
    readline.createInterface({input: child.stdout!}).on('line', line => this.onStdout(line));
    readline.createInterface({input: child.stderr!}).on('line', line => {
      replica.stderrTail.push(line);
      if (replica.stderrTail.length > 40) replica.stderrTail.shift();
      replica.url ??= / at (http:\/\/\S+?);/.exec(line)?.[1];
      this.options.onStderr?.(instanceId, line);
    });
    child.once('exit', (code, signal) => {
      replica.exitedAt = mono();
      this.log.exits.push({
        instanceId,
        at: replica.exitedAt,
        code,
        signal,
        causedBy: replica.causedExit,
      });
    });
    await waitUntil(
      `${instanceId} to listen`,
      () => {
        if (!replica.alive) {
          throw new Error(`${instanceId} exited at start:\n${replica.stderrTail.join('\n')}`);
        }
        return replica.url !== undefined;
      },
      timeout,
    );
    return replica;
  }

  private onStdout(line: string): void {
    let event: JobEvent | WriteEvent;
    try {
      event = JSON.parse(line);
    } catch {
      return; // not an event line
    }
    if (event.event === 'write') {
      this.log.writes.push(event);
      this.lines.emit('write', event);
    } else if (event.event === 'start' || event.event === 'stop') {
      this.log.jobs.push(event);
    } else if ((event as {event: string}).event === 'cron') {
      this.cronFirings.push(event as unknown as ProcessCluster['cronFirings'][number]);
    }
  }

  // ---- observing ----

  /** The live, running replica that is in start..stop of the lock, if any. */
  master(): Replica | undefined {
    const open = new Map<string, boolean>();
    for (const e of this.log.jobs) {
      if (e.lockName === this.lockName) open.set(e.instanceId, e.event === 'start');
    }
    return this.live().find(r => !r.paused && open.get(r.instanceId));
  }

  waitForMaster(timeout: number, what = 'a master'): Promise<Replica> {
    return waitUntil(what, () => this.master(), timeout);
  }

  /** Waits for a job line with mono >= since that matches. */
  waitForJobEvent(
    what: string,
    match: (e: JobEvent) => boolean,
    since: number,
    timeout: number,
  ): Promise<JobEvent> {
    return waitUntil(what, () => this.log.jobs.find(e => e.mono >= since && match(e)), timeout);
  }

  /** Waits until the master has made an accepted fenced write at or after `since`. */
  waitForAcceptedWrite(since: number, timeout: number): Promise<WriteEvent> {
    return waitUntil(
      'an accepted fenced write',
      () => this.log.writes.find(w => w.monoBefore >= since && w.accepted),
      timeout,
    );
  }

  /** Checks everything recorded until `lag` ms ago (lines younger than that may be in flight). */
  check(lag = 100): CheckReport {
    return checkCluster(this.log, {
      lockName: this.lockName,
      recoveryBound: this.recoveryBound,
      // NOTIFY or the next renewal, plus a heartbeat of slack for the renewal's round trip and lag
      disableStopBound: 2 * this.timings.heartbeatInterval,
      // its deadline timer is overdue when it wakes; this leaves room for stop() and lag
      staleStopBound: this.timings.leaseDuration / 2,
      until: mono() - lag,
    });
  }

  /** The timeline and the replicas' last stderr lines, for failure output. */
  describe(): string {
    const stderr = this.replicas
      .filter(r => r.stderrTail.length)
      .map(r => `--- ${r.instanceId} stderr (last lines):\n${r.stderrTail.slice(-8).join('\n')}`);
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
    victim.causedExit = signal;
    const fault = this.recordFault(signal === 'SIGKILL' ? 'sigkill' : 'sigterm', victim);
    victim.signal(signal);
    await waitUntil(
      `${victim.instanceId} to exit after ${signal}`,
      () => !victim.alive,
      this.timings.stopTimeout + 5000,
    );
    // A SIGKILLed process was gone from the moment of the kill.
    if (signal === 'SIGKILL')
      this.log.exits.find(x => x.instanceId === victim.instanceId)!.at = fault.at;
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
        this.lines.off('write', onWrite);
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
      this.lines.on('write', onWrite);
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
      victim.signal('SIGCONT');
      victim.paused = false;
      pause.to = mono();
    }
    return {victim, fault};
  }

  /** Kills the master's database connections (MariaDB: every replica's). */
  async cutMasterConnections(): Promise<{victim: Replica; fault: FaultRecord; killed: number}> {
    const victim = await this.requireMaster();
    const at = mono();
    const killed = await this.server.terminateConnections(victim.instanceId);
    const fault = this.recordFault('connections', victim, at, `${killed} killed`);
    return {victim, fault, killed};
  }

  /** Stops the database server for at least `downMs`, starts it again; always restarts it. */
  async restartDatabase(downMs: number): Promise<{victim: Replica; fault: FaultRecord}> {
    const victim = await this.requireMaster();
    const fault = this.recordFault('db-restart', victim);
    try {
      await this.server.stop();
      await sleep(Math.max(0, fault.at + downMs - mono()));
    } finally {
      // Masters are due from when the server answers again.
      fault.recoverFrom = await this.server.start();
      fault.note = `down ${Math.round(fault.recoverFrom - fault.at)} ms`;
    }
    return {victim, fault};
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
    const disable = {
      lockName: this.lockName,
      sent,
      from: Infinity,
      to: undefined as number | undefined,
    };
    const fault = this.recordFault('disable', victim, sent);
    this.log.disables.push(disable);
    try {
      await this.postControl(others[0], 'disable', {
        lockName: this.lockName,
        reason: 'cluster test',
      });
      disable.from = mono();
      await sleep(holdMs);
    } finally {
      // Even after a failed disable call: it may have landed.
      disable.to = fault.recoverFrom = mono();
      await this.enableThroughAny(others.reverse());
    }
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
    const res = await fetch(`${replica.url}/api/MasterControls/${action}`, {
      method: 'POST',
      headers: {'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json'},
      body: new URLSearchParams(form).toString(),
      signal: AbortSignal.timeout(5000),
    });
    const body = await res.json();
    if (res.status !== 200) {
      throw new Error(`${action} on ${replica.instanceId}: ${res.status} ${JSON.stringify(body)}`);
    }
    return body;
  }

  /** SIGKILLs every replica left; for after hooks. */
  async shutdown(): Promise<void> {
    for (const r of this.replicas) {
      if (!r.alive) continue;
      r.causedExit ??= 'SIGKILL';
      r.signal('SIGCONT'); // a stopped process still dies of SIGKILL; this keeps its exit prompt
      r.signal('SIGKILL');
    }
    await Promise.all(this.replicas.map(r => Promise.race([r.exited, sleep(5000)])));
    process.off('exit', this.killOnExit);
  }
}
