// The LockStore on PostgreSQL: the repository store, with three batches done
// in one statement each where the repository API would take two round trips.
//  - A takeover reads the control of what it won in its own statement.
//  - A release sends its NOTIFY in its own statement.
//  - A disable or enable sends its NOTIFY in its own statement (an enable
//    with what the disabled master left on the lock's row).
//  - A renewal announces itself in its own statement, so the others judge
//    a lease from its last renewal, not from their last poll.

import {MasterControl, MasterLock} from '../../models';
import {retryDeadlock} from '../errors';
import {WakeUp} from '../../wake/messages';
import {ControlWrite, ControlWritten, LockRecord} from '../lock-store';
import {
  anyOf,
  Condition,
  LockData,
  RepositoryLockStore,
  toLockRecord,
} from '../repository-lock-store';
import {assertOpen} from '../datasource-state';
import {PostgresNotifier} from './postgres-notifier';
import {sqlBuilder, updateReturning} from './sql';

export class PostgresLockStore extends RepositoryLockStore {
  /**
   * The takeovers and the read of their control in one statement, so a
   * replica that wins can start without another round trip. The control
   * rows are read FOR SHARE, after the win: that read returns their latest
   * committed version (waiting for a disable in progress), and a disable that
   * comes later waits for this takeover to commit, so the winner hears of it
   * as master. As if the control were read after the win.
   */
  protected async takeOverAll(
    expected: Condition[],
    data: LockData,
  ): Promise<{won: boolean[]; disabled: Set<string>}> {
    const dataSource = this.lockRepo.dataSource;
    const update = updateReturning<MasterLock>(
      dataSource,
      this.lockRepo.modelClass.modelName,
      anyOf(expected),
      data,
      ['lockName'],
    );
    const sql = sqlBuilder(dataSource);
    const control = this.controlRepo.modelClass.modelName;
    const name = sql.columnEscaped(control, 'lockName');
    const enabled = sql.columnEscaped(control, 'enabled');
    const statement =
      `WITH updated AS (${update.sql}), ` +
      `control AS (SELECT ${name} AS "lockName", ${enabled} AS enabled FROM ${sql.tableEscaped(control)} ` +
      `WHERE ${name} IN (SELECT "lockName" FROM updated) FOR SHARE) ` +
      `SELECT coalesce((SELECT json_agg("lockName") FROM updated), '[]') AS won, ` +
      `coalesce((SELECT json_agg("lockName") FROM control WHERE NOT enabled), '[]') AS disabled`;
    const rows = (await retryDeadlock(() => dataSource.execute(statement, update.params))) as {
      won: string[];
      disabled: string[];
    }[];
    const won = new Set(rows[0]?.won);
    return {won: expected.map(c => won.has(c.lockName)), disabled: new Set(rows[0]?.disabled)};
  }

  /**
   * A locking read (FOR SHARE): it waits for a takeover in flight to commit
   * and returns the row it wrote. A plain read would return the row before
   * it, and a first disable (an INSERT of its control row, which a takeover
   * whose statement began earlier does not see) could miss the winner.
   */
  async readSettled(lockName: string): Promise<LockRecord | undefined> {
    assertOpen(this.lockRepo.dataSource);
    const dataSource = this.lockRepo.dataSource;
    const sql = sqlBuilder(dataSource);
    const model = this.lockRepo.modelClass.modelName;
    const properties: (keyof MasterLock & string)[] = [
      'lockName',
      'instanceId',
      'hostname',
      'fencingToken',
      'renewalId',
      'heartbeatAt',
      'acquiredAt',
      'groupName',
    ];
    const columns = properties.map(p => `${sql.columnEscaped(model, p)} AS "${p}"`);
    const rows = (await dataSource.execute(
      `SELECT ${columns.join(', ')} FROM ${sql.tableEscaped(model)} ` +
        `WHERE ${sql.columnEscaped(model, 'lockName')} = $1 FOR SHARE`,
      [lockName],
    )) as MasterLock[];
    return rows[0] ? toLockRecord(rows[0]) : undefined;
  }

  /**
   * The release and its NOTIFY in one statement. The NOTIFY names the whole
   * batch and goes only if every row was released; otherwise the rows that
   * were are published after. Resolves, per condition, whether it was.
   */
  protected async releaseAndPublish(
    conditions: Condition[],
    data: LockData,
    freed: WakeUp[],
  ): Promise<boolean[]> {
    const notifier = this.notifier;
    if (!(notifier instanceof PostgresNotifier)) {
      return super.releaseAndPublish(conditions, data, freed);
    }
    const {rows} = await retryDeadlock(() =>
      notifier.updateAndPublish<MasterLock>(
        this.lockRepo.modelClass.modelName,
        anyOf(conditions),
        data,
        ['lockName', 'fencingToken'],
        conditions.length,
        freed,
      ),
    );
    // A release keeps the token: it tells apart two conditions on one row.
    const released = conditions.map(c =>
      rows.some(
        r => r.lockName === c.lockName && Number(r.fencingToken) === Number(c.fencingToken),
      ),
    );
    if (rows.length > 0 && rows.length < conditions.length) {
      this.publish(freed.filter((_, i) => released[i]));
    }
    return released;
  }

  /**
   * The renewals and their announcement in one statement: the others learn
   * of each renewal as it commits (issue: failover within the lease whatever
   * the polling interval). A renewal keeps the token: a row is renewed where
   * it came back with the condition's token.
   */
  protected async renewAll(conditions: Condition[], data: LockData): Promise<boolean[]> {
    const notifier = this.notifier;
    if (!(notifier instanceof PostgresNotifier)) return super.renewAll(conditions, data);
    const rows = await retryDeadlock(() =>
      notifier.renewAndAnnounce<MasterLock>(
        this.lockRepo.modelClass.modelName,
        anyOf(conditions),
        data,
      ),
    );
    const renewed = new Set(rows.map(r => `${r.lockName}\u0000${Number(r.fencingToken)}`));
    return conditions.map(c => renewed.has(`${c.lockName}\u0000${Number(c.fencingToken)}`));
  }

  /**
   * The flip and its NOTIFY in one statement. An enable tells the others
   * what the disabled master left on the lock's row, so they take it over
   * without reading it first.
   */
  protected async flipControl(lockName: string, write: ControlWrite): Promise<ControlWritten> {
    const notifier = this.notifier;
    if (!(notifier instanceof PostgresNotifier)) return super.flipControl(lockName, write);
    const announced: WakeUp = {
      kind: 'control',
      lockName,
      control: write.enabled ? 'enabled' : 'disabled',
    };
    const {rows, published} = await notifier.updateAndPublish<MasterControl>(
      this.controlRepo.modelClass.modelName,
      {lockName, enabled: !write.enabled},
      write,
      ['lockName'],
      1,
      [announced],
      write.enabled ? this.lockRepo.modelClass.modelName : undefined,
    );
    if (!rows.length) return {changed: false, announced: []};
    return {changed: rows.length === 1, announced: published ?? [announced]};
  }
}
