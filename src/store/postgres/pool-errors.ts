// loopback-connector-postgresql's pool: errors of idle connections that would
// otherwise be uncaught exceptions.

import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';

const debug = debugFactory('loopback:master-job-executor:pool');

const guarded = new WeakSet<object>();

/**
 * loopback-connector-postgresql's pg clients emit 'error' when their
 * connection dies (server restart, pg_terminate_backend): an idle client
 * through the pool, a checked-out one on itself, even while its query also
 * gets the error. With no listener that is an uncaught exception that kills
 * the process. The connector's `onError` setting cannot be used: it crashes
 * when the server is down at start. So listen on the pool and on every client
 * it creates; queries in flight still get their own errors.
 */
export function guardPoolErrors(dataSource: juggler.DataSource): void {
  const pool = (dataSource.connector as {pg?: unknown} | undefined)?.pg;
  if (!(pool instanceof EventEmitter) || guarded.has(pool)) return;
  guarded.add(pool);
  const log = (err: Error) => debug('database connection failed: %s', err.message);
  pool.on('error', log);
  pool.on('connect', (client: EventEmitter) => client.on('error', log));
}
