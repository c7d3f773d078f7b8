// Who runs a group (or a lock with a quorum): each member holds a row of its
// own in the lock table, `<groupName>\u001f<hash of its instanceId>`, through
// an election of its own, so it renews it with its other locks and releases it
// when it leaves. A member is alive, as this replica sees it, while its row
// keeps changing: judged as a lease, on this replica's clock (invariant 1 of
// election.ts). One read of the group's rows per heartbeat serves the
// membership and the group's resources alike.

import {createHash} from 'crypto';
import debugFactory from 'debug';
import {SharedTimer, sharedTimersOf, SharedTimers, withTimeout} from '../clock';
import {LockElection} from '../election/election';
import {ElectionStore, FreedLock, GroupStore, LockRecord} from '../store/lock-store';
import {Clock, ElectionTimings} from '../types';
import {RenewedLock, unknownKind, WakeUp} from '../wake/messages';

const debug = debugFactory('loopback:master-job-executor:group');

/** Control characters cannot be in a name a user gives: member rows never clash with locks. */
const MEMBER_SEPARATOR = '\u001f';

export function memberLockName(groupName: string, instanceId: string): string {
  const id = createHash('sha256').update(instanceId).digest('hex').slice(0, 16);
  return `${groupName}${MEMBER_SEPARATOR}${id}`;
}

/** Whether a lock row is a member row (of any group). */
export function isMemberRow(lockName: string): boolean {
  return lockName.includes(MEMBER_SEPARATOR);
}

export interface Member {
  instanceId: string;
  hostname: string;
  self: boolean;
}

export interface MembershipOptions {
  groupName: string;
  instanceId: string;
  hostname: string;
  timings: ElectionTimings;
  store: ElectionStore & GroupStore;
  clock: Clock;
  /** Every read of the group's rows, received at `at`. */
  onRead?: (rows: LockRecord[], at: number) => void;
  /** The live members may have changed. */
  onChange: () => void;
  /** This replica's row is written: tell the others it joined. */
  onJoined?: (lockName: string) => void;
  onError?: (err: Error) => void;
}

export class Membership {
  readonly lockName: string;
  private readonly election: LockElection;
  private readonly timers: SharedTimers;
  /** Other members' rows, each with when this replica first saw it as it is. */
  private readonly seen = new Map<string, {record: LockRecord; at: number}>();
  private readTimer: SharedTimer | undefined;
  private expiryTimer: SharedTimer | undefined;
  private reading: Promise<void> | undefined;
  private readAgain = false;
  private stopped = false;

  constructor(private readonly options: MembershipOptions) {
    this.lockName = memberLockName(options.groupName, options.instanceId);
    this.timers = sharedTimersOf(options.clock);
    this.election = new LockElection({
      lockName: this.lockName,
      instanceId: options.instanceId,
      hostname: options.hostname,
      groupName: options.groupName,
      // Registered after initDelay, when its locks campaign: the others hand
      // resources over to it the moment they see it, so it must be ready.
      timings: options.timings,
      store: options.store,
      clock: options.clock,
      masterJob: {
        start: () => {
          debug('%s: joined as %s', options.groupName, options.instanceId);
          options.onJoined?.(this.lockName);
          options.onChange();
        },
        stop: () => options.onChange(),
      },
    });
    this.election.on('error', err => options.onError?.(err));
  }

  /** Registers this replica, and reads the group first at `firstReadAt`. */
  begin(firstReadAt: number): void {
    this.election.begin();
    this.scheduleRead(firstReadAt);
  }

  /** The members alive now, as this replica sees them, by instanceId. */
  live(): Member[] {
    const {leaseDuration} = this.options.timings;
    const now = this.options.clock.now();
    const members: Member[] = [];
    if (this.election.isMaster) {
      const {instanceId, hostname} = this.options;
      members.push({instanceId, hostname, self: true});
    }
    for (const {record, at} of this.seen.values()) {
      if (record.instanceId && now - at < leaseDuration) {
        members.push({instanceId: record.instanceId, hostname: record.hostname, self: false});
      }
    }
    return members.sort((a, b) => (a.instanceId < b.instanceId ? -1 : 1));
  }

  /**
   * A wake-up told by another replica: about another member's row (it
   * renewed, left, joined), or anything.
   */
  wake(message: WakeUp): void {
    switch (message.kind) {
      case 'anything':
        return this.readNow();
      case 'renewed':
        return this.seeRenewal(message.lockName, message.renewed);
      case 'released':
      case 'control':
        return this.seeFreed(message.lockName, message.freed);
      case 'joined':
        if (this.isOthersRow(message.lockName)) this.readNow();
        return;
      // About a queue or a checkpoint, not a row of the group.
      case 'submitted':
      case 'checkpoint':
        return;
      default:
        return this.wake(unknownKind(message));
    }
  }

