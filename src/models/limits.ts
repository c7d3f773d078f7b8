import {PropertyDefinition} from '@loopback/repository';

// What the columns hold, on every connector; the API accepts no more.

/** Characters of a lock name: VARCHAR(255) on PostgreSQL, 1020 bytes (255 of utf8mb4) on MySQL. */
export const MAX_LOCK_NAME_LENGTH = 255;
/** Characters of a disable's reason. */
export const MAX_REASON_LENGTH = 1000;
/** Characters kept of the user who changed a control. */
export const MAX_UPDATED_BY_LENGTH = 255;

/**
 * What a name or reason must not contain: C0 and C1 control characters, DEL,
 * and unpaired surrogates (no database could store them as given).
 */
export const FORBIDDEN_CHARACTERS =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * What is wrong with a lock name or reason, as "<field> must ...", or
 * undefined if nothing: for startMaster() and calls of the service from code.
 */
export function textProblem(field: string, value: unknown, maxLength: number): string | undefined {
  if (typeof value !== 'string' || value.trim() === '')
    return `${field} must be a non-empty string`;
  if ([...value].length > maxLength) return `${field} must be at most ${maxLength} characters`;
  if (FORBIDDEN_CHARACTERS.test(value)) {
    return `${field} must not contain control characters (NUL, newline, ...) or unpaired surrogates`;
  }
  return undefined;
}

/** The same, as a JSON Schema pattern (control characters only; the service checks surrogates). */
export const TEXT_PATTERN =
  '^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$';

/** The id column of both models: compared exactly (case, accents, trailing spaces). */
export const LOCK_NAME_COLUMN: PropertyDefinition = {
  type: 'string',
  id: true,
  generated: false,
  required: true,
  // MySQL's utf8mb4_bin still ignores trailing spaces (PAD SPACE): bytes do not.
  mysql: {dataType: 'varbinary', dataLength: 4 * MAX_LOCK_NAME_LENGTH},
  postgresql: {dataType: 'varchar', dataLength: MAX_LOCK_NAME_LENGTH},
};

/** A group's name on its rows: compared exactly, as lock names. */
export const GROUP_NAME_COLUMN: PropertyDefinition = {
  type: 'string',
  required: false,
  index: true,
  mysql: {dataType: 'varbinary', dataLength: 4 * MAX_LOCK_NAME_LENGTH},
  postgresql: {dataType: 'varchar', dataLength: MAX_LOCK_NAME_LENGTH},
};

/** Characters of 4 bytes in UTF-8 (emoji): not every connection carries them. */
export const ASTRAL_CHARACTER = /[\u{10000}-\u{10FFFF}]/u;
