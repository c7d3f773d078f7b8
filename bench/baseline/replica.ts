// The baseline: the election protocol of the original oe-master-job-executor
// v2.2.0 (the defects listed in docs/guarantees.md), kept faithful and small, as a replica the benchmark
// spawns with the same environment and JSON lines as example/index.ts.
// Not part of the package. Its defects are the point; do not fix them here:
//  - staleness judged by comparing this machine's Date.now() with the wall-clock
//    heartbeatTime another machine wrote;
//  - takeover by DELETE of the stale row (by its id) then INSERT, on a stale read;
//  - stop() called, unconditionally, on whichever replica deleted the stale row,
//    never on the old master;
//  - after failed heartbeats (or a disable) the master only stops heartbeating and
//    keeps running the job;
//  - every replica polls every checkMasterInterval: the control row, then the lock;
//    the master updates heartbeatTime every heartbeatInterval;
//  - no release on shutdown: SIGTERM just ends the process, the lock waits for expiry;
//  - disable is a control row (find-then-create, no unique key) that only stops
//    heartbeats and takeovers; enable deletes the control rows;
//  - database errors in a callback crash the process.
// The original keeps one lock per process in module globals; here every lock of
// DEMO_LOCKS gets its own copy of that state (the most favourable reading), each
// with its own timers and its own statements: nothing is batched.
//
// Env: PORT, DATABASE_URL (required), INSTANCE_ID, DEMO_LOCKS, INIT_DELAY,
// CHECK_MASTER_INTERVAL, MASTER_JOB_HEARTBEAT_INTERVAL,
// MASTER_JOB_LEASE_DURATION (the original's `tolerance`),
// MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT; BASELINE_POOL_SIZE (connections, default 10).

import {randomUUID} from 'crypto';
import http from 'http';
import {hostname} from 'os';
import {openSql, parseDatabaseUrl, Sql} from '../../cluster-kit/sql';
import {CONTROL_TABLE, LOCK_TABLE} from './schema';

function numberFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0)
    throw new Error(`${name} must be a number, got "${raw}"`);
  return value;
}

const PORT = numberFromEnv('PORT', 3000);
const INSTANCE_ID = process.env.INSTANCE_ID?.trim() || randomUUID();
const LOCKS = (process.env.DEMO_LOCKS ?? 'JOB-SCHEDULER')
  .split(',')
  .map(s => s.trim())
  .filter(Boolean);
const INIT_DELAY = numberFromEnv('INIT_DELAY', 1000);
const CHECK_MASTER_INTERVAL = numberFromEnv('CHECK_MASTER_INTERVAL', 30000);
const HEARTBEAT_INTERVAL = numberFromEnv('MASTER_JOB_HEARTBEAT_INTERVAL', 8000);
const TOLERANCE = numberFromEnv('MASTER_JOB_LEASE_DURATION', HEARTBEAT_INTERVAL * 3);
const MAX_HEARTBEAT_RETRY_COUNT = numberFromEnv('MASTER_JOB_MAX_HEARTBEAT_RETRY_COUNT', 3);
const IP_PORT = `${hostname()}:${PORT}`;

