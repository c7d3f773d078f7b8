// What the component adds to the datasource it uses, once per datasource
// instance, before any call of its own (from its binding of the datasource,
// and from its repositories' constructors, for a repository made without the
// component): what the dialect needs (pool error listeners, exact keys),
// again after a reconnect, and a fast failure once the app has stopped the
// datasource.

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
