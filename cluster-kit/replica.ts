// One replica process of a cluster (the example app, or the benchmark's
// baseline): spawned with its environment, its JSON lines on stdout parsed
// into the cluster's EventLog, its exit recorded there (with the signal the
// harness sent, if it caused it), its stderr kept for failure output; signals,
// graceful termination, CPU time, and HTTP to it.

import {ChildProcess, spawn} from 'child_process';
import {readFileSync} from 'fs';
import readline from 'readline';
import {request} from './http';
import {EventLog} from './log';
import type {TcpProxy} from './tcp-proxy';
import {mono, waitFor} from './time';

export interface ReplicaOptions {
  instanceId: string;
  /** The script node runs. */
  script: string;
  /** Its whole environment (PORT, DATABASE_URL, INSTANCE_ID, ... included). */
  env: NodeJS.ProcessEnv;
  /** The port it listens on, or 0: the OS picks one and the replica prints its URL on stderr. */
  port: number;
  log: EventLog;
  /** Called with every stderr line (verbose runs). */
  onStderr?: (line: string) => void;
  /** Its own way to the database, when the cluster is proxied: closed when it exits. */
  proxy?: TcpProxy;
}

export class Replica {
  readonly instanceId: string;
  readonly child: ChildProcess;
  /** Known from the start, or once the replica printed it. */
  url: string | undefined;
  /** Stopped by SIGSTOP. */
  paused = false;
  /** The signal the harness sent to end it, set before sending. */
  causedExit: 'SIGKILL' | 'SIGTERM' | undefined;
  /** When the harness sent SIGKILL: its masterships ended there. */
  killedAt: number | undefined;
  /** When the harness saw the process exit. */
  exitedAt: number | undefined;
  readonly exited: Promise<void>;
  readonly stderrTail: string[] = [];
  readonly proxy: TcpProxy | undefined;

  constructor(readonly options: ReplicaOptions) {
    const {instanceId, log} = options;
    this.instanceId = instanceId;
    this.proxy = options.proxy;
    this.url = options.port ? `http://127.0.0.1:${options.port}` : undefined;
    this.child = spawn(process.execPath, [options.script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env,
    });
    readline.createInterface({input: this.child.stdout!}).on('line', line => {
      if (!line.startsWith('{')) return;
      try {
        log.addLine(JSON.parse(line));
      } catch {
        // not an event line
      }
    });
    readline.createInterface({input: this.child.stderr!}).on('line', line => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail.shift();
      this.url ??= / at (http:\/\/\S+?);/.exec(line)?.[1];
      options.onStderr?.(line);
    });
    this.exited = new Promise(resolve => {
      this.child.once('exit', (code, signal) => {
        this.exitedAt = mono();
        // A SIGKILLed process was gone from the moment of the kill.
        const at = this.killedAt ?? this.exitedAt;
        log.addExit({instanceId, at, code, signal, causedBy: this.causedExit});
        this.proxy?.close().catch(() => {});
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.exitedAt === undefined;
  }

  /** Alive, and not being killed or terminated by the harness. */
  get live(): boolean {
    return this.alive && !this.causedExit;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The last lines of its stderr. */
  stderr(lines = 40): string {
    return this.stderrTail.slice(-lines).join('\n');
  }

  /** Sends a signal if the process is still there (SIGSTOP, SIGCONT, ...). */
  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /**
   * Ends it with SIGKILL or SIGTERM, noted as caused by the harness; returns
   * the time just before. The time of a SIGKILL is read after it is sent: the
   * process may print a line stamped between the two (a run the kill cut).
   */
  kill(signal: 'SIGKILL' | 'SIGTERM'): number {
    this.causedExit ??= signal;
    const at = mono();
    this.signal(signal);
    if (signal === 'SIGKILL') this.killedAt ??= mono();
    return at;
  }

  /** SIGTERM, then SIGKILL if it does not exit within `graceMs`. */
  async terminate(graceMs = 15000): Promise<void> {
    if (!this.alive) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.alive && this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Resolves once it printed its URL (it listens then); fails if it exits first. */
  listening(timeout = 30000): Promise<unknown> {
    return this.untilExitOr('listen', () => this.url !== undefined, timeout, 20);
  }

  /** Polls the REST API until it answers; fails if it exits first. */
  ready(timeout = 60000): Promise<unknown> {
    return this.untilExitOr(
      'be ready',
      async () => {
        if (!this.url) return false;
        try {
          // Any route will do; this one reaches neither implementation's database.
          const {status} = await request('GET', `${this.url}/openapi.json`);
          return status > 0 && status < 500;
        } catch {
          return false; // not listening yet
        }
      },
      timeout,
      50,
    );
  }

  /** Polls `condition` until it holds; fails at once if the process exits meanwhile. */
  private async untilExitOr(
    what: string,
    condition: () => boolean | Promise<boolean>,
    timeout: number,
    interval: number,
  ): Promise<void> {
    const probe = async () => {
      if (!this.alive) throw new Error(`${this.instanceId} exited at start:\n${this.stderr()}`);
      return condition();
    };
    try {
      await waitFor(`${this.instanceId} to ${what}`, probe, timeout, interval);
    } catch (err) {
      if (!this.alive) throw err;
      throw new Error(`${err.message}\n${this.stderr()}`);
    }
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

  /** A form post; fails unless the status is `expectStatus` (default: any below 400). */
  async post(
    path: string,
    form: Record<string, string>,
    expectStatus?: number,
    timeout?: number,
  ): Promise<unknown> {
    const {status, body} = await request(
      'POST',
      `${this.url}${path}`,
      new URLSearchParams(form).toString(),
      timeout,
    );
    if (expectStatus !== undefined ? status !== expectStatus : status >= 400) {
      throw new Error(`POST ${path} on ${this.instanceId}: ${status} ${JSON.stringify(body)}`);
    }
    return body;
  }

  /** A JSON post: its status and body, whatever the status. */
  postJson(
    path: string,
    body: unknown,
    timeout?: number,
  ): Promise<{status: number; body: unknown}> {
    return request('POST', `${this.url}${path}`, JSON.stringify(body), timeout, 'application/json');
  }

  async get(path: string): Promise<unknown> {
    return (await request('GET', `${this.url}${path}`)).body;
  }
}