function printEvent(event: 'start' | 'stop', lockName: string, reason: string | null): void {
  const line = {
    event,
    lockName,
    instanceId: INSTANCE_ID,
    fencingToken: null, // the original has none
    reason,
    at: new Date().toISOString(),
    mono: Number(process.hrtime.bigint()) / 1e6,
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}

/** One lock's copy of the original module's globals and functions. */
class NaiveMaster {
  private canBecomeMaster = false;
  private heartbeatInterval: NodeJS.Timeout | undefined;
  master = false;

  constructor(
    private readonly db: Sql,
    readonly lockName: string,
  ) {}

  startMaster(): void {
    setTimeout(() => {
      void this.checkMaster();
      setInterval(() => {
        void this.checkMaster();
      }, CHECK_MASTER_INTERVAL);
    }, INIT_DELAY);
  }

  private async checkMaster(): Promise<void> {
    const control = await this.db.query(
      `SELECT * FROM ${CONTROL_TABLE} WHERE lock_name = ? LIMIT 1`,
      [this.lockName],
    );
    if (control.rows.length) {
      this.canBecomeMaster = false; // disabled: no takeover, no heartbeat; the job keeps running
      return;
    }
    this.canBecomeMaster = true;
    const {rows} = await this.db.query(`SELECT * FROM ${LOCK_TABLE} WHERE lock_name = ? LIMIT 1`, [
      this.lockName,
    ]);
    const masterInst = rows[0];
    if (masterInst) {
      if (Date.now() - Number(masterInst.heartbeat_time) > TOLERANCE) {
        // Stale by this machine's wall clock: delete it, "stop" here, try to create.
        await this.db.query(`DELETE FROM ${LOCK_TABLE} WHERE id = ?`, [masterInst.id]);
        clearInterval(this.heartbeatInterval);
        this.master = false;
        printEvent('stop', this.lockName, 'deleted-stale-lock'); // masterJob.stop(), on the deleter
        await this.createLock();
      }
    } else {
      await this.createLock();
    }
  }

  private async createLock(): Promise<void> {
    if (!this.canBecomeMaster) return;
    const id = randomUUID();
    try {
      await this.db.query(
        `INSERT INTO ${LOCK_TABLE} (id, lock_name, instance_id, ip_port, version, heartbeat_time) VALUES (?, ?, ?, ?, ?, ?)`,
        [id, this.lockName, INSTANCE_ID, IP_PORT, randomUUID(), Date.now()],
      );
    } catch {
      return; // "Could not create lock record"
    }
    this.master = true;
    printEvent('start', this.lockName, null); // masterJob.start()
    this.startHeartbeat(id);
  }

  private startHeartbeat(id: string): void {
    let retries = 0;
    this.heartbeatInterval = setInterval(() => {
      if (!this.canBecomeMaster) return;
      // lock.updateAttributes({heartbeatTime: Date.now()}): fails once the row is gone
      this.db
        .query(`UPDATE ${LOCK_TABLE} SET heartbeat_time = ? WHERE id = ?`, [Date.now(), id])
        .then(
          r => r.affected > 0,
          () => false,
        )
        .then(ok => {
          if (ok) retries = 0;
          else if (++retries > MAX_HEARTBEAT_RETRY_COUNT) clearInterval(this.heartbeatInterval); // job keeps running
        })
        .catch(() => {});
    }, HEARTBEAT_INTERVAL);
  }
}

async function readBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  if ((req.headers['content-type'] ?? '').includes('application/json'))
    return raw ? JSON.parse(raw) : {};
  return Object.fromEntries(new URLSearchParams(raw));
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, {'content-type': 'application/json'});
  res.end(JSON.stringify(body));
}

/** The original's MasterControl remote methods, plus a read-only listing. */
function controlServer(db: Sql, masters: NaiveMaster[]): http.Server {
  return http.createServer((req, res) => {
    const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    const handle = async () => {
      if (route === 'GET /api/MasterControls') {
        return send(res, 200, (await db.query(`SELECT * FROM ${CONTROL_TABLE}`)).rows);
      }
      if (route === 'GET /api/MasterControls/status') {
        const locks = (await db.query(`SELECT * FROM ${LOCK_TABLE}`)).rows;
        return send(res, 200, {
          instanceId: INSTANCE_ID,
          locks,
          local: masters.map(m => ({lockName: m.lockName, isMaster: m.master})),
        });
      }
      const body = await readBody(req);
      const lockName = String(body.lockName ?? '');
      if (!lockName) return send(res, 422, {error: {message: 'lockName is required'}});
      if (route === 'POST /api/MasterControls/disable') {
        const found = await db.query(`SELECT * FROM ${CONTROL_TABLE} WHERE lock_name = ? LIMIT 1`, [
          lockName,
        ]);
        if (found.rows.length)
          return send(res, 200, {message: `${lockName} is already flagged as disabled`});
        await db.query(
          `INSERT INTO ${CONTROL_TABLE} (lock_name, reason, last_updated_time) VALUES (?, ?, ?)`,
          [lockName, String(body.reason ?? ''), Date.now()],
        );
        return send(res, 200, {message: `Flagged ${lockName} as disabled`});
      }
      if (route === 'POST /api/MasterControls/enable') {
        await db.query(`DELETE FROM ${CONTROL_TABLE} WHERE lock_name = ?`, [lockName]);
        return send(res, 200, {message: `${lockName} is flagged for (re)enablement`});
      }
      send(res, 404, {error: {message: 'not found'}});
    };
    handle().catch(err => send(res, 500, {error: {message: String(err?.message ?? err)}}));
  });
}

function main(): void {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is required (postgres://... or mysql://...)');
  const {backend, address, database} = parseDatabaseUrl(url);
  const db = openSql(backend, address, database, numberFromEnv('BASELINE_POOL_SIZE', 10));
  const masters = LOCKS.map(lockName => new NaiveMaster(db, lockName));
  const server = controlServer(db, masters);
  server.listen(PORT, process.env.HOST, () => {
    console.error(
      `Baseline replica (instance ${INSTANCE_ID}) on port ${PORT}; masters for ${LOCKS.length} lock(s)`,
    );
    masters.forEach(m => m.startMaster());
  });
  // No SIGTERM handler, like the original: the process ends, the lock waits for expiry.
}

main();
