// A balanced group on one replica: one election per resource (lock
// `<groupName>/<resourceId>`), the membership, and the plan that says which
// member should own each resource (balance.ts). The plan only gates and nudges
// the elections: a member campaigns only for the resources the plan gives it,
// hands over (stop -> release -> the new owner starts) those it gives to
// another, and wakes the elections of those it should take. Safety stays the
// elections' own: one owner per resource whatever the plans say.

import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {sharedTimersOf, SharedTimer, withTimeout} from '../clock';
import {LockElection} from '../election/election';
import {ElectionStore, GroupStore, LockRecord} from '../store/lock-store';
import {
  Clock,
  ElectionTimings,
  GroupMember,
  GroupStatus,
  MasterGroup,
  MasterJob,
  StartGroupOptions,
} from '../types';
import {balance} from './balance';
import {Membership} from './membership';
import {ANYTHING, unknownKind, WakeUp} from '../wake/messages';

const debug = debugFactory('loopback:master-job-executor:group');

/**
 * How long the membership of a cold group must hold still before its members
 * claim their shares (a heartbeat, if shorter): joins are told at once, so a
 * second is long enough for replicas a deploy starts together to see each
 * other, and short enough that a cold group starts within initDelay + 2 s.
 */
const SETTLE_WINDOW = 1000;

export interface GroupOptions {
  groupName: string;
  resources: StartGroupOptions['resources'];
  job: MasterJob;
  minMembers: number;
  timings: ElectionTimings;
  instanceId: string;
  hostname: string;
  store: ElectionStore & GroupStore;
  clock: Clock;
  /** Checks a resource id; returns the problem, or undefined. */
  checkResource: (resourceId: string) => string | undefined;
  /** Each resource election, once made: for the executor's events and metrics. */
  onElection?: (election: LockElection) => void;
  /** This replica joined: tell the others, so they rebalance now. */
  onJoined?: (lockName: string) => void;
  /** Called once stop() has finished: the owner forgets the handle. */
  onStopped?: () => void;
}

export class GroupRunner extends EventEmitter implements MasterGroup {
  readonly groupName: string;
  private readonly elections = new Map<string, LockElection>();
  private readonly membership: Membership;
  /** The last plan: resourceId -> the member that should own it. */
  private plan = new Map<string, string>();
  /** Holders as last read: lockName -> row. */
  private rows = new Map<string, LockRecord>();
  private quorum = true;
  /**
   * In a cold group (no other member holds anything), claims nothing until
   * the membership, this replica included, has held still for the settle
   * window (or for a lease at most, if it keeps changing): replicas started
   * together then compute one plan, instead of the first one up taking
   * everything and handing most of it over. Joining a running group, it
   * takes what is handed over at once.
   */
  private settled = false;
  private cold = true;
  private membersSince: {members: string; at: number; first: number} | undefined;
  /** Reads the group when the window ends, to see that nobody joined meanwhile. */
  private settleTimer: SharedTimer | undefined;
  private state: GroupStatus['state'] = 'idle';
  private refreshTimer: SharedTimer | undefined;
  private lastMembers = '';

  constructor(private readonly options: GroupOptions) {
    super();
    this.groupName = options.groupName;
    this.membership = new Membership({
      groupName: options.groupName,
      instanceId: options.instanceId,
      hostname: options.hostname,
      timings: options.timings,
      store: options.store,
      clock: options.clock,
      onRead: (rows, at) => this.read(rows, at),
      onChange: () => this.replan(),
      onJoined: options.onJoined,
      onError: err => this.report(err),
    });
  }

  /** Joins, and starts the resources' elections after initDelay. */
  async begin(): Promise<void> {
    const {initDelay} = this.options.timings;
    this.state = 'running';
    const firstRead = sharedTimersOf(this.options.clock).turnTime() + initDelay;
    this.membership.begin(firstRead);
    const {resources} = this.options;
    if (Array.isArray(resources)) resources.forEach(id => this.addElection(id));
    else await this.refresh();
    this.replan();
  }

  add(resourceId: string): void {
    const problem = this.options.checkResource(resourceId);
    if (problem) throw new TypeError(`${this.groupName}: ${problem}`);
    if (this.addElection(resourceId)) this.replan();
  }

