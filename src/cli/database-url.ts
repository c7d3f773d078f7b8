// The datasource configuration for a DATABASE_URL (postgres:// or mysql://),
// or for an app's own datasource settings, with the bounds a cluster needs:
// every call times out, 4-byte characters survive on MySQL. Used by
// `master-job-run` and the example app.

/* eslint-disable @typescript-eslint/naming-convention */
// (the pg settings are snake_case)

/** The connectors a cluster lock can live on. */
export type SqlConnectorName = 'postgresql' | 'mysql';

/** The bounds of each connector: what a setting of the datasource's own does not say. */
function bounds(connector: SqlConnectorName, settings: Record<string, unknown> = {}) {
  return connector === 'postgresql'
    ? {
        max: 10,
        // Bound every call: a frozen server must not hang a query forever.
        connectionTimeoutMillis: 5000,
        query_timeout: 10000,
      }
    : {
        connectionLimit: 10,
        connectTimeout: 5000,
        // The connector's default (utf8, 3 bytes) cannot carry emoji and other 4-byte characters.
        // A charset of the datasource's own is kept (the connector prefers collation to it).
        ...(settings.charset === undefined && {collation: 'utf8mb4_unicode_ci'}),
      };
}

/** `options.instanceId` names the PostgreSQL sessions (application_name). */
export function dataSourceConfigFromUrl(
  databaseUrl: string,
  options: {instanceId?: string; name?: string} = {},
): Record<string, unknown> {
  const name = options.name ?? 'db';
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error(
      `DATABASE_URL must be a URL like postgres://user@host:5432/db, got "${databaseUrl}"`,
    );
  }
  switch (url.protocol) {
    case 'postgres:':
    case 'postgresql:':
      return {
        name,
        connector: 'postgresql',
        url: databaseUrl,
        ...bounds('postgresql'),
        ...(options.instanceId && {application_name: options.instanceId}),
      };
    case 'mysql:':
    case 'mariadb:':
      url.protocol = 'mysql:';
      return {name, connector: 'mysql', url: url.toString(), ...bounds('mysql')};
    default:
      throw new Error(
        `DATABASE_URL must start with postgres:// or mysql://, got "${url.protocol}//..."`,
      );
  }
}

/**
 * The SQL connector a datasource's settings name (`postgresql`, `mysql`, or
 * their packages' names), or undefined for any other.
 */
export function sqlConnectorOf(settings: Record<string, unknown>): SqlConnectorName | undefined {
  const connector = settings.connector;
  if (typeof connector !== 'string') return undefined;
  const name = connector.replace(/^loopback-connector-/, '');
  return name === 'postgresql' || name === 'mysql' ? name : undefined;
}

/**
 * The configuration for a datasource's own settings (such as the
 * `defaultConfig` that `lb4 datasource` writes: name, connector, url or
 * host/port/user/password/database): its settings, over the bounds its own
 * do not set. Throws when the connector is not PostgreSQL or MySQL.
 */
export function dataSourceConfigFromSettings(
  settings: Record<string, unknown>,
): Record<string, unknown> {
  const connector = sqlConnectorOf(settings);
  if (!connector) {
    throw new Error(
      `connector must be "postgresql" or "mysql", got ${JSON.stringify(settings.connector)}`,
    );
  }
  return {...bounds(connector, settings), ...settings, connector};
}
