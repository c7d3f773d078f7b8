// MySQL and MariaDB: hearing of a replica's crash at once, without NOTIFY.
// A crashed replica's connections close with its process, and the server
// frees its doorbell's lock at once; its lease rows are not freed. Without a
// word, the others would learn of its last renewal at their next poll, so a
// takeover could come up to C after the lease. So the doorbells form a ring,
// in the order of their lock names: each replica waits, on a connection of
// its own, for the doorbell lock of the next one. A wait that is granted
// means that replica's connection is gone: the watcher rings everybody, who
// read at once and so take over a lease after their read (never sooner than
// a lease after the last renewal, which was sent before the crash).
// One connection per replica whatever the cluster's size, and a statement
// per WAIT_SECONDS. A replica that joins or leaves interrupts the watchers of
// the lock it sits beside, who look at the ring again; a replica alone
// watches its own lock, so that the first to join finds a watcher to tell.
// A frozen replica keeps its connections: then the lease is the bound, as
// before.

import debugFactory from 'debug';

const debug = debugFactory('loopback:master-job-executor:notifier');

/** How a watch starts: not the doorbell's `SELECT GET_LOCK(`, so that rings leave it alone. */
const WATCH_START = 'SELECT 1 AS watching, GET_LOCK(';
const WAIT_SECONDS = 30;
/** Back-off after a watched lock fell (a ring each time): 100 ms doubling to this. */
const MAX_GONE_DELAY = 5000;

export interface WatchConnection {
  threadId: number | null;
  query(
    sql: string,
    params: unknown[],
    cb: (err: (Error & {code?: string}) | null, rows?: unknown) => void,
  ): void;
}

export interface RingWatchOptions {
  connection: WatchConnection;
  /** This replica's doorbell lock. */
  ownName: string;
  /** The doorbell locks of the database's replicas start so. */
  prefix: string;
  /** The watched replica is gone: ring everybody. */
  onGone: () => void;
  /** The watch failed (its connection, most likely): the doorbell reconnects. */
  onError: (err: Error) => void;
}

export class RingWatch {
  private stopped = false;
  private goneDelay = 100;
  /** Locks seen to fall, while their waits may linger in the process list. */
  private readonly gone = new Set<string>();
  private sleepTimer: NodeJS.Timeout | undefined;
  private wakeSleep: (() => void) | undefined;

  constructor(private readonly options: RingWatchOptions) {
    this.run().catch(err => {
      if (!this.stopped) options.onError(err as Error);
    });
  }

  /** Ends the watch (the caller destroys its connection). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
  }

  private async run(): Promise<void> {
    let joined = false;
    while (!this.stopped) {
      const next = this.successor(await this.ring());
      if (this.stopped) return;
      if (!joined) {
        // Our predecessor watches `next` still: make it look at the ring again.
        joined = true;
        await interruptWatchers(this.options.connection, next);
      }
      const result = await this.wait(next);
      if (this.stopped) return;
      if (result !== 'granted') {
        if (result === 'timeout') this.goneDelay = 100;
        continue; // timed out or interrupted (a join or a leave): look again
      }
      await this.query(`SELECT RELEASE_LOCK('${next}')`);
      if (next === this.options.ownName) throw new Error("the doorbell's own lock was free");
      debug('the replica of doorbell %s is gone: ringing', next);
      this.gone.add(next);
      this.options.onGone();
      await this.sleep(this.goneDelay);
      this.goneDelay = Math.min(MAX_GONE_DELAY, this.goneDelay * 2);
    }
  }

  /** The doorbell locks of the replicas now waiting on this database. */
  private async ring(): Promise<Set<string>> {
    const {prefix} = this.options;
    const rows = (await this.query(
      'SELECT INFO AS info FROM information_schema.PROCESSLIST ' +
        `WHERE DB <=> DATABASE() AND INFO LIKE 'SELECT GET_LOCK(''${prefix}%'`,
    )) as {info: string | Buffer}[];
    const names = new Set<string>();
    const pattern = new RegExp(`^SELECT GET_LOCK\\('(${escape(prefix)}[0-9a-f]+)'`);
    for (const row of rows) {
      const name = pattern.exec(String(row.info))?.[1];
      if (name) names.add(name);
    }
    for (const name of this.gone) if (!names.has(name)) this.gone.delete(name);
    return names;
  }

  /** The next lock after ours in the ring, skipping those seen to fall; ours when alone. */
  private successor(names: Set<string>): string {
    const own = this.options.ownName;
    const others = [...names].filter(n => n !== own && !this.gone.has(n)).sort();
    return others.find(n => n > own) ?? others[0] ?? own;
  }

  private async wait(name: string): Promise<'granted' | 'timeout' | 'interrupted'> {
    try {
      const rows = (await this.query(
        // Literal SQL (the name is ours or read as hex): others find it as sent.
        `${WATCH_START}'${name}', ${WAIT_SECONDS}) AS got`,
      )) as {got: number | null}[];
      const got = rows[0]?.got;
      // MySQL answers NULL to an interrupted wait, MariaDB an error.
      return got === 1 ? 'granted' : got === 0 ? 'timeout' : 'interrupted';
    } catch (err) {
      if ((err as {code?: string}).code === 'ER_QUERY_INTERRUPTED') return 'interrupted';
      throw err;
    }
  }

  private query(sql: string): Promise<unknown> {
    return new Promise((resolve, reject) =>
      this.options.connection.query(sql, [], (err, rows) => (err ? reject(err) : resolve(rows))),
    );
  }

  private sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      this.wakeSleep = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }
}

/**
 * Interrupts the watches of doorbell lock `name` (but not our own query):
 * they look at the ring again. Failures are only logged: the watches look
 * again within WAIT_SECONDS anyway.
 */
export async function interruptWatchers(connection: WatchConnection, name: string): Promise<void> {
  const run = (sql: string) =>
    new Promise<unknown>((resolve, reject) =>
      connection.query(sql, [], (err, rows) => (err ? reject(err) : resolve(rows))),
    );
  try {
    const rows = (await run(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB <=> DATABASE() ' +
        `AND INFO LIKE '${WATCH_START.replace(/'/g, "''")}''${name}''%' AND ID <> CONNECTION_ID()`,
    )) as {id: number | string}[];
    for (const id of rows.map(r => Number(r.id)).filter(n => Number.isSafeInteger(n) && n > 0)) {
      await run(`KILL QUERY ${id}`).catch((err: Error) =>
        debug('KILL QUERY %d: %s', id, err.message),
      );
    }
  } catch (err) {
    debug('interrupting the watchers of %s: %s', name, (err as Error).message);
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
