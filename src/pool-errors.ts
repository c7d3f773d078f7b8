import {juggler} from '@loopback/repository';
import debugFactory from 'debug';
import {EventEmitter} from 'events';

const debug = debugFactory('loopback:master-job-executor:pool');

/**
 * loopback-connector-postgresql's pg Pool emits 'error' when an idle client's
 * connection dies (server restart, pg_terminate_backend); with no listener
 * that is an uncaught exception that kills the process. Its own `onError`
 * setting cannot be used: it crashes when the server is down at start. So
 * listen on the pool directly. Queries in flight still get their own errors.
 */
export function guardPoolErrors(dataSource: juggler.DataSource): void {
  const pool = (dataSource.connector as {pg?: unknown} | undefined)?.pg;
  if (pool instanceof EventEmitter && pool.listenerCount('error') === 0) {
    pool.on('error', (err: Error) => debug('idle database connection failed: %s', err.message));
  }
}
