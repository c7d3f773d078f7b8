// PostgreSQL's transport for LockNotifier: LISTEN on a connection of its own
// that reconnects by itself, and NOTIFY through the pool. It declares its
// channel (notifyChannel), so that the store sends the NOTIFY of a release,
// a renewal or a control flip in the write's own statement
// (postgres-lock-store.ts): the others are woken as it commits.
// Reconnections back off on the executor's clock.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {backoff, systemClock} from '../../clock';
import {Clock, TimerHandle} from '../../types';
import {encodePayload, parsePayload} from '../../wake/codec';
import {ANYTHING, WakeUp} from '../../wake/messages';
import {ChangeListener, LockNotifier} from '../../wake/notifier';

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

/** Reconnections: 100 ms doubling to 5 s, from 100 ms again once listening. */
const RECONNECT = {base: 100, max: 5000};

/**
 * LISTEN on a connection of its own (not one of the pool's, which it would
 * hold forever), made with the connector's settings.
 */
export class PostgresNotifier implements LockNotifier {
  readonly notifyChannel = NOTIFY_CHANNEL;
  private readonly events = new EventEmitter().setMaxListeners(0);
  private client: PgClient | undefined;
  private reconnects = 0;
  private reconnectTimer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly dataSource: juggler.DataSource,
    private readonly clock: Clock = systemClock,
  ) {
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

  /** Whether notifications arrive now (false while connecting or reconnecting). */
  get listening(): boolean {
    return this.client !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer !== undefined) this.clock.clearTimeout(this.reconnectTimer);
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
    this.reconnects = 0;
    debug('listening on %s', NOTIFY_CHANNEL);
    // Notifications sent while we were not listening are lost: re-check everything.
    this.events.emit('change', ANYTHING);
  }

  private reconnect(err?: unknown): void {
    if (this.closed) return;
    const delay = backoff(++this.reconnects, RECONNECT);
    debug('LISTEN connection failed (%s), retrying in %d ms', (err as Error)?.message, delay);
    this.reconnectTimer = this.clock.setTimeout(() => {
      void this.listen();
    }, delay);
  }
}
