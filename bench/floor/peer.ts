// The physical floor of a graceful handoff on PostgreSQL, for the bench: the
// same two statements as ours (the release UPDATE with its NOTIFY, then the
// takeover UPDATE of the replica that hears it) on bare `pg`, in two small
// processes: no LoopBack, no election, no job. Run by bench/scenarios/floor.ts:
//   node peer.js releaser|taker   (FLOOR_URL: the database)
// The releaser releases on SIGTERM; the taker prints a `start` line with
// CLOCK_MONOTONIC ms (`mono`) when its takeover committed. Both warm their
// connection first, as a replica's is warm.

const pg = require('pg');

const TABLE = 'bench_floor_lock';
const mono = () => Number(process.hrtime.bigint()) / 1e6;

async function main(role: string): Promise<void> {
  const client = new pg.Client({connectionString: process.env.FLOOR_URL});
  await client.connect();
  if (role === 'releaser') {
    process.on('SIGTERM', () => {
      client
        .query(
          `WITH u AS (UPDATE ${TABLE} SET holder = '', token = token + 1 ` +
            `WHERE name = 'X' AND holder = 'releaser' RETURNING token) ` +
            `SELECT pg_notify('bench_floor', (SELECT token::text FROM u))`,
        )
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    });
  } else {
    const listener = new pg.Client({connectionString: process.env.FLOOR_URL});
    await listener.connect();
    await listener.query('LISTEN bench_floor');
    listener.on('notification', async () => {
      const r = await client.query(
        `UPDATE ${TABLE} SET holder = 'taker', token = token + 1 ` +
          `WHERE name = 'X' AND holder = '' RETURNING token`,
      );
      if (r.rowCount === 1) console.log(JSON.stringify({event: 'start', mono: mono()}));
    });
  }
  // Warm the backend (catalog caches, the statement's plan) as a replica's
  // connection is by its renewals and polls: a cold one's first statement
  // costs a few ms more, which no handoff of ours pays.
  await client.query(`UPDATE ${TABLE} SET token = token WHERE name = 'X' AND holder = 'nobody'`);
  await client.query(`SELECT pg_notify('bench_floor_warm', '')`);
  console.log(JSON.stringify({event: 'ready'}));
}

main(process.argv[2]).catch(err => {
  console.error(err.message);
  process.exit(1);
});
