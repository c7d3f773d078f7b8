// The cluster checker on hand-made records: it must find each kind of
// violation, and accept what the election is allowed to do.

import {expect} from '@loopback/testlab';
import {
  checkCluster,
  checkMasterships,
  CheckOptions,
  CheckReport,
  ClusterLog,
  emptyLog,
  ExitRecord,
  FaultKind,
  FaultRecord,
  JobEvent,
  WriteEvent,
} from '../../cluster-kit';

const LOCK = 'L';
const OPTIONS: CheckOptions = {
  lockName: LOCK,
  recoveryBound: 2500,
  disableStopBound: 400,
  staleStopBound: 500,
  until: 100000,
};

function job(
  event: 'start' | 'stop',
  instanceId: string,
  fencingToken: number,
  mono: number,
  reason?: string,
): JobEvent {
  return {event, lockName: LOCK, instanceId, fencingToken, reason: reason ?? null, mono};
}

function write(
  instanceId: string,
  fencingToken: number,
  monoBefore: number,
  accepted = true,
): WriteEvent {
  return {
    event: 'write',
    lockName: LOCK,
    instanceId,
    fencingToken,
    accepted,
    monoBefore,
    monoAfter: monoBefore + 5,
  };
}

/** A fault aimed at `target` at `at`, from when a master is due again. */
function fault(kind: FaultKind, target: string, at: number): FaultRecord {
  return {kind, target, at, recoverFrom: at};
}

/** The exit of a replica the harness killed with SIGKILL. */
function killed(instanceId: string, at: number): ExitRecord {
  return {instanceId, at, code: null, signal: 'SIGKILL', causedBy: 'SIGKILL'};
}

/** a master from t=0 (token 1), stopping at `stop` for `reason`; b starting at `start` (token 2). */
function handedOver(stop: number, reason: string, start: number): JobEvent[] {
  return [job('start', 'a', 1, 0), job('stop', 'a', 1, stop, reason), job('start', 'b', 2, start)];
}

/** a master from t=0 (token 1); b taking over at `takeover` (token 2); a stopping at `stop` for `reason`. */
function overtaken(takeover: number, stop: number, reason: string): JobEvent[] {
  return [
    job('start', 'a', 1, 0),
    job('start', 'b', 2, takeover),
    job('stop', 'a', 1, stop, reason),
  ];
}

/** The checker's report on a log of these parts, with the bounds of OPTIONS (or some overridden). */
function check(parts: Partial<ClusterLog>, options: Partial<CheckOptions> = {}): CheckReport {
  return checkCluster({...emptyLog(), ...parts}, {...OPTIONS, ...options});
}

