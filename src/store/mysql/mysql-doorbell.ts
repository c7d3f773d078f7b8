// MySQL and MariaDB have no NOTIFY; this is their wake-up across processes.
// Each replica holds a named lock of its own (GET_LOCK) on one connection and
// waits for that same lock on another, a wait of a known text. A replica that
// releases, enables, disables or joins finds the waiting connections on the
// same database in the process list and interrupts their wait (KILL QUERY);
// each wakes and re-checks its locks at once. The ring carries no payload:
// a woken replica reads what changed (one batched read), so a handoff or an
// enable takes a few round trips instead of a polling interval.
// Why a lock wait and not SELECT SLEEP(): every SLEEP() of the server waits
// under one global mutex, and a KILL that cannot take it retries for up to
// two seconds (measured: p99 2 s with three sleepers); a lock wait has a
// mutex of its own.
// Polling stays the fallback: a ring is missed by a replica between two
// waits, by one whose queries the ringer's user may not kill, and while the
// doorbell reconnects; such a replica hears of the change at its next check.
// A third connection watches the next replica's doorbell (mysql-watch.ts):
// a replica that crashes is rung about at once. Its timers are on the clock
// of the first notifier of its datasource.

import {juggler} from '@loopback/repository';
import {randomBytes} from 'crypto';
import debugFactory from 'debug';
import {backoff, sleep, systemClock} from '../../clock';
import {Clock, TimerHandle} from '../../types';
import {LocalNotifier} from '../../wake/local';
import {ANYTHING, WakeUp} from '../../wake/messages';
import {ChangeListener, LockNotifier} from '../../wake/notifier';
import {leaveRing, RingWatch, WATCHING} from './mysql-watch';

const debug = debugFactory('loopback:master-job-executor:notifier');

/** Lock names start so: how ringers find the waits in the process list (names stay under 64 characters). */
export const DOORBELL_LOCK_PREFIX = 'loopback4-mje-doorbell:';
const PREFIX = DOORBELL_LOCK_PREFIX;
const WAIT_SECONDS = 30;
const FIND_WAITS =
  'SELECT ID AS id FROM information_schema.PROCESSLIST ' +
  `WHERE DB <=> DATABASE() AND INFO LIKE 'SELECT GET_LOCK(''${PREFIX}%' ` +
  'AND ID <> CONNECTION_ID() AND ID <> ?';
/** Wakes are told at most this often: a storm of rings costs a read per gap, not one per ring. */
export const MIN_WAKE_GAP = 25;
/**
 * Reconnections: 100 ms doubling to 5 s, each spread over ±25% (after a server
 * restart every replica reconnects, not all in the same instant).
 */
const RECONNECT = {base: 100, max: 5000, jitter: 0.25};
/** A bell that lived this long before failing reconnects after the shortest delay again. */
const HEALTHY_AFTER = 10000;
/** How long close() waits for the rings under way (a frozen server must not hold up a shutdown). */
const CLOSE_WAIT = 1000;
/** The doorbell takes two connections of the pool: with fewer than this, it would starve the work. */
const MIN_POOL_SIZE = 4;
/** The watch of the next replica takes a third: with fewer than this, crashes are seen at polls. */
const MIN_WATCH_POOL_SIZE = 5;

interface MysqlConnection {
  threadId: number | null;
  query(sql: string, params: unknown[], cb: (err: QueryError | null, rows?: unknown) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  release(): void;
  destroy(): void;
}

interface QueryError extends Error {
  code?: string;
}

interface MysqlPool {
  getConnection(cb: (err: Error | null, c?: MysqlConnection) => void): void;
  config?: {connectionLimit?: number};
}

/** The connections of a doorbell: one holds the lock, one waits for it, one watches the next replica's. */
interface Bell {
  name: string;
  holder: MysqlConnection;
  waiter: MysqlConnection;
  watcher?: MysqlConnection;
  watch?: RingWatch;
  /** When it was connected: a bell that lived long resets the reconnection back-off. */
  since: number;
}

const doorbells = new WeakMap<juggler.DataSource, SharedDoorbell>();

/**
 * The LockNotifier of a MySQL datasource: the wake-ups with their payloads
 * within the process, and the datasource's one doorbell across processes
 * (shared by the notifiers of one datasource: each would take two of its
 * pool's connections).
 */
export class MysqlDoorbell implements LockNotifier {
  private readonly local: LocalNotifier;
  private readonly shared: SharedDoorbell;
  private readonly unsubscribes = new Set<() => void>();
  private closed = false;

