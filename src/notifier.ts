// Wakes the other replicas when a lock is released, disabled or enabled, so
// that handoff, disable and enable do not wait for a polling tick. Polling
// stays the fallback: a lost notification only costs latency.
//  - PostgreSQL: LISTEN/NOTIFY on a dedicated connection that reconnects by itself.
//  - Any other connector: in-process only (executors sharing one datasource).

import {BindingScope, inject, injectable, Provider} from '@loopback/core';
import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {MasterJobExecutorBindings} from './keys';

const debug = debugFactory('loopback:master-job-executor:notifier');

export const NOTIFY_CHANNEL = 'master_job_executor';

/** Called with the lock that changed, or undefined when any may have (after a reconnect). */
export type ChangeListener = (lockName: string | undefined) => void;

export interface LockNotifier {
  /** Tell every replica that this lock changed; never throws. */
  publish(lockName: string): void;
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

  publish(lockName: string): void {
    // After the caller's turn, like a notification from the database would.
    setImmediate(() => this.channel.emit('change', lockName));
  }

  subscribe(listener: ChangeListener): () => void {
    this.channel.on('change', listener);
    return () => this.channel.off('change', listener);
  }

  async close(): Promise<void> {}
}

interface PgClient extends EventEmitter {
  query(sql: string): Promise<unknown>;
  release(err?: Error | boolean): void;
}

interface PgPool {
  connect(): Promise<PgClient>;
}

const MAX_RECONNECT_DELAY = 5000;

/** LISTEN on a client checked out of the connector's own pool, for good. */
export class PostgresNotifier implements LockNotifier {
  private readonly events = new EventEmitter().setMaxListeners(0);
  private client: PgClient | undefined;
  private reconnectDelay = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly dataSource: juggler.DataSource) {
    void this.listen();
  }

  publish(lockName: string): void {
    this.dataSource
      .execute('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, lockName])
      .catch((err: Error) => debug('NOTIFY %s failed: %s', lockName, err.message));
  }

  subscribe(listener: ChangeListener): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('notification');
      await client.query(`UNLISTEN ${NOTIFY_CHANNEL}`).catch(() => {});
      client.release();
    }
  }

  private async listen(): Promise<void> {
    const pool = (this.dataSource.connector as {pg?: PgPool} | undefined)?.pg;
    let client: PgClient;
    try {
      if (!pool) throw new Error('the datasource has no pg pool');
      client = await pool.connect();
    } catch (err) {
      return this.reconnect(err);
    }
    if (this.closed) return client.release();
    let failed = false;
    const fail = (err?: Error) => {
      if (failed) return;
      failed = true;
      client.removeAllListeners('notification');
      client.release(err ?? true); // destroys the connection
      if (this.client === client) this.client = undefined;
      this.reconnect(err);
    };
    client.on('error', fail);
    client.on('end', () => fail(new Error('connection ended')));
    client.on('notification', (msg: {channel: string; payload?: string}) => {
      if (msg.channel === NOTIFY_CHANNEL && msg.payload) this.events.emit('change', msg.payload);
    });
    try {
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    } catch (err) {
      return fail(err);
    }
    if (failed) return;
    this.client = client;
    this.reconnectDelay = 100;
    debug('listening on %s', NOTIFY_CHANNEL);
    // Notifications sent while we were not listening are lost: re-check everything.
    this.events.emit('change', undefined);
  }

  private reconnect(err?: unknown): void {
    if (this.closed) return;
    debug('LISTEN connection failed (%s), retrying in %d ms', (err as Error)?.message, this.reconnectDelay);
    this.reconnectTimer = setTimeout(() => void this.listen(), this.reconnectDelay);
    this.reconnectDelay = Math.min(MAX_RECONNECT_DELAY, this.reconnectDelay * 2);
  }
}

export function createNotifier(dataSource: juggler.DataSource): LockNotifier {
  return dataSource.connector?.name === 'postgresql'
    ? new PostgresNotifier(dataSource)
    : new LocalNotifier(dataSource);
}

@injectable({scope: BindingScope.SINGLETON})
export class LockNotifierProvider implements Provider<LockNotifier> {
  constructor(@inject(MasterJobExecutorBindings.DATASOURCE) private readonly dataSource: juggler.DataSource) {}

  value(): LockNotifier {
    return createNotifier(this.dataSource);
  }
}
