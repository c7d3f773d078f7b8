// The floor under ours' graceful handoff on PostgreSQL: bench/floor/peer.ts
// (the same two statements on bare pg) timed as ours is, from the SIGTERM to
// the takeover, on a quiet machine after a random 0.3-1.0 s idle (idle
// processes wake slower than busy ones on this VM). What no implementation
// of the two-statement handoff can beat here.

import {ChildProcess, spawn} from 'child_process';
import path from 'path';
import {mono, openSql, sleep} from '../../cluster-kit';
import {BenchContext} from '../lib/context';
import {LaneResult} from '../lib/lane';

export async function floorRun(ctx: BenchContext, reps: number): Promise<LaneResult> {
  const {database} = ctx.options;
  const url = ctx.server.url;
  const sql = openSql('postgresql', ctx.server.address, database, 1, true);
  const script = path.join(path.dirname(ctx.scripts.baseline), '..', 'floor', 'peer.js');
  const samples: number[] = [];
  let errors = 0;
  try {
    await sql.query(
      'CREATE TABLE IF NOT EXISTS bench_floor_lock (name text PRIMARY KEY, holder text, token int)',
    );
    for (let i = 0; i < reps; i++) {
      await sql.query(
        "INSERT INTO bench_floor_lock VALUES ('X', 'releaser', 1) " +
          "ON CONFLICT (name) DO UPDATE SET holder = 'releaser'",
      );
      const releaser = peer(script, 'releaser', url);
      const taker = peer(script, 'taker', url);
      try {
        await Promise.all([releaser.line('ready'), taker.line('ready')]);
        await sleep(300 + Math.random() * 700);
        const started = taker.line('start');
        const t0 = mono();
        releaser.child.kill('SIGTERM');
        const line = await Promise.race([started, sleep(5000).then(() => undefined)]);
        if (line) samples.push(Number(line.mono) - t0);
        else errors++;
      } finally {
        releaser.child.kill('SIGKILL');
        taker.child.kill('SIGKILL');
      }
    }
  } finally {
    await sql.query('DROP TABLE IF EXISTS bench_floor_lock').catch(() => {});
    await sql.close();
  }
  return {
    samples,
    extra: {},
    unexpectedExits: 0,
    overlaps: 0,
    spuriousStops: 0,
    discarded: 0,
    errors,
  };
}

function peer(script: string, role: string, url: string) {
  const child: ChildProcess = spawn(process.execPath, [script, role], {
    env: {...process.env, FLOOR_URL: url},
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let buffer = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, i)));
      buffer = buffer.slice(i + 1);
      waiters.splice(0).forEach(w => w());
    }
  });
  const line = (event: string): Promise<Record<string, unknown>> =>
    new Promise(resolve => {
      const look = () => {
        const found = lines.find(l => l.event === event);
        if (found) resolve(found);
        else waiters.push(look);
      };
      look();
    });
  return {child, line};
}