describe('cluster checker', () => {
  it('accepts a clean handover', () => {
    const report = check({jobs: handedOver(1000, 'stopped', 1010)});
    expect(report.violations).to.deepEqual([]);
    expect(report.tenures).to.have.length(2);
  });

  it('finds two masters at once', () => {
    const report = check({jobs: overtaken(500, 1000, 'expired')});
    expect(report.overlaps).to.equal(1);
    expect(report.violations[0]).to.match(
      /two masters: a \(token 1\) and b \(token 2\) for 500 ms/,
    );
  });

  it('excuses the overlap of a paused master, and counts its rejected stale write', () => {
    const report = check({
      jobs: overtaken(1500, 3001, 'expired'),
      writes: [write('a', 1, 100), write('b', 2, 1500), write('a', 1, 3000, false)],
      pauses: [{instanceId: 'a', from: 500, to: 3000}],
      faults: [fault('sigstop', 'a', 500)],
    });
    expect(report.violations).to.deepEqual([]);
    expect(report.fencedOverlaps).to.equal(1);
    expect(report.writes.staleRejected).to.equal(1);
    expect(report.recoveries[0].ms).to.equal(1000);
  });

  it('finds a paused master that goes on as master after waking', () => {
    const report = check({
      jobs: overtaken(1500, 4000, 'lost'),
      pauses: [{instanceId: 'a', from: 500, to: 3000}],
    });
    expect(report.violations).to.have.length(1);
    expect(report.violations[0]).to.match(
      /a \(token 1\) resumed at t=3000 after b took over, .* until t=4000/,
    );
  });

  it('judges a paused master by the pause under way at the takeover, not an earlier one', () => {
    const report = check({
      jobs: overtaken(2500, 4100, 'expired'),
      pauses: [
        {instanceId: 'a', from: 300, to: 700}, // short: a went on as master, rightly
        {instanceId: 'a', from: 1500, to: 4000},
      ],
    });
    expect(report.violations).to.deepEqual([]);
    expect(report.fencedOverlaps).to.equal(1);
  });

  it('attributes each leaderless gap to the last fault before it ended', () => {
    const report = check(
      {
        jobs: [
          ...handedOver(1000, 'expired', 1800),
          job('stop', 'b', 2, 3000, 'stopped'),
          job('start', 'c', 3, 3050),
        ],
        faults: [fault('partition', 'a', 200), fault('sigterm', 'b', 2990)],
      },
      {until: 4000},
    );
    expect(report.longestGap).to.containDeep({ms: 800, from: 1000, afterFault: 'partition'});
    expect(report.longestGap.byFault).to.deepEqual({partition: 800, sigterm: 50});
  });

  it('finds a write accepted with a lower token after a higher one', () => {
    const report = check({
      jobs: overtaken(1500, 3001, 'expired'),
      writes: [write('b', 2, 1500), write('a', 1, 3000, true)],
      pauses: [{instanceId: 'a', from: 500, to: 3000}],
    });
    expect(report.fencingFailures).to.equal(1);
    expect(report.violations[0]).to.match(/fencing failed: a's write with token 1/);
  });

  it('does not blame concurrent writes (neither completed before the other began)', () => {
    const w1 = {...write('b', 2, 1000), monoAfter: 1100};
    const w2 = {...write('a', 1, 1050), monoAfter: 1060};
    const report = check({writes: [w1, w2]});
    expect(report.fencingFailures).to.equal(0);
  });

  it('finds stop() on a replica that is not master, and a token that does not increase', () => {
    const report = check({
      jobs: [
        job('start', 'a', 2, 0),
        job('stop', 'b', 2, 100, 'lost'),
        job('stop', 'a', 2, 200),
        job('start', 'b', 2, 300),
      ],
    });
    expect(report.violations).to.have.length(2);
    expect(report.violations[0]).to.match(/stop\(\) \(token 2, lost\) ran on b/);
    expect(report.violations[1]).to.match(/token did not increase/);
  });

  it('ends the mastership of a SIGKILLed replica at the kill, and flags any other exit', () => {
    const report = check({
      jobs: [job('start', 'a', 1, 0), job('start', 'b', 2, 1500)],
      exits: [
        killed('a', 200),
        {instanceId: 'c', at: 300, code: 1, signal: null},
        {instanceId: 'd', at: 400, code: 1, signal: null, causedBy: 'SIGTERM'},
      ],
      faults: [fault('sigkill', 'a', 200)],
    });
    expect(report.processesLost).to.equal(1);
    expect(report.violations).to.have.length(2);
    expect(report.violations[0]).to.match(/c exited \(code 1/);
    expect(report.violations[1]).to.match(/d exited with code 1 .* after SIGTERM/);
    expect(report.recoveries[0].ms).to.equal(1300);
  });

  it('finds a recovery slower than the bound, and one still missing past it', () => {
    const slow = check({
      jobs: [job('start', 'a', 1, 0), job('start', 'b', 2, 3000)],
      exits: [killed('a', 100)],
      faults: [fault('sigkill', 'a', 100)],
    });
    expect(slow.violations[0]).to.match(/no master for 2900 ms \(bound 2500\) after sigkill of a/);
    const missing = check(
      {
        jobs: [job('start', 'a', 1, 0), job('stop', 'a', 1, 100, 'stopped')],
        faults: [fault('sigterm', 'a', 100)],
      },
      {until: 5000},
    );
    expect(missing.violations[0]).to.match(/no master for more than 4900 ms/);
    expect(missing.longestGap.ms).to.equal(4900);
  });

  it('finds a start while disabled, and a master that does not stop for the disable', () => {
    const report = check({
      jobs: handedOver(1000, 'disabled', 1200),
      disables: [{lockName: LOCK, sent: 100, from: 110, to: 2000}],
    });
    expect(report.violations).to.have.length(2);
    expect(report.violations[0]).to.match(
      /a stopped at t=1000 with reason disabled \(bound 400 ms/,
    );
    expect(report.violations[1]).to.match(/b started at t=1200 while the lock was disabled/);
  });

  describe('checkMasterships (every lock, nothing excused)', () => {
    const on = (lockName: string, e: JobEvent): JobEvent => ({...e, lockName});

    it("counts each start during another replica's mastership, lock by lock", () => {
      const report = checkMasterships({
        jobs: [
          on('X', job('start', 'a', 1, 0)),
          on('Y', job('start', 'b', 1, 5)),
          on('X', job('start', 'b', 2, 10)), // a still runs X
          on('X', job('start', 'c', 3, 20)), // a and b still run X
          on('X', job('stop', 'a', 1, 30, 'lost')),
        ],
        exits: [],
      });
      expect(report.overlaps).to.equal(3);
      expect(report.byLock.get('Y')!.overlaps).to.equal(0);
      expect(report.violations[0]).to.match(/^X: two masters: a \(token 1\) and b \(token 2\)/);
    });

    it('orders lines of equal time as they were recorded (a fake clock stands still)', () => {
      const handover = [
        job('start', 'a', 1, 0),
        job('stop', 'a', 1, 100),
        job('start', 'b', 2, 100),
      ];
      expect(checkMasterships({jobs: handover, exits: []}).overlaps).to.equal(0);
      const early = [job('start', 'a', 1, 0), job('start', 'b', 2, 100), job('stop', 'a', 1, 100)];
      expect(checkMasterships({jobs: early, exits: []}).overlaps).to.equal(1);
    });

    it('ends a mastership at the exit of its process, and takes lines without tokens', () => {
      const report = checkMasterships({
        jobs: [
          {...job('start', 'a', 0, 0), fencingToken: null},
          {...job('stop', 'b', 0, 50, 'deleted-stale-lock'), fencingToken: null},
          {...job('start', 'b', 0, 60), fencingToken: null},
        ],
        exits: [killed('a', 40)],
      });
      expect(report.overlaps).to.equal(0);
      expect(report.strayStops.map(e => e.instanceId)).to.deepEqual(['b']);
      expect(report.violations).to.have.length(1); // the stray stop; no token order without tokens
    });
  });
});
