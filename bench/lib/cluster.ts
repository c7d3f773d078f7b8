// Real replica processes and what they print. Every job start/stop is one JSON
// line on a replica's stdout carrying `mono` (CLOCK_MONOTONIC in ms), the same
// clock as `now()` here, so latencies are differences of one host clock.

import {ChildProcess, spawn} from 'child_process';
import {EventEmitter} from 'events';
import {readFileSync} from 'fs';
import http from 'http';
import net from 'net';

export const now = (): number => Number(process.hrtime.bigint()) / 1e6;

export function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export function uniform(min: number, max: number): number {
  return min + Math.random() * (max - min);
}

export interface JobEvent {
  event: 'start' | 'stop';
  lockName: string;
  instanceId: string;
  fencingToken: number | null;
  reason: string | null;
  mono: number;
  /** The replica that printed it. */
  replica: Replica;
}

/** A mastership as the JSON lines tell it. */
export interface Tenure {
  lockName: string;
  replica: Replica;
  fencingToken: number | null;
  start: number;
  /** Its stop line, or the death of its process. */
  end?: number;
  endedBy?: string;
}

/** Every line of every replica, and the masterships they add up to. */
export class EventLog extends EventEmitter {
  readonly events: JobEvent[] = [];
  private readonly running = new Map<string, Tenure[]>();
  readonly tenures: Tenure[] = [];
  /** Starts while another replica's tenure of the same lock was still running. */
  readonly overlaps: {lockName: string; at: number; running: string; started: string}[] = [];
  /** stop lines of a replica that was not running the job (the baseline's deleter). */
  spuriousStops = 0;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  add(e: JobEvent): void {
    this.events.push(e);
    const list = this.running.get(e.lockName) ?? [];
    this.running.set(e.lockName, list);
    if (e.event === 'start') {
      const others = list.filter(t => t.replica !== e.replica);
      for (const t of others) {
        this.overlaps.push({lockName: e.lockName, at: e.mono, running: t.replica.instanceId, started: e.replica.instanceId});
      }
      // A replica that starts again without a stop line (it never stopped) keeps one tenure.
      if (!list.some(t => t.replica === e.replica)) {
        const t: Tenure = {lockName: e.lockName, replica: e.replica, fencingToken: e.fencingToken, start: e.mono};
        list.push(t);
        this.tenures.push(t);
      }
    } else {
      const i = list.findIndex(t => t.replica === e.replica);
      if (i < 0) this.spuriousStops++;
      else this.end(list, i, e.mono, `stop:${e.reason}`);
    }
    this.emit('event', e);
  }

  /** The replica died at `at`: its tenures end there. */
  died(replica: Replica, at: number, how: string): void {
    for (const list of this.running.values()) {
      const i = list.findIndex(t => t.replica === replica);
      if (i >= 0) this.end(list, i, at, how);
    }
  }

  private end(list: Tenure[], i: number, at: number, how: string): void {
    const [t] = list.splice(i, 1);
    t.end = at;
    t.endedBy = how;
  }

  runningTenures(lockName: string): Tenure[] {
    return this.running.get(lockName) ?? [];
  }

  /** The replica that started last and still runs the job. */
  master(lockName: string): Replica | undefined {
    const list = this.runningTenures(lockName).filter(t => t.replica.alive);
    return list.length ? list[list.length - 1].replica : undefined;
  }

  /** Resolves with the first event (already logged or to come) matching `match`, or undefined at the timeout. */
  waitFor(match: (e: JobEvent) => boolean, timeoutMs: number, since = 0): Promise<JobEvent | undefined> {
    const found = this.events.find(e => e.mono > since && match(e));
    if (found) return Promise.resolve(found);
    return new Promise(resolve => {
      const timer = setTimeout(() => {
        this.off('event', listener);
        resolve(undefined);
      }, timeoutMs);
      const listener = (e: JobEvent) => {
        if (e.mono > since && match(e)) {
          clearTimeout(timer);
          this.off('event', listener);
          resolve(e);
        }
      };
      this.on('event', listener);
    });
  }
}

export interface ReplicaSpec {
  impl: string;
  script: string;
  env: Record<string, string>;
  instanceId: string;
  lockNames: string[];
}

