// The election of one lock on one replica: the whole state machine.
//
// Notation: L = leaseDuration, H = heartbeatInterval, C = checkMasterInterval,
// R = maxHeartbeatRetryCount, M = safety margin = L / 5. Times are read from
// this process's monotonic clock only (the injected Clock's now(); its wall
// clock only stamps heartbeatAt and acquiredAt, which are never compared).
//
// Invariants
//  1. Expiry as a non-master sees it. A non-master judges the lock expired only
//     when it has seen the same record (holder, fencing token, renewalId) for L,
//     counted from the moment it *received* that record. The write that made
//     the record was *sent* earlier, so nobody else can take over before
//     `sentAt + L` of the renewal that holder last made.
//  2. The master's deadline is `sentAt + L - M`, where sentAt is when the last
//     successful write of the record (acquisition or renewal) was sent. At the
//     deadline, on a timer of its own, the master aborts `signal` and calls
//     `stop()` without waiting on any database call: it stops M before anyone
//     can take over. M absorbs event-loop lag and clock-rate differences.
//  3. Every database call is bounded by a timeout; the master's are also
//     bounded by its deadline. A timeout means "outcome unknown": a write may
//     still land, so the record is re-read instead of trusting our own belief
//     (a renewal's late answer is believed: its row change is the answer).
//  4. Renewals are sent every H and polls every C, on grids of H and C shared by
//     all locks of the process (when C is a multiple of H the two coincide), so
//     that the database work of one tick is one statement of each kind whatever
//     the number of locks (the store batches calls made in one turn; shared
//     timers keep them in one turn). But when the last write took so long
//     (a starved CPU, a big batch) that the next grid point is over H after
//     its send, the renewal goes at once, not that close to the deadline.
//     A renewal that has not answered after H is slow, not failed: the next
//     one goes at once (one per H, as on time), and the slow one still
//     counts, from its send, if it answers before the deadline. A renewal
//     that fails (an error) is retried every (L - M - H) / (R + 1); after R
//     failed retries, or at the deadline, the master resigns with 'expired'.
//     Configurations with H >= L - M are rejected in timings.ts.
//  5. All writes are compare-and-set on the row: takeover on the observed
//     (holder, token, renewalId) writing token + 1, renewal and release on
//     (holder, token). Rows are never deleted, so tokens strictly increase.
//  6. A takeover is attempted at the moment the observed lease expires, not at
//     the next poll; rounded up to TICK, so that the locks seen in one read
//     expire together. Deadlines are rounded down to TICK for the same reason:
//     later takeovers and earlier stops are both on the safe side.
//  7. Disable: the store reads the control as part of winning the lock
//     (PostgreSQL in the statement of the win, locking the control row;
//     other connectors right after the win, inside the store, which releases
//     the lock and fails the call if that read fails), and a replica that wins
//     a disabled lock releases it without calling start(). A master reads the
//     control with every renewal, and at once when told of a disable; told
//     while it acquires, it renews at once after the win. So a disable that
//     committed before the win's read is seen before start(), a later one at
//     once (notified) or by the next renewal (within H).
//     A disable that committed after the win's read but returns before the
//     winner's start() would break "no start() after disable returns", so the
//     disable waits until a holder that has not renewed since its win writes
//     its row again (master-control.service.ts): start() is called before the
//     first renewal is sent, and a master told of a disable before its first
//     renewal renews at once instead of only reading the control.
//  8. start() runs at most once per mastership and never while a previous
//     start() of this replica is still running; stop() runs only after a
//     start() that resolved, bounded by stopTimeout.
//  9. What the election does is one phase object (Campaigning, Mastership),
//     a new one for every campaign and every mastership. Every async
//     continuation goes on only while its phase is still `this.phase`, so a
//     stale timer or reply of an earlier phase can never act on a newer one.
// 10. Nothing the database answers makes a loop run hot: errors and lost
//     races back off (100 ms doubling to C) until a live master is seen or a
//     renewal lands; only the first lost race re-reads at once.
//
// Shape, as client-go's leaderelection.go: run() campaigns until this replica
// wins the lock, leads until the mastership ends, steps down (stop() the job,
// then release), and campaigns again, until stopped. Each phase (phases.ts)
// holds the one step it waits to run; wake() may run one at once instead.

