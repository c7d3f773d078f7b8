// The history file of a run (cluster-kit/history.ts): written in order of
// time, read back to the same record, a bad line named; and
// `npm run check-history` exits 0 on a clean history, 1 on one with two
// masters at once, naming the lock.

import {expect} from '@loopback/testlab';
import {execFile} from 'child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'fs';
import os from 'os';
import path from 'path';
import {promisify} from 'util';
import {EventLog, readHistory, writeHistory} from '../../cluster-kit';

const run = promisify(execFile);
const SCRIPT = path.resolve(__dirname, '../../scripts/check-history.js');

function record(overlap: boolean): EventLog {
  const log = new EventLog();
  const job = (event: 'start' | 'stop', instanceId: string, fencingToken: number, mono: number) =>
    log.addJob({
      event,
      lockName: 'L',
      instanceId,
      fencingToken,
      reason: event === 'stop' ? 'lost' : null,
      mono,
    });
  job('start', 'a', 1, 10);
  if (!overlap) job('stop', 'a', 1, 20);
  job('start', 'b', 2, 30);
  log.addLine({
    event: 'task',
    queue: 'Q',
    taskId: 1,
    id: 'k1',
    attempt: 1,
    instanceId: 'b',
    fencingToken: 2,
    mono: 35,
  } as never);
  log.addLine({
    event: 'cron',
    lockName: 'C',
    instanceId: 'b',
    fencingToken: 1,
    scheduledAt: '2026-01-01T00:00:00.000Z',
    at: '2026-01-01T00:00:00.002Z',
    mono: 40,
  } as never);
  // Killed before b started; with `overlap`, only after: two masters from 30 to 50.
  const killedAt = overlap ? 50 : 25;
  log.faults.push({kind: 'sigkill', target: 'a', at: killedAt, recoverFrom: killedAt});
  log.addExit({instanceId: 'a', at: killedAt, code: null, signal: 'SIGKILL', causedBy: 'SIGKILL'});
  return log;
}

describe('history files', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'mje-history-'))));
  afterEach(() => rmSync(dir, {recursive: true, force: true}));

  it('writes one line per event in order of time, and reads the same record back', () => {
    const file = path.join(dir, 'h.jsonl');
    const log = record(false);
    expect(writeHistory(file, log)).to.equal(7);
    const times = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map(l => JSON.parse(l).t);
    expect(times).to.deepEqual([...times].sort((a, b) => a - b));
    const back = readHistory(file);
    expect(back.jobs).to.deepEqual(log.jobs);
    expect(back.exits).to.deepEqual(log.exits);
    expect(back.faults).to.deepEqual(log.faults);
    expect(back.taskRuns).to.deepEqual(log.taskRuns);
    expect(back.cronFirings).to.deepEqual(log.cronFirings);
  });

  it('carries the run: the lock the faults aimed at and the bounds, checked with every rule', async () => {
    const file = path.join(dir, 'run.jsonl');
    const bounds = {lockName: 'L', recoveryBound: 2500, disableStopBound: 400, staleStopBound: 500};
    writeHistory(file, record(true), bounds);
    expect(JSON.parse(readFileSync(file, 'utf8').split('\n')[0])).to.containDeep({
      kind: 'run',
      ...bounds,
    });
    expect(readHistory(file).run).to.deepEqual(bounds);
    const failed = await run(process.execPath, [SCRIPT, file]).then(
      () => undefined,
      (err: {code: number; stdout: string}) => err,
    );
    expect(failed?.code).to.equal(1);
    expect(failed?.stdout).to.match(/^ {2}L: .*two masters/m);
  });

  it('names a line it cannot read', () => {
    const file = path.join(dir, 'bad.jsonl');
    writeFileSync(file, '{"kind":"start","t":1}\n{"kind":"teleport","t":2}\n');
    expect(() => readHistory(file)).to.throw(/bad\.jsonl:2: unknown kind "teleport"/);
  });

  it('check-history: exit 0 on a clean history, 1 naming the lock of two masters at once', async () => {
    const clean = path.join(dir, 'clean.jsonl');
    writeHistory(clean, record(false));
    const ok = await run(process.execPath, [SCRIPT, clean]);
    expect(ok.stdout).to.match(/: 0 violations/);
    const broken = path.join(dir, 'broken.jsonl');
    writeHistory(broken, record(true));
    const failed = await run(process.execPath, [SCRIPT, broken]).then(
      () => undefined,
      (err: {code: number; stdout: string}) => err,
    );
    expect(failed?.code).to.equal(1);
    expect(failed?.stdout).to.match(/^ {2}L: /m);
  });
});
