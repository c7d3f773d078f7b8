// What the component's repositories add to the datasource they use, once per
// datasource instance, from their constructors (so before any call): what its
// dialect needs (pool error listeners, exact keys), again after a reconnect,
// and a fast failure once the app has stopped the datasource.

import {juggler} from '@loopback/repository';
import {dialectOf} from './dialects';
import {trackConnection} from './datasource-state';

const guarded = new WeakSet<juggler.DataSource>();

export function guardDataSource(dataSource: juggler.DataSource): void {
  if (guarded.has(dataSource)) return;
  guarded.add(dataSource);
  const dialect = dialectOf(dataSource);
  dialect.prepare(dataSource);
  // A reconnect may bring a new pool.
  trackConnection(dataSource, () => dialect.prepare(dataSource));
}
