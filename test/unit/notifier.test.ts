import {expect} from '@loopback/testlab';
import {WakeUp} from '../../src/extension';
import {encodePayload, parsePayload} from '../../src/wake/codec';
import {LocalNotifier} from '../../src/wake/local';
import {ANYTHING, describe as describeWakeUp, WakeUpKind} from '../../src/wake/messages';

// The payloads are those of 0.1.0, byte for byte: replicas of both versions understand each other.
describe('notifier payload', () => {
  it('carries a join, and the token and renewalId of freed locks, through a round trip', () => {
    const changes: WakeUp[] = [
      {kind: 'joined', lockName: 'A'},
      {kind: 'released', lockName: 'B', freed: {fencingToken: 7, renewalId: 'r-7'}},
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('["A",["B",7,"r-7"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
  });

  it("carries an operator's disable or enable", () => {
    const changes: WakeUp[] = [
      {kind: 'control', lockName: 'A', control: 'disabled'},
      {kind: 'control', lockName: 'B', control: 'enabled'},
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('[["A","disabled"],["B","enabled"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
  });

  it('carries, with an enable, what the lock was left with when it was free', () => {
    const changes: WakeUp[] = [
      {
        kind: 'control',
        lockName: 'A',
        control: 'enabled',
        freed: {fencingToken: 3, renewalId: 'r-3'},
      },
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('[["A","enabled",3,"r-3"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
    // As PostgreSQL's json_build_array writes it.
    expect(parsePayload('[["A", "enabled", 3, "r-3"]]')).to.deepEqual(changes);
  });

  it('carries a task submitted and a checkpoint saved', () => {
    const changes: WakeUp[] = [
      {kind: 'submitted', lockName: 'Q'},
      {kind: 'checkpoint', lockName: 'C'},
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('[["Q","submitted"],["C","checkpoint"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
  });

  it('says "any lock" for anything, and hears "any lock" as anything', () => {
    expect(encodePayload([ANYTHING])).to.equal('*');
    expect(encodePayload([{kind: 'joined', lockName: 'A'}, ANYTHING])).to.equal('*');
    expect(parsePayload('*')).to.deepEqual([{kind: 'anything'}]);
    expect(encodePayload([])).to.equal('[]');
    expect(parsePayload('[]')).to.deepEqual([]);
  });

  it('sends a renewal given to publish() as its name alone (renewals announce themselves in SQL)', () => {
    const renewed: WakeUp = {
      kind: 'renewed',
      lockName: 'A',
      renewed: {instanceId: 'x', fencingToken: 2, renewalId: 'r'},
    };
    expect(encodePayload([renewed])).to.equal('["A"]');
  });

  it('wakes every lock (anything) for a payload it cannot trust whole', () => {
    for (const payload of [
      '*',
      undefined,
      'not json',
      '{"A":1}',
      '["A", 3]',
      '[["B", 0, "r"]]',
      '[["B", 1.5, "r"]]',
      '[["B", 1, ""]]',
      '[["B", 1]]',
      '[["B", "paused"]]',
      '[[1, "disabled"]]',
      '[[1, 1, "r"]]',
      '[["B", "enabled", 0, "r"]]',
      '[["B", "enabled", 1]]',
      '[["B", "enabled", 1, "r", 2]]',
      '[["B", "enabled", "r", 1]]',
    ]) {
      expect(parsePayload(payload)).to.deepEqual([ANYTHING]);
    }
  });

  it('carries a renewal announcement: the holder, the renewalId written, each lock with its token', () => {
    // As PostgreSQL's json_build_object writes it.
    const payload =
      '{"renewed" : "replica-1", "renewalId" : "r-9", "locks" : [["A", 3], ["B", 7]]}';
    expect(parsePayload(payload)).to.deepEqual([
      {
        kind: 'renewed',
        lockName: 'A',
        renewed: {instanceId: 'replica-1', fencingToken: 3, renewalId: 'r-9'},
      },
      {
        kind: 'renewed',
        lockName: 'B',
        renewed: {instanceId: 'replica-1', fencingToken: 7, renewalId: 'r-9'},
      },
    ]);
    for (const bad of [
      '{"renewed": "", "renewalId": "r", "locks": [["A", 1]]}',
      '{"renewed": "x", "renewalId": "", "locks": [["A", 1]]}',
      '{"renewed": "x", "renewalId": "r", "locks": [["A", 0]]}',
      '{"renewed": "x", "renewalId": "r", "locks": [["A"]]}',
      '{"renewed": "x", "renewalId": "r", "locks": "A"}',
      '{"renewed": 1, "renewalId": "r", "locks": []}',
    ]) {
      expect(parsePayload(bad)).to.deepEqual([ANYTHING]);
    }
  });

  it('says "any lock" rather than exceed the 8000 bytes PostgreSQL allows', () => {
    const many = Array.from({length: 300}, (_, i): WakeUp => ({
      kind: 'released',
      lockName: `LOCK-${i}`,
      freed: {fencingToken: i + 1, renewalId: '0b5d2c4e-6a0e-4a55-9d8e-0f1d2b3c4d5e'},
    }));
    expect(encodePayload(many)).to.equal('*');
    expect(parsePayload(encodePayload(many))).to.deepEqual([ANYTHING]);
  });
});

describe('wake-up messages', () => {
  it('describes every kind in one line for the debug log', () => {
    const freed = {fencingToken: 3, renewalId: 'r'};
    const lines: Record<WakeUpKind, string> = {
      released: describeWakeUp({kind: 'released', lockName: 'A', freed}),
      control: describeWakeUp({kind: 'control', lockName: 'A', control: 'enabled', freed}),
      renewed: describeWakeUp({
        kind: 'renewed',
        lockName: 'A',
        renewed: {instanceId: 'x', fencingToken: 3, renewalId: 'r'},
      }),
      submitted: describeWakeUp({kind: 'submitted', lockName: 'A'}),
      checkpoint: describeWakeUp({kind: 'checkpoint', lockName: 'A'}),
      joined: describeWakeUp({kind: 'joined', lockName: 'A'}),
      anything: describeWakeUp(ANYTHING),
    };
    expect(lines).to.deepEqual({
      released: 'A released (token 3)',
      control: 'A enabled (free, token 3)',
      renewed: 'A renewed by x (token 3)',
      submitted: 'A: a task submitted',
      checkpoint: 'A: a checkpoint saved',
      joined: 'A joined',
      anything: 'anything may have changed',
    });
    // A message of no known kind (from a notifier an app bound) counts as anything.
    expect(describeWakeUp({kind: 'paused', lockName: 'A'} as unknown as WakeUp)).to.equal(
      'anything may have changed',
    );
  });
});

describe('LocalNotifier', () => {
  it('delivers to the subscribers sharing the datasource, after the publishing turn', async () => {
    const dataSource = {};
    const heard: WakeUp[] = [];
    const other: WakeUp[] = [];
    const unsubscribe = new LocalNotifier(dataSource).subscribe(c => heard.push(c));
    new LocalNotifier({}).subscribe(c => other.push(c));
    const change: WakeUp = {
      kind: 'released',
      lockName: 'A',
      freed: {fencingToken: 2, renewalId: 'r'},
    };
    new LocalNotifier(dataSource).publish([change]);
    expect(heard).to.deepEqual([]);
    await new Promise(resolve => setImmediate(resolve));
    expect(heard).to.deepEqual([change]);
    expect(other).to.deepEqual([]);
    unsubscribe();
    new LocalNotifier(dataSource).publish([change]);
    await new Promise(resolve => setImmediate(resolve));
    expect(heard).to.have.length(1);
  });
});
