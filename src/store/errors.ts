// What a database error means, whatever the connector: a duplicate key, a
// deadlock victim, a value refused for one row, a missing table, a server
// that takes no writes.

interface ErrorWithCode {
  code?: string;
  statusCode?: number | string;
  message?: string;
}

/**
 * InnoDB may pick two concurrent single-row UPDATEs, or INSERTs of one key, as
 * deadlock victims; the victim's statement was rolled back, so running it
 * again is safe.
 */
export async function retryDeadlock<T>(statement: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await statement();
    } catch (err) {
      const code = (err as ErrorWithCode)?.code;
      if (i >= attempts || (code !== 'ER_LOCK_DEADLOCK' && code !== '40P01')) throw err;
    }
  }
}

/** memory: 409 "Duplicate entry"; PostgreSQL 23505; MySQL ER_DUP_ENTRY. */
export function isDuplicate(err: unknown): boolean {
  const e = (err ?? {}) as ErrorWithCode;
  return (
    e.code === '23505' ||
    e.code === 'ER_DUP_ENTRY' ||
    String(e.statusCode) === '409' ||
    /duplicate/i.test(e.message ?? '')
  );
}

/**
 * The database refused a statement for a value of some row, not for being
 * unreachable: PostgreSQL's data exceptions (class 22: a NUL byte, a value
 * too long), MySQL's data errors.
 */
export function isRowError(err: unknown): boolean {
  const code = String((err as ErrorWithCode)?.code ?? '');
  return /^22[0-9A-Z]{3}$/.test(code) || MYSQL_ROW_ERRORS.has(code);
}

const MYSQL_ROW_ERRORS = new Set([
  'ER_DATA_TOO_LONG',
  'ER_TRUNCATED_WRONG_VALUE',
  'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD',
  'ER_WARN_DATA_OUT_OF_RANGE',
  'ER_INVALID_CHARACTER_STRING',
  'ER_CANNOT_CONVERT_STRING',
  'WARN_DATA_TRUNCATED',
]);

/**
 * The server takes no writes: PostgreSQL's read_only_sql_transaction (a hot
 * standby, default_transaction_read_only), MySQL's --read-only and read-only
 * transactions.
 */
export function isReadOnly(err: unknown): boolean {
  const code = String((err as ErrorWithCode)?.code ?? '');
  return (
    code === '25006' ||
    code === 'ER_OPTION_PREVENTS_STATEMENT' ||
    code === 'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION'
  );
}

/** What a replica should do about a read-only server. */
export const READ_ONLY_ADVICE =
  'the database is read-only (a hot standby, or default_transaction_read_only / read_only): ' +
  'point the datasource at the primary';

/** Turns "no such table" and "read-only" into errors that say what to do. */
export function explain(err: unknown): unknown {
  const e = (err ?? {}) as ErrorWithCode;
  if (isReadOnly(err)) {
    return Object.assign(new Error(`${READ_ONLY_ADVICE}. Database said: ${e.message}`), {
      code: e.code,
    });
  }
  if (e.code === '42P01' || e.code === 'ER_NO_SUCH_TABLE') {
    return new Error(
      `The tables of loopback4-master-job-executor (MasterLock, MasterControl) are missing: ` +
        `create them with app.migrateSchema() (see docs/operations.md, "Tables"). ` +
        `Database said: ${e.message}`,
    );
  }
  return err;
}
