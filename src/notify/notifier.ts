// How replicas wake each other when a lock is released, disabled or enabled,
// so that handoff, disable and enable do not wait for a polling tick: the
// contract, and the in-process transport. Polling stays the fallback: a lost
// notification only costs latency. The transport across processes belongs to
// a database dialect (PostgreSQL: store/postgres/postgres-notifier.ts).

import {EventEmitter} from 'events';
import type {LockChange} from '../store/lock-store';

/** Called with the lock that changed, or undefined when any may have (after a reconnect). */
export type ChangeListener = (change: LockChange | undefined) => void;

export interface LockNotifier {
  /** Tell every replica that these locks changed; never throws. */
  publish(changes: LockChange[]): void;
  subscribe(listener: ChangeListener): () => void;
  close(): Promise<void>;
}

const localChannels = new WeakMap<object, EventEmitter>();

/**
 * Delivers to the executors of this process that share the datasource: all a
 * connector without notifications of its own can do.
 */
export class LocalNotifier implements LockNotifier {
  private readonly channel: EventEmitter;

  constructor(dataSource: object) {
    let channel = localChannels.get(dataSource);
    if (!channel) {
      channel = new EventEmitter().setMaxListeners(0);
      localChannels.set(dataSource, channel);
    }
    this.channel = channel;
  }

  publish(changes: LockChange[]): void {
    // After the caller's turn, like a notification from the database would.
    setImmediate(() => changes.forEach(change => this.channel.emit('change', change)));
  }

  subscribe(listener: ChangeListener): () => void {
    this.channel.on('change', listener);
    return () => this.channel.off('change', listener);
  }

  async close(): Promise<void> {}
}
