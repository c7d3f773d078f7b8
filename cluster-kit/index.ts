// The cluster kit: one toolkit for the cluster tests, the benchmark and
// `npm run chaos` (not part of the package). Real replica processes and their
// faults (cluster.ts, replica.ts), the live record they print into (log.ts),
// the one checker of masterships (checker.ts), random faults (chaos.ts), the
// database servers under them (database-server.ts, private-server.ts, sql.ts),
// PgBouncer in front of PostgreSQL (pgbouncer.ts)
// and a proxy in front of them (tcp-proxy.ts),
// HTTP to the replicas (http.ts), and time and waiting (time.ts).

export * from './chaos';
export * from './chaos-work';
export * from './checker';
export * from './cluster';
export * from './database-server';
export * from './http';
export * from './log';
export * from './pgbouncer';
export * from './private-server';
export * from './replica';
export * from './snapshot';
export * from './sql';
export * from './tcp-proxy';
export * from './time';
export * from './work-checker';
export * from './history';
