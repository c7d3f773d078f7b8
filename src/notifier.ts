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
import {isPostgres, updateReturning} from './postgres';

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
 * "enabled"] for an operator's change.
 */
export function encodePayload(changes: LockChange[]): string {
  const payload = JSON.stringify(
    changes.map(c =>
      c.freed
        ? [c.lockName, c.freed.fencingToken, c.freed.renewalId]
        : c.control
          ? [c.lockName, c.control]
          : c.lockName,
    ),
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
  if (!Array.isArray(entry)) return undefined;
  if (entry.length === 2) {
    const [lockName, control] = entry as unknown[];
    return typeof lockName === 'string' && (control === 'disabled' || control === 'enabled')
      ? {lockName, control}
      : undefined;
  }
  if (entry.length !== 3) return undefined;
  const [lockName, fencingToken, renewalId] = entry as unknown[];
  if (
    typeof lockName !== 'string' ||
    !Number.isSafeInteger(fencingToken) ||
    (fencingToken as number) < 1 ||
    typeof renewalId !== 'string' ||
    !renewalId
  ) {
    return undefined;
  }
  return {lockName, freed: {fencingToken: fencingToken as number, renewalId}};
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
   * properties of the rows it updated.
   */
  async updateAndPublish<T extends object>(
    model: string,
    where: Where<T>,
    data: Partial<T>,
    returning: (keyof T & string)[],
    expected: number,
    changes: LockChange[],
  ): Promise<Partial<T>[]> {
    const update = updateReturning(this.dataSource, model, where, data, returning);
    const n = update.params.length;
    const sql =
      `WITH updated AS (${update.sql}) ` +
      `SELECT coalesce(json_agg(updated), '[]') AS rows, ` +
      `CASE WHEN count(*) = $${n + 1} THEN pg_notify($${n + 2}, $${n + 3}) END AS notified ` +
      `FROM updated`;
    const params = [...update.params, expected, NOTIFY_CHANNEL, encodePayload(changes)];
    const result = (await this.dataSource.execute(sql, params)) as {rows: Partial<T>[]}[];
    return result[0]?.rows ?? [];
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
  return isPostgres(dataSource)
    ? new PostgresNotifier(dataSource)
    : new LocalNotifier(dataSource);
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
