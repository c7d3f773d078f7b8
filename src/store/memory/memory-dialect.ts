// The memory connector (development, single-process demos): lock names that
// are exact keys. It coordinates the executors of one process only.

import {juggler} from '@loopback/repository';
import {RepositoryDialect} from '../repository-dialect';

/** The component's models; the memory connector keys their rows by lock name. */
const OWN_MODELS = new Set(['MasterLock', 'MasterControl', 'MasterCheckpoint', 'MasterCronRun']);

interface MemoryConnector {
  name: string;
  collection(model: string, value?: Record<string, unknown>): Record<string, unknown>;
  exists(model: string, id: unknown, options: unknown, cb: (err: null, e: boolean) => void): void;
}

const prepared = new WeakSet<object>();

export class MemoryDialect extends RepositoryDialect {
  /**
   * The memory connector keeps rows in a plain object keyed by id, so a lock
   * named `__proto__` or `constructor` finds Object.prototype's members: a
   * create reports a duplicate, a read finds a row that is not there. Our
   * models' collections get no prototype.
   */
  prepare(dataSource: juggler.DataSource): void {
    const connector = dataSource.connector as unknown as MemoryConnector | undefined;
    if (typeof connector?.collection !== 'function' || prepared.has(connector)) return;
    prepared.add(connector);
    const collection = connector.collection;
    connector.collection = function (this: MemoryConnector, model, ...value) {
      const rows = collection.call(this, model, ...value);
      if (!OWN_MODELS.has(model) || !rows || Object.getPrototypeOf(rows) === null) return rows;
      const bare = Object.assign(Object.create(null), rows) as Record<string, unknown>;
      collection.call(this, model, bare);
      return bare;
    };
    const exists = connector.exists;
    connector.exists = function (this: MemoryConnector, model, id, options, cb) {
      if (!OWN_MODELS.has(model)) return exists.call(this, model, id, options, cb);
      const rows = this.collection(model);
      process.nextTick(() =>
        cb(null, !!rows && Object.prototype.hasOwnProperty.call(rows, String(id))),
      );
    };
  }
}