let livingReplicas = new Set<Replica>();

/** One replica process. */
export class Replica {
  readonly child: ChildProcess;
  readonly port: number;
  readonly instanceId: string;
  alive = true;
  /** The harness meant it to exit (signalled or stopped). */
  expectedExit = false;
  killedAt: number | undefined;
  /** When the harness saw the process exit. */
  exitedAt: number | undefined;
  readonly exited: Promise<number | string | null>;
  private readonly stderrTail: string[] = [];

  constructor(
    readonly spec: ReplicaSpec,
    port: number,
    private readonly log: EventLog,
  ) {
    this.port = port;
    this.instanceId = spec.instanceId;
    this.child = spawn(process.execPath, [spec.script], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        ...spec.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        INSTANCE_ID: spec.instanceId,
        DEMO_LOCKS: spec.lockNames.join(','),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    livingReplicas.add(this);
    let buffer = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.line(line);
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail.push(chunk);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
    });
    this.exited = new Promise(resolve => {
      this.child.on('exit', (code, signal) => {
        this.exitedAt = now();
        this.alive = false;
        livingReplicas.delete(this);
        this.log.died(this, this.killedAt ?? now(), signal ? `exit:${signal}` : `exit:${code}`);
        resolve(signal ?? code);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  stderr(): string {
    return this.stderrTail.join('');
  }

  private line(line: string): void {
    if (!line.startsWith('{')) return;
    let parsed: Omit<JobEvent, 'replica'>;
    try {
      parsed = JSON.parse(line);
    } catch {
      return;
    }
    if ((parsed.event === 'start' || parsed.event === 'stop') && typeof parsed.mono === 'number') {
      this.log.add({...parsed, replica: this});
    }
  }

  /** Polls the REST API until it answers. */
  async ready(timeoutMs = 60000): Promise<void> {
    const started = now();
    while (this.alive) {
      try {
        // Any route will do; this one reaches neither implementation's database.
        const {status} = await request('GET', `${this.url}/openapi.json`);
        if (status > 0 && status < 500) return;
      } catch {
        // not listening yet
      }
      if (now() - started > timeoutMs) break;
      await sleep(50);
    }
    throw new Error(`replica ${this.instanceId} (${this.spec.impl}) not ready: ${this.alive ? 'timeout' : 'exited'}\n${this.stderr()}`);
  }

  /** Sends a signal; returns the time just before it was sent. */
  kill(signal: NodeJS.Signals): number {
    const at = now();
    if (signal === 'SIGKILL') this.killedAt = at;
    this.child.kill(signal);
    return at;
  }

  /** SIGTERM, then SIGKILL if it does not exit in time. */
  async terminate(graceMs = 15000): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.alive && this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** utime + stime in clock ticks (/proc/<pid>/stat). */
  cpuTicks(): number {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return NaN;
    }
  }

  async post(path: string, form: Record<string, string>, expectStatus?: number): Promise<unknown> {
    const {status, body} = await request('POST', `${this.url}${path}`, new URLSearchParams(form).toString());
    if (expectStatus !== undefined ? status !== expectStatus : status >= 400) {
      throw new Error(`POST ${path} on ${this.instanceId}: ${status} ${JSON.stringify(body)}`);
    }
    return body;
  }

  async get(path: string): Promise<unknown> {
    return (await request('GET', `${this.url}${path}`)).body;
  }
}

/**
 * One HTTP request on a connection of its own, closed after: no keep-alive
 * connection of the harness may hold up a replica's graceful shutdown.
 */
export function request(method: string, url: string, form?: string): Promise<{status: number; body: unknown}> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {accept: 'application/json', connection: 'close'};
    if (form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(form));
    }
    const req = http.request(url, {method, headers, agent: false, timeout: 30000}, res => {
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', chunk => (raw += chunk));
      res.on('end', () => {
        let body: unknown = raw;
        try {
          body = JSON.parse(raw);
        } catch {
          // not JSON
        }
        resolve({status: res.statusCode ?? 0, body});
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(form);
  });
}

/** Kills every replica still running (on exit of the harness). */
export function killAll(): void {
  for (const r of livingReplicas) r.child.kill('SIGKILL');
  livingReplicas = new Set();
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
