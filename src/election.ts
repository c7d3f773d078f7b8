// The election of one lock on one replica: the whole state machine.
//
// Notation: L = leaseDuration, H = heartbeatInterval, C = checkMasterInterval,
// R = maxHeartbeatRetryCount, M = safety margin = L / 5. Times are read from
// this process's monotonic clock only.
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
//     still land, so the record is re-read instead of trusting our own belief.
//  4. Renewals are sent every H and polls every C, on grids of H and C shared by
//     all locks of the process (when C is a multiple of H the two coincide), so
//     that the database work of one tick is one statement of each kind whatever
//     the number of locks (the store batches calls made in one turn; shared
//     timers keep them in one turn). But when the last write took so long
//     (a starved CPU, a big batch) that the next grid point is over H after
//     its send, the renewal goes at once, not that close to the deadline.
//     A failed renewal is retried every (L - M - H) / (R + 1); after R failed
//     retries, or at the deadline, the master resigns with reason 'expired'.
//     Configurations with H >= L - M are rejected in config.ts.
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
//  8. start() runs at most once per mastership and never while a previous
//     start() of this replica is still running; stop() runs only after a
//     start() that resolved, bounded by stopTimeout.
//  9. Every async continuation checks `epoch`, bumped on each transition, so a
//     stale timer or reply of an earlier mastership can never act on a newer one.
// 10. Nothing the database answers makes a loop run hot: errors and lost
//     races back off (100 ms doubling to C) until a live master is seen or a
//     renewal lands; only the first lost race re-reads at once.

import {randomUUID} from 'crypto';
import debugFactory from 'debug';
import {EventEmitter} from 'events';
import {Clock, SharedTimer, SharedTimers, sharedTimersOf, withTimeout} from './clock';
import {Acquired, FreedLock, LockRecord, LockStore} from './lock-store';
import {LockChange} from './notifier';
import {
  ElectionTimings,
  MasterJob,
  MasterJobContext,
  MasterState,
  MasterStatus,
  StopReason,
} from './types';

// The story of each election, in order; renewals (one per heartbeat) apart.
const debug = debugFactory('loopback:master-job-executor:election');
const renewalDebug = debugFactory('loopback:master-job-executor:renewal');

/** Granularity of takeover times and deadlines, in ms (see invariant 6). */
export const TICK = 10;

/** Share of the lease the master gives up before others may take over. */
export const SAFETY_MARGIN_RATIO = 0.2;

export function safetyMargin(t: ElectionTimings): number {
  return t.leaseDuration * SAFETY_MARGIN_RATIO;
}

/** Delay between renewal retries: R retries fit between H and the deadline. */
export function renewalRetryDelay(t: ElectionTimings): number {
  const room = t.leaseDuration - safetyMargin(t) - t.heartbeatInterval;
  return room / (t.maxHeartbeatRetryCount + 1);
}

/** The handle `startMaster()` returns. */
export interface Master extends EventEmitter {
  readonly lockName: string;
  readonly isMaster: boolean;
  /** The fencing token of the current mastership; undefined when not master. */
  readonly fencingToken: number | undefined;
  readonly state: MasterState;
  status(): MasterStatus;
  /** Stop campaigning; if master, stop the job and then release the lock. */
  stop(): Promise<void>;
}

export interface ElectionOptions {
  lockName: string;
  instanceId: string;
  hostname: string;
  masterJob: MasterJob;
  timings: ElectionTimings;
  store: LockStore;
  clock: Clock;
}

interface Mastership {
  lock: LockRecord;
  /** When the last successful write of the record (acquire or renewal) was sent. */
  renewedAt: number;
  deadline: number;
  failures: number;
  controller: AbortController;
  /** Settles with whether start() succeeded. */
  started: Promise<boolean>;
}

type ResignReason = StopReason | 'startFailed';

/** Why the state changed: the stop reasons, plus 'campaigning', 'acquired', 'startFailed'. */
export type TransitionReason = ResignReason | 'campaigning' | 'acquired';

export class LockElection extends EventEmitter implements Master {
  readonly lockName: string;
  private readonly instanceId: string;
  private readonly timings: ElectionTimings;
  private readonly store: LockStore;
  private readonly clock: Clock;
  private readonly timers: SharedTimers;

