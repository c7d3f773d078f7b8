// The datasource configuration for a DATABASE_URL (postgres:// or mysql://),
// with the bounds a cluster needs: every call times out, 4-byte characters
// survive on MySQL. Used by `master-job-run` and the example app.

/* eslint-disable @typescript-eslint/naming-convention */
// (the pg settings are snake_case)

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
        max: 10,
        // Bound every call: a frozen server must not hang a query forever.
        connectionTimeoutMillis: 5000,
        query_timeout: 10000,
        ...(options.instanceId && {application_name: options.instanceId}),
      };
    case 'mysql:':
    case 'mariadb:':
      url.protocol = 'mysql:';
      return {
        name,
        connector: 'mysql',
        url: url.toString(),
        connectionLimit: 10,
        connectTimeout: 5000,
        // The connector's default (utf8, 3 bytes) cannot carry emoji and other 4-byte characters.
        collation: 'utf8mb4_unicode_ci',
      };
    default:
      throw new Error(
        `DATABASE_URL must start with postgres:// or mysql://, got "${url.protocol}//..."`,
      );
  }
}
