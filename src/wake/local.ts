// The in-process transport of wake-ups: delivers to the executors of this
// process that share a datasource. All a connector without notifications of
// its own can do (memory); the MySQL doorbell uses it within the process.

import {EventEmitter} from 'events';
import type {WakeUp} from './messages';
import type {ChangeListener, LockNotifier} from './notifier';

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

  publish(messages: WakeUp[]): void {
    // After the caller's turn, like a notification from the database would.
    setImmediate(() => messages.forEach(message => this.channel.emit('change', message)));
  }

  subscribe(listener: ChangeListener): () => void {
    this.channel.on('change', listener);
    return () => this.channel.off('change', listener);
  }

  async close(): Promise<void> {}
}
