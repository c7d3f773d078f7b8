// What a REST call (or a MasterControlService call from code) answers when the
// database does not: 503 DatabaseUnavailable, within controlTimeout (on the
// clock's timer).

import {juggler} from '@loopback/repository';
import {HttpErrors} from '@loopback/rest';
import {Clock, TimerHandle} from '../types';
import {ValueDialect} from './dialect';
import {isReadOnly, isRowError, READ_ONLY_ADVICE} from './errors';

/** The error name the REST edge answers with; `statusCode` 503. */
export const DATABASE_UNAVAILABLE = 'DatabaseUnavailable';

export class DatabaseUnavailableError extends Error {
  readonly statusCode = 503;
  constructor(
    message: string,
    /** Seconds, for the Retry-After header. */
    readonly retryAfter: number,
    readonly cause?: unknown,
  ) {
    super(message);
    this.name = DATABASE_UNAVAILABLE;
  }
}

/** Errors that mean the statement was never sent: nothing was written. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'DATASOURCE_STOPPED']);

export interface Attempt {
  /** e.g. "disable JOB-SCHEDULER" */
  what: string;
  /** Whether the call writes: then a failure may leave its outcome unknown. */
  writes: boolean;
  /** What to do when the outcome of the write is unknown (default: repeat it, it is idempotent). */
  ifUnknown?: string;
}

/** Runs a caller's database call under withinControlTimeout's answer, its other arguments fixed. */
export type Guard = <T>(attempt: Attempt, work: () => Promise<T>) => Promise<T>;

/**
 * Runs `work`, answering DatabaseUnavailableError if it fails or takes longer
 * than `timeoutMs`. A call cut short still runs on: its write may land later.
 */
export async function withinControlTimeout<T>(
  clock: Clock,
  dataSource: juggler.DataSource,
  dialect: ValueDialect,
  attempt: Attempt,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  let timer: TimerHandle;
  const timedOut = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(
      () => reject(Object.assign(new Error(`no answer in ${timeoutMs} ms`), {code: 'TIMEOUT'})),
      timeoutMs,
    );
  });
  const running = work();
  running.catch(() => {}); // answered by the race; a late failure is nobody's
  try {
    return await Promise.race([running, timedOut]);
  } catch (err) {
    const status = Number((err as {statusCode?: unknown})?.statusCode);
    if (status >= 400 && status < 500 && err instanceof HttpErrors.HttpError) throw err;
    throw isRowError(err)
      ? refused(dialect.refusedValueHint(dataSource), attempt, err)
      : unavailable(dataSource, attempt, timeoutMs, err);
  } finally {
    clock.clearTimeout(timer);
  }
}

/**
 * The database refused a value the API accepted: a 4xx, not an outage. On
 * MySQL, most likely a connection charset without 4-byte characters.
 */
function refused(hint: string, attempt: Attempt, err: unknown) {
  const cause = String((err as Error)?.message ?? err);
  return new HttpErrors.UnprocessableEntity(
    `The database refused a value of ${attempt.what}: ${cause.replace(/\.+$/, '')}.${hint}`,
  );
}

function unavailable(
  dataSource: juggler.DataSource,
  attempt: Attempt,
  timeoutMs: number,
  err: unknown,
): DatabaseUnavailableError {
  const e = (err ?? {}) as {code?: string; message?: string};
  const connector = dataSource.connector?.name ?? 'unknown connector';
  let cause = (e.message || String(err)).replace(/\.+$/, '');
  if (isReadOnly(err)) cause = `${READ_ONLY_ADVICE} (${cause})`;
  let outcome = '';
  if (attempt.writes) {
    // A read-only server refused the write: nothing of it was applied.
    outcome =
      NOT_SENT.has(String(e.code)) || isReadOnly(err)
        ? ' Nothing was changed.'
        : ` The change may or may not have been applied (outcome unknown): ${
            attempt.ifUnknown ??
            'repeat the call once the database answers (it is idempotent), or read the status'
          }.`;
  }
  return new DatabaseUnavailableError(
    `Database unavailable: ${attempt.what} failed on datasource "${dataSource.name}" ` +
      `(${connector}): ${cause}.${outcome}`,
    Math.max(1, Math.ceil(timeoutMs / 1000)),
    err,
  );
}
