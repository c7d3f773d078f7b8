// The database server as the benchmark measures it: the statements and row
// writes it counted (StatementCounter), restarts of a shared server by other
// users (ServerWatch), and retrying while it is unreachable. The SQL itself
// (pools, admin connections, URLs) is the cluster kit's (cluster-kit/sql.ts).

import {openSql, serverAddress, ServerAddress, Sql, SqlBackend} from '../../cluster-kit';

export interface StatementSnapshot {
  /** Statements (PostgreSQL: committed + rolled-back transactions; each autocommit statement is one). */
  statements: number;
  /** Rows inserted + updated + deleted. */
  rowsWritten: number;
}

/**
 * Reads the server's own statistics. PostgreSQL: pg_stat_database of the
 * benchmark database, read from a connection to another database (so the
 * reads do not count). MariaDB/MySQL has no per-database counter without
 * performance_schema: the global Questions counter (server-wide; any other
 * client of the server adds to it) minus our own SHOW and the server watch's polls.
 */
export class StatementCounter {
  private readonly admin: Sql;

  /**
   * `serverWide`: the harness's other connections that do not reach the bench
   * database; they count only in MySQL's server-wide counter, which must not
   * charge them to the replicas (the server watch polls twice a second).
   */
  constructor(
    private readonly backend: SqlBackend,
    private readonly database: string,
    private readonly serverWide: {readonly sent: number}[] = [],
    address: ServerAddress = serverAddress(backend),
  ) {
    this.admin = openSql(backend, address, backend === 'postgresql' ? 'postgres' : '', 1, true);
  }

  snapshot(): Promise<StatementSnapshot> {
    return retrying(() => this.read());
  }

  private async read(): Promise<StatementSnapshot> {
    if (this.backend === 'postgresql') {
      const {rows} = await this.admin.query(
        `SELECT xact_commit + xact_rollback AS s, tup_inserted + tup_updated + tup_deleted AS w
         FROM pg_stat_database WHERE datname = ?`,
        [this.database],
      );
      return {statements: Number(rows[0]?.s ?? 0), rowsWritten: Number(rows[0]?.w ?? 0)};
    }
    const {rows} = await this.admin.query(
      `SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Handler_write', 'Handler_update', 'Handler_delete')`,
    );
    const v = new Map(rows.map(r => [String(r.Variable_name), Number(r.Value)]));
    return {
      statements:
        (v.get('Questions') ?? 0) -
        this.admin.sent -
        this.serverWide.reduce((a, x) => a + x.sent, 0),
      rowsWritten:
        (v.get('Handler_write') ?? 0) +
        (v.get('Handler_update') ?? 0) +
        (v.get('Handler_delete') ?? 0),
    };
  }

  close(): Promise<void> {
    return this.admin.close();
  }
}

/**
 * Other users of this machine may restart the database server mid-run (the
 * outage tests do). Polls the server's start time; a sample whose interval
 * overlaps a restart (or an unreachable server) is disturbed and redone.
 */
export class ServerWatch {
  private readonly admin: Sql;
  private timer: NodeJS.Timeout | undefined;
  private startedAt: string | undefined;
  private lastOk = 0;
  private downSince: number | undefined;
  /** [from, to] on the monotonic clock of `now`. */
  readonly disturbances: [number, number][] = [];

  constructor(
    private readonly backend: SqlBackend,
    private readonly now: () => number,
    address: ServerAddress = serverAddress(backend),
  ) {
    this.admin = openSql(backend, address, backend === 'postgresql' ? 'postgres' : '', 1, true);
  }

  /** Statements the watch sent (see StatementCounter). */
  get sent(): number {
    return this.admin.sent;
  }

  start(): void {
    const poll = async () => {
      const t = this.now();
      try {
        const sql =
          this.backend === 'postgresql'
            ? 'SELECT pg_postmaster_start_time()::text AS t'
            : "SELECT VARIABLE_VALUE AS t FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'";
        const {rows} = await this.admin.query(sql);
        let started = String(rows[0]?.t ?? '');
        if (this.backend === 'mysql')
          started = String(Math.round(Date.now() / 1000 - Number(started)));
        const restarted =
          this.startedAt !== undefined &&
          (this.backend === 'postgresql'
            ? started !== this.startedAt
            : Math.abs(Number(started) - Number(this.startedAt)) > 2);
        if (this.downSince !== undefined || restarted) {
          this.disturbances.push([this.downSince ?? this.lastOk, this.now()]);
          this.downSince = undefined;
        }
        this.startedAt = started;
        this.lastOk = this.now();
      } catch {
        this.downSince ??= t;
      }
      this.timer = setTimeout(() => {
        void poll();
      }, 500);
    };
    void poll();
  }

  /** Whether [from, to] (give or take a second) overlaps a restart or an outage. */
  disturbed(from: number, to: number): boolean {
    if (this.downSince !== undefined) return true;
    return this.disturbances.some(([a, b]) => a <= to + 1000 && b >= from - 1000);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.admin.close().catch(() => {});
  }
}

/** Retries `work` while the server is unreachable, for `ms` at most. */
export async function retrying<T>(work: () => Promise<T>, ms = 90000): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await work();
    } catch (err) {
      if (Date.now() - started > ms) throw err;
      await new Promise(resolve => setTimeout(resolve, 500));
    }
  }
}
