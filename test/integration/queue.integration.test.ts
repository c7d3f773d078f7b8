// The persisted queue through real repositories, on the memory connector,
// PostgreSQL and MySQL/MariaDB: tasks submitted on any replica run once each,
// in submission order, on the master of the queue; retries, failures, keys,
// a master stopped mid-task. The store's own contract is in
// work-store-contracts.integration.test.ts.

import {expect} from '@loopback/testlab';
import {waitFor} from '../../cluster-kit';
import {TaskContext, TaskQueue} from '../../src';
import {MasterTaskRepository} from '../../src/extension';
import {BACKENDS, BackendName} from '../fixtures/databases';
import {Cluster, clusterPerSuite, FAST, Replica} from '../fixtures/cluster';

for (const backend of BACKENDS) {
  describe(`queue on ${backend} (integration)`, function () {
    queueSuite(backend);
  });
}

interface Run {
  instanceId: string;
  taskId: number;
  attempt: number;
  payload: unknown;
  fencingToken: number;
}

function queueSuite(backend: BackendName): void {
  let cluster: Cluster;
  let QUEUE: string;
  let runs: Run[];

  clusterPerSuite(backend, 'mje_queue', c => (cluster = c));

  beforeEach(() => {
    QUEUE = cluster.name(`Q${Math.random().toString(36).slice(2, 8)}`);
    runs = [];
  });

  async function taskRepo(): Promise<MasterTaskRepository> {
    return (await cluster.adminApp()).getRepository(MasterTaskRepository);
  }

  type Handler = (payload: unknown, ctx: TaskContext) => boolean | Promise<boolean>;

  function startQueue(r: Replica, handler?: Handler, options: object = {}): TaskQueue {
    return r.executor.startQueue({
      ...FAST,
      queueName: QUEUE,
      retryDelay: 50,
      ...options,
      handler: async (payload, ctx) => {
        runs.push({
          instanceId: ctx.instanceId,
          taskId: ctx.taskId,
          attempt: ctx.attempt,
          payload,
          fencingToken: ctx.fencingToken,
        });
        return handler ? handler(payload, ctx) : true;
      },
    });
  }

  it('runs every task once, in submission order, whichever replica submits', async () => {
    const [a, b] = await cluster.addReplicas(2);
    const qa = startQueue(a);
    const qb = startQueue(b);
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push(await (i % 2 ? qa : qb).submit({n: i}));
    await waitFor('20 tasks done', async () => (await qa.stats()).done === 20, 10000);
    expect(runs.map(r => r.payload)).to.deepEqual(ids.map((_, i) => ({n: i})));
    expect(runs.map(r => r.taskId)).to.deepEqual(ids);
    expect(new Set(runs.map(r => r.instanceId)).size).to.equal(1); // one master ran them
    expect(runs.every(r => r.attempt === 1)).to.be.true();
    expect(await qb.stats()).to.deepEqual({pending: 0, running: 0, done: 20, failed: 0});
  });

  it('makes a submit with a key idempotent, also when two replicas race', async () => {
    const [a, b] = await cluster.addReplicas(2);
    const qa = startQueue(a, () => false, {maxAttempts: 1, retryDelay: 0});
    const qb = startQueue(b, () => false, {maxAttempts: 1, retryDelay: 0});
    const ids = await Promise.all([
      qa.submit({x: 1}, {key: 'order-17'}),
      qb.submit({x: 2}, {key: 'order-17'}),
      qa.submit({x: 3}, {key: 'order-17'}),
    ]);
    expect(new Set(ids).size).to.equal(1);
    await waitFor('the task failed', async () => (await qa.stats()).failed === 1, 10000);
    // Finished or not, the key stays taken: the same id again, no second run.
    expect(await qb.submit({x: 4}, {key: 'order-17'})).to.equal(ids[0]);
    const other = await qb.submit({x: 5}, {key: 'order-18'});
    expect(other).to.not.equal(ids[0]);
    await waitFor('both failed', async () => (await qa.stats()).failed === 2, 10000);
    expect(runs.filter(r => r.taskId === ids[0])).to.have.length(1);
  });

  it('retries a failing head until maxAttempts, keeps it failed, then runs the next', async () => {
    const [a] = await cluster.addReplicas(1);
    const q = startQueue(
      a,
      (payload, ctx) => {
        const {name} = payload as {name: string};
        if (name === 'flaky') return ctx.attempt >= 2; // resolves false once
        if (name === 'broken') throw new Error('broken on purpose');
        return true;
      },
      {maxAttempts: 3},
    );
    const flaky = await q.submit({name: 'flaky'});
    const broken = await q.submit({name: 'broken'});
    const after = await q.submit({name: 'after'});
    await waitFor(
      'all settled',
      async () => {
        const s = await q.stats();
        return s.done === 2 && s.failed === 1;
      },
      10000,
    );
    expect(runs.map(r => [r.taskId, r.attempt])).to.deepEqual([
      [flaky, 1],
      [flaky, 2],
      [broken, 1],
      [broken, 2],
      [broken, 3],
      [after, 1],
    ]);
    const row = await (await taskRepo()).findById(broken);
    expect(row.state).to.equal('failed');
    expect(row.attempts).to.equal(3);
    expect(row.lastError).to.match(/broken on purpose/);
  });

  it('runs again, on the next master, a task its master stopped in the middle of', async () => {
    const [a, b] = await cluster.addReplicas(2);
    let blockFirst = true;
    const handler: Handler = (_payload, ctx) =>
      new Promise<boolean>((resolve, reject) => {
        if (!blockFirst) return resolve(true);
        blockFirst = false;
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
      });
    const qa = startQueue(a, handler);
    const qb = startQueue(b, handler);
    const id = await qa.submit({n: 1});
    await waitFor('the first attempt started', () => runs.length === 1, 10000);
    const first = runs[0];
    const [master, other] = first.instanceId === a.instanceId ? [qa, qb] : [qb, qa];
    await master.stop();
    await waitFor('done on the other replica', async () => (await other.stats()).done === 1, 10000);
    expect(runs).to.have.length(2);
    expect(runs[1]).to.containEql({taskId: id, attempt: 2});
    expect(runs[1].instanceId).to.not.equal(first.instanceId);
    expect(runs[1].fencingToken).to.be.above(first.fencingToken);
  });

  it('rejects bad options and payloads, naming the field', async () => {
    const [a] = await cluster.addReplicas(1);
    const h = () => true;
    expect(() => a.executor.startQueue({queueName: '', handler: h})).to.throw(/queueName/);
    expect(() =>
      a.executor.startQueue({queueName: QUEUE, handler: 'no' as unknown as () => boolean}),
    ).to.throw(/handler must be a function/);
    expect(() => a.executor.startQueue({queueName: QUEUE, handler: h, maxAttempts: 0})).to.throw(
      /maxAttempts/,
    );
    expect(() => a.executor.startQueue({queueName: QUEUE, handler: h, retryDelay: -1})).to.throw(
      /retryDelay/,
    );
    const q = startQueue(a);
    expect(() => startQueue(a)).to.throw(/already started/);
    await expect(q.submit(undefined)).to.be.rejectedWith(/payload must be a JSON value/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(q.submit(cyclic)).to.be.rejectedWith(/payload must be a JSON value/);
    await expect(q.submit({}, {key: ''})).to.be.rejectedWith(/key must be a non-empty string/);
    await expect(q.submit({}, {key: 'a\u0000b'})).to.be.rejectedWith(/key must not contain/);
    await expect(q.submit({}, {key: 'k'.repeat(256)})).to.be.rejectedWith(
      /key must be at most 255/,
    );
  });
}
