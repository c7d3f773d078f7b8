// runExclusive(): run a function once, as master of a lock, and give the lock
// back when it settles; the same election as any master, so an app's master
// and a run of the same lock name exclude each other, and a disable blocks both.

import {ElectionStore} from '../store/lock-store';
import {ElectionTimings, Master, MasterJobContext, StartMasterOptions, StopReason} from '../types';

/** The lock is held by another replica, or disabled, and the call was not to wait. */
export class LockBusyError extends Error {
  readonly code = 'LOCK_BUSY';
  constructor(
    readonly lockName: string,
    readonly why: 'held' | 'disabled',
  ) {
    super(
      why === 'disabled'
        ? `Lock "${lockName}" is disabled`
        : `Lock "${lockName}" is held by another replica`,
    );
    this.name = 'LockBusyError';
  }
}

export interface RunExclusiveOptions extends Partial<ElectionTimings> {
  /** Wait for the lock (default true); false: reject at once with a LockBusyError when it is held or disabled. */
  wait?: boolean;
}

/** What runExclusive's function receives: the master's context, and why it had to stop early, if it did. */
export interface ExclusiveContext extends MasterJobContext {
  /** Set when the mastership ended before the function settled (`ctx.signal` aborted then). */
  readonly lostReason?: StopReason;
}

export async function runExclusive<T>(
  startMaster: (options: StartMasterOptions) => Master,
  store: ElectionStore,
  lockName: string,
  fn: (ctx: ExclusiveContext) => T | Promise<T>,
  options: RunExclusiveOptions = {},
): Promise<T> {
  const {wait = true, ...timings} = options;
  if (typeof fn !== 'function')
    throw new TypeError('runExclusive(lockName, fn): fn must be a function');
  if (!wait) {
    const {lock, disabled} = await store.read(lockName);
    if (disabled) throw new LockBusyError(lockName, 'disabled');
    if (lock?.instanceId) throw new LockBusyError(lockName, 'held');
  }
  return new Promise<T>((resolve, reject) => {
    let ran = false;
    let lostReason: StopReason | undefined;
    const handle = startMaster({
      initDelay: 0,
      ...timings,
      lockName,
      masterJob: {
        start: ctx => {
          if (ran) return; // once: a lost lock is not campaigned for again
          ran = true;
          const context: ExclusiveContext = {
            ...ctx,
            get lostReason() {
              // The signal says why the moment it aborts; stop() is told a little later.
              return (
                lostReason ?? (ctx.signal.aborted ? (ctx.signal.reason as StopReason) : undefined)
              );
            },
          };
          Promise.resolve()
            .then(() => fn(context))
            .then(
              value => handle.stop().then(() => resolve(value)),
              err => handle.stop().then(() => reject(err)),
            );
        },
        stop: ctx => {
          if (ctx.reason !== 'stopped') {
            lostReason = ctx.reason;
            void handle.stop(); // no new campaign: the function ran once
          }
        },
      },
    });
    if (!wait) {
      // Raced by another replica between the read and the campaign.
      const onNewMaster = () => {
        if (ran || handle.isMaster) return; // ours: it runs
        handle.off('newMaster', onNewMaster);
        void handle.stop().then(() => reject(new LockBusyError(lockName, 'held')));
      };
      handle.on('newMaster', onNewMaster);
    }
  });
}
