// DEMO_QUEUE=<name>: a persisted queue and `POST /demo/tasks` to submit to it.
// Each execution prints a `task` line (docs/example-app.md) and takes
// DEMO_TASK_MS; the id is the task's key, so a repeated POST is one task.

import {BindingKey, inject, intercept} from '@loopback/core';
import {post, requestBody, Response, RestBindings} from '@loopback/rest';
import {TaskHandler, TaskQueue} from '../src';
import {answerDatabaseUnavailable} from '../src/extension';
import {printLine} from './demo-job';

export const DEMO_QUEUE = BindingKey.create<TaskQueue>('example.demoQueue');

/**
 * Runs a task: says so, then takes `taskMs`. A task under way when the
 * mastership ends (SIGTERM) is finished, not cut short: stop() waits for it
 * (up to stopTimeout), so a handoff runs no task twice.
 */
export function demoTaskHandler(taskMs: number): TaskHandler {
  return async (payload, ctx) => {
    printLine({
      event: 'task',
      queue: ctx.queueName,
      taskId: ctx.taskId,
      id: (payload as {id?: unknown})?.id,
      attempt: ctx.attempt,
      instanceId: ctx.instanceId,
      fencingToken: ctx.fencingToken,
      at: new Date().toISOString(),
      mono: Number(process.hrtime.bigint()) / 1e6,
    });
    await new Promise<void>(resolve => setTimeout(resolve, taskMs));
    return true;
  };
}

export class DemoTaskController {
  constructor(
    @inject(DEMO_QUEUE) private readonly queue: TaskQueue,
    @inject(RestBindings.Http.RESPONSE) private readonly response: Response,
  ) {}

  // A database that does not answer: 503 with Retry-After and the cause, not LoopBack's bare 503.
  @intercept(answerDatabaseUnavailable)
  @post('/demo/tasks', {
    responses: {
      '202': {
        description: 'The task is saved; the master of the queue runs it.',
        content: {
          'application/json': {
            schema: {
              type: 'object',
              properties: {taskId: {type: 'number'}, id: {type: 'string'}},
            },
          },
        },
      },
    },
  })
  async submit(
    @requestBody({
      required: true,
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['id'],
            additionalProperties: false,
            properties: {
              id: {type: 'string', minLength: 1, maxLength: 255, pattern: '^[^\\u0000-\\u001f]*$'},
            },
          },
        },
      },
    })
    body: {
      id: string;
    },
  ): Promise<{taskId: number; id: string}> {
    const taskId = await this.queue.submit({id: body.id}, {key: body.id});
    this.response.status(202);
    return {taskId, id: body.id};
  }
}
