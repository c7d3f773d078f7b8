// The LockStore on PostgreSQL: the repository store, with three batches done
// in one statement each where the repository API would take two round trips.
//  - A takeover reads the control of what it won in its own statement.
//  - A release sends its NOTIFY in its own statement.
//  - A disable or enable sends its NOTIFY in its own statement (an enable
//    with what the disabled master left on the lock's row).
//  - A renewal announces itself in its own statement, so the others judge
//    a lease from its last renewal, not from their last poll.
// The NOTIFYs go when the notifier declares the channel it hears them on
// (LockNotifier.notifyChannel: the PostgreSQL notifier does); with any other,
// the store of any connector publishes after the write.

import {juggler, Where} from '@loopback/repository';
import {MasterControl, MasterLock} from '../../models';
import {retryDeadlock} from '../errors';
import {encodePayload, parsePayload} from '../../wake/codec';
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
import {sqlBuilder, updateReturning} from './sql';

/**
 * Bytes of lock entries per renewal NOTIFY: with one more entry (a name of
 * at most 1020 bytes) and the envelope, under PostgreSQL's 8000.
 */
const RENEWAL_CHUNK_BYTES = 6500;

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
    const channel = this.notifier?.notifyChannel;
    if (channel === undefined) return super.releaseAndPublish(conditions, data, freed);
    const {rows} = await retryDeadlock(() =>
      updateAndNotify<MasterLock>(
        this.lockRepo.dataSource,
        channel,
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
    const channel = this.notifier?.notifyChannel;
    if (channel === undefined) return super.renewAll(conditions, data);
    const rows = await retryDeadlock(() =>
      renewAndNotify<MasterLock>(
        this.lockRepo.dataSource,
        channel,
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
    const channel = this.notifier?.notifyChannel;
    if (channel === undefined) return super.flipControl(lockName, write);
    const announced: WakeUp = {
      kind: 'control',
      lockName,
      control: write.enabled ? 'enabled' : 'disabled',
    };
    const {rows, published} = await updateAndNotify<MasterControl>(
      this.controlRepo.dataSource,
      channel,
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

/**
 * `UPDATE model SET data WHERE where` and, in the same statement, the NOTIFY
 * of `messages` on `channel` if it updated `expected` rows: the others are
 * woken as the update commits, not a round trip later. Resolves to the
 * `returning` properties of the rows it updated, and the wake-ups it
 * published. With `freedOf` (the lock model), the one message, an enable,
 * also carries what the lock's row was left with if it is free, as the
 * statement sees it: the others take it over unread.
 */
async function updateAndNotify<T extends object>(
  dataSource: juggler.DataSource,
  channel: string,
  model: string,
  where: Where<T>,
  data: Partial<T>,
  returning: (keyof T & string)[],
  expected: number,
  messages: WakeUp[],
  freedOf?: string,
): Promise<{rows: Partial<T>[]; published?: WakeUp[]}> {
  const update = updateReturning(dataSource, model, where, data, returning);
  const n = update.params.length;
  const params = [...update.params, expected, channel, encodePayload(messages)];
  let payload = `$${n + 3}::text`;
  const enable = messages.length === 1 ? messages[0] : undefined;
  if (freedOf && enable?.kind === 'control') {
    const sql = sqlBuilder(dataSource);
    const column = (p: string) => sql.columnEscaped(freedOf, p);
    // codec.ts's entry of a control with freed: [name, control, fencingToken, renewalId].
    const entry =
      `json_build_array(${column('lockName')}, $${n + 4}::text, ` +
      `${column('fencingToken')}, ${column('renewalId')})`;
    payload =
      `coalesce((SELECT json_build_array(${entry})::text FROM ${sql.tableEscaped(freedOf)} ` +
      `WHERE ${column('lockName')} = $${n + 5} AND ${column('instanceId')} = ''), ${payload})`;
    params.push(enable.control, enable.lockName);
  }
  const sql =
    `WITH updated AS (${update.sql}), payload AS (SELECT ${payload} AS text) ` +
    `SELECT coalesce(json_agg(updated), '[]') AS rows, (SELECT text FROM payload) AS payload, ` +
    `CASE WHEN count(*) = $${n + 1} THEN pg_notify($${n + 2}, (SELECT text FROM payload)) END AS notified ` +
    `FROM updated`;
  const result = (await dataSource.execute(sql, params)) as {
    rows: Partial<T>[];
    payload: string;
  }[];
  const rows = result[0]?.rows ?? [];
  return {
    rows,
    published: rows.length === expected ? parsePayload(result[0].payload) : undefined,
  };
}

/**
 * `UPDATE model SET data WHERE where` (a renewal: data carries the new
 * renewalId), announcing on `channel` in the same statement every row it
 * renewed (codec.ts's renewal payload), in as many NOTIFYs as the payload
 * limit needs. Resolves to the rows renewed.
 */
async function renewAndNotify<T extends object>(
  dataSource: juggler.DataSource,
  channel: string,
  model: string,
  where: Where<T>,
  data: Partial<T> & {renewalId: string},
): Promise<{lockName: string; fencingToken: number}[]> {
  const returning = ['lockName', 'fencingToken', 'instanceId'] as (keyof T & string)[];
  const update = updateReturning(dataSource, model, where, data, returning);
  const n = update.params.length;
  const sql =
    `WITH updated AS (${update.sql}), ` +
    // Running payload size per holder, to cut the announcement into NOTIFYs that fit.
    `sized AS (SELECT *, sum(octet_length("lockName") + 24) OVER ` +
    `(PARTITION BY "instanceId" ORDER BY "lockName") AS running FROM updated), ` +
    `chunks AS (SELECT json_build_object('renewed', "instanceId", 'renewalId', $${n + 1}::text, ` +
    `'locks', json_agg(json_build_array("lockName", "fencingToken")))::text AS payload ` +
    `FROM sized GROUP BY "instanceId", floor(running / ${RENEWAL_CHUNK_BYTES})) ` +
    `SELECT coalesce((SELECT json_agg(json_build_array("lockName", "fencingToken")) FROM updated), '[]') AS rows, ` +
    `(SELECT count(pg_notify($${n + 2}, payload)) FROM chunks) AS notices`;
  const params = [...update.params, data.renewalId, channel];
  const result = (await dataSource.execute(sql, params)) as {rows: [string, number][]}[];
  return (result[0]?.rows ?? []).map(([lockName, fencingToken]) => ({lockName, fencingToken}));
}
