// The queue's runner on a FakeClock (its timers and its wall clock) and an
// in-memory store: order, one at a time, retries after retryDelay and not
// before, failure after maxAttempts, polling, wake-ups, back-off on database
// errors (no hot loop), and what an abort leaves behind.

import {expect} from '@loopback/testlab';
import {MasterTask} from '../../src/extension';
import {QueueRunner, QueueSettings} from '../../src/queue/queue';
import {Outcome, TaskStore} from '../../src/store/task-store';
import {MasterJobContext} from '../../src/types';
import {FakeClock} from '../fixtures/fake-clock';

class MemoryTasks {
  rows: MasterTask[] = [];
  calls = {head: 0, claim: 0, finish: 0};
  failing = false;
  private next = 1;

  add(payload: unknown): number {
    const id = this.next++;
    this.rows.push(
      new MasterTask({
        id,
        queueName: 'Q',
        payload: JSON.stringify(payload),
        state: 'pending',
        attempts: 0,
        fencingToken: 0,
      }),
    );
    return id;
  }

  async head(): Promise<MasterTask | null> {
    this.calls.head++;
    if (this.failing) throw new Error('database down');
    return this.rows.find(r => r.state === 'pending' || r.state === 'running') ?? null;
  }

  async claim(task: MasterTask, fencingToken: number): Promise<MasterTask | undefined> {
    this.calls.claim++;
    const row = this.rows.find(r => r.id === task.id)!;
    if (
      row.state !== task.state ||
      row.attempts !== task.attempts ||
      row.fencingToken !== task.fencingToken
    )
      return undefined;
    Object.assign(row, {state: 'running', attempts: task.attempts + 1, fencingToken});
    return new MasterTask({...row});
  }

  async finish(claimed: MasterTask, outcome: Outcome): Promise<boolean> {
    this.calls.finish++;
    const row = this.rows.find(r => r.id === claimed.id)!;
    if (row.state !== 'running' || row.fencingToken !== claimed.fencingToken) return false;
    Object.assign(row, {state: outcome.state});
    if (outcome.state !== 'done') row.lastError = outcome.error;
    if (outcome.state === 'pending') row.notBefore = outcome.notBefore;
    return true;
  }
}

describe('queue runner (fake clock)', () => {
  let clock: FakeClock;
  let tasks: MemoryTasks;
  let controller: AbortController;
  const runs: {id: number; attempt: number; at: number}[] = [];

  beforeEach(() => {
    clock = new FakeClock();
    tasks = new MemoryTasks();
    controller = new AbortController();
    runs.length = 0;
  });
  afterEach(async () => {
    controller.abort();
  });

  function runner(
    handler: QueueSettings['handler'],
    settings: Partial<QueueSettings> = {},
  ): QueueRunner {
    const r = new QueueRunner(
      tasks as unknown as TaskStore,
      {
        queueName: 'Q',
        maxAttempts: 3,
        retryDelay: 1000,
        pollInterval: 500,
        ...settings,
        handler: async (payload, ctx) => {
          runs.push({id: ctx.taskId, attempt: ctx.attempt, at: clock.now()});
          return handler(payload, ctx);
        },
      },
      clock,
    );
    const ctx: MasterJobContext = {
      lockName: 'Q',
      instanceId: 'i',
      fencingToken: 7,
      signal: controller.signal,
    };
    r.start(ctx);
    return r;
  }

  it('runs the tasks in order, one at a time, and marks them done', async () => {
    let running = 0;
    let most = 0;
    [1, 2, 3, 4].forEach(n => tasks.add({n}));
    runner(async () => {
      most = Math.max(most, ++running);
      await clock.sleep(10);
      running--;
      return true;
    });
    await clock.tick(100);
    expect(runs.map(r => r.id)).to.deepEqual([1, 2, 3, 4]);
    expect(most).to.equal(1);
    expect(tasks.rows.every(r => r.state === 'done' && r.fencingToken === 7)).to.be.true();
  });

  it('retries a failed task after retryDelay, not before, and fails it after maxAttempts', async () => {
    tasks.add({n: 1});
    tasks.add({n: 2});
    runner(async payload => (payload as {n: number}).n === 2);
    await clock.tick(0);
    expect(runs).to.have.length(1);
    await clock.tick(999);
    expect(runs).to.have.length(1); // the head waits; the next task too (FIFO)
    await clock.tick(1);
    expect(runs.map(r => r.attempt)).to.deepEqual([1, 2]);
    await clock.tick(1000);
    expect(runs.map(r => [r.id, r.attempt])).to.deepEqual([
      [1, 1],
      [1, 2],
      [1, 3],
      [2, 1],
    ]);
    expect(tasks.rows.map(r => r.state)).to.deepEqual(['failed', 'done']);
    expect(tasks.rows[0].lastError).to.match(/resolved false/);
  });

  it('looks every pollInterval when idle, and at once when woken', async () => {
    const r = runner(async () => true);
    await clock.tick(0);
    expect(tasks.calls.head).to.equal(1);
    await clock.tick(499);
    expect(tasks.calls.head).to.equal(1);
    await clock.tick(1);
    expect(tasks.calls.head).to.equal(2);
    tasks.add({n: 1});
    r.wake();
    await clock.tick(0);
    expect(runs).to.have.length(1);
  });

  it('backs off on database errors, doubling to 5 s: no hot loop', async () => {
    tasks.failing = true;
    runner(async () => true);
    await clock.tick(0);
    const at = (ms: number) => clock.tick(ms).then(() => tasks.calls.head);
    expect(tasks.calls.head).to.equal(1);
    expect(await at(100)).to.equal(2); // 100
    expect(await at(200)).to.equal(3); // 200
    expect(await at(400)).to.equal(4); // 400
    await clock.tick(60000);
    // 800, 1600, 3200, then every 5000: about 14 calls in the next minute, not thousands
    expect(tasks.calls.head).to.be.within(15, 20);
    tasks.failing = false;
    tasks.add({n: 1});
    await clock.tick(5000);
    expect(runs).to.have.length(1);
  });

  it('does not run a task whose claim came back after the mastership ended (a reply held up)', async () => {
    tasks.add({n: 1});
    const claim = tasks.claim.bind(tasks);
    tasks.claim = async (task, token) => {
      const claimed = await claim(task, token);
      await clock.sleep(1000); // the reply, behind a partition
      return claimed;
    };
    runner(async () => true);
    await clock.tick(10);
    controller.abort(); // the deadline passed meanwhile
    await clock.tick(2000);
    expect(runs).to.deepEqual([]);
    expect(tasks.rows[0].state).to.equal('running'); // claimed: the next master runs it again
    expect(tasks.calls.finish).to.equal(0);
  });

  it('leaves a task cut short by the end of the mastership to the next master; keeps one that finished', async () => {
    tasks.add({cut: true});
    runner(
      (payload, ctx) =>
        new Promise(resolve => {
          if (!(payload as {cut?: boolean}).cut) return resolve(true);
          ctx.signal.addEventListener('abort', () => resolve(false));
        }),
    );
    await clock.tick(0);
    controller.abort();
    await clock.tick(0);
    expect(tasks.rows[0].state).to.equal('running'); // no outcome written
    expect(tasks.calls.finish).to.equal(0);

    tasks.rows = [];
    tasks.add({cut: false});
    controller = new AbortController();
    const done = runner(async () => {
      controller.abort(); // ends while the handler runs, which still succeeds
      return true;
    });
    await clock.tick(0);
    expect(tasks.rows[0].state).to.equal('done');
    void done;
  });
});