  constructor(dataSource: juggler.DataSource, clock: Clock = systemClock) {
    this.local = new LocalNotifier(dataSource);
    let shared = doorbells.get(dataSource);
    if (!shared) {
      shared = new SharedDoorbell(dataSource, clock);
      doorbells.set(dataSource, shared);
    }
    shared.users++;
    this.shared = shared;
  }

  publish(messages: WakeUp[]): void {
    this.local.publish(messages);
    // A ring wakes every lock of every replica to read: a submit or a checkpoint waits for the next look.
    if (!messages.every(m => m.kind === 'submitted' || m.kind === 'checkpoint')) this.shared.ring();
  }

  subscribe(listener: ChangeListener): () => void {
    const offLocal = this.local.subscribe(listener);
    const offShared = this.shared.subscribe(listener);
    const off = () => {
      offLocal();
      offShared();
      this.unsubscribes.delete(off);
    };
    this.unsubscribes.add(off);
    return off;
  }

  /** Whether a wait is ours to be woken from now (false while connecting or reconnecting). */
  get listening(): boolean {
    return this.shared.listening;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribes.forEach(off => off());
    await this.shared.release();
  }
}

/** The doorbell of one datasource: its two connections, the rings it sends, the wakes it tells. */
class SharedDoorbell {
  users = 0;
  private readonly listeners = new Set<ChangeListener>();
  private bell: Bell | undefined;
  private closed = false;
  /** Reconnections since the last bell that lived HEALTHY_AFTER. */
  private reconnects = 0;
  private reconnectTimer: TimerHandle | undefined;
  private wakeTimer: TimerHandle | undefined;
  private lastWake = -Infinity;
  /** Rings under way: close() lets them finish (a replica stopping rings as it releases). */
  private readonly ringing = new Set<Promise<void>>();

  constructor(
    private readonly dataSource: juggler.DataSource,
    private readonly clock: Clock,
  ) {
    this.listen().catch(err => this.reconnect(err));
  }