  private addElection(resourceId: string): boolean {
    if (this.state === 'stopped' || this.elections.has(resourceId)) return false;
    const {options} = this;
    const election = new LockElection({
      lockName: `${this.groupName}/${resourceId}`,
      instanceId: options.instanceId,
      hostname: options.hostname,
      groupName: this.groupName,
      resourceId,
      masterJob: options.job,
      timings: options.timings,
      store: options.store,
      clock: options.clock,
      mayAcquire: () =>
        (this.settled || !this.cold) &&
        this.quorum &&
        this.plan.get(resourceId) === options.instanceId,
    });
    election.on('master', (token: number) => this.emit('master', resourceId, token));
    election.on('slave', (reason: string) => this.emit('slave', resourceId, reason));
    election.on('error', err => this.report(err, resourceId));
    this.elections.set(resourceId, election);
    options.onElection?.(election);
    election.begin();
    return true;
  }

  async remove(resourceId: string): Promise<void> {
    const election = this.elections.get(resourceId);
    if (!election) return;
    this.elections.delete(resourceId);
    await election.stop();
    this.replan();
  }

  owned(): string[] {
    return [...this.elections].filter(([, e]) => e.isMaster).map(([id]) => id);
  }

  members(): GroupMember[] {
    const owned = new Map<string, number>();
    for (const [id, election] of this.elections) {
      const holder = this.holderOf(id, election);
      if (holder) owned.set(holder, (owned.get(holder) ?? 0) + 1);
    }
    return this.membership.live().map(m => ({...m, owned: owned.get(m.instanceId) ?? 0}));
  }

  status(): GroupStatus {
    const members = this.members();
    const live = new Set(members.map(m => m.instanceId));
    let unowned = 0;
    for (const [id, election] of this.elections) {
      const holder = this.holderOf(id, election);
      if (!holder || !live.has(holder)) unowned++;
    }
    return {
      groupName: this.groupName,
      state: this.state === 'running' && !this.quorum ? 'quorum' : this.state,
      minMembers: this.options.minMembers,
      resources: this.elections.size,
      owned: this.owned(),
      members,
      unowned,
    };
  }

  /** True when this replica holds a resource past its renewal deadline. */
  isLate(): boolean {
    return [...this.elections.values()].some(e => e.status().deadlinePassed);
  }

  /** A wake-up: a member left, joined or renewed, a resource was freed, or anything. */
  wake(message: WakeUp): void {
    switch (message.kind) {
      case 'anything':
        this.membership.wake(message);
        this.elections.forEach(e => e.wake());
        return;
      case 'released':
      case 'control':
      case 'renewed':
      case 'joined': {
        const {lockName} = message;
        if (!this.membership.concerns(lockName)) return;
        this.membership.wake(message);
        if (lockName.startsWith(this.groupName + '/')) {
          this.elections.get(lockName.slice(this.groupName.length + 1))?.wake(message);
        }
        return;
      }
      // About a queue or a checkpoint, not a row of the group.
      case 'submitted':
      case 'checkpoint':
        return;
      default:
        return this.wake(unknownKind(message));
    }
  }

  /** Leaves the group: the others are told first, then every resource is handed over. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    const timers = sharedTimersOf(this.options.clock);
    for (const timer of [this.refreshTimer, this.settleTimer]) if (timer) timers.cancel(timer);
    await this.membership.stop();
    await Promise.all([...this.elections.values()].map(e => e.stop()));
    this.options.onStopped?.();
  }

  /** Who holds a resource: this replica if master of it, else its row as last read ('' if free). */
  private holderOf(resourceId: string, election: LockElection): string {
    if (election.isMaster) return this.options.instanceId;
    return this.rows.get(`${this.groupName}/${resourceId}`)?.instanceId ?? '';
  }

  /** All the rows of the group, as read: who holds each resource now. */
  private read(rows: LockRecord[], at: number): void {
    this.rows = new Map(rows.map(r => [r.lockName, r]));
    for (const [id, election] of this.elections) {
      const row = this.rows.get(`${this.groupName}/${id}`);
      if (row) election.see(row, at);
    }
  }

