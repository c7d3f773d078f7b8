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
