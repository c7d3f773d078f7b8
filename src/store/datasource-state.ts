// Whether the app has stopped a datasource: calls made after that fail at
// once instead of waiting for a reconnection that never comes.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';

const debug = debugFactory('loopback:master-job-executor:datasource');

const everConnected = new WeakSet<juggler.DataSource>();

/** Starts following the datasource's connection (once per datasource). */
export function trackConnection(dataSource: juggler.DataSource, onConnected: () => void): void {
  if (dataSource.connected) everConnected.add(dataSource);
  dataSource.on('connected', () => {
    everConnected.add(dataSource);
    onConnected();
  });
}

/** The error of a call made after the app stopped (disconnected) the datasource. */
export class DataSourceStoppedError extends Error {
  readonly code = 'DATASOURCE_STOPPED';
  constructor(dataSource: juggler.DataSource) {
    super(`datasource ${dataSource.name} is disconnected (the app stopped it)`);
  }
}

/**
 * Throws once the datasource was connected and then disconnected (juggler
 * sets `connected` false only in `disconnect()`). Juggler would queue the
 * call and try to reconnect a stopped datasource, which on PostgreSQL never
 * finishes: a release on `app.stop()` would wait out its timeout instead of
 * failing at once.
 */
export function assertOpen(dataSource: juggler.DataSource): void {
  if (everConnected.has(dataSource) && !dataSource.connected) {
    throw new DataSourceStoppedError(dataSource);
  }
}

/** For `app.start()` after `app.stop()`: the datasource was disconnected, connect it again. */
export async function reopen(dataSource: juggler.DataSource): Promise<void> {
  if (!everConnected.has(dataSource) || dataSource.connected) return;
  debug('reconnecting datasource %s, disconnected by a previous stop', dataSource.name);
  await dataSource.connect();
}