import {randomUUID} from 'crypto';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {
  Acquired,
  ControlChange,
  FreedLock,
  LockObservation,
  LockRecord,
  ElectionStore,
  RenewResult,
} from '../store/lock-store';
import {
  Clock,
  ElectionTimings,
  Master,
  MasterJob,
  MasterJobContext,
  MasterState,
  MasterStatus,
  StopReason,
} from '../types';
import {backoff, SharedTimers, sharedTimersOf, TimeoutError, withTimeout} from '../clock';
import {ANYTHING, RenewedLock, unknownKind, WakeUp} from '../wake/messages';
import {renewalRetryDelay, safetyMargin, TICK} from './timings';
import {Campaigning, Mastership, Next, ResignReason, Starting} from './phases';

// The story of each election, in order; renewals (one per heartbeat) apart.
const debug = debugFactory('loopback:master-job-executor:election');
const renewalDebug = debugFactory('loopback:master-job-executor:renewal');

export interface ElectionOptions {
  lockName: string;
  instanceId: string;
  hostname: string;
  masterJob: MasterJob;
  timings: ElectionTimings;
  store: ElectionStore;
  clock: Clock;
  /** Written on the row the election creates: the group it belongs to. */
  groupName?: string;
  /** Passed to the job's context: the resource of a group. */
  resourceId?: string;
  /**
   * Asked before every attempt to acquire: false keeps this replica from
   * campaigning (a group's plan gives the lock to another member, or the
   * quorum is missing) until the next poll or wake.
   */
  mayAcquire?: () => boolean;
  /**
   * Awaited first when stop() is called, before the mastership ends: a
   * quorum leaves, so the others count one member less before they may take
   * the lock over.
   */
  onStopping?: () => Promise<void>;
  /** Called once stop() has finished (job stopped, lock released): the owner forgets the handle. */
  onStopped?: () => void;
}

/** Why the state changed: the stop reasons, plus 'campaigning', 'acquired', 'startFailed'. */
export type TransitionReason = ResignReason | 'campaigning' | 'acquired';

export class LockElection extends EventEmitter implements Master {
  readonly lockName: string;
  private readonly instanceId: string;
  private readonly timings: ElectionTimings;
  private readonly store: ElectionStore;
  private readonly clock: Clock;
  private readonly timers: SharedTimers;

