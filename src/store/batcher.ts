// Calls made in the same turn of the event loop (the elections of many locks
// tick on a shared grid) become one call for all, so the database work of a
// replica per tick does not grow with the number of locks.

import {explain, isRowError} from './errors';

/** Keys per call at most: bounds a statement's parameters (PostgreSQL allows 65535). */
export const MAX_BATCH = 1000;

/**
 * Collects the keys loaded in one turn of the event loop and resolves them
 * with one call of `loadBatch` per MAX_BATCH distinct keys. Keys are told
 * apart by `identify` (default: the key itself), so that equal conditions
 * made by different calls share one entry of the batch.
 */
export class Batcher<K, V> {
  private pending: Map<unknown, Pending<K, V>> | undefined;

  constructor(
    private readonly loadBatch: (keys: K[]) => Promise<V[]>,
    private readonly identify: (key: K) => unknown = key => key,
  ) {}

  load(key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      if (!this.pending) {
        this.pending = new Map();
        setImmediate(() => this.flush());
      }
      const id = this.identify(key);
      const entry = this.pending.get(id) ?? {key, waiters: []};
      entry.waiters.push({resolve, reject});
      this.pending.set(id, entry);
    });
  }

  /** Loads these keys at once, on their own: not batched with the calls of this turn. */
  async loadUnbatched(keys: K[]): Promise<V[]> {
    const chunks: Promise<V[]>[] = [];
    for (let i = 0; i < keys.length; i += MAX_BATCH) {
      chunks.push(this.loadBatch(keys.slice(i, i + MAX_BATCH)));
    }
    return (await Promise.all(chunks)).flat();
  }

  private flush(): void {
    const entries = [...this.pending!.values()];
    this.pending = undefined;
    for (let i = 0; i < entries.length; i += MAX_BATCH) {
      const chunk = entries.slice(i, i + MAX_BATCH);
      void this.settle(chunk, (entry, outcome) =>
        entry.waiters.forEach(w =>
          'value' in outcome ? w.resolve(outcome.value) : w.reject(outcome.error),
        ),
      );
    }
  }

  /**
   * Loads `keys` in one call. If the database refused the statement for what
   * one row holds, the halves are loaded separately, down to that row alone:
   * one bad key never fails the others (a few statements per bad key).
   */
  private async settle(
    entries: Pending<K, V>[],
    deliver: (entry: Pending<K, V>, outcome: {value: V} | {error: unknown}) => void,
  ): Promise<void> {
    try {
      const values = await this.loadBatch(entries.map(e => e.key));
      entries.forEach((entry, j) => deliver(entry, {value: values[j]}));
    } catch (err) {
      if (entries.length > 1 && isRowError(err)) {
        await Promise.all(halves(entries).map(half => this.settle(half, deliver)));
        return;
      }
      const error = explain(err);
      entries.forEach(entry => deliver(entry, {error}));
    }
  }
}

export function halves<T>(items: T[]): T[][] {
  const middle = Math.ceil(items.length / 2);
  return [items.slice(0, middle), items.slice(middle)];
}

interface Pending<K, V> {
  key: K;
  waiters: {resolve: (v: V) => void; reject: (e: unknown) => void}[];
}
