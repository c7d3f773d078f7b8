import {Constructor, inject} from '@loopback/core';
import {
  get,
  getModelSchemaRef,
  post,
  requestBody,
  Response,
  RestBindings,
  SchemaObject,
} from '@loopback/rest';
import {ControlResult, MasterControlService} from '../master-control.service';
import {MasterControl, MAX_LOCK_NAME_LENGTH, MAX_REASON_LENGTH} from '../models';
import {MasterJobExecutorBindings} from '../keys';

export const DEFAULT_CONTROLLER_PATH = '/api/MasterControls';

/** The authenticated user, when the host app has @loopback/authentication. */
const CURRENT_USER = 'security.user';

const lockName: SchemaObject = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_LOCK_NAME_LENGTH,
  pattern: '\\S',
  description: 'The lockName given to startMaster()',
  example: 'JOB-SCHEDULER',
};

const disableBody: SchemaObject = {
  title: 'DisableRequest',
  type: 'object',
  required: ['lockName', 'reason'],
  additionalProperties: false,
  properties: {
    lockName,
    reason: {
      type: 'string',
      minLength: 1,
      maxLength: MAX_REASON_LENGTH,
      description: 'Why the job is disabled, kept with the control for the next operator',
      example: 'testing',
    },
  },
};

const enableBody: SchemaObject = {
  title: 'EnableRequest',
  type: 'object',
  required: ['lockName'],
  additionalProperties: false,
  properties: {lockName},
};

const controlResult: SchemaObject = {
  title: 'ControlResult',
  type: 'object',
  required: ['lockName', 'enabled', 'changed', 'message'],
  properties: {
    lockName: {type: 'string'},
    enabled: {type: 'boolean'},
    reason: {type: 'string'},
    updatedAt: {type: 'string', format: 'date-time'},
    updatedBy: {type: 'string'},
    changed: {
      type: 'boolean',
      description: 'false when the call repeated the current state',
    },
    message: {type: 'string'},
  },
};

const lockStatus: SchemaObject = {
  title: 'LockStatus',
  type: 'object',
  properties: {
    lockName: {type: 'string'},
    enabled: {type: 'boolean'},
    reason: {type: 'string'},
    holder: {
      type: 'string',
      nullable: true,
      description: 'instanceId of the master',
    },
    hostname: {type: 'string', nullable: true},
    fencingToken: {type: 'number', nullable: true},
    heartbeatAgeMs: {
      type: 'number',
      nullable: true,
      description: "Since the master's last renewal, by this replica's wall clock (informative)",
    },
    acquiredAt: {type: 'string', format: 'date-time', nullable: true},
  },
};

/** Both content types of SPEC section 6, with the same schema and example. */
function body(schema: SchemaObject, example: object, description: string) {
  // Separate copies: a spec that shares objects reads as YAML anchors.
  const content = () => JSON.parse(JSON.stringify({schema, example}));
  return requestBody({
    description,
    required: true,
    content: {
      'application/x-www-form-urlencoded': content(),
      'application/json': content(),
    },
  });
}

function ok(description: string, schema: SchemaObject) {
  return {
    responses: {
      '200': {description, content: {'application/json': {schema}}},
    },
  };
}

export interface ControllerOptions {
  /** Path prefix, default `/api/MasterControls`. */
  basePath?: string;
  /** Strategies for `@authenticate(...)`; needs @loopback/authentication. */
  authenticate?: string[];
}

/** Builds the controller for a path prefix (routes are fixed at decoration time). */
export function defineMasterControlController(
  options: ControllerOptions = {},
): Constructor<unknown> {
  const base = (options.basePath ?? DEFAULT_CONTROLLER_PATH).replace(/\/+$/, '');
  if (!/^\/[\w\-./]*$/.test(base)) {
    throw new Error(
      `masterJobExecutor controllerPath must be a path like /api/MasterControls, got "${base}"`,
    );
  }

  class MasterControlController {
    constructor(
      @inject(MasterJobExecutorBindings.CONTROL_SERVICE)
      private readonly service: MasterControlService,
      @inject(CURRENT_USER, {optional: true})
      private readonly user?: {name?: string; id?: string},
    ) {}

    @post(`${base}/disable`, {
      summary: 'Disable a master job on every replica',
      description:
        'Its master calls stop() within one heartbeatInterval and no replica starts it until enabled. ' +
        'Allowed before any replica started the lock. Repeating it changes nothing and says so.',
      ...ok('The control after the call', controlResult),
    })
    disable(
      @body(
        disableBody,
        {lockName: 'JOB-SCHEDULER', reason: 'testing'},
        'The lock to disable, and why',
      )
      request: {
        lockName: string;
        reason: string;
      },
    ): Promise<ControlResult> {
      return this.service.disable(request.lockName, request.reason, this.who());
    }

    @post(`${base}/enable`, {
      summary: 'Enable a disabled master job',
      description:
        'A replica starts it within one checkMasterInterval. Repeating it changes nothing and says so.',
      ...ok('The control after the call', controlResult),
    })
    enable(
      @body(enableBody, {lockName: 'JOB-SCHEDULER'}, 'The lock to enable')
      request: {
        lockName: string;
      },
    ): Promise<ControlResult> {
      return this.service.enable(request.lockName, this.who());
    }

    @get(base, {
      summary: 'The controls: which locks are disabled, why and by whom',
      ...ok('Every control row', {
        type: 'array',
        items: getModelSchemaRef(MasterControl),
      }),
    })
    list(): Promise<MasterControl[]> {
      return this.service.list();
    }

    @get(`${base}/status`, {
      summary: 'Every known lock: enabled, holder, fencing token, heartbeat age',
      ...ok('Status of the cluster as stored, and of this replica', {
        type: 'object',
        properties: {
          instanceId: {type: 'string', description: 'This replica'},
          locks: {type: 'array', items: lockStatus},
          local: {
            type: 'array',
            items: {type: 'object'},
            description: "This replica's masters",
          },
        },
      }),
    })
    status() {
      return this.service.status();
    }

    @get(`${base}/health`, {
      summary: "This replica's health as a master",
      description:
        '503 when this replica holds a lock past its renewal deadline (it should have stopped: ' +
        'its event loop is stalled). For liveness probes.',
      responses: {
        '200': {description: 'Healthy', content: {'application/json': {schema: {type: 'object'}}}},
        '503': {
          description: 'Unhealthy',
          content: {'application/json': {schema: {type: 'object'}}},
        },
      },
    })
    health(@inject(RestBindings.Http.RESPONSE) response: Response) {
      const health = this.service.health();
      if (!health.healthy) response.status(503);
      return health;
    }

    private who(): string | undefined {
      return this.user?.name ?? this.user?.id;
    }
  }

  if (options.authenticate?.length) {
    const {authenticate} = require('@loopback/authentication');
    authenticate(...options.authenticate)(MasterControlController);
  }
  return MasterControlController;
}
