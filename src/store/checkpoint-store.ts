// A lock's checkpoint row: the CheckpointStore contract that checkpoints
// (jobs/checkpoint.ts) rely on, and its implementation on the component's repository.

import {MasterCheckpoint} from '../models/master-checkpoint.model';
import {Clock} from '../types';
import type {CheckpointRepository} from './dialect';
import {isDuplicate} from './errors';

/**
 * One row per lock, claimed by each new master with its fencing token: a
 * save writes only where the row still has the saver's token, so a master
 * that lost the lock cannot overwrite the progress of the next. Stamps are
 * the clock's wall clock.
 */
export interface CheckpointStore {
  /**
   * Makes `fencingToken` the only one that may save, and resolves to the
   * value saved last (undefined if none). Rejects if a later master claimed
   * the checkpoint already.
   */
  claim(lockName: string, fencingToken: number): Promise<unknown>;
  /** Saves `value` if the row still has this token; rejects otherwise. */
  save(lockName: string, fencingToken: number, instanceId: string, value: unknown): Promise<void>;
  /** The row as stored, for the other replicas; undefined if none. */
  read(lockName: string): Promise<MasterCheckpoint | undefined>;
}

/** The CheckpointStore on the component's MasterCheckpoint repository, for any connector. */
export class RepositoryCheckpointStore implements CheckpointStore {
  constructor(
    private readonly rows: CheckpointRepository,
    private readonly clock: Clock,
  ) {}

  async claim(lockName: string, fencingToken: number): Promise<unknown> {
    try {
      await this.rows.create({lockName, fencingToken, value: null});
    } catch (err) {
      if (!isDuplicate(err)) throw err;
    }
    await this.rows.updateAll({fencingToken}, {lockName, fencingToken: {lt: fencingToken}});
    const row = await this.rows.findById(lockName);
    if (Number(row.fencingToken) !== fencingToken) {
      throw new Error(
        `the checkpoint of "${lockName}" belongs to a later master (token ${row.fencingToken}, this one ${fencingToken})`,
      );
    }
    return parse(row);
  }

  async save(
    lockName: string,
    fencingToken: number,
    instanceId: string,
    value: unknown,
  ): Promise<void> {
    const text = JSON.stringify(value);
    if (text === undefined)
      throw new TypeError('saveCheckpoint(value): value must be a JSON value');
    const {count} = await this.rows.updateAll(
      {value: text, savedAt: this.clock.date(), savedBy: instanceId},
      {lockName, fencingToken},
    );
    if (count !== 1) {
      throw new Error(
        `not master of "${lockName}" any more: checkpoint not saved (token ${fencingToken})`,
      );
    }
  }

  async read(lockName: string): Promise<MasterCheckpoint | undefined> {
    return (await this.rows.findOne({where: {lockName}})) ?? undefined;
  }
}

/** The value a row holds: undefined if none was saved. */
export function parse(row: MasterCheckpoint | undefined): unknown {
  return row?.value === null || row?.value === undefined ? undefined : JSON.parse(row.value);
}
