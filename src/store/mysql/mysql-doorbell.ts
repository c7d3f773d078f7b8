// MySQL and MariaDB have no NOTIFY; this is their wake-up across processes.
// Each replica keeps one connection asleep in a SELECT SLEEP() of a known
// text. A replica that releases, enables or joins finds the sleeping
// connections on the same database in the process list and interrupts them
// (KILL QUERY); each wakes and re-checks its locks at once. The ring carries
// no payload: a woken replica reads what changed (one batched read), so a
// handoff or an enable takes a few round trips instead of a polling interval.
// Polling stays the fallback: a replica whose sleep is not found (between two
// sleeps; a database user not allowed to kill it) hears at its next poll.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {ChangeListener, LocalNotifier, LockNotifier} from '../../notify/notifier';
import {LockChange} from '../lock-store';

const debug = debugFactory('loopback:master-job-executor:notifier');

const SLEEP_SECONDS = 30;
/** The sleeping query: its exact text is how ringers find it in the process list. */
export const DOORBELL_SQL = `SELECT SLEEP(${SLEEP_SECONDS}) AS \`loopback4-master-job-executor doorbell\``;
const FIND_SLEEPERS =
  'SELECT ID AS id FROM information_schema.PROCESSLIST ' +
  'WHERE DB <=> DATABASE() AND INFO = ? AND ID <> CONNECTION_ID() AND ID <> ?';
/** Wakes are told at most this often: a storm of rings costs a read per gap, not one per ring. */
export const MIN_WAKE_GAP = 25;
const MAX_RECONNECT_DELAY = 5000;
/** The sleep takes a connection of the pool: with fewer, it would starve the work (and the migration lock). */
const MIN_POOL_SIZE = 3;

interface MysqlConnection {
  threadId: number | null;
  query(sql: string, params: unknown[], cb: (err: QueryError | null, rows?: unknown) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  removeAllListeners(event: 'error'): void;
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

export class MysqlDoorbell implements LockNotifier {
  /** Changes with their payloads, within this process. */
  private readonly local: LocalNotifier;
  private readonly listeners = new Set<ChangeListener>();
  private connection: MysqlConnection | undefined;
  private closed = false;
  private reconnectDelay = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private lastWake = -Infinity;

  constructor(private readonly dataSource: juggler.DataSource) {
    this.local = new LocalNotifier(dataSource);
    void this.listen();
  }

  publish(changes: LockChange[]): void {
    this.local.publish(changes);
    this.ring().catch((err: Error) => debug('ringing the other replicas failed: %s', err.message));
  }

  subscribe(listener: ChangeListener): () => void {
    const unsubscribe = this.local.subscribe(listener);
    this.listeners.add(listener);
    return () => {
      unsubscribe();
      this.listeners.delete(listener);
    };
  }

  /** Whether a sleep is ours to be woken from now (false while connecting or reconnecting). */
  get listening(): boolean {
    return this.connection !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.wakeTimer);
    const connection = this.connection;
    this.connection = undefined;
    if (!connection) return;
    // Interrupt our own sleep rather than leave a thread asleep on the server for up to SLEEP_SECONDS.
    await this.dataSource.execute(`KILL QUERY ${Number(connection.threadId)}`).catch(() => {});
    connection.removeAllListeners('error');
    connection.destroy();
  }

  /** Interrupts the sleep of every other replica on this database. */
  private async ring(): Promise<void> {
    const own = this.connection?.threadId ?? 0;
    const sleepers = (await this.dataSource.execute(FIND_SLEEPERS, [DOORBELL_SQL, own])) as {
      id: number | string;
    }[];
    await Promise.all(
      sleepers
        .map(s => Number(s.id))
        .filter(id => Number.isSafeInteger(id) && id > 0)
        .map(id =>
          // Its sleep may have ended meanwhile (ER_NO_SUCH_THREAD): it re-checks anyway.
          this.dataSource.execute(`KILL QUERY ${id}`).catch((err: Error) => {
            debug('KILL QUERY %d: %s', id, err.message);
          }),
        ),
    );
  }

  private async listen(): Promise<void> {
    let connection: MysqlConnection;
    try {
      await this.dataSource.connect(); // the connector makes its pool on connect
      const pool = (this.dataSource.connector as {client?: MysqlPool} | undefined)?.client;
      if (!pool?.getConnection) throw new Error('the datasource has no mysql pool');
      const limit = pool.config?.connectionLimit ?? 10;
      if (limit < MIN_POOL_SIZE) {
        debug('connectionLimit %d below %d: no doorbell, changes are seen at polls', limit, MIN_POOL_SIZE);
        return;
      }
      connection = await new Promise<MysqlConnection>((resolve, reject) =>
        pool.getConnection((err, c) => (err || !c ? reject(err) : resolve(c))),
      );
    } catch (err) {
      return this.reconnect(err);
    }
    if (this.closed) return connection.release();
    // A listener first: an error with none would crash the process.
    connection.on('error', err => debug('doorbell connection: %s', err.message));
    this.connection = connection;
    this.reconnectDelay = 100;
    debug('doorbell asleep on thread %d', connection.threadId);
    // Rings sent while we were not asleep are lost: re-check everything.
    this.wake();
    this.sleep(connection);
  }

  private sleep(connection: MysqlConnection): void {
    connection.query(DOORBELL_SQL, [], (err, rows) => {
      if (this.connection !== connection) return; // closed
      // Interrupted: MariaDB fails the query, MySQL has SLEEP() return 1.
      const interrupted =
        err?.code === 'ER_QUERY_INTERRUPTED' ||
        (!err && Object.values((rows as object[] | undefined)?.[0] ?? {})[0] === 1);
      if (!err && !interrupted) return this.sleep(connection); // slept its time: nobody rang
      if (interrupted) {
        this.sleep(connection); // first, so that the next ring finds us
        return this.wake();
      }
      this.connection = undefined;
      connection.removeAllListeners('error');
      connection.destroy();
      this.reconnect(err);
    });
  }

  /** Tells the listeners that anything may have changed, at most once per MIN_WAKE_GAP. */
  private wake(): void {
    if (this.wakeTimer) return;
    const wait = this.lastWake + MIN_WAKE_GAP - performance.now();
    const tell = () => {
      this.wakeTimer = undefined;
      this.lastWake = performance.now();
      this.listeners.forEach(listener => listener(undefined));
    };
    if (wait <= 0) return tell();
    this.wakeTimer = setTimeout(tell, wait);
  }

  private reconnect(err?: unknown): void {
    if (this.closed) return;
    debug(
      'doorbell connection failed (%s), retrying in %d ms',
      (err as Error)?.message,
      this.reconnectDelay,
    );
    this.reconnectTimer = setTimeout(() => void this.listen(), this.reconnectDelay);
    this.reconnectDelay = Math.min(MAX_RECONNECT_DELAY, this.reconnectDelay * 2);
  }
}
