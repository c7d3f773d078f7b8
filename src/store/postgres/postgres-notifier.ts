// PostgreSQL's transport for LockNotifier: LISTEN on a connection of its own
// that reconnects by itself, NOTIFY through the pool, and an UPDATE that sends
// its NOTIFY in the same statement (the others are woken as it commits).

import {juggler, Where} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {encodePayload, parsePayload} from '../../wake/codec';
import {ANYTHING, WakeUp} from '../../wake/messages';
import {ChangeListener, LockNotifier} from '../../wake/notifier';
import {sqlBuilder, updateReturning} from './sql';

const debug = debugFactory('loopback:master-job-executor:notifier');

/** The channel of every replica's NOTIFY and LISTEN. */
export const NOTIFY_CHANNEL = 'master_job_executor';

interface PgClient extends EventEmitter {
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

/** The connector's pg Pool: we borrow its Client class and settings. */
interface PgPool {
  Client: new (options: object) => PgClient;
  options: object;
}

const MAX_RECONNECT_DELAY = 5000;
/**
 * Bytes of lock entries per renewal NOTIFY: with one more entry (a name of
 * at most 1020 bytes) and the envelope, under PostgreSQL's 8000.
 */
const RENEWAL_CHUNK_BYTES = 6500;

/**
 * LISTEN on a connection of its own (not one of the pool's, which it would
 * hold forever), made with the connector's settings.
 */
export class PostgresNotifier implements LockNotifier {
  private readonly events = new EventEmitter().setMaxListeners(0);
  private client: PgClient | undefined;
  private reconnectDelay = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly dataSource: juggler.DataSource) {
    void this.listen();
  }

