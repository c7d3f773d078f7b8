// Checkpoints through real repositories, on the memory connector, PostgreSQL
// and MySQL/MariaDB: the next master starts from what the last one saved, a
// master that lost the lock cannot save, and the other replicas hear of each
// save (`synchronize`). The store's own contract is in
// work-store-contracts.integration.test.ts.

import {expect} from '@loopback/testlab';
import {waitFor} from '../../cluster-kit';
import {Master, MasterJobContext} from '../../src';
import {MasterCheckpointRepository} from '../../src/extension';
import {BACKENDS, BackendName} from '../fixtures/databases';
import {Cluster, clusterPerSuite, FAST, Replica} from '../fixtures/cluster';

for (const backend of BACKENDS) {
  describe(`checkpoints on ${backend} (integration)`, function () {
    checkpointSuite(backend);
  });
}

function checkpointSuite(backend: BackendName): void {
  let cluster: Cluster;
  let LOCK: string;

  clusterPerSuite(backend, 'mje_checkpoint', c => (cluster = c));

  beforeEach(() => {
    LOCK = cluster.name(`CP${Math.random().toString(36).slice(2, 8)}`);
  });

  async function repo(): Promise<MasterCheckpointRepository> {
    return (await cluster.adminApp()).getRepository(MasterCheckpointRepository);
  }

  /** A job that counts from its checkpoint, saving every tick, and records where each mastership began. */
  function counter(r: Replica, began: {instanceId: string; from: unknown}[]): Master {
    let timer: NodeJS.Timeout | undefined;
    return r.executor.startMaster({
      ...FAST,
      lockName: LOCK,
      checkpoint: true,
      masterJob: {
        start: (ctx: MasterJobContext) => {
          began.push({instanceId: ctx.instanceId, from: ctx.checkpoint});
          let count = (ctx.checkpoint as {count?: number} | undefined)?.count ?? 0;
          timer = setInterval(() => {
            count++;
            ctx.saveCheckpoint!({count}).catch(() => {});
          }, 20);
        },
        stop: async (ctx: MasterJobContext) => {
          clearInterval(timer);
        },
      },
    });
  }

  it('starts the next master from what the last one saved, and tells the others', async () => {
    const [a, b] = await cluster.addReplicas(2);
    const began: {instanceId: string; from: unknown}[] = [];
    const ha = counter(a, began);
    const hb = counter(b, began);
    await waitFor(
      'a master started',
      () => (ha.isMaster || hb.isMaster) && began.length === 1,
      5000,
    );
    const [master, other] = ha.isMaster ? [ha, hb] : [hb, ha];
    expect(began[0].from).to.be.undefined();
    const heard: unknown[] = [];
    other.on('synchronize', (value: unknown) => heard.push(value));
    await waitFor('the other replica heard a save', () => heard.length > 0, 5000);
    expect((heard[0] as {count: number}).count).to.be.above(0);
    await master.stop(); // its last save stays
    await waitFor('the other started', () => other.isMaster && began.length === 2, 5000);
    const saved = await (await repo()).findById(LOCK);
    const from = began[1].from as {count: number};
    expect(from.count).to.be.above(0);
    // It started from the last value saved before the handoff (the row had no other writer since).
    expect(from.count).to.be.belowOrEqual(JSON.parse(saved.value!).count);
  });

  it('rejects a save once the mastership ended, and a bad option', async () => {
    const [a] = await cluster.addReplicas(1);
    let ctx: MasterJobContext | undefined;
    const handle = a.executor.startMaster({
      ...FAST,
      lockName: LOCK,
      checkpoint: true,
      masterJob: {
        start: c => {
          ctx = c;
        },
      },
    });
    await waitFor('master', () => handle.isMaster && ctx !== undefined, 5000);
    await ctx!.saveCheckpoint!({step: 1});
    await expect(ctx!.saveCheckpoint!(undefined)).to.be.rejectedWith(/JSON value/);
    await handle.stop();
    await expect(ctx!.saveCheckpoint!({step: 2})).to.be.rejectedWith(/not master/);
    expect(() =>
      a.executor.startMaster({
        lockName: cluster.name('X'),
        masterJob: {start() {}},
        checkpoint: 'yes' as unknown as boolean,
      }),
    ).to.throw(/checkpoint must be true or false/);
  });
}