  private phase: 'idle' | Starting | Campaigning | Mastership | 'stopped' = 'idle';
  /** The control as last read. */
  private disabled = false;
  /**
   * Failed attempts (errors, lost races) since the last sign of progress (a
   * live master seen, a renewal): the back-off grows with it.
   */
  private setbacks = 0;
  private startRunning = false;
  /** The run loop and the master's control reads: what stop() waits for. */
  private readonly inflight = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: ElectionOptions) {
    super();
    this.lockName = options.lockName;
    this.instanceId = options.instanceId;
    this.timings = options.timings;
    this.store = options.store;
    this.clock = options.clock;
    this.timers = sharedTimersOf(options.clock);
  }

  get state(): MasterState {
    return typeof this.phase === 'string' ? this.phase : this.phase.state;
  }

  get isMaster(): boolean {
    return this.phase instanceof Mastership;
  }

  get fencingToken(): number | undefined {
    return this.phase instanceof Mastership ? this.phase.lock.fencingToken : undefined;
  }

  status(): MasterStatus {
    const p = this.phase;
    const m = p instanceof Mastership ? p : undefined;
    return {
      lockName: this.lockName,
      state: this.state,
      isMaster: this.isMaster,
      fencingToken: this.fencingToken,
      observedHolder: m
        ? this.instanceId
        : p instanceof Campaigning
          ? p.observed?.lock.instanceId || undefined
          : undefined,
      disabled: this.disabled,
      renewalAgeMs: m ? this.clock.now() - m.renewedAt : undefined,
      deadlinePassed: m ? this.clock.now() > m.deadline : false,
    };
  }

  /** Begin campaigning after initDelay. */
  begin(): void {
    if (this.phase !== 'idle') return;
    // Rounded from the turn's start, so that the locks started together
    // campaign together however long the loop starting them takes.
    const {initDelay} = this.timings;
    const now = this.timers.turnTime();
    const start = (this.phase = new Starting(this.timers));
    this.track(this.run(start, initDelay ? roundUp(now + initDelay) : now));
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /**
   * Check the lock now instead of at the next tick: after a disable, enable or
   * release anywhere in the cluster. Never shortens the wait for a lease to
   * expire (expiry is judged from the observation, which a re-read keeps), nor
   * the back-off after a failed start(). With `freed` (what a release left on
   * the row, told with the release or an enable), a non-master tries the
   * takeover at once, without reading first.
   * A disable wakes only a master, which reads the control only; an enable
   * only a non-master; anything else makes a master renew at once. A
   * renewal's announcement moves a non-master's view of the lease. The
   * wake-up's lockName is not looked at: the caller chose this election.
   */
  wake(message: WakeUp = ANYTHING): void {
    switch (message.kind) {
      case 'renewed':
        return this.seeRenewal(message.renewed);
      case 'released':
        return this.nudge(message.freed);
      case 'control':
        return this.nudge(message.freed, message.control);
      case 'joined':
      case 'anything':
        return this.nudge();
      // A queue's runner or a checkpoint's watch acts on those, not the election.
      case 'submitted':
      case 'checkpoint':
        return;
      default:
        return this.wake(unknownKind(message));
    }
  }

  /** Runs the next step now: a takeover of `freed`, a check, a renewal, or a control read. */
  private nudge(freed?: FreedLock, control?: ControlChange): void {
    const p = this.phase;
    if (!(p instanceof Campaigning || p instanceof Mastership)) return;
    if (p instanceof Campaigning && this.clock.now() < p.quietUntil) return;
    if (p.busy) {
      // The running step schedules the next at once: an acquisition that
      // wins renews (and reads the control) at once, in case this was a
      // disable; a release is taken over unread, as if told now.
      p.woken = true;
      if (p instanceof Campaigning && freed && (!this.disabled || control === 'enabled')) {
        p.freed = freed;
      }
      return;
    }
    // A disable concerns the master only, an enable the others only.
    if (control === (p instanceof Mastership ? 'enabled' : 'disabled')) return;
    if (p instanceof Mastership) {
      // A notified disable needs only the control read, once renewed (the
      // disable waits for the first renewal); anything else (a reconnect:
      // something may have been missed) a renewal, now.
      if (control === 'disabled' && p.renewed) this.track(this.recheckControl(p));
      else p.runNow(() => this.renew(p));
    } else if (freed && (!this.disabled || control === 'enabled')) {
      p.runNow(() => this.takeOverFreed(p, freed));
    } else {
      p.runNow(() => this.check(p));
    }
  }

  /**
   * Gives the lock up, as master: stops the job (with `reason`), then
   * releases it; told to the others (they take it over at once) unless for
   * the quorum, which nobody has either. Campaigns again afterwards.
   */
  handOver(reason: 'rebalanced' | 'quorum'): void {
    if (this.phase instanceof Mastership) this.resign(this.phase, reason);
  }

  /**
   * The lock as somebody else read it (a group reads all its rows at once),
   * received at `at`: counts as this election's own observation.
   */
  see(lock: LockRecord, at: number): void {
    const p = this.phase;
    if (p instanceof Campaigning && lock.instanceId !== this.instanceId) this.observe(p, lock, at);
  }

  /**
   * Another replica's renewal of the lock, as it committed (announced on
   * PostgreSQL): the observed record is renewed as of now, received now
   * (invariant 1), and the takeover moves to a lease from now. Only for the
   * holder and token observed: anything else waits for a read.
   */
  private seeRenewal(renewed: RenewedLock): void {
    const p = this.phase;
    const lock = p instanceof Campaigning ? p.observed?.lock : undefined;
    if (!(p instanceof Campaigning) || !lock) return;
    if (lock.instanceId !== renewed.instanceId || lock.fencingToken !== renewed.fencingToken)
      return;
    if (lock.renewalId === renewed.renewalId) return;
    this.observe(p, {...lock, renewalId: renewed.renewalId}, this.clock.now());
    // Plan again: the takeover waiting for the old expiry must not run.
    if (!p.busy) p.runNow(async () => 'poll');
  }

  /**
   * The life of the election, as client-go's Run(): after initDelay, campaign
   * until this replica wins the lock, lead until the mastership ends, step
   * down, and campaign again, until stopped.
   */
  private async run(start: Starting, time: number): Promise<void> {
    if (!(await start.schedule(time, async () => true))) return; // stopped during initDelay
    let campaign = this.enter(new Campaigning(this.timers), 'campaigning');
    let next: Next = 'now';
    for (;;) {
      const m = await this.campaign(campaign, next); // until this replica wins the lock
      if (!m) return; // stopped
      const reason = await this.lead(m); // until the mastership ends
      const after = this.phase; // entered by resign(): a new campaign, or 'stopped'
      await this.stepDown(m, reason); // stop() the job, then release the lock
      if (!(after instanceof Campaigning) || this.phase !== after) return; // stopped
      campaign = after;
      next =
        reason === 'startFailed'
          ? 'startFailed'
          : reason === 'rebalanced' || reason === 'quorum'
            ? 'poll' // handed over on purpose: no hurry to look again
            : 'now';
    }
  }

  // ---- campaigning (not master) ----

  /** Campaigns until this replica wins the lock; undefined if stopped first. */
  private async campaign(c: Campaigning, next: Next): Promise<Mastership | undefined> {
    for (;;) {
      const [time, step] = this.plan(c, next);
      const result = await c.schedule(time, step);
      if (result instanceof Mastership) return result;
      if (this.phase !== c || result === undefined) return undefined;
      next = result;
    }
  }

  /** The campaign's next step and its time: the one place they are chosen. */
  private plan(c: Campaigning, next: Next): [number, () => Promise<Next | Mastership>] {
    const {checkMasterInterval, leaseDuration} = this.timings;
    const now = this.clock.now();
    const check = () => this.check(c);
    switch (next) {
      case 'backoff':
        return [now + this.backOffDelay(), check];
      case 'busy':
        return [this.nextTick(checkMasterInterval), check];
      case 'startFailed':
        c.quietUntil = now + checkMasterInterval;
        return [c.quietUntil, check];
    }
    // Now if asked, or woken while the last step ran; else the next poll.
    const time = next === 'now' || c.woken ? now : this.nextTick(checkMasterInterval);
    const freed = c.woken ? c.freed : undefined;
    c.woken = false;
    c.freed = undefined;
    if (freed) return [now, () => this.takeOverFreed(c, freed)];
    const observed = c.observed;
    if (observed?.lock.instanceId && !this.disabled) {
      const expiresAt = roundUp(observed.at + leaseDuration);
      if (expiresAt <= time) return [expiresAt, () => this.takeOverExpired(c, observed.lock)];
    }
    return [time, check];
  }

  /** Reads the lock: watches a live holder, frees a stale record of ours, acquires a free lock. */
  private async check(c: Campaigning): Promise<Next | Mastership> {
    let observation: LockObservation;
    try {
      observation = await this.call(
        () => this.store.read(this.lockName),
        this.campaignTimeout(),
        'read',
      );
    } catch (err) {
      return this.setback(c, err);
    }
    if (this.phase !== c) return 'poll';
    const receivedAt = this.clock.now();
    const {lock, disabled} = observation;
    this.disabled = disabled;
    if (disabled)
      c.leaderlessSince = undefined; // off on purpose, not an outage
    else if (!lock?.instanceId) c.leaderlessSince ??= receivedAt;
    if (lock?.instanceId === this.instanceId) {
      // A write of ours that timed out landed after all. We cannot tell since
      // when it counts, so free it rather than adopt it.
      debug('%s: found a stale record of our own, releasing', this.lockName);
      await this.release(lock);
      return 'poll';
    }
    if (lock) this.observe(c, lock, receivedAt);
    return !disabled && !lock?.instanceId ? this.acquire(c, lock) : 'poll';
  }

  private observe(c: Campaigning, lock: LockRecord, at: number): void {
    const previous = c.observed?.lock;
    if (
      previous &&
      previous.renewalId === lock.renewalId &&
      previous.fencingToken === lock.fencingToken &&
      previous.instanceId === lock.instanceId
    ) {
      return; // unchanged: the lease keeps running from the first sighting
    }
    c.observed = {lock, at};
    if (lock.instanceId) {
      this.leaderFound(c);
      this.setbacks = 0;
    }
    if (lock.instanceId && lock.instanceId !== previous?.instanceId) {
      debug('%s: observed master %s (token %d)', this.lockName, lock.instanceId, lock.fencingToken);
      this.emit('newMaster', lock.instanceId, lock.fencingToken);
    }
  }

  /** Takes over the lock whose lease was observed unchanged for L. */
  private takeOverExpired(c: Campaigning, lock: LockRecord): Promise<Next | Mastership> {
    debug('%s: lease of %s expired', this.lockName, lock.instanceId);
    c.leaderlessSince ??= this.clock.now();
    return this.acquire(c, lock);
  }

  /** Takes over a lock just released, as a read would have found it. */
  private takeOverFreed(c: Campaigning, freed: FreedLock): Promise<Next | Mastership> {
    c.leaderlessSince ??= this.clock.now();
    return this.acquire(c, {
      lockName: this.lockName,
      instanceId: '',
      hostname: '',
      fencingToken: freed.fencingToken,
      renewalId: freed.renewalId,
      heartbeatAt: new Date(0),
      acquiredAt: new Date(0),
    });
  }

  /** Creates the first record, or takes over `expected` (free or expired). */
  private async acquire(c: Campaigning, expected?: LockRecord): Promise<Next | Mastership> {
    if (this.startRunning) {
      debug('%s: previous start() still running, not campaigning', this.lockName);
      return 'busy';
    }
    if (this.options.mayAcquire && !this.options.mayAcquire()) return 'busy';
    const now = this.clock.date();
    const next: LockRecord = {
      lockName: this.lockName,
      instanceId: this.instanceId,
      hostname: this.options.hostname,
      fencingToken: (expected?.fencingToken ?? 0) + 1,
      renewalId: randomUUID(),
      heartbeatAt: now,
      acquiredAt: now,
      ...(this.options.groupName !== undefined ? {groupName: this.options.groupName} : {}),
    };
    const sentAt = this.clock.now();
    const deadline = this.deadlineFor(sentAt);
    let acquired: Acquired | undefined;
    try {
      acquired = await this.call(
        () => (expected ? this.store.takeOver(expected, next) : this.store.create(next)),
        deadline - sentAt,
        'acquire',
      );
    } catch (err) {
      // If the write landed anyway, the next read finds our record and frees it.
      return this.setback(c, err);
    }
    if (!acquired) return this.lostRace(c, next.fencingToken);
    // The store read the control as part of the win (invariant 7).
    this.disabled = acquired.disabled;
    let unusable: string;
    if (this.phase !== c) unusable = 'stopped meanwhile';
    else if (acquired.disabled) unusable = 'it is disabled';
    // Paused between winning and here: others may have taken over already.
    else if (this.clock.now() >= deadline) unusable = 'too late to use it';
    else return this.becomeMaster(c, acquired.lock, sentAt, deadline);
    debug('%s: won the lock but %s, releasing', this.lockName, unusable);
    await this.release(acquired.lock, !acquired.disabled);
    return acquired.disabled ? 'poll' : 'now';
  }

  /**
   * The record changed under us: observe the winner afresh, at once. To lose
   * again before seeing any winner is the database answering oddly (a row
   * that never matches): back off.
   */
  private lostRace(c: Campaigning, fencingToken: number): Next {
    if (this.phase !== c) return 'poll';
    debug('%s: lost the race for token %d', this.lockName, fencingToken);
    c.observed = undefined;
    return ++this.setbacks === 1 ? 'now' : 'backoff';
  }

  /** A failed database call: back off (invariant 10). */
  private setback(c: Campaigning, err: unknown): Next {
    if (this.phase === c) {
      this.setbacks++;
      this.report(err, `database call failed (${this.setbacks} setbacks in a row)`);
    }
    return 'backoff';
  }

  // ---- master ----

  private becomeMaster(
    c: Campaigning,
    lock: LockRecord,
    sentAt: number,
    deadline: number,
  ): Mastership {
    const m = new Mastership(this.timers, lock, sentAt, deadline);
    m.woken = c.woken; // told while acquiring (a disable?): renew at once
    this.leaderFound(c);
    debug('%s: acquired, token %d', this.lockName, lock.fencingToken);
    this.enter(m, 'acquired');
    this.emit('newMaster', this.instanceId, lock.fencingToken);
    return m;
  }

  /**
   * Leads until the mastership ends, and resolves to why: a deadline of its
   * own (invariant 2), renewals (invariant 4), the job's start() (invariant 8).
   */
  private lead(m: Mastership): Promise<ResignReason> {
    if (this.phase === m) {
      this.armDeadline(m);
      // start() is called first, before any renewal is sent (invariant 7).
      m.started = this.runStart(m);
      this.track(this.keepRenewing(m));
    }
    return m.ended;
  }

  private async runStart(m: Mastership): Promise<boolean> {
    this.startRunning = true;
    try {
      await this.options.masterJob.start(this.context(m));
      return true;
    } catch (err) {
      this.report(err, 'start() failed');
      this.resign(m, 'startFailed');
      return false;
    } finally {
      this.startRunning = false;
    }
  }

  private armDeadline(m: Mastership): void {
    if (m.deadlineTimer !== undefined) this.timers.cancel(m.deadlineTimer);
    m.deadlineTimer = this.timers.at(m.deadline, () => {
      m.deadlineTimer = undefined;
      debug('%s: renewal deadline passed', this.lockName);
      this.resign(m, 'expired');
    });
  }

  private async keepRenewing(m: Mastership): Promise<void> {
    let time = this.renewalTime(m);
    while (this.phase === m) time = (await m.schedule(time, () => this.renew(m))) ?? time;
  }

  /**
   * The next renewal: on the heartbeat grid; now if woken meanwhile, or if
   * the grid point is over H after the last write (invariant 4).
   */
  private renewalTime(m: Mastership): number {
    const t = this.timings;
    const now = this.clock.now();
    const time = m.woken ? now : this.nextTick(t.heartbeatInterval);
    m.woken = false;
    // Judged from the deadline, rounded, not from each lock's own send time:
    // the locks of one batch must agree, or their renewals split into several
    // instants. On time, the next grid point is within H of the send.
    const sentAt = m.deadline - (t.leaseDuration - safetyMargin(t));
    return time > sentAt + t.heartbeatInterval + TICK ? now : time;
  }

  /** Renews; resolves to when the next renewal is due, undefined once the mastership ended. */
  private async renew(m: Mastership): Promise<number | undefined> {
    const t = this.timings;
    const sentAt = this.clock.now();
    // A stalled event loop can run this timer after the deadline's: stop first.
    if (sentAt >= m.deadline) return this.resign(m, 'expired');
    const renewal = this.sendRenewal(m);
    let result: RenewResult;
    try {
      result = await this.call(
        () => renewal,
        Math.min(t.heartbeatInterval, m.deadline - sentAt),
        'renew',
      );
    } catch (err) {
      if (this.phase !== m) return undefined;
      if (err instanceof TimeoutError && this.clock.now() < m.deadline) {
        // Slow, not failed: it still runs on the server and counts from its
        // send if it answers before the deadline. The next renewal goes a
        // heartbeat after this one, not a retry sooner: retries stacked on a
        // server too slow to answer only slow it more (invariant 4).
        this.emit('renewalFailed', m.failures);
        this.report(err, 'renewal slow, it still counts if it answers before the deadline');
        renewal.then(
          late => this.applyRenewal(m, sentAt, late),
          () => undefined,
        );
        return this.renewalTime(m);
      }
      m.failures++;
      this.emit('renewalFailed', m.failures);
      this.report(err, `renewal failed (${m.failures}/${t.maxHeartbeatRetryCount + 1})`);
      if (m.failures > t.maxHeartbeatRetryCount) return this.resign(m, 'expired');
      const now = this.clock.now();
      return now + Math.max(0, Math.min(renewalRetryDelay(t), m.deadline - now));
    }
    return this.applyRenewal(m, sentAt, result) ? this.renewalTime(m) : undefined;
  }

  private sendRenewal(m: Mastership): Promise<RenewResult> {
    try {
      return this.store.renew(this.lockName, this.instanceId, m.lock.fencingToken);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A renewal's answer, in time or late: the lease now counts from its send
   * (nobody can take over before send + L). False if the mastership ended.
   */
  private applyRenewal(m: Mastership, sentAt: number, result: RenewResult): boolean {
    if (this.phase !== m) return false;
    if (!result.renewed) {
      this.resign(m, 'lost');
      return false;
    }
    // A slow renewal answered after a later one: nothing to add.
    if (sentAt <= m.renewedAt) return true;
    m.failures = 0;
    m.renewed = true;
    this.setbacks = 0;
    m.renewedAt = sentAt;
    m.deadline = this.deadlineFor(sentAt);
    renewalDebug('%s: renewed in %d ms', this.lockName, this.clock.now() - sentAt);
    this.emit('renewed', this.clock.now() - sentAt);
    this.armDeadline(m);
    this.disabled = result.disabled;
    if (result.disabled) this.resign(m, 'disabled');
    return !result.disabled;
  }

  /** A master told of a disable reads the control only; its renewals keep their grid. */
  private async recheckControl(m: Mastership): Promise<void> {
    let disabled: boolean;
    try {
      disabled = await this.call(
        () => this.store.isDisabled(this.lockName),
        m.deadline - this.clock.now(),
        'read control',
      );
    } catch (err) {
      return this.report(err, 'control re-check failed, the next renewal reads it');
    }
    if (this.phase !== m || !disabled) return;
    this.disabled = true;
    this.resign(m, 'disabled');
  }

  /**
   * Stops acting as master at once: aborts `signal` and leaves the phase
   * (for a new campaign, or 'stopped'). stepDown() does the rest.
   */
  private resign(m: Mastership, reason: ResignReason): undefined {
    if (this.phase !== m) return;
    debug('%s: resigning (%s), token %d', this.lockName, reason, m.lock.fencingToken);
    if (m.deadlineTimer !== undefined) this.timers.cancel(m.deadlineTimer);
    m.deadlineTimer = undefined;
    m.controller.abort(reason === 'startFailed' ? 'stopped' : reason); // signal.reason: why
    this.enter(reason === 'stopped' ? 'stopped' : new Campaigning(this.timers), reason);
    m.settle(reason);
  }

  /** After a mastership: stop the job, then release the lock (unless lost). */
  private async stepDown(m: Mastership, reason: ResignReason): Promise<void> {
    if (reason !== 'startFailed') await this.stopJob(m, reason);
    // Released only after stop() finished, so the next master starts after it.
    // Nobody is told of a lock that nobody may take (disabled, or no quorum).
    if (reason !== 'lost') await this.release(m.lock, reason !== 'disabled' && reason !== 'quorum');
  }

  private async stopJob(m: Mastership, reason: StopReason): Promise<void> {
    const {stopTimeout} = this.timings;
    const stop = this.options.masterJob.stop;
    let started = false;
    try {
      started = await withTimeout(this.clock, () => m.started, stopTimeout, 'start()');
    } catch (err) {
      this.report(err, 'start() still running, stop() not called');
    }
    if (!started || !stop) return;
    try {
      await withTimeout(
        this.clock,
        async () => stop.call(this.options.masterJob, {...this.context(m), reason}),
        stopTimeout,
        'stop()',
      );
    } catch (err) {
      this.report(err, 'stop() failed');
    }
  }

  private context(m: Mastership): MasterJobContext {
    return {
      lockName: this.lockName,
      instanceId: this.instanceId,
      fencingToken: m.lock.fencingToken,
      signal: m.controller.signal,
      ...(this.options.resourceId !== undefined ? {resourceId: this.options.resourceId} : {}),
    };
  }

  // ---- shutdown ----

  private async shutdown(): Promise<void> {
    await this.options.onStopping?.();
    const p = this.phase;
    // A master's run loop steps down (stop(), then release); in-flight steps
    // end without scheduling anything, and an acquisition that wins meanwhile
    // releases what it won.
    if (p instanceof Mastership) this.resign(p, 'stopped');
    else this.enter('stopped', 'stopped');
    while (this.inflight.size) await Promise.all(this.inflight);
    debug('%s: stopped', this.lockName);
    this.options.onStopped?.();
  }

  // ---- helpers ----

  /**
   * Moves to `next`, ending the wait of the phase left. Emits
   * statechange(old, new, reason), then master(token) or slave(reason).
   */
  private enter<P extends Campaigning | Mastership | 'stopped'>(
    next: P,
    reason: TransitionReason,
  ): P {
    const previous = this.state;
    if (typeof this.phase !== 'string') this.phase.end();
    this.phase = next;
    const state = this.state;
    if (state !== previous) {
      this.emit('statechange', previous, state, reason);
      if (state === 'master') this.emit('master', this.fencingToken);
      if (state === 'slave') this.emit('slave', reason);
    }
    return next;
  }

  /**
   * Frees the lock if it is still ours; failures only delay the handover.
   * Not handed over (nobody is woken to take it) when it is disabled.
   */
  private async release(lock: LockRecord, handOver = true): Promise<void> {
    try {
      const released = await this.call(
        () => this.store.release(this.lockName, this.instanceId, lock.fencingToken, handOver),
        // Not master any more: no deadline to keep; past a lease it has expired anyway.
        this.timings.leaseDuration,
        'release',
      );
      debug(
        '%s: %s token %d',
        this.lockName,
        released ? 'released' : 'no longer held',
        lock.fencingToken,
      );
    } catch (err) {
      this.report(err, 'release failed, the lock will expire instead');
    }
  }

  /** 100 ms, doubled with every setback in a row, at most C. */
  private backOffDelay(): number {
    const {checkMasterInterval} = this.timings;
    return backoff(this.setbacks, {
      base: Math.min(checkMasterInterval, 100),
      max: checkMasterInterval,
    });
  }

  private campaignTimeout(): number {
    const t = this.timings;
    return Math.min(t.checkMasterInterval, t.leaseDuration - safetyMargin(t));
  }

  /** The next point of the grid of `interval` shared by all locks. */
  private nextTick(interval: number): number {
    return Math.floor(this.clock.now() / interval) * interval + interval;
  }

  /** Where a write sent at `sentAt` leaves the master: see invariant 2. */
  private deadlineFor(sentAt: number): number {
    const deadline = sentAt + this.timings.leaseDuration - safetyMargin(this.timings);
    return Math.floor(deadline / TICK) * TICK;
  }

  private call<T>(work: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
    return withTimeout(this.clock, work, timeoutMs, `${this.lockName}: ${what}`);
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch(err => this.report(err, 'unexpected'));
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
  }

  /** Reports how long the lock was leaderless, as this replica saw it. */
  private leaderFound(c: Campaigning): void {
    if (c.leaderlessSince === undefined) return;
    this.emit('leaderless', this.clock.now() - c.leaderlessSince);
    c.leaderlessSince = undefined;
  }

  /** Errors never throw out of the election; `error` is emitted only if heard. */
  private report(err: unknown, what: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    debug('%s: %s: %s', this.lockName, what, error.message);
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}

function roundUp(time: number): number {
  return Math.ceil(time / TICK) * TICK;
}