  /** Interrupts the wait of every other replica on this database, in the background. */
  ring(): void {
    const ring = this.ringOthers()
      .catch((err: Error) => debug('ringing the other replicas failed: %s', err.message))
      .finally(() => this.ringing.delete(ring));
    this.ringing.add(ring);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listening(): boolean {
    return this.bell !== undefined;
  }

  /** One user fewer; the last closes the doorbell (after the rings under way). */
  async release(): Promise<void> {
    if (--this.users > 0) return;
    if (doorbells.get(this.dataSource) === this) doorbells.delete(this.dataSource);
    if (this.ringing.size) await this.capped(Promise.all(this.ringing));
    this.closed = true;
    if (this.reconnectTimer !== undefined) this.clock.clearTimeout(this.reconnectTimer);
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    const bell = this.bell;
    this.bell = undefined;
    if (!bell) return;
    bell.watch?.stop();
    // End our waits now rather than leave them on the server for up to WAIT_SECONDS; and a
    // leave is not a crash: whoever watches us looks at the ring again instead of ringing.
    // Bounded: a frozen server must not hold up a shutdown.
    const leave = async () => {
      for (const c of [bell.waiter, bell.watcher]) {
        if (c) await this.dataSource.execute(`KILL QUERY ${Number(c.threadId)}`).catch(() => {});
      }
      if (bell.watcher) {
        await leaveRing(bell.holder, bell.name, bell.waiter.threadId, this.clock);
      }
    };
    await this.capped(leave());
    drop(bell);
  }

  /** Waits for `work`, at most CLOSE_WAIT. */
  private async capped(work: Promise<unknown>): Promise<void> {
    const cap = new AbortController();
    try {
      await Promise.race([work, sleep(this.clock, CLOSE_WAIT, cap.signal)]);
    } finally {
      cap.abort();
    }
  }

  private async ringOthers(): Promise<void> {
    const own = this.bell?.waiter.threadId ?? 0;
    const waits = (await this.dataSource.execute(FIND_WAITS, [own])) as {id: number | string}[];
    const ids = waits.map(w => Number(w.id)).filter(id => Number.isSafeInteger(id) && id > 0);
    debug('ringing %d other replicas', ids.length);
    await Promise.all(
      ids.map(id =>
        // Its wait may have ended meanwhile (ER_NO_SUCH_THREAD): it re-checks anyway.
        this.dataSource.execute(`KILL QUERY ${id}`).catch((err: Error) => {
          debug('KILL QUERY %d: %s', id, err.message);
        }),
      ),
    );
  }

  private async listen(): Promise<void> {
    await this.dataSource.connect(); // the connector makes its pool on connect
    const pool = (this.dataSource.connector as {client?: MysqlPool} | undefined)?.client;
    if (!pool?.getConnection) throw new Error('the datasource has no mysql pool');
    const limit = pool.config?.connectionLimit ?? 10;
    if (limit < MIN_POOL_SIZE) {
      debug(
        'connectionLimit %d below %d: no doorbell, changes are seen at polls',
        limit,
        MIN_POOL_SIZE,
      );
      return;
    }
    const connect = () =>
      new Promise<MysqlConnection>((resolve, reject) =>
        pool.getConnection((err, c) => {
          if (err || !c) return reject(err ?? new Error('no connection'));
          // A listener first: an error with none would crash the process.
          c.on('error', e => debug('doorbell connection: %s', e.message));
          resolve(c);
        }),
      );
    const holder = await connect();
    let waiter: MysqlConnection;
    try {
      waiter = await connect();
    } catch (err) {
      holder.destroy();
      throw err;
    }
    const watching = limit >= MIN_WATCH_POOL_SIZE;
    const bell: Bell = {
      name: PREFIX + (watching ? WATCHING : '') + randomBytes(16).toString('hex'),
      holder,
      waiter,
      since: this.clock.now(),
    };
    if (watching) {
      try {
        bell.watcher = await connect();
      } catch (err) {
        drop(bell);
        throw err;
      }
    }
    try {
      const held = await query(holder, 'SELECT GET_LOCK(?, 0) AS held', [bell.name]);
      if (held !== 1) throw new Error(`could not take the doorbell's lock ${bell.name}`);
    } catch (err) {
      drop(bell);
      throw err;
    }
    if (this.closed) return drop(bell);
    this.bell = bell;
    debug('doorbell waiting on thread %d', waiter.threadId);
    this.wait(bell);
    if (bell.watcher) {
      bell.watch = new RingWatch({
        connection: bell.watcher,
        ownName: bell.name,
        prefix: PREFIX,
        onGone: () => {
          this.ring();
          this.wake();
        },
        onError: err => this.fail(bell, err),
        clock: this.clock,
      });
    }
    // Rings sent while we were not waiting are lost: re-check everything.
    this.wake();
  }

  private wait(bell: Bell): void {
    // Literal SQL (the name is ours, hex): the process list shows it as sent.
    const sql = `SELECT GET_LOCK('${bell.name}', ${WAIT_SECONDS}) AS waited`;
    bell.waiter.query(sql, [], (err, rows) => {
      if (this.bell !== bell) return; // closed, or replaced
      // Rung: MariaDB fails the query, MySQL returns NULL. 0: timed out, nobody rang.
      const result = err ? undefined : Object.values((rows as object[] | undefined)?.[0] ?? {})[0];
      if (err?.code === 'ER_QUERY_INTERRUPTED' || (!err && result === null)) {
        this.wait(bell); // first, so that the next ring finds us
        return this.wake();
      }
      if (!err && result === 0) return this.wait(bell);
      // An error, or the lock was ours to take: the holder's connection is gone.
      this.fail(bell, err ?? new Error("the doorbell's holder lost its lock"));
    });
  }

  /** Drops a failed doorbell and connects a new one. */
  private fail(bell: Bell, err: Error): void {
    if (this.bell !== bell) return;
    this.bell = undefined;
    // Not at each connect: a bell that fails at once must not reconnect every 100 ms.
    if (this.clock.now() - bell.since > HEALTHY_AFTER) this.reconnects = 0;
    bell.watch?.stop();
    drop(bell);
    this.reconnect(err);
  }

  /** Tells the listeners that anything may have changed, at most once per MIN_WAKE_GAP. */
  private wake(): void {
    if (this.wakeTimer !== undefined) return;
    const wait = this.lastWake + MIN_WAKE_GAP - this.clock.now();
    const tell = () => {
      this.wakeTimer = undefined;
      this.lastWake = this.clock.now();
      this.listeners.forEach(listener => listener(ANYTHING));
    };
    if (wait <= 0) return tell();
    this.wakeTimer = this.clock.setTimeout(tell, wait);
  }

  private reconnect(err?: unknown): void {
    if (this.closed) return;
    const delay = backoff(++this.reconnects, RECONNECT);
    debug('doorbell connection failed (%s), retrying in %d ms', (err as Error)?.message, delay);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.listen().catch(e => this.reconnect(e));
    }, delay);
  }
}

function query(connection: MysqlConnection, sql: string, params: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) =>
    connection.query(sql, params, (err, rows) =>
      err ? reject(err) : resolve(Object.values((rows as object[] | undefined)?.[0] ?? {})[0]),
    ),
  );
}

/** Closes the connections: the server frees the lock with the holder's. */
function drop(bell: Bell): void {
  // Their error listeners stay: a late error with none would crash the process.
  bell.holder.destroy();
  bell.waiter.destroy();
  bell.watcher?.destroy();
}