  private currentState: MasterState = 'idle';
  private epoch = 0;
  private timer: SharedTimer | undefined;
  private deadlineTimer: SharedTimer | undefined;
  private mastership: Mastership | undefined;
  /** The record of another holder, and when we received it. */
  private observed: {lock: LockRecord; at: number} | undefined;
  private disabled = false;
  /** Since when this replica has seen no live master (lock free or expired). */
  private leaderlessSince: number | undefined;
  /**
   * Failed attempts (errors, lost races) since the last sign of progress (a
   * live master seen, a renewal): the back-off grows with it.
   */
  private setbacks = 0;
  private startRunning = false;
  private wakePending = false;
  /** No campaigning before this time: the back-off after a failed start(). */
  private backoffUntil = 0;
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
    return this.currentState;
  }

  get isMaster(): boolean {
    return this.currentState === 'master';
  }

  get fencingToken(): number | undefined {
    return this.mastership?.lock.fencingToken;
  }

  status(): MasterStatus {
    return {
      lockName: this.lockName,
      state: this.currentState,
      isMaster: this.isMaster,
      fencingToken: this.fencingToken,
      observedHolder: this.mastership
        ? this.instanceId
        : this.observed?.lock.instanceId || undefined,
      disabled: this.disabled,
      renewalAgeMs: this.mastership ? this.clock.now() - this.mastership.renewedAt : undefined,
      deadlinePassed: this.mastership ? this.clock.now() > this.mastership.deadline : false,
    };
  }

  /** Begin campaigning after initDelay. */
  begin(): void {
    if (this.currentState !== 'idle' || this.stopping) return;
    // Rounded from the turn's start, so that the locks started together
    // campaign together however long the loop starting them takes.
    const {initDelay} = this.timings;
    const now = this.timers.turnTime();
    this.scheduleAt(initDelay ? roundUp(now + initDelay) : now, () => this.campaign());
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
   * only a non-master; anything else makes a master renew at once.
   */
  wake(change?: Omit<LockChange, 'lockName'>): void {
    if (this.stopping || this.currentState === 'idle' || this.clock.now() < this.backoffUntil)
      return;
    if (this.inflight.size > 0 || this.timer === undefined) {
      // The running step reschedules at once: an acquisition that wins
      // renews (and reads the control) at once, in case this was a disable.
      this.wakePending = true;
      return;
    }
    const m = this.mastership;
    // A disable concerns the master only, an enable the others only.
    if (change?.control === (m ? 'enabled' : 'disabled')) return;
    const freed = change?.freed;
    // A notified disable needs only the control read; anything else (a
    // reconnect: something may have been missed) a renewal, now.
    if (m && change?.control === 'disabled') this.track(this.recheckControl(m));
    else if (m) this.runNow(() => this.renew(m));
    else if (freed && (!this.disabled || change?.control === 'enabled'))
      this.runNow(() => this.takeOverFreed(freed));
    else this.runNow(() => this.campaign());
  }

  // ---- campaigning (not master) ----

  private async campaign(): Promise<void> {
    const epoch = this.epoch;
    if (this.currentState === 'idle') this.setState('slave', 'campaigning');
    let observation;
    try {
      observation = await this.call(
        () => this.store.read(this.lockName),
        this.campaignTimeout(),
        'read',
      );
    } catch (err) {
      return this.retryAfterError(epoch, err);
    }
    if (epoch !== this.epoch) return;
    const receivedAt = this.clock.now();
    const {lock, disabled} = observation;
    this.disabled = disabled;
    if (disabled)
      this.leaderlessSince = undefined; // off on purpose, not an outage
    else if (!lock?.instanceId) this.leaderlessSince ??= receivedAt;
    if (!lock) {
      return disabled ? this.scheduleCheck() : this.acquire(epoch, undefined);
    }
    if (lock.instanceId === this.instanceId) {
      // A write of ours that timed out landed after all. We cannot tell since
      // when it counts, so free it rather than adopt it.
      debug('%s: found a stale record of our own, releasing', this.lockName);
      await this.release(lock);
      return this.scheduleCheck();
    }
    this.observe(lock, receivedAt);
    if (lock.instanceId === '' && !disabled) return this.acquire(epoch, lock);
    this.scheduleCheck();
  }

  private observe(lock: LockRecord, at: number): void {
    const previous = this.observed?.lock;
    if (
      previous &&
      previous.renewalId === lock.renewalId &&
      previous.fencingToken === lock.fencingToken &&
      previous.instanceId === lock.instanceId
    ) {
      return; // unchanged: the lease keeps running from the first sighting
    }
    this.observed = {lock, at};
    if (lock.instanceId) {
      this.leaderFound();
      this.setbacks = 0;
    }
    if (lock.instanceId && lock.instanceId !== previous?.instanceId) {
      debug('%s: observed master %s (token %d)', this.lockName, lock.instanceId, lock.fencingToken);
      this.emit('newMaster', lock.instanceId, lock.fencingToken);
    }
  }

  /** Takes over a lock just released, as a read would have found it. */
  private takeOverFreed(freed: FreedLock): Promise<void> {
    this.leaderlessSince ??= this.clock.now();
    return this.acquire(this.epoch, {
      lockName: this.lockName,
      instanceId: '',
      hostname: '',
      fencingToken: freed.fencingToken,
      renewalId: freed.renewalId,
      heartbeatAt: new Date(0),
      acquiredAt: new Date(0),
    });
  }

  /** Next poll (now if 0), or the takeover at the observed lease's expiry if sooner. */
  private scheduleCheck(delay?: 0): void {
    const time = this.nextStep(this.timings.checkMasterInterval, delay);
    const observed = this.observed;
    if (observed?.lock.instanceId && !this.disabled) {
      const expiresAt = roundUp(observed.at + this.timings.leaseDuration);
      if (expiresAt <= time) {
        this.scheduleAt(expiresAt, () => {
          debug('%s: lease of %s expired', this.lockName, observed.lock.instanceId);
          this.leaderlessSince ??= this.clock.now();
          return this.acquire(this.epoch, observed.lock);
        });
        return;
      }
    }
    this.scheduleAt(time, () => this.campaign());
  }

  /** Next renewal: on the heartbeat grid, or now if that is over H after the last write (inv. 4). */
  private scheduleRenewal(m: Mastership): void {
    const t = this.timings;
    let time = this.nextStep(t.heartbeatInterval);
    // Judged from the deadline, rounded, not from each lock's own send time:
    // the locks of one batch must agree, or their renewals split into several
    // instants. On time, the next grid point is within H of the send.
    const sentAt = m.deadline - (t.leaseDuration - safetyMargin(t));
    if (time > sentAt + t.heartbeatInterval + TICK) time = this.clock.now();
    this.scheduleAt(time, () => this.renew(m));
  }

  /** Create the first record, or take over `expected` (free or expired). */
  private async acquire(epoch: number, expected: LockRecord | undefined): Promise<void> {
    if (this.startRunning) {
      debug('%s: previous start() still running, not campaigning', this.lockName);
      return this.scheduleAt(this.nextTick(this.timings.checkMasterInterval), () =>
        this.campaign(),
      );
    }
    const now = new Date();
    const next: LockRecord = {
      lockName: this.lockName,
      instanceId: this.instanceId,
      hostname: this.options.hostname,
      fencingToken: (expected?.fencingToken ?? 0) + 1,
      renewalId: randomUUID(),
      heartbeatAt: now,
      acquiredAt: now,
    };
    const sentAt = this.clock.now();
    const deadline = this.deadlineFor(sentAt);
    let acquired: Acquired | undefined;
    try {
      acquired = await this.call(
        async () => (expected ? this.store.takeOver(expected, next) : this.store.create(next)),
        deadline - sentAt,
        'acquire',
      );
    } catch (err) {
      // If the write landed anyway, the next read finds our record and frees it.
      return this.retryAfterError(epoch, err);
    }
    const won = acquired?.lock;
    // The store read the control as part of the win (see invariant 7).
    if (acquired) this.disabled = acquired.disabled;
    if (epoch !== this.epoch) {
      if (won) await this.release(won);
      return;
    }
    if (!won) {
      // The record changed under us: observe the winner afresh, at once. To
      // lose again before seeing any winner is the database answering oddly
      // (a row that never matches): back off.
      debug('%s: lost the race for token %d', this.lockName, next.fencingToken);
      this.observed = undefined;
      return ++this.setbacks === 1 ? this.campaign() : this.backOff();
    }
    if (this.disabled) {
      debug('%s: won the lock but it is disabled, releasing', this.lockName);
      await this.release(won, false);
      return this.scheduleCheck();
    }
    if (this.clock.now() >= deadline) {
      // Paused between winning and here: others may have taken over already.
      debug('%s: won the lock too late to use it, releasing', this.lockName);
      await this.release(won);
      return this.scheduleCheck(0);
    }
    this.becomeMaster(won, sentAt, deadline);
  }

  // ---- master ----

  private becomeMaster(lock: LockRecord, sentAt: number, deadline: number): void {
    this.epoch++;
    const m: Mastership = {
      lock,
      renewedAt: sentAt,
      deadline,
      failures: 0,
      controller: new AbortController(),
      started: Promise.resolve(false),
    };
    this.mastership = m;
    this.observed = undefined;
    this.leaderFound();
    debug('%s: acquired, token %d', this.lockName, lock.fencingToken);
    this.setState('master', 'acquired');
    this.emit('newMaster', this.instanceId, lock.fencingToken);
    this.armDeadline(m);
    this.scheduleRenewal(m);
    m.started = this.runStart(m);
  }

  private async runStart(m: Mastership): Promise<boolean> {
    this.startRunning = true;
    try {
      await this.options.masterJob.start(this.context(m));
      return true;
    } catch (err) {
      this.report(err, 'start() failed');
      if (this.mastership === m) this.track(this.resign(m, 'startFailed'));
      return false;
    } finally {
      this.startRunning = false;
    }
  }

  private armDeadline(m: Mastership): void {
    if (this.deadlineTimer !== undefined) this.timers.cancel(this.deadlineTimer);
    this.deadlineTimer = this.timers.at(m.deadline, () => {
      this.deadlineTimer = undefined;
      debug('%s: renewal deadline passed', this.lockName);
      this.track(this.resign(m, 'expired'));
    });
  }

  private async renew(m: Mastership): Promise<void> {
    if (this.mastership !== m) return;
    const sentAt = this.clock.now();
    // A stalled event loop can run this timer after the deadline's: stop first.
    if (sentAt >= m.deadline) return this.resign(m, 'expired');
    let result;
    try {
      result = await this.call(
        () => this.store.renew(this.lockName, this.instanceId, m.lock.fencingToken),
        Math.min(this.timings.heartbeatInterval, m.deadline - sentAt),
        'renew',
      );
    } catch (err) {
      if (this.mastership !== m) return;
      m.failures++;
      this.emit('renewalFailed', m.failures);
      this.report(err, `renewal failed (${m.failures}/${this.timings.maxHeartbeatRetryCount + 1})`);
      if (m.failures > this.timings.maxHeartbeatRetryCount) return this.resign(m, 'expired');
      const delay = Math.min(renewalRetryDelay(this.timings), m.deadline - this.clock.now());
      return this.schedule(delay, () => this.renew(m));
    }
    if (this.mastership !== m) return;
    if (!result.renewed) return this.resign(m, 'lost');
    m.failures = 0;
    this.setbacks = 0;
    m.renewedAt = sentAt;
    m.deadline = this.deadlineFor(sentAt);
    renewalDebug('%s: renewed in %d ms', this.lockName, this.clock.now() - sentAt);
    this.emit('renewed', this.clock.now() - sentAt);
    this.armDeadline(m);
    this.disabled = result.disabled;
    if (result.disabled) return this.resign(m, 'disabled');
    this.scheduleRenewal(m);
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
    if (this.mastership !== m || !disabled) return;
    this.disabled = true;
    return this.resign(m, 'disabled');
  }

  /** Stop acting as master: abort, stop the job, release, campaign again. */
  private async resign(m: Mastership, reason: ResignReason): Promise<void> {
    if (this.mastership !== m) return;
    debug('%s: resigning (%s), token %d', this.lockName, reason, m.lock.fencingToken);
    this.mastership = undefined;
    this.epoch++;
    this.clearTimers();
    m.controller.abort();
    this.setState('slave', reason);
    if (reason !== 'startFailed') await this.stopJob(m, reason);
    // Released only after stop() finished, so the next master starts after it.
    if (reason !== 'lost') await this.release(m.lock, reason !== 'disabled');
    if (this.stopping) return;
    if (reason === 'startFailed') {
      this.backoffUntil = this.clock.now() + this.timings.checkMasterInterval;
      this.schedule(this.timings.checkMasterInterval, () => this.campaign());
    } else {
      this.scheduleCheck(0);
    }
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
    };
  }

  // ---- shutdown ----

  private async shutdown(): Promise<void> {
    const m = this.mastership;
    this.mastership = undefined;
    this.epoch++;
    this.clearTimers();
    if (m) m.controller.abort();
    this.setState('stopped', 'stopped');
    // In-flight steps end without scheduling anything; an acquisition that
    // wins meanwhile releases what it won.
    while (this.inflight.size) await Promise.all(this.inflight);
    if (m) {
      await this.stopJob(m, 'stopped');
      await this.release(m.lock);
    }
    debug('%s: stopped', this.lockName);
  }

  // ---- helpers ----

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

  private retryAfterError(epoch: number, err: unknown): void {
    if (epoch !== this.epoch) return;
    this.setbacks++;
    this.report(err, `database call failed (${this.setbacks} setbacks in a row)`);
    this.backOff();
  }

  /** Campaigns again after 100 ms, doubled with every setback, at most C. */
  private backOff(): void {
    const {checkMasterInterval} = this.timings;
    const base = Math.min(checkMasterInterval, 100);
    const delay = base * 2 ** Math.min(this.setbacks - 1, 16);
    this.schedule(Math.min(checkMasterInterval, delay), () => this.campaign());
  }

  private campaignTimeout(): number {
    const t = this.timings;
    return Math.min(t.checkMasterInterval, t.leaseDuration - safetyMargin(t));
  }

  /** The next point of the grid of `interval` shared by all locks. */
  private nextTick(interval: number): number {
    return Math.floor(this.clock.now() / interval) * interval + interval;
  }

  /** Now if asked or woken meanwhile, else the next point of the grid. */
  private nextStep(interval: number, delay?: 0): number {
    const woken = this.wakePending;
    this.wakePending = false;
    return delay === 0 || woken ? this.clock.now() : this.nextTick(interval);
  }

  /** Where a write sent at `sentAt` leaves the master: see invariant 2. */
  private deadlineFor(sentAt: number): number {
    const deadline = sentAt + this.timings.leaseDuration - safetyMargin(this.timings);
    return Math.floor(deadline / TICK) * TICK;
  }

  private call<T>(work: () => Promise<T>, timeoutMs: number, what: string): Promise<T> {
    return withTimeout(this.clock, work, timeoutMs, `${this.lockName}: ${what}`);
  }

  /** Runs `step` now, in place of the step the timer held: a wake need not wait for a timer turn. */
  private runNow(step: () => Promise<void>): void {
    if (this.timer !== undefined) this.timers.cancel(this.timer);
    this.timer = undefined;
    this.track(step());
  }

  private schedule(delay: number, step: () => Promise<void> | void): void {
    this.scheduleAt(this.clock.now() + Math.max(0, delay), step);
  }

  private scheduleAt(time: number, step: () => Promise<void> | void): void {
    if (this.stopping) return;
    if (this.timer !== undefined) this.timers.cancel(this.timer);
    this.timer = this.timers.at(time, () => {
      this.timer = undefined;
      this.track(Promise.resolve().then(step));
    });
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch(err => this.report(err, 'unexpected'));
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
  }

  private clearTimers(): void {
    if (this.timer !== undefined) this.timers.cancel(this.timer);
    if (this.deadlineTimer !== undefined) this.timers.cancel(this.deadlineTimer);
    this.timer = this.deadlineTimer = undefined;
  }

  /** Reports how long the lock was leaderless, as this replica saw it. */
  private leaderFound(): void {
    if (this.leaderlessSince === undefined) return;
    this.emit('leaderless', this.clock.now() - this.leaderlessSince);
    this.leaderlessSince = undefined;
  }

  /** Emits statechange(old, new, reason), then master(token) or slave(reason). */
  private setState(next: MasterState, reason: TransitionReason): void {
    const previous = this.currentState;
    if (previous === next) return;
    this.currentState = next;
    this.emit('statechange', previous, next, reason);
    if (next === 'master') this.emit('master', this.fencingToken);
    if (next === 'slave') this.emit('slave', reason);
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
