// PostgreSQL's SQL building: an UPDATE that also reads or notifies in the same
// statement, which the repository API cannot express. Each saves a round
// trip on a path that is timed (handoff, disable, enable). The SQL of the
// UPDATE itself is built by the connector, so names, types and conditions are
// the ones a repository's updateAll would use.

import {juggler, Where} from '@loopback/repository';

/** What we use of loopback-connector-postgresql's SQL building (loopback-connector). */
interface SqlBuilder {
  buildUpdate(model: string, where: object, data: object): {sql: string; params: unknown[]};
  columnEscaped(model: string, property: string): string;
  tableEscaped(model: string): string;
}

export function sqlBuilder(dataSource: juggler.DataSource): SqlBuilder {
  return dataSource.connector as unknown as SqlBuilder;
}

/**
 * `UPDATE model SET data WHERE where RETURNING ...`, to use as a CTE named
 * `updated`. The `returning` properties come back under their property names;
 * the statement's parameters are `$1` to `$<params.length>`, so more can follow.
 */
export function updateReturning<T extends object>(
  dataSource: juggler.DataSource,
  model: string,
  where: Where<T>,
  data: Partial<T>,
  returning: (keyof T & string)[],
): {sql: string; params: unknown[]} {
  const connector = sqlBuilder(dataSource);
  const update = connector.buildUpdate(model, where, data);
  const columns = returning.map(p => `${connector.columnEscaped(model, p)} AS "${p}"`);
  return {sql: `${update.sql} RETURNING ${columns.join(', ')}`, params: update.params};
}
