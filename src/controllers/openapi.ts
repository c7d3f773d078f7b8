// What the controller adds to the app's OpenAPI document: its tag, and the
// error answers of its operations, with examples for API Explorer.

import {mergeOpenAPISpec, OASEnhancer, OpenApiSpec, ResponsesObject} from '@loopback/rest';

export const MASTER_CONTROLS_TAG = 'MasterControls';

const TAG_DESCRIPTION =
  'Operate the master jobs of this cluster: disable a job on every replica (its master stops ' +
  'it) and enable it again, see which jobs are disabled and who runs each one. Changes go ' +
  'through the shared database, so any replica can take them.';

const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      required: ['statusCode', 'message'],
      properties: {
        statusCode: {type: 'integer'},
        name: {type: 'string'},
        message: {type: 'string'},
        code: {type: 'string'},
        details: {
          type: 'array',
          description: 'For 422: one entry per invalid field; `path` names it',
          items: {type: 'object'},
        },
      },
    },
  },
};

const ERRORS: Record<number, {description: string; error: object; headers?: object}> = {
  400: {
    description: 'Malformed body (not parseable as its content type)',
    error: {
      statusCode: 400,
      name: 'SyntaxError',
      message: "Expected ',' or '}' after property value in JSON at position 25",
    },
  },
  401: {
    description: 'Not authenticated (the endpoint is protected by controllerAuthentication)',
    error: {statusCode: 401, name: 'UnauthorizedError', message: 'Authorization header not found'},
  },
  415: {
    description: 'Content type other than application/x-www-form-urlencoded or application/json',
    error: {
      statusCode: 415,
      name: 'UnsupportedMediaTypeError',
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message:
        'Content-type text/plain does not match [application/x-www-form-urlencoded,application/json].',
    },
  },
  422: {
    description:
      'Invalid field: missing, empty, too long, a control character, a wrong type, or unknown; ' +
      '`details[].path` names it',
    error: {
      statusCode: 422,
      name: 'UnprocessableEntityError',
      message: 'The request body is invalid. See error object `details` property for more info.',
      code: 'VALIDATION_FAILED',
      details: [
        {path: '/lockName', code: 'maxLength', message: 'must NOT have more than 255 characters'},
      ],
    },
  },
  503: {
    description:
      'The database did not answer within controlTimeout (default 5 s) or refused: try again ' +
      'after Retry-After seconds. For a disable or enable, the message says whether it may ' +
      'have been applied.',
    error: {
      statusCode: 503,
      name: 'DatabaseUnavailable',
      message:
        'Database unavailable: disable JOB-SCHEDULER failed on datasource "db" (postgresql): no ' +
        'answer in 5000 ms. The change may or may not have been applied (outcome unknown): ' +
        'repeat the call once the database answers (it is idempotent), or read the status.',
    },
    headers: {
      'Retry-After': {
        description: 'Seconds to wait before trying again',
        schema: {type: 'integer'},
      },
    },
  },
};

/** A read's 503 says what failed, without the outcome of a write. */
const READ_UNAVAILABLE = {
  statusCode: 503,
  name: 'DatabaseUnavailable',
  message:
    'Database unavailable: reading the status failed on datasource "db" (postgresql): no answer in 5000 ms.',
};

/** The documented error answers for these status codes (of a read: `writes` false). */
export function errorResponses(codes: number[], writes = true): ResponsesObject {
  const responses: ResponsesObject = {};
  for (const code of codes) {
    const {description, headers} = ERRORS[code];
    const error = code === 503 && !writes ? READ_UNAVAILABLE : ERRORS[code].error;
    // Copies: a spec that shares objects reads as YAML anchors.
    responses[String(code)] = JSON.parse(
      JSON.stringify({
        description,
        ...(headers ? {headers} : {}),
        content: {'application/json': {schema: errorSchema, example: {error}}},
      }),
    );
  }
  return responses;
}

/**
 * Describes the tag, and documents 401 on the operations that
 * controllerAuthentication protects (known once the app is configured).
 * Bound with `asSpecEnhancer` by the component.
 */
export class MasterControlsSpecEnhancer implements OASEnhancer {
  name = 'masterJobExecutor.masterControls';

  constructor(private readonly isProtected: (operationName: string) => boolean) {}

  modifySpec(spec: OpenApiSpec): OpenApiSpec {
    const tags = spec.tags?.some(t => t.name === MASTER_CONTROLS_TAG)
      ? []
      : [{name: MASTER_CONTROLS_TAG, description: TAG_DESCRIPTION}];
    const merged = mergeOpenAPISpec(spec, {tags});
    for (const item of Object.values(merged.paths ?? {})) {
      for (const operation of Object.values(item ?? {})) {
        const op = operation as {tags?: string[]; responses?: ResponsesObject} & Record<
          string,
          unknown
        >;
        const name = op?.['x-operation-name'] as string | undefined;
        if (!op?.tags?.includes(MASTER_CONTROLS_TAG) || !name || !this.isProtected(name)) continue;
        op.responses = {...op.responses, ...errorResponses([401])};
      }
    }
    return merged;
  }
}