  /** Computes the plan again and moves towards it. */
  private replan(): void {
    if (this.state !== 'running') return;
    const {instanceId, minMembers} = this.options;
    const members = this.membership.live();
    const ids = members.map(m => m.instanceId);
    const self = ids.includes(instanceId);
    if (!this.settled) this.settle(ids.join(), self);
    this.quorum = self && ids.length >= minMembers;
    const live = new Set(ids);
    const holders = new Map<string, string>();
    for (const [id, election] of this.elections) {
      const holder = this.holderOf(id, election);
      holders.set(id, live.has(holder) ? holder : '');
    }
    this.cold = ![...holders.values()].some(h => h && h !== instanceId);
    this.plan = this.quorum ? balance(ids, holders) : new Map();
    for (const [id, election] of this.elections) {
      const owner = this.plan.get(id);
      // Without our own row (renewals failing) the resources' own deadlines
      // stop them, with reason 'expired'; nothing to hand over.
      if (!self) continue;
      if (election.isMaster && owner !== instanceId) {
        debug('%s: handing %s over to %s', this.groupName, id, owner ?? 'nobody (no quorum)');
        election.handOver(this.quorum ? 'rebalanced' : 'quorum');
      } else if (!election.isMaster && owner === instanceId && !holders.get(id)) {
        const row = this.rows.get(`${this.groupName}/${id}`);
        // Free as read: take it over without reading it first.
        election.wake(
          row && !row.instanceId
            ? {kind: 'released', lockName: row.lockName, freed: row}
            : ANYTHING,
        );
      }
    }
    const summary = members.map(m => m.instanceId).join(',');
    if (summary !== this.lastMembers) {
      this.lastMembers = summary;
      debug('%s: members %s, quorum %s', this.groupName, summary, this.quorum);
      this.emit('members', this.members());
    }
  }

  /** Whether a cold group's membership (`members`) has held still for the settle window. */
  private settle(members: string, self: boolean): void {
    const {clock, timings} = this.options;
    const window = Math.min(timings.heartbeatInterval, SETTLE_WINDOW);
    const now = clock.now();
    const since = this.membersSince;
    if (!since || since.members !== members) {
      this.membersSince = {members, at: now, first: since?.first ?? now};
      const timers = sharedTimersOf(clock);
      if (this.settleTimer) timers.cancel(this.settleTimer);
      this.settleTimer = timers.at(now + window, () => {
        this.settleTimer = undefined;
        this.membership.readNow();
      });
    }
    const {at, first} = this.membersSince!;
    this.settled = self && (now - at >= window || now - first >= timings.leaseDuration);
    if (this.settled) debug('%s: settled with members %s', this.groupName, members);
  }

  /** Reads the resources function again, every checkMasterInterval. */
  private async refresh(): Promise<void> {
    const {resources, timings, clock} = this.options;
    if (typeof resources !== 'function' || this.state !== 'running') return;
    try {
      const ids = await withTimeout(
        clock,
        async () => resources(),
        timings.checkMasterInterval,
        `${this.groupName}: resources()`,
      );
      if (!Array.isArray(ids)) throw new TypeError('resources() must return an array of ids');
      const wanted = new Set<string>();
      for (const id of ids) {
        const problem = this.options.checkResource(id);
        if (problem) this.report(new TypeError(`${this.groupName}: resources(): ${problem}`));
        else wanted.add(id);
      }
      for (const id of this.elections.keys()) if (!wanted.has(id)) await this.remove(id);
      let added = false;
      for (const id of wanted) added = this.addElection(id) || added;
      if (added) this.replan();
    } catch (err) {
      this.report(err);
    } finally {
      if (this.state === 'running') {
        const timers = sharedTimersOf(clock);
        this.refreshTimer = timers.at(clock.now() + timings.checkMasterInterval, () => {
          this.refreshTimer = undefined;
          void this.refresh();
        });
      }
    }
  }

  private report(err: unknown, resourceId?: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    debug('%s%s: %s', this.groupName, resourceId ? `/${resourceId}` : '', error.message);
    if (this.listenerCount('error') > 0) this.emit('error', error, resourceId);
  }
}
