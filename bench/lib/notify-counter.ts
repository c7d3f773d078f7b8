// The NOTIFYs of the replicas, as the harness hears them: a LISTEN of its own
// on the component's channel in the bench database (PostgreSQL only; other
// servers have none). What the renewal announcements and releases cost.

import {ServerAddress} from '../../cluster-kit';
import {NOTIFY_CHANNEL} from '../../src/store/postgres/postgres-notifier';

const pg = require('pg');

export class NotifyCounter {
  /** Notifications received so far. */
  count = 0;
  private client: {end(): Promise<void>} | undefined;

  async start(address: ServerAddress, database: string): Promise<void> {
    const {host, port, user, password} = address;
    const client = new pg.Client({host, port, user, password: password || undefined, database});
    client.on('error', () => {}); // a server restart: the count stops, the run goes on
    client.on('notification', () => this.count++);
    await client.connect();
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    this.client = client;
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => {});
  }
}
