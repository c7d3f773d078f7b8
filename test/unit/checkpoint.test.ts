// Checkpoints on a FakeClock: a save is stamped with the clock's wall clock,
// and a non-master's watch reads the row every interval on the clock's
// timers, tells of each new save once, and stops with its election.

import {expect} from '@loopback/testlab';
import {EventEmitter} from 'events';
import {MasterCheckpoint} from '../../src/extension';
import {CheckpointWatch} from '../../src/jobs/checkpoint';
import {CheckpointStore, RepositoryCheckpointStore} from '../../src/store/checkpoint-store';
import {Master} from '../../src/types';
import {FakeClock} from '../fixtures/fake-clock';

describe('checkpoints (fake clock)', () => {
  let clock: FakeClock;

  beforeEach(() => {
    clock = new FakeClock();
  });

  it('stamps a save with the wall clock of its clock', async () => {
    const writes: Partial<MasterCheckpoint>[] = [];
    const rows = {
      updateAll: async (data: Partial<MasterCheckpoint>) => {
        writes.push(data);
        return {count: 1};
      },
    };
    const store = new RepositoryCheckpointStore(rows as never, clock);
    await clock.tick(1500);
    await store.save('L', 3, 'me', {n: 1});
    expect(writes).to.deepEqual([
      {value: '{"n":1}', savedAt: new Date(clock.epoch + 1500), savedBy: 'me'},
    ]);
  });

  it('reads every interval, tells of each new save once, and stops with its election', async () => {
    let row: MasterCheckpoint | undefined;
    let reads = 0;
    const store = {
      read: async () => {
        reads++;
        return row;
      },
    } as unknown as CheckpointStore;
    const handle = Object.assign(new EventEmitter(), {
      lockName: 'L',
      isMaster: false,
      state: 'campaigning',
    });
    const told: [unknown, number][] = [];
    handle.on('synchronize', (value: unknown, token: number) => told.push([value, token]));
    const watch = new CheckpointWatch(handle as unknown as Master, store, 1000, clock);

    await clock.tick(999);
    expect(reads).to.equal(0);
    await clock.tick(1);
    expect(reads).to.equal(1);
    const save = (value: unknown, token: number) =>
      (row = new MasterCheckpoint({
        lockName: 'L',
        fencingToken: token,
        value: JSON.stringify(value),
        savedAt: clock.date(),
      }));
    save({n: 1}, 4);
    await clock.tick(1000);
    await clock.tick(1000); // the same row again: told once
    expect(told).to.deepEqual([[{n: 1}, 4]]);
    save({n: 2}, 4);
    await watch.look(); // told of the save (a NOTIFY): at once
    expect(told).to.deepEqual([
      [{n: 1}, 4],
      [{n: 2}, 4],
    ]);

    watch.stop();
    expect(clock.pendingTimers).to.equal(0);
    const before = reads;
    await clock.tick(5000);
    expect(reads).to.equal(before);
  });
});
