// One FakeClock drives everything time-driven in one executor: the elections
// of two locks on a FakeStore, a queue (its polls, a retry after retryDelay,
// its wall-clock stamps) and a cron schedule (its occurrences are wall-clock
// times), their tables on the memory connector. An hour passes in fake time.

import {juggler} from '@loopback/repository';
import {expect} from '@loopback/testlab';
import {masterCron, MasterJobExecutor} from '../../src';
import {MasterCronRunRepository, MasterTaskRepository} from '../../src/extension';
import {RepositoryCronRunStore} from '../../src/store/cron-run-store';
import {RepositoryTaskStore} from '../../src/store/task-store';
import {FakeClock} from '../fixtures/fake-clock';
import {FakeDatabase, FakeStore} from '../fixtures/fake-store';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('one clock (fake clock)', () => {
  it('drives the elections, a queue and a cron schedule of one executor through an hour', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const ds = new juggler.DataSource({name: 'db', connector: 'memory'});
    const taskRows = new MasterTaskRepository(ds);
    const cronRows = new MasterCronRunRepository(ds);
    const store = new FakeStore(new FakeDatabase(), clock);
    const executor = new MasterJobExecutor({
      store,
      clock,
      env: {},
      tasks: new RepositoryTaskStore(taskRows, clock),
      cronRuns: new RepositoryCronRunStore(cronRows, clock),
    });

    const fired: {scheduledAt: number; at: number}[] = [];
    const cron = executor.startMaster({
      lockName: 'REPORT',
      masterJob: masterCron({cronTime: '0 * * * * *'}, ctx => {
        fired.push({scheduledAt: ctx.scheduledAt.getTime() - clock.epoch, at: clock.now()});
      }),
    });
    const runs: {taskId: number; attempt: number; at: number}[] = [];
    const queue = executor.startQueue({
      queueName: 'MAIL',
      retryDelay: MINUTE,
      handler: (payload, ctx) => {
        runs.push({taskId: ctx.taskId, attempt: ctx.attempt, at: clock.now()});
        return ctx.attempt > 1; // every task fails its first attempt
      },
    });
    const first = await queue.submit({n: 1});

    await clock.tick(HOUR / 2);
    const second = await queue.submit({n: 2}); // to a master: run at once
    await clock.tick(HOUR / 2 + 500);

    // Both locks won once, after initDelay, and kept by renewals all the hour.
    expect([cron.isMaster, queue.master.isMaster]).to.deepEqual([true, true]);
    expect([cron.fencingToken, queue.master.fencingToken]).to.deepEqual([1, 1]);
    expect(store.calls.filter(c => c === 'renew').length).to.be.above(2 * (HOUR / 8000) - 4);
    // Every minute's occurrence fired at its time, and was claimed with the fake wall clock.
    const minutes = Array.from({length: 60}, (_, i) => (i + 1) * MINUTE);
    expect(fired.map(f => f.scheduledAt)).to.deepEqual(minutes);
    expect(fired.every(f => f.at === f.scheduledAt)).to.be.true();
    const claimed = await cronRows.find({order: ['scheduledAt ASC']});
    expect(claimed.map(r => new Date(r.startedAt!).getTime() - clock.epoch)).to.deepEqual(minutes);
    // The queue ran each task when it could, and its retry a retryDelay later.
    const INIT = 1000; // initDelay: the first campaign
    expect(runs).to.deepEqual([
      {taskId: first, attempt: 1, at: INIT},
      {taskId: first, attempt: 2, at: INIT + MINUTE},
      {taskId: second, attempt: 1, at: HOUR / 2},
      {taskId: second, attempt: 2, at: HOUR / 2 + MINUTE},
    ]);
    const done = await taskRows.find({order: ['id ASC']});
    expect(done.map(t => [t.state, new Date(t.finishedAt!).getTime() - clock.epoch])).to.deepEqual([
      ['done', INIT + MINUTE],
      ['done', HOUR / 2 + MINUTE],
    ]);

    const stopped = executor.stopAll();
    await clock.until(() => executor.status().length === 0, MINUTE);
    await stopped;
  });
});
