import {expect} from '@loopback/testlab';
import {LockChange} from '../../src';
import {LocalNotifier} from '../../src/wake/local';
import {encodePayload, parsePayload} from '../../src/wake/codec';

describe('notifier payload', () => {
  it('carries names, and the token and renewalId of freed locks, through a round trip', () => {
    const changes: LockChange[] = [
      {lockName: 'A'},
      {lockName: 'B', freed: {fencingToken: 7, renewalId: 'r-7'}},
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('["A",["B",7,"r-7"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
  });

  it("carries an operator's disable or enable", () => {
    const changes: LockChange[] = [
      {lockName: 'A', control: 'disabled'},
      {lockName: 'B', control: 'enabled'},
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('[["A","disabled"],["B","enabled"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
  });

  it('carries, with an enable, what the lock was left with when it was free', () => {
    const changes: LockChange[] = [
      {lockName: 'A', control: 'enabled', freed: {fencingToken: 3, renewalId: 'r-3'}},
    ];
    const payload = encodePayload(changes);
    expect(payload).to.equal('[["A","enabled",3,"r-3"]]');
    expect(parsePayload(payload)).to.deepEqual(changes);
    // As PostgreSQL's json_build_array writes it.
    expect(parsePayload('[["A", "enabled", 3, "r-3"]]')).to.deepEqual(changes);
  });

  it('wakes every lock (undefined) for a payload it cannot trust whole', () => {
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
      expect(parsePayload(payload)).to.be.undefined();
    }
  });

  it('carries a renewal announcement: the holder, the renewalId written, each lock with its token', () => {
    // As PostgreSQL's json_build_object writes it.
    const payload =
      '{"renewed" : "replica-1", "renewalId" : "r-9", "locks" : [["A", 3], ["B", 7]]}';
    expect(parsePayload(payload)).to.deepEqual([
      {lockName: 'A', renewed: {instanceId: 'replica-1', fencingToken: 3, renewalId: 'r-9'}},
      {lockName: 'B', renewed: {instanceId: 'replica-1', fencingToken: 7, renewalId: 'r-9'}},
    ]);
    for (const bad of [
      '{"renewed": "", "renewalId": "r", "locks": [["A", 1]]}',
      '{"renewed": "x", "renewalId": "", "locks": [["A", 1]]}',
      '{"renewed": "x", "renewalId": "r", "locks": [["A", 0]]}',
      '{"renewed": "x", "renewalId": "r", "locks": [["A"]]}',
      '{"renewed": "x", "renewalId": "r", "locks": "A"}',
      '{"renewed": 1, "renewalId": "r", "locks": []}',
    ]) {
      expect(parsePayload(bad)).to.be.undefined();
    }
  });

  it('says "any lock" rather than exceed the 8000 bytes PostgreSQL allows', () => {
    const many = Array.from({length: 300}, (_, i) => ({
      lockName: `LOCK-${i}`,
      freed: {fencingToken: i + 1, renewalId: '0b5d2c4e-6a0e-4a55-9d8e-0f1d2b3c4d5e'},
    }));
    expect(encodePayload(many)).to.equal('*');
    expect(parsePayload(encodePayload(many))).to.be.undefined();
  });
});

describe('LocalNotifier', () => {
  it('delivers to the subscribers sharing the datasource, after the publishing turn', async () => {
    const dataSource = {};
    const heard: (LockChange | undefined)[] = [];
    const other: (LockChange | undefined)[] = [];
    const unsubscribe = new LocalNotifier(dataSource).subscribe(c => heard.push(c));
    new LocalNotifier({}).subscribe(c => other.push(c));
    const change = {lockName: 'A', freed: {fencingToken: 2, renewalId: 'r'}};
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
