// Wakes the other replicas when a lock is released, disabled or enabled, so
// that handoff, disable and enable do not wait for a polling tick. Polling
// stays the fallback: a lost notification only costs latency.
//  - PostgreSQL: LISTEN/NOTIFY on a dedicated connection that reconnects by itself.
//  - Any other connector: in-process only (executors sharing one datasource).

import {BindingScope, inject, injectable, Provider} from '@loopback/core';
import {juggler, Where} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {MasterJobExecutorBindings} from './keys';
import {FreedLock} from './lock-store';
import {isPostgres, sqlBuilder, updateReturning} from './postgres';

const debug = debugFactory('loopback:master-job-executor:notifier');

export const NOTIFY_CHANNEL = 'master_job_executor';

/**
 * A lock that changed. `freed`, when a release freed it: the token and
 * renewalId the row was left with, so a replica can take it over at once,
 * without reading it first (a forged or stale one only fails the takeover).
 * `control`, when an operator disabled or enabled it: only its master has
 * anything to do on a disable, only the others on an enable.
 */
export interface LockChange {
  lockName: string;
  freed?: FreedLock;
  control?: ControlChange;
}

export type ControlChange = 'disabled' | 'enabled';

/** Called with the lock that changed, or undefined when any may have (after a reconnect). */
export type ChangeListener = (change: LockChange | undefined) => void;

export interface LockNotifier {
  /** Tell every replica that these locks changed; never throws. */
  publish(changes: LockChange[]): void;
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}

const localChannels = new WeakMap<object, EventEmitter>();

/** Delivers to the executors of this process that share the datasource. */
export class LocalNotifier implements LockNotifier {
  private readonly channel: EventEmitter;

  constructor(dataSource: object) {
    let channel = localChannels.get(dataSource);
    if (!channel) {
      channel = new EventEmitter().setMaxListeners(0);
      localChannels.set(dataSource, channel);
    }
    this.channel = channel;
  }

  publish(changes: LockChange[]): void {
    // After the caller's turn, like a notification from the database would.
    setImmediate(() => changes.forEach(change => this.channel.emit('change', change)));
  }

  subscribe(listener: ChangeListener): () => void {
    this.channel.on('change', listener);
    return () => this.channel.off('change', listener);
  }

  async close(): Promise<void> {}
}

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
/** PostgreSQL's limit on a NOTIFY payload is 8000 bytes. */
const MAX_PAYLOAD = 7900;
/** The payload that wakes every lock: too many names to list. */
const ANY_LOCK = '*';

/**
 * The payload: a JSON array with an entry per lock: its name, or
 * [name, fencingToken, renewalId] for a freed lock, or [name, "disabled" |
 * "enabled"] for an operator's change, followed by fencingToken and
 * renewalId when the lock was free (an enable: take it over unread).
 */
export function encodePayload(changes: LockChange[]): string {
  const payload = JSON.stringify(
    changes.map(c => {
      const freed = c.freed ? [c.freed.fencingToken, c.freed.renewalId] : [];
      if (c.control) return [c.lockName, c.control, ...freed];
      return c.freed ? [c.lockName, ...freed] : c.lockName;
    }),
  );
  return Buffer.byteLength(payload) < MAX_PAYLOAD ? payload : ANY_LOCK;
}

/** The changes of a payload; undefined (wake every lock) for anything else. */
export function parsePayload(payload: string | undefined): LockChange[] | undefined {
  let entries: unknown;
  try {
    entries = JSON.parse(payload ?? '');
  } catch {
    return undefined; // ANY_LOCK, or a payload from something else on our channel
  }
  if (!Array.isArray(entries)) return undefined;
  const changes = entries.map(toChange);
  return changes.every(c => c !== undefined) ? (changes as LockChange[]) : undefined;
}

function toChange(entry: unknown): LockChange | undefined {
  if (typeof entry === 'string') return {lockName: entry};
  if (!Array.isArray(entry) || typeof entry[0] !== 'string') return undefined;
  const [lockName, ...rest] = entry as [string, ...unknown[]];
  const control = rest[0] === 'disabled' || rest[0] === 'enabled' ? rest[0] : undefined;
  if (control) rest.shift();
  if (rest.length === 0) return control ? {lockName, control} : undefined;
  const freed = toFreed(rest);
  if (!freed) return undefined;
  return control ? {lockName, control, freed} : {lockName, freed};
}

function toFreed(entry: unknown[]): FreedLock | undefined {
  const [fencingToken, renewalId] = entry;
  return entry.length === 2 &&
    Number.isSafeInteger(fencingToken) &&
    (fencingToken as number) >= 1 &&
    typeof renewalId === 'string' &&
    renewalId !== ''
    ? {fencingToken: fencingToken as number, renewalId}
    : undefined;
}

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

  publish(changes: LockChange[]): void {
    const payload = encodePayload(changes);
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
   * of `changes` if it updated `expected` rows: the others are woken as the
   * update commits, not a round trip later. Resolves to the `returning`
   * properties of the rows it updated, and the changes it published.
   * With `freedOf` (the lock model), the one change, an enable, also carries
   * what the lock's row was left with if it is free, as the statement sees
   * it: the others take it over unread.
   */
  async updateAndPublish<T extends object>(
    model: string,
    where: Where<T>,
    data: Partial<T>,
    returning: (keyof T & string)[],
    expected: number,
    changes: LockChange[],
    freedOf?: string,
  ): Promise<{rows: Partial<T>[]; published?: LockChange[]}> {
    const update = updateReturning(this.dataSource, model, where, data, returning);
    const n = update.params.length;
    const params = [...update.params, expected, NOTIFY_CHANNEL, encodePayload(changes)];
    let payload = `$${n + 3}::text`;
    if (freedOf && changes.length === 1 && changes[0].control) {
      const sql = sqlBuilder(this.dataSource);
      const column = (p: string) => sql.columnEscaped(freedOf, p);
      const entry =
        `json_build_array(${column('lockName')}, $${n + 4}::text, ` +
        `${column('fencingToken')}, ${column('renewalId')})`;
      payload =
        `coalesce((SELECT json_build_array(${entry})::text FROM ${sql.tableEscaped(freedOf)} ` +
        `WHERE ${column('lockName')} = $${n + 5} AND ${column('instanceId')} = ''), ${payload})`;
      params.push(changes[0].control, changes[0].lockName);
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
      const changes = parsePayload(msg.payload);
      if (changes) changes.forEach(change => this.events.emit('change', change));
      else this.events.emit('change', undefined);
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
    this.events.emit('change', undefined);
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

export function createNotifier(dataSource: juggler.DataSource): LockNotifier {
  return isPostgres(dataSource) ? new PostgresNotifier(dataSource) : new LocalNotifier(dataSource);
}

@injectable({scope: BindingScope.SINGLETON})
export class LockNotifierProvider implements Provider<LockNotifier> {
  constructor(
    @inject(MasterJobExecutorBindings.DATASOURCE)
    private readonly dataSource: juggler.DataSource,
  ) {}

  value(): LockNotifier {
    return createNotifier(this.dataSource);
  }
}
