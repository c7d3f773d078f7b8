// The checks of queue task runs and cron firings (cluster-kit/work-checker.ts)
// fed a clean record, then each kind of violation.

import {expect} from '@loopback/testlab';
import {
  checkCronFirings,
  checkTaskRuns,
  ExitRecord,
  SubmitRecord,
  TaskRunRecord,
} from '../../cluster-kit';

const kill = (instanceId: string, at: number): ExitRecord => ({
  instanceId,
  at,
  code: null,
  signal: 'SIGKILL',
  causedBy: 'SIGKILL',
});
const run = (
  key: string,
  taskId: number,
  mono: number,
  instanceId = 'a',
  fencingToken = 1,
  attempt = 1,
): TaskRunRecord => ({
  key,
  taskId,
  attempt,
  instanceId,
  fencingToken,
  mono,
});

describe('work checker: queue task runs', () => {
  const keys = ['k1', 'k2', 'k3'];
  const clean = [
    run('k1', 1, 10),
    run('k2', 2, 20),
    run('k2', 2, 40, 'b', 2, 2),
    run('k3', 3, 50, 'b', 2),
  ];
  const exits = [kill('a', 30)];
  const submits: SubmitRecord[] = [
    {key: 'k1', sentAt: 0, answeredAt: 1},
    {key: 'k2', sentAt: 2, answeredAt: 3},
    {key: 'k3', sentAt: 4, answeredAt: 5},
  ];

  it('passes a clean record, counting the rerun after the SIGKILL', () => {
    const report = checkTaskRuns({keys, runs: clean, exits, submits, done: keys});
    expect(report.violations).to.deepEqual([]);
    expect(report.reruns).to.equal(1);
    expect(report.tenures).to.equal(2);
  });

  it('counts a rerun as caused only if its master ended within endBound of the first run', () => {
    // a was killed 10 ms after k2's first run began: within 100, not within 5.
    expect(checkTaskRuns({keys, runs: clean, exits, endBound: 100}).violations).to.deepEqual([]);
    expect(checkTaskRuns({keys, runs: clean, exits, endBound: 5}).violations).to.deepEqual([
      'task k2 ran twice, but its first master a (token 1) neither was SIGKILLed nor stopped during that run',
    ]);
    const stops = [{instanceId: 'a', fencingToken: 1, mono: 2000}];
    expect(
      checkTaskRuns({keys, runs: clean, exits: [], stops, endBound: 100}).violations,
    ).to.have.length(1);
  });

  it("sets apart a run of a master paused past the next master's run of the task, if it stopped soon after waking", () => {
    // b (token 2) ran k1 at 100 while a (token 1) was paused (50-150); a ran it at 151, stopped at 160.
    const runs = [run('k1', 1, 100, 'b', 2, 2), run('k1', 1, 151, 'a', 1, 1)];
    const pauses = [{instanceId: 'a', from: 50, to: 150}];
    const soon = [{instanceId: 'a', fencingToken: 1, mono: 160}];
    const input = {keys: ['k1'], runs, exits: [], pauses, staleStopBound: 500};
    const excused = checkTaskRuns({...input, stops: soon});
    expect(excused.violations).to.deepEqual([]);
    expect(excused.staleRuns).to.equal(1);
    // It went on as master long after waking: not excused.
    const late = [{instanceId: 'a', fencingToken: 1, mono: 5000}];
    expect(checkTaskRuns({...input, stops: late}).violations).to.not.be.empty();
    // Not paused at all: not excused.
    expect(checkTaskRuns({...input, pauses: [], stops: soon}).violations).to.not.be.empty();
  });

  it('finds a lost task, and one not done', () => {
    const lost = checkTaskRuns({keys, runs: clean.filter(r => r.key !== 'k3'), exits});
    expect(lost.violations).to.deepEqual(['task k3 lost: never ran']);
    const notDone = checkTaskRuns({keys, runs: clean, exits, done: ['k1', 'k2']});
    expect(notDone.violations).to.deepEqual(['task k3 ran but is not done']);
  });

  it('finds a rerun without a SIGKILL, a third run, a rerun with a lower token or a skipped attempt', () => {
    expect(checkTaskRuns({keys, runs: clean, exits: []}).violations).to.deepEqual([
      'task k2 ran twice, but its first master a (token 1) neither was SIGKILLed nor stopped during that run',
    ]);
    // A stop line of that tenure after the run began (SIGTERM, a lost lease) justifies the rerun too.
    const stops = [{instanceId: 'a', fencingToken: 1, mono: 25}];
    expect(checkTaskRuns({keys, runs: clean, exits: [], stops}).violations).to.deepEqual([]);
    // A master that went on to later tasks had no reason to leave one behind.
    const movedOn = [...clean, run('k9', 9, 22)];
    expect(
      checkTaskRuns({keys, runs: movedOn, exits, stops}).violations.filter(v => /k2/.test(v)),
    ).to.deepEqual([
      'task k2 ran twice, but its first master a (token 1) ran later tasks after it',
    ]);
    const third = [...clean, run('k2', 2, 45, 'c', 3, 3)];
    expect(checkTaskRuns({keys, runs: third, exits}).violations).to.containEql(
      'task k2 ran 3 times',
    );
    const lower = clean.map(r =>
      r.key === 'k2' && r.instanceId === 'b' ? {...r, fencingToken: 1, instanceId: 'b'} : r,
    );
    expect(checkTaskRuns({keys, runs: lower, exits}).violations).to.containEql(
      "task k2: the rerun's token 1 is not above 1",
    );
    const skipped = clean.map(r =>
      r.key === 'k2' && r.instanceId === 'b' ? {...r, attempt: 3} : r,
    );
    expect(checkTaskRuns({keys, runs: skipped, exits}).violations).to.containEql(
      'task k2: the rerun is attempt 3, after attempt 1',
    );
  });

  it('finds a tenure out of order, and a task run before one answered before it was sent', () => {
    const swapped = [run('k1', 1, 10), run('k3', 3, 15), run('k2', 2, 20)];
    const report = checkTaskRuns({keys, runs: swapped, exits: [], submits});
    expect(report.violations).to.containEql('tenure a/1 ran task 2 after task 3');
    expect(report.violations).to.containEql(
      "task k3 ran before k2, whose submit was answered before k3's was sent",
    );
  });
});

