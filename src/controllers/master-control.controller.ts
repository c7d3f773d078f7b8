import {Constructor, inject, intercept, Interceptor} from '@loopback/core';
import {
  get,
  getModelSchemaRef,
  HttpErrors,
  oas,
  post,
  requestBody,
  Response,
  RestBindings,
  SchemaObject,
} from '@loopback/rest';
import {MasterJobExecutorBindings} from '../keys';
import {MasterControl, MAX_LOCK_NAME_LENGTH, MAX_REASON_LENGTH, TEXT_PATTERN} from '../models';
import {DatabaseUnavailableError} from '../store/database-unavailable';
import type {ControlRecord} from '../store/lock-store';
import {ControlResult, MasterControlService} from '../services/master-control.service';
import {EndpointGroup} from '../settings';
import {errorResponses, MASTER_CONTROLS_TAG} from './openapi';

export const DEFAULT_CONTROLLER_PATH = '/api/MasterControls';

/** The authenticated user, when the host app has @loopback/authentication. */
const CURRENT_USER = 'security.user';

/** Which group of endpoints each method is in, for controllerAuthentication. */
export const ENDPOINT_GROUP_OF: Readonly<Record<string, EndpointGroup>> = {
  disable: 'control',
  enable: 'control',
  list: 'read',
  status: 'read',
  health: 'health',
};

