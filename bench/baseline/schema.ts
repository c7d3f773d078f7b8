// Tables of the baseline (the original module's MasterLock and MasterControl,
// under names of their own so they sit next to ours in one database).
//  - baseline_master_lock: an id of its own and lockName unique (assumed: without
//    a unique lockName the original would elect several masters outright).
//  - baseline_master_control: no unique key on lockName, as in the original
//    (disable is find-then-create, so concurrent disables can duplicate rows).

import type {Sql} from '../../cluster-kit/sql';

export const LOCK_TABLE = 'baseline_master_lock';
export const CONTROL_TABLE = 'baseline_master_control';

export async function createBaselineSchema(sql: Sql): Promise<void> {
  const pg = sql.backend === 'postgresql';
  await sql.query(
    `CREATE TABLE IF NOT EXISTS ${LOCK_TABLE} (
       id VARCHAR(36) PRIMARY KEY,
       lock_name VARCHAR(255) NOT NULL UNIQUE,
       instance_id VARCHAR(255),
       ip_port VARCHAR(255),
       version VARCHAR(36),
       heartbeat_time BIGINT NOT NULL)`,
  );
  await sql.query(
    `CREATE TABLE IF NOT EXISTS ${CONTROL_TABLE} (
       id ${pg ? 'SERIAL' : 'INT AUTO_INCREMENT'} PRIMARY KEY,
       lock_name VARCHAR(255) NOT NULL,
       reason VARCHAR(1024),
       last_updated_time BIGINT)`,
  );
}