describe('work checker: cron firings', () => {
  const s = (n: number) => Date.UTC(2026, 0, 1) + n * 1000;
  const firings = [
    {scheduledAt: s(0), instanceId: 'a'},
    {scheduledAt: s(2), instanceId: 'b'},
    {scheduledAt: s(3), instanceId: 'b'},
  ];
  const claims = [
    {scheduledAt: s(0), instanceId: 'a', outcome: 'ok'},
    {scheduledAt: s(1), instanceId: 'a', outcome: null}, // claimed, then a was killed
    {scheduledAt: s(2), instanceId: 'b', outcome: 'ok'},
    {scheduledAt: s(3), instanceId: 'b', outcome: 'ok'},
  ];
  const exits = [kill('a', 0)];

  it('passes a clean record, counting an occurrence claimed by a killed master', () => {
    expect(checkCronFirings({firings, claims, exits, periodMs: 1000})).to.deepEqual({
      violations: [],
      unfired: 1,
    });
  });

  it('finds an occurrence fired twice, one fired without its claim, and one lost', () => {
    const twice = checkCronFirings({
      firings: [...firings, {scheduledAt: s(2), instanceId: 'a'}],
      claims,
      exits,
      periodMs: 1000,
    });
    expect(twice.violations).to.deepEqual([
      `occurrence ${new Date(s(2)).toISOString()} fired 2 times (b, a)`,
    ]);
    const unclaimed = checkCronFirings({
      firings,
      claims: claims.filter(c => c.scheduledAt !== s(3)),
      exits,
      periodMs: 1000,
    });
    expect(unclaimed.violations).to.deepEqual([
      `occurrence ${new Date(s(3)).toISOString()} fired without its claim`,
    ]);
    const lost = checkCronFirings({firings, claims, exits: [], periodMs: 1000});
    expect(lost.violations).to.deepEqual([
      `occurrence ${new Date(s(1)).toISOString()} lost: neither fired nor claimed by a killed master`,
    ]);
  });

  it('excuses an occurrence its claimer did not fire because its mastership ended (a stop line after it), and only then', () => {
    // a was not killed: cut off after the claim, it stopped at 1.4 s.
    const ended = checkCronFirings({
      firings,
      claims,
      exits: [],
      stops: [{instanceId: 'a', at: s(1) + 400}],
      periodMs: 1000,
    });
    expect(ended).to.deepEqual({violations: [], unfired: 1});
    // Killed soon after the occurrence it claimed: not lost; killed a minute later: lost.
    const killedAt = (at: number) => new Map([['a', at]]);
    const soon = {firings, claims, exits, killedAt: killedAt(s(1) + 300), endBound: 3000};
    expect(checkCronFirings({...soon, periodMs: 1000}).violations).to.deepEqual([]);
    const late = {firings, claims, exits, killedAt: killedAt(s(61)), endBound: 3000};
    expect(checkCronFirings({...late, periodMs: 1000}).violations).to.have.length(1);
    // A stop long before the occurrence, or another master's, excuses nothing.
    for (const stops of [[{instanceId: 'a', at: s(-5)}], [{instanceId: 'b', at: s(1) + 400}]]) {
      expect(
        checkCronFirings({firings, claims, exits: [], stops, periodMs: 1000}).violations,
      ).to.have.length(1);
    }
  });
});