  publish(messages: WakeUp[]): void {
    const payload = encodePayload(messages);
    this.dataSource
      .execute('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, payload])
      .catch((err: Error) => debug('NOTIFY %s failed: %s', payload, err.message));
  }

  subscribe(listener: ChangeListener): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  /**
   * `UPDATE model SET data WHERE where` and, in the same statement, the NOTIFY
   * of `messages` if it updated `expected` rows: the others are woken as the
   * update commits, not a round trip later. Resolves to the `returning`
   * properties of the rows it updated, and the wake-ups it published.
   * With `freedOf` (the lock model), the one message, an enable, also carries
   * what the lock's row was left with if it is free, as the statement sees
   * it: the others take it over unread.
   */
  async updateAndPublish<T extends object>(
    model: string,
    where: Where<T>,
    data: Partial<T>,
    returning: (keyof T & string)[],
    expected: number,
    messages: WakeUp[],
    freedOf?: string,
  ): Promise<{rows: Partial<T>[]; published?: WakeUp[]}> {
    const update = updateReturning(this.dataSource, model, where, data, returning);
    const n = update.params.length;
    const params = [...update.params, expected, NOTIFY_CHANNEL, encodePayload(messages)];
    let payload = `$${n + 3}::text`;
    const enable = messages.length === 1 ? messages[0] : undefined;
    if (freedOf && enable?.kind === 'control') {
      const sql = sqlBuilder(this.dataSource);
      const column = (p: string) => sql.columnEscaped(freedOf, p);
      const entry =
        `json_build_array(${column('lockName')}, $${n + 4}::text, ` +
        `${column('fencingToken')}, ${column('renewalId')})`;
      payload =
        `coalesce((SELECT json_build_array(${entry})::text FROM ${sql.tableEscaped(freedOf)} ` +
        `WHERE ${column('lockName')} = $${n + 5} AND ${column('instanceId')} = ''), ${payload})`;
      params.push(enable.control, enable.lockName);
    }
    const sql =
      `WITH updated AS (${update.sql}), payload AS (SELECT ${payload} AS text) ` +
      `SELECT coalesce(json_agg(updated), '[]') AS rows, (SELECT text FROM payload) AS payload, ` +
      `CASE WHEN count(*) = $${n + 1} THEN pg_notify($${n + 2}, (SELECT text FROM payload)) END AS notified ` +
      `FROM updated`;
    const result = (await this.dataSource.execute(sql, params)) as {
      rows: Partial<T>[];
      payload: string;
    }[];
    const rows = result[0]?.rows ?? [];
    return {
      rows,
      published: rows.length === expected ? parsePayload(result[0].payload) : undefined,
    };
  }

  /**
   * `UPDATE model SET data WHERE where` (a renewal: data carries the new
   * renewalId), announcing in the same statement every row it renewed, in
   * as many NOTIFYs as the payload limit needs. Resolves to the rows renewed.
   */
  async renewAndAnnounce<T extends object>(
    model: string,
    where: Where<T>,
    data: Partial<T> & {renewalId: string},
  ): Promise<{lockName: string; fencingToken: number}[]> {
    const returning = ['lockName', 'fencingToken', 'instanceId'] as (keyof T & string)[];
    const update = updateReturning(this.dataSource, model, where, data, returning);
    const n = update.params.length;
    const sql =
      `WITH updated AS (${update.sql}), ` +
      // Running payload size per holder, to cut the announcement into NOTIFYs that fit.
      `sized AS (SELECT *, sum(octet_length("lockName") + 24) OVER ` +
      `(PARTITION BY "instanceId" ORDER BY "lockName") AS running FROM updated), ` +
      `chunks AS (SELECT json_build_object('renewed', "instanceId", 'renewalId', $${n + 1}::text, ` +
      `'locks', json_agg(json_build_array("lockName", "fencingToken")))::text AS payload ` +
      `FROM sized GROUP BY "instanceId", floor(running / ${RENEWAL_CHUNK_BYTES})) ` +
      `SELECT coalesce((SELECT json_agg(json_build_array("lockName", "fencingToken")) FROM updated), '[]') AS rows, ` +
      `(SELECT count(pg_notify($${n + 2}, payload)) FROM chunks) AS notices`;
    const params = [...update.params, data.renewalId, NOTIFY_CHANNEL];
    const result = (await this.dataSource.execute(sql, params)) as {rows: [string, number][]}[];
    return (result[0]?.rows ?? []).map(([lockName, fencingToken]) => ({lockName, fencingToken}));
  }

  /** Whether notifications arrive now (false while connecting or reconnecting). */
  get listening(): boolean {
    return this.client !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
    }
  }

  private async listen(): Promise<void> {
    const pool = (this.dataSource.connector as {pg?: PgPool} | undefined)?.pg;
    if (!pool?.Client) return this.reconnect(new Error('the datasource has no pg pool'));
    const client = new pool.Client(pool.options);
    let failed = false;
    const fail = (err?: Error) => {
      if (failed) return;
      failed = true;
      client.removeAllListeners('notification');
      client.end().catch(() => {});
      if (this.client === client) this.client = undefined;
      this.reconnect(err);
    };
    // Listeners first: an error with none would crash the process.
    client.on('error', fail);
    client.on('end', () => fail(new Error('connection ended')));
    client.on('notification', (msg: {channel: string; payload?: string}) => {
      if (msg.channel !== NOTIFY_CHANNEL) return;
      parsePayload(msg.payload).forEach(message => this.events.emit('change', message));
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch (err) {
      return fail(err);
    }
    if (failed) return;
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.reconnectDelay = 100;
    debug('listening on %s', NOTIFY_CHANNEL);
    // Notifications sent while we were not listening are lost: re-check everything.
    this.events.emit('change', ANYTHING);
  }

  private reconnect(err?: unknown): void {
    if (this.closed) return;
    debug(
      'LISTEN connection failed (%s), retrying in %d ms',
      (err as Error)?.message,
      this.reconnectDelay,
    );
    this.reconnectTimer = setTimeout(() => {
      void this.listen();
    }, this.reconnectDelay);
    this.reconnectDelay = Math.min(MAX_RECONNECT_DELAY, this.reconnectDelay * 2);
  }
}
