// A resource guarded by the fencing token: the demo job's writes go through a
// compare-and-set that the database itself enforces, so a master that was
// paused and woke up with an old token cannot overwrite a newer master's work.

import {inject} from '@loopback/core';
import {DefaultCrudRepository} from '@loopback/repository';
import {MasterJobContext} from '../../src';
import {isDuplicateKeyError} from '../../src/extension';
import {DbDataSource} from '../datasources/db.datasource';
import {FencedResource} from '../models/fenced-resource.model';

export class FencedResourceRepository extends DefaultCrudRepository<
  FencedResource,
  typeof FencedResource.prototype.lockName
> {
  constructor(@inject('datasources.db') dataSource: DbDataSource) {
    super(FencedResource, dataSource);
  }

  /**
   * Writes as `ctx`'s master unless a higher token has written already.
   * Returns whether the write was accepted.
   */
  async fencedWrite(ctx: MasterJobContext): Promise<boolean> {
    const {lockName, fencingToken, instanceId} = ctx;
    // undefined in a where clause is dropped silently: the CAS would become unconditional
    if (typeof fencingToken !== 'number') throw new Error('fencedWrite needs a fencing token');
    const data = {fencingToken, writer: instanceId, updatedAt: new Date()};
    const where = {lockName, fencingToken: {lte: fencingToken}};
    if ((await this.updateAll(data, where)).count > 0) return true;
    try {
      await this.create({lockName, ...data});
      return true;
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
      // Someone created the row meanwhile, maybe with a lower token: try the CAS again.
      return (await this.updateAll(data, where)).count > 0;
    }
  }
}
