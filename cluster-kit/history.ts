// The history of a run as a file: one JSON line per start, stop, fenced
// write, task run, cron firing, fault, pause, exit and disable, each with its
// monotonic time (`t`, CLOCK_MONOTONIC ms) and, where it has one, the fencing
// token; in order of time. Written at the end of a chaos run, read back by
// `npm run check-history -- <file>`, which checks it with the kit's checkers.

import {readFileSync, writeFileSync} from 'fs';
import type {CheckOptions, ClusterLog, FaultRecord} from './checker';
import type {CronFiring, TaskRun} from './log';

/** What a history holds: the record of an EventLog. */
export interface History extends ClusterLog {
  taskRuns: TaskRun[];
  cronFirings: CronFiring[];
  /** The first line, if the run wrote one: the lock its faults aimed at and the checker's bounds. */
  run?: Omit<CheckOptions, 'until'>;
}

type Line = {kind: string; t: number} & Record<string, unknown>;

export function historyLines(h: History): string[] {
  const lines: Line[] = [
    ...h.jobs.map(e => ({...e, kind: e.event, t: e.mono})),
    ...h.writes.map(w => ({...w, kind: 'write', t: w.monoBefore})),
    ...h.taskRuns.map(r => ({...r, kind: 'task', t: r.mono})),
    ...h.cronFirings.map(f => ({...f, kind: 'cron', t: f.mono})),
    ...h.faults.map(f => ({...f, fault: f.kind, kind: 'fault', t: f.at})),
    ...h.pauses.map(p => ({...p, kind: 'pause', t: p.from})),
    ...h.exits.map(x => ({...x, kind: 'exit', t: x.at})),
    ...h.disables.map(d => ({...d, kind: 'disable', t: d.sent})),
  ];
  lines.sort((a, b) => a.t - b.t);
  if (h.run) lines.unshift({...h.run, kind: 'run', t: lines[0]?.t ?? 0});
  return lines.map(l => JSON.stringify(l));
}

export function writeHistory(file: string, h: Omit<History, 'run'>, run?: History['run']): number {
  const lines = historyLines({...h, run});
  writeFileSync(file, lines.join('\n') + '\n');
  return lines.length;
}

/** Reads a history file back; a line it does not know is an error naming the line. */
export function readHistory(file: string): History {
  const h: History = {
    jobs: [],
    writes: [],
    faults: [],
    pauses: [],
    exits: [],
    disables: [],
    taskRuns: [],
    cronFirings: [],
  };
  const text = readFileSync(file, 'utf8');
  text.split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    let line: Line;
    try {
      line = JSON.parse(raw);
    } catch {
      throw new Error(`${file}:${i + 1}: not JSON`);
    }
    const {kind, t, ...rest} = line;
    if (typeof t !== 'number') throw new Error(`${file}:${i + 1}: no time (t)`);
    const lists: Record<string, object[]> = {
      start: h.jobs,
      stop: h.jobs,
      write: h.writes,
      task: h.taskRuns,
      cron: h.cronFirings,
      pause: h.pauses,
      exit: h.exits,
      disable: h.disables,
    };
    if (kind === 'fault') {
      const {fault, ...f} = rest;
      h.faults.push({...f, kind: fault} as unknown as FaultRecord);
    } else if (kind === 'run') h.run = rest as unknown as History['run'];
    else if (Object.prototype.hasOwnProperty.call(lists, kind)) lists[kind].push(rest);
    else throw new Error(`${file}:${i + 1}: unknown kind ${JSON.stringify(kind)}`);
  });
  return h;
}
