import {PropertyDefinition} from '@loopback/repository';

// What the columns hold, on every connector; the API accepts no more.

/** Characters of a lock name: VARCHAR(255) on PostgreSQL, 1020 bytes (255 of utf8mb4) on MySQL. */
export const MAX_LOCK_NAME_LENGTH = 255;
/** Characters of a disable's reason. */
export const MAX_REASON_LENGTH = 1000;
/** Characters kept of the user who changed a control. */
export const MAX_UPDATED_BY_LENGTH = 255;

/** C0 and C1 control characters and DEL: a name or reason must not contain them. */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

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
