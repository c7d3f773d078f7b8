// PostgreSQL's transport for LockNotifier: LISTEN on a connection of its own
// that reconnects by itself, and NOTIFY through the pool. It declares its
// channel (notifyChannel), so that the store sends the NOTIFY of a release,
// a renewal or a control flip in the write's own statement
// (postgres-lock-store.ts): the others are woken as it commits.
// A LISTEN is proved by a NOTIFY of its own before it counts: behind a pooler
// in transaction mode (PgBouncer) the session that listens is soon another
// client's, and nothing arrives. Then, unless `listenUrl` names a direct
// connection, the replicas poll, which is said once. Reconnections and
// proofs wait on the executor's clock.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {backoff, systemClock} from '../../clock';
import {Clock, TimerHandle} from '../../types';
import {encodePayload, parsePayload, probePayload} from '../../wake/codec';
import {ANYTHING, WakeUp} from '../../wake/messages';
import {ChangeListener, LockNotifier} from '../../wake/notifier';
import type {NotifierOptions} from '../dialect';

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
/** How long a LISTEN's own NOTIFY may take to arrive. */
const PROOF_WAIT = 5000;
/** After a LISTEN that heard nothing, the next try (quietly, in case the first was unlucky). */
const UNHEARD_RETRY = 60_000;

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
  private warned = false;
  private readonly clock: Clock;
  /** The proof under way: its payload, and what to call when it arrives. */
  private proof: {payload: string; heard: () => void} | undefined;

  constructor(
    private readonly dataSource: juggler.DataSource,
    private readonly options: NotifierOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
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
    const {listenUrl} = this.options;
    const client = new pool.Client(listenUrl ? {connectionString: listenUrl} : pool.options);
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
      const proof = this.proof;
      if (proof && msg.payload === proof.payload) return proof.heard();
      parsePayload(msg.payload).forEach(message => this.events.emit('change', message));
    });
    let heard: boolean;
    try {
      await client.connect();
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
      heard = await this.prove();
    } catch (err) {
      return fail(err);
    }
    if (failed) return;
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    if (!heard) {
      failed = true;
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
      this.unheard();
      return;
    }
    this.client = client;
    this.reconnects = 0;
    debug('listening on %s', NOTIFY_CHANNEL);
    // Notifications sent while we were not listening are lost: re-check everything.
    this.events.emit('change', ANYTHING);
  }

  /** Sends a NOTIFY of its own through the pool; resolves whether it arrived in time. */
  private async prove(): Promise<boolean> {
    const payload = probePayload();
    let timer: TimerHandle | undefined;
    const arrived = new Promise<boolean>(resolve => {
      this.proof = {payload, heard: () => resolve(true)};
      timer = this.clock.setTimeout(() => resolve(false), PROOF_WAIT);
    });
    try {
      await this.dataSource.execute('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, payload]);
      return await arrived;
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
      this.proof = undefined;
    }
  }

  /** A LISTEN that hears nothing: say so once, poll, and try again later. */
  private unheard(): void {
    const where = this.options.listenUrl ? 'listenUrl' : `datasource "${this.dataSource.name}"`;
    debug('LISTEN through %s heard nothing; polling, next try in %d ms', where, UNHEARD_RETRY);
    if (!this.warned) {
      this.warned = true;
      const message =
        `wake-ups do not arrive through ${where} (LISTEN heard not even its own NOTIFY: a pooler ` +
        'in transaction mode, such as PgBouncer?). Replicas poll every checkMasterInterval ' +
        'instead; set listenUrl (MASTER_JOB_LISTEN_URL) to a direct connection to PostgreSQL ' +
        'for wake-ups.';
      (this.options.warn ?? (m => process.emitWarning(m, 'MasterJobExecutorWarning')))(message);
    }
    if (this.closed) return;
    this.reconnectTimer = this.clock.setTimeout(() => {
      void this.listen();
    }, UNHEARD_RETRY);
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