  /** Whether `lockName` is the row of another member of this group. */
  private isOthersRow(lockName: string): boolean {
    const prefix = this.options.groupName + MEMBER_SEPARATOR;
    return lockName.startsWith(prefix) && lockName !== this.lockName;
  }

  /** Alive as of now: no read needed (PostgreSQL announces renewals). */
  private seeRenewal(lockName: string, {instanceId, renewalId}: RenewedLock): void {
    if (!this.isOthersRow(lockName)) return;
    const seen = this.seen.get(lockName);
    if (seen && seen.record.instanceId === instanceId && seen.record.renewalId !== renewalId) {
      seen.record = {...seen.record, renewalId};
      seen.at = this.options.clock.now();
      this.armExpiry();
    }
  }

  /** A member's row freed (it left): without `freed`, or a row not seen yet, a read. */
  private seeFreed(lockName: string, freed: FreedLock | undefined): void {
    if (!this.isOthersRow(lockName)) return;
    const left = freed && this.seen.get(lockName);
    if (left) {
      // Gone for sure: no need to wait for its lease, nor for a read.
      left.record = {...left.record, instanceId: '', renewalId: freed.renewalId};
      this.options.onChange();
    } else {
      this.readNow();
    }
  }

  /** Whether `lockName` is a row of this group: a member's or a resource's. */
  concerns(lockName: string): boolean {
    const {groupName} = this.options;
    return (
      lockName.startsWith(groupName + MEMBER_SEPARATOR) || lockName.startsWith(groupName + '/')
    );
  }

  /** Leaves: releases this replica's row (the others are told), reads no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of [this.readTimer, this.expiryTimer]) {
      if (timer) this.timers.cancel(timer);
    }
    await this.election.stop();
    await this.reading;
  }

  readNow(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    if (this.readTimer) this.timers.cancel(this.readTimer);
    this.readTimer = undefined;
    this.reading = this.read().finally(() => {
      this.reading = undefined;
      if (this.readAgain) {
        this.readAgain = false;
        this.readNow();
      }
    });
  }

  private scheduleRead(time: number): void {
    if (this.stopped) return;
    if (this.readTimer) this.timers.cancel(this.readTimer);
    this.readTimer = this.timers.at(time, () => {
      this.readTimer = undefined;
      this.readNow();
    });
  }

  private async read(): Promise<void> {
    const {store, clock, timings, groupName} = this.options;
    const {heartbeatInterval, leaseDuration} = timings;
    try {
      const rows = await withTimeout(
        clock,
        () => store.readGroup(groupName),
        heartbeatInterval,
        `${groupName}: read the group`,
      );
      if (this.stopped) return;
      const at = clock.now();
      // A member row gone from the table was deleted as dead or left (below,
      // by whoever judged it first): nobody counts it any longer.
      const present = new Set(rows.map(r => r.lockName));
      for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
      for (const record of rows) {
        if (!record.lockName.startsWith(groupName + MEMBER_SEPARATOR)) continue;
        if (record.lockName === this.lockName) continue;
        const previous = this.seen.get(record.lockName)?.record;
        const same =
          previous?.renewalId === record.renewalId && previous.instanceId === record.instanceId;
        if (!same) this.seen.set(record.lockName, {record, at});
      }
      // The row of a member that left, or that this replica judges dead (its
      // row unchanged for a lease, so it has stopped by its own deadline), is
      // deleted, compare-and-set on the row as seen: a replica that joins
      // later does not count it alive for a lease of its own, and the group's
      // read does not grow with every restart. Whoever deletes first wins.
      for (const [name, {record, at: since}] of this.seen) {
        if (!record.instanceId || at - since >= leaseDuration) {
          this.seen.delete(name);
          void store.forget(record).catch(err => this.options.onError?.(err));
        }
      }
      this.options.onRead?.(rows, at);
      this.options.onChange();
      this.armExpiry();
    } catch (err) {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    } finally {
      const now = clock.now();
      this.scheduleRead(
        Math.floor(now / heartbeatInterval) * heartbeatInterval + heartbeatInterval,
      );
    }
  }

  /** Tells of a member's death the moment its lease runs out, not at the next read. */
  private armExpiry(): void {
    if (this.expiryTimer) this.timers.cancel(this.expiryTimer);
    this.expiryTimer = undefined;
    const {leaseDuration} = this.options.timings;
    const now = this.options.clock.now();
    let first = Infinity;
    for (const {record, at} of this.seen.values()) {
      if (record.instanceId && at + leaseDuration > now)
        first = Math.min(first, at + leaseDuration);
    }
    if (first === Infinity || this.stopped) return;
    this.expiryTimer = this.timers.at(first, () => {
      this.expiryTimer = undefined;
      this.options.onChange();
      this.armExpiry();
    });
  }
}