const lockName: SchemaObject = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_LOCK_NAME_LENGTH,
  pattern: TEXT_PATTERN,
  description:
    'The lockName the job was started with, exactly (case and spaces count); ' +
    'no control characters',
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
      pattern: TEXT_PATTERN,
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
  required: ['lockName', 'enabled', 'changed', 'known', 'message'],
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
    known: {
      type: 'boolean',
      description:
        'false when no replica has ever started this lock: the control is kept, but check the spelling',
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

/** Both content types (form, as curl sends it, and JSON), with the same schema and example. */
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

function ok(description: string, schema: SchemaObject, errors: number[], example?: object) {
  return {
    responses: {
      '200': {description, content: {'application/json': {schema, ...(example && {example})}}},
      ...errorResponses(errors, errors.includes(422)),
    },
  };
}

const disabledExample = {
  lockName: 'JOB-SCHEDULER',
  enabled: false,
  reason: 'testing',
  updatedAt: '2026-12-02T10:00:00.000Z',
  changed: true,
  known: true,
  message:
    'JOB-SCHEDULER disabled: its master stops within one heartbeat interval, and no replica starts it until it is enabled',
};

const enabledExample = {
  lockName: 'JOB-SCHEDULER',
  enabled: true,
  reason: '',
  updatedAt: '2026-12-02T10:05:00.000Z',
  changed: true,
  known: true,
  message: 'JOB-SCHEDULER enabled: a replica will start it within one check interval',
};

/**
 * A database that does not answer in time is a 503 with Retry-After, named
 * DatabaseUnavailable: LoopBack's own error writer would hide both. Exported
 * for an app's own endpoints (`@intercept(answerDatabaseUnavailable)`), e.g.
 * one that submits to a queue.
 */
export const answerDatabaseUnavailable: Interceptor = async (invocation, next) => {
  try {
    return await next();
  } catch (err) {
    if (!(err instanceof DatabaseUnavailableError)) throw err;
    const response = await invocation.get(RestBindings.Http.RESPONSE);
    response.status(err.statusCode).setHeader('Retry-After', String(err.retryAfter));
    return {error: {statusCode: err.statusCode, name: err.name, message: err.message}};
  }
};

export interface ControllerOptions {
  /** Path prefix, default `/api/MasterControls`. */
  basePath?: string;
}

/** The controller class, and how the component protects it once configured. */
export interface MasterControlControllerClass extends Constructor<unknown> {
  /** Strategies required per group of endpoints; a group left out is open. */
  readonly protection: Partial<Record<EndpointGroup, string[]>>;
  /**
   * Applies `@authenticate(...)` per group (the health endpoint skips the
   * app's default metadata unless its group is listed). Once per class.
   */
  protect(groups: Partial<Record<EndpointGroup, string[]>>): void;
}

/** Builds the controller for a path prefix (routes are fixed at decoration time). */
export function defineMasterControlController(
  options: ControllerOptions = {},
): MasterControlControllerClass {
  const base = (options.basePath ?? DEFAULT_CONTROLLER_PATH).replace(/\/+$/, '');
  if (!/^\/[\w\-./]*$/.test(base)) {
    throw new Error(
      `masterJobExecutor controllerPath must be a path like /api/MasterControls, got "${base}"`,
    );
  }
  let protection: Partial<Record<EndpointGroup, string[]>> = {};
  let protectedOnce = false;

  /**
   * Fails closed: an endpoint that requires authentication answers 401 unless
   * a user was authenticated, even if the app's sequence never ran the
   * authentication step.
   */
  const requireUser: Interceptor = async (invocation, next) => {
    const strategies = protection[ENDPOINT_GROUP_OF[invocation.methodName]];
    if (strategies && !(await invocation.get(CURRENT_USER, {optional: true}))) {
      throw new HttpErrors.Unauthorized(
        `This endpoint requires authentication (${strategies.join(', ')}) and the request ` +
          'was not authenticated',
      );
    }
    return next();
  };

  @oas.tags(MASTER_CONTROLS_TAG)
  @intercept(requireUser, answerDatabaseUnavailable)
  class MasterControlController {
    static get protection() {
      return protection;
    }

    static protect(groups: Partial<Record<EndpointGroup, string[]>>): void {
      if (protectedOnce) return;
      protectedOnce = true;
      protection = groups;
      const authentication = optionalAuthentication();
      if (!authentication) return;
      for (const [method, group] of Object.entries(ENDPOINT_GROUP_OF)) {
        const strategies = groups[group];
        const decorate = strategies
          ? authentication.authenticate(...strategies)
          : group === 'health'
            ? authentication.authenticate.skip() // a liveness probe, whatever the app's default
            : undefined;
        const target = MasterControlController.prototype;
        decorate?.(target, method, Object.getOwnPropertyDescriptor(target, method)!);
      }
    }

    constructor(
      @inject(MasterJobExecutorBindings.CONTROL_SERVICE)
      private readonly service: MasterControlService,
      @inject(CURRENT_USER, {optional: true})
      private readonly user?: {name?: string; id?: string},
    ) {}

    @post(`${base}/disable`, {
      summary: 'Disable a master job on every replica',
      description:
        'Stops the job everywhere: its master calls stop() within one heartbeatInterval, and no ' +
        'replica starts it again until you enable it. You may disable a lock before any replica ' +
        'has started it (the reply then says known: false: check the spelling). Repeating a ' +
        'disable changes nothing and says so.',
      ...ok('The control after the call', controlResult, [400, 415, 422, 503], disabledExample),
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
        'Lets the replicas run the job again: one of them starts it within one ' +
        'checkMasterInterval (at once on PostgreSQL). Repeating an enable changes nothing and ' +
        'says so.',
      ...ok('The control after the call', controlResult, [400, 415, 422, 503], enabledExample),
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
      summary: 'The controls: which jobs are disabled, why and by whom',
      ...ok('Every control row', {type: 'array', items: getModelSchemaRef(MasterControl)}, [503]),
    })
    list(): Promise<ControlRecord[]> {
      return this.service.list();
    }

    @get(`${base}/status`, {
      summary: 'Every known job: enabled or not, its master, fencing token, heartbeat age',
      ...ok(
        'Status of the cluster as stored, and of this replica',
        {
          type: 'object',
          properties: {
            instanceId: {type: 'string', description: 'This replica'},
            locks: {type: 'array', items: lockStatus},
            groups: {
              type: 'array',
              items: {type: 'object'},
              description:
                'Balanced groups as stored: resources, unowned, and each member with how many it owns',
            },
            local: {
              type: 'array',
              items: {type: 'object'},
              description: "This replica's masters",
            },
            localGroups: {
              type: 'array',
              items: {type: 'object'},
              description: "This replica's groups: what it owns, the members it sees, quorum",
            },
            queues: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  queueName: {type: 'string'},
                  isMaster: {type: 'boolean', description: 'Whether this replica runs its tasks'},
                  pending: {type: 'number'},
                  running: {type: 'number'},
                  done: {type: 'number'},
                  failed: {type: 'number'},
                },
              },
              description: "The queues started on this replica, with their tasks' states as stored",
            },
            cron: {
              type: 'array',
              items: {type: 'object'},
              description:
                'The cron schedules started on this replica, each with its last runs as stored: scheduledAt, startedAt, finishedAt, instanceId, fencingToken, outcome',
            },
          },
        },
        [503],
      ),
    })
    status() {
      return this.service.status();
    }

    @get(`${base}/health`, {
      summary: "This replica's health as a master (for liveness probes)",
      description:
        '503 when this replica holds a lock past its renewal deadline: it should have stopped, ' +
        'so its event loop is stalled. Never reads the database. Open even when the other ' +
        'endpoints are protected, unless controllerAuthentication.health says otherwise.',
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

  return MasterControlController;
}

interface Authentication {
  authenticate: ((...strategies: string[]) => MethodDecorator) & {skip(): MethodDecorator};
}

/** @loopback/authentication if the app has it; the component does not depend on it. */
export function optionalAuthentication(): Authentication | undefined {
  try {
    return require('@loopback/authentication') as Authentication;
  } catch {
    return undefined;
  }
}
