// npm run check-history -- <file>
//
// Checks the history file of a run (cluster-kit/history.ts; `npm run chaos`
// writes one) with the kit's checkers: every lock's masterships (one master
// at a time, tokens increasing, stop() on the master only), and, when the
// history has them, the runs of queue tasks and the firings of cron
// schedules. Prints what it found; exits 1 on any violation.

import {
  checkCluster,
  checkCronFirings,
  checkMasterships,
  checkTaskRuns,
  readHistory,
} from '../cluster-kit';

function main(): number {
  const file = process.argv[2];
  if (!file || process.argv.length > 3) {
    console.error('Usage: npm run check-history -- <history file>');
    return 64;
  }
  const h = readHistory(file);
  const violations: string[] = [];
  // The lock the faults aimed at gets every rule (paused masters excused but fenced, recoveries in
  // bound); the others, mutual exclusion (a paused master excused), token order and stop() on the
  // master.
  const others = [...new Set(h.jobs.map(j => j.lockName))].filter(l => l !== h.run?.lockName);
  const masterships = checkMasterships(h, {
    lockNames: others,
    pauses: h.pauses,
    staleStopBound: h.run?.staleStopBound,
  });
  violations.push(...masterships.violations);
  if (h.run) {
    const report = checkCluster(h, {...h.run, until: Infinity});
    violations.push(...report.violations.map(v => `${h.run!.lockName}: ${v}`));
  }
  const queues = new Set(h.taskRuns.map(r => r.queue));
  for (const queue of queues) {
    const runs = h.taskRuns.filter(r => r.queue === queue).map(r => ({...r, key: r.id}));
    const report = checkTaskRuns({
      keys: [...new Set(runs.map(r => r.key))],
      runs,
      exits: h.exits,
      stops: h.jobs.filter(j => j.lockName === queue && j.event === 'stop'),
      pauses: h.pauses,
      staleStopBound: h.run?.staleStopBound,
    });
    violations.push(...report.violations.map(v => `queue ${queue}: ${v}`));
  }
  const schedules = new Set(h.cronFirings.map(f => f.lockName));
  for (const lockName of schedules) {
    const firings = h.cronFirings.filter(f => f.lockName === lockName);
    const report = checkCronFirings({
      firings: firings.map(f => ({
        scheduledAt: Date.parse(f.scheduledAt),
        instanceId: f.instanceId,
      })),
      // The history has the firings, not the claims: each firing stands for its own claim.
      claims: firings.map(f => ({
        scheduledAt: Date.parse(f.scheduledAt),
        instanceId: f.instanceId,
      })),
      exits: h.exits,
      periodMs: 1000,
    });
    // Without the claims, a gap cannot be told from an occurrence a killed master claimed.
    violations.push(
      ...report.violations.filter(v => !/ lost: /.test(v)).map(v => `cron ${lockName}: ${v}`),
    );
  }
  console.log(
    `${file}: ${h.jobs.length} start/stop lines over ${others.length + (h.run ? 1 : 0)} locks, ` +
      `${h.writes.length} writes, ${h.taskRuns.length} task runs, ${h.cronFirings.length} cron firings, ` +
      `${h.faults.length} faults, ${h.exits.length} exits: ${violations.length} violations`,
  );
  for (const v of violations.slice(0, 50)) console.log(`  ${v}`);
  return violations.length ? 1 : 0;
}

process.exit(main());
