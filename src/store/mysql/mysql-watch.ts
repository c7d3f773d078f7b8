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
// before. Its pauses are on the doorbell's clock.

import debugFactory from 'debug';
import {backoff, sleep} from '../../clock';
import {Clock} from '../../types';

const debug = debugFactory('loopback:master-job-executor:notifier');

/** How a watch starts: not the doorbell's `SELECT GET_LOCK(`, so that rings leave it alone. */
const WATCH_START = 'SELECT 1 AS watching, GET_LOCK(';
const WAIT_SECONDS = 30;
/** The first waits after a start are this short, this many times. */
const SETTLING_SECONDS = 2;
const SETTLING_ROUNDS = 3;
/** The doorbell locks of watching replicas carry this after the prefix; only they form the ring. */
export const WATCHING = 'w';
/** Back-off after a watched lock fell (a ring each time), and after an error: 100 ms doubling to 5 s. */
const BACKOFF = {base: 100, max: 5000};

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
  clock: Clock;
}

export class RingWatch {
  private stopped = false;
  /** Ends a pause at once when the watch stops. */
  private readonly stopping = new AbortController();
  /** Locks fallen in a row, errors in a row: how long the next pause is. */
  private falls = 0;
  private errors = 0;
  /** Locks seen to fall, while their waits may linger in the process list. */
  private readonly gone = new Set<string>();

  constructor(private readonly options: RingWatchOptions) {
    this.run().catch(err => {
      if (!this.stopped) options.onError(err as Error);
    });
  }

  /** Ends the watch (the caller destroys its connection). */
  stop(): void {
    this.stopped = true;
    this.stopping.abort();
  }

  private async run(): Promise<void> {
    for (let round = 0; !this.stopped; round++) {
      try {
        await this.step(round);
        this.errors = 0;
      } catch (err) {
        // A dead connection: the doorbell reconnects. Anything else (a KILL meant for an
        // earlier statement, a server's statement time limit): look again after a back-off.
        if ((err as {fatal?: boolean}).fatal || this.stopped) throw err;
        const delay = backoff(++this.errors, BACKOFF);
        debug('watch: %s, again in %d ms', (err as Error).message, delay);
        await this.sleep(delay);
      }
    }
  }

  private async step(round: number): Promise<void> {
    const next = this.successor(await this.ring());
    if (this.stopped) return;
    // Our predecessor watches `next` still: make it look at the ring again.
    if (round === 0) await interruptWatchers(this.options.connection, next);
    // Replicas that start together may miss each other's waits: look again soon, a few times.
    const result = await this.wait(next, round < SETTLING_ROUNDS ? SETTLING_SECONDS : WAIT_SECONDS);
    if (this.stopped) return;
    if (result !== 'granted') {
      this.falls = 0;
      return; // timed out or interrupted (a join or a leave): look again
    }
    await this.query(`SELECT RELEASE_LOCK('${next}')`);
    if (next === this.options.ownName) {
      const err = new Error("the doorbell's own lock was free") as Error & {fatal: boolean};
      err.fatal = true;
      throw err;
    }
    if (this.stopped) return;
    debug('the replica of doorbell %s is gone: ringing', next);
    this.gone.add(next);
    try {
      this.options.onGone();
    } catch (err) {
      debug('ringing after a crash failed: %s', (err as Error).message);
    }
    await this.sleep(backoff(++this.falls, BACKOFF));
  }

  /** The doorbell locks of the watching replicas now waiting on this database. */
  private async ring(): Promise<Set<string>> {
    const {prefix} = this.options;
    const rows = (await this.query(
      'SELECT INFO AS info FROM information_schema.PROCESSLIST ' +
        `WHERE DB <=> DATABASE() AND INFO LIKE 'SELECT GET_LOCK(''${prefix}%'`,
    )) as {info: string | Buffer}[];
    const names = new Set<string>();
    // Only doorbells that watch too: one that does not would leave the next one unwatched.
    const pattern = new RegExp(`^SELECT GET_LOCK\\('(${escape(prefix)}${WATCHING}[0-9a-f]+)'`);
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

  private async wait(
    name: string,
    seconds: number,
  ): Promise<'granted' | 'timeout' | 'interrupted'> {
    try {
      const rows = (await this.query(
        // Literal SQL (the name is ours or read as hex): others find it as sent.
        `${WATCH_START}'${name}', ${seconds}) AS got`,
      )) as {got: unknown}[];
      const got = rows[0]?.got;
      // MySQL answers NULL to an interrupted wait, MariaDB an error.
      return got === null || got === undefined
        ? 'interrupted'
        : Number(got) === 1
          ? 'granted'
          : 'timeout';
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

  private async sleep(ms: number): Promise<void> {
    await sleep(this.options.clock, ms, this.stopping.signal);
  }
}

/**
 * A leave, not a crash: nobody may be watching our doorbell lock when it is
 * freed, or it would ring everybody. A killed wait lingers in the process
 * list for a moment, and a watcher that looks at the ring then watches us on:
 * so first our doorbell's wait (`waiterId`) must be gone from the list, then
 * the watches of our lock are interrupted, and again while one began since.
 */
export async function leaveRing(
  connection: WatchConnection,
  name: string,
  waiterId: number | null,
  clock: Clock,
): Promise<void> {
  const run = runner(connection);
  for (let tries = 0; tries < 40; tries++) {
    const rows = (await run(
      `SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ${Number(waiterId)} ` +
        'AND INFO IS NOT NULL',
    ).catch(() => [])) as {n: number | string}[];
    if (!Number(rows[0]?.n)) break;
    await sleep(clock, 5);
  }
  for (let round = 0; round < 5; round++) {
    // One that read the ring just before our wait went starts its watch a round trip later.
    if ((await interruptWatchers(connection, name)) === 0 && round > 0) return;
    await sleep(clock, 10);
  }
}

/**
 * Interrupts the watches of doorbell lock `name` (but not our own query):
 * they look at the ring again. Resolves to how many it interrupted. Failures
 * are only logged: the watches look again within WAIT_SECONDS anyway.
 */
export async function interruptWatchers(
  connection: WatchConnection,
  name: string,
): Promise<number> {
  const run = runner(connection);
  try {
    const rows = (await run(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB <=> DATABASE() ' +
        `AND INFO LIKE '${WATCH_START.replace(/'/g, "''")}''${name}''%' AND ID <> CONNECTION_ID()`,
    )) as {id: number | string}[];
    const ids = rows.map(r => Number(r.id)).filter(n => Number.isSafeInteger(n) && n > 0);
    for (const id of ids) {
      await run(`KILL QUERY ${id}`).catch((err: Error) =>
        debug('KILL QUERY %d: %s', id, err.message),
      );
    }
    return ids.length;
  } catch (err) {
    debug('interrupting the watchers of %s: %s', name, (err as Error).message);
    return 0;
  }
}

function runner(connection: WatchConnection): (sql: string) => Promise<unknown> {
  return sql =>
    new Promise<unknown>((resolve, reject) =>
      connection.query(sql, [], (err, rows) => (err ? reject(err) : resolve(rows))),
    );
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
