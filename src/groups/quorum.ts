// A lock with a quorum (`startMaster({minMembers})`): its election campaigns
// only while at least minMembers replicas that started the lock are alive,
// and its master stops with reason 'quorum' the moment fewer are.

import {LockElection} from '../election/election';
import {WakeUp} from '../wake/messages';
import {Membership, MembershipOptions} from './membership';

export class Quorum {
  private readonly membership: Membership;
  private election: LockElection | undefined;
  private hasRead = false;
  private met = false;

  constructor(
    readonly minMembers: number,
    options: Omit<MembershipOptions, 'onChange' | 'onRead'>,
  ) {
    this.membership = new Membership({
      ...options,
      onRead: () => (this.hasRead = true),
      onChange: () => this.check(),
    });
  }

  /** Whether the election may campaign now. */
  isMet(): boolean {
    const live = this.membership.live();
    return this.hasRead && live.some(m => m.self) && live.length >= this.minMembers;
  }

  /** Watches the membership for `election`, which asks isMet() before it acquires. */
  begin(election: LockElection, firstReadAt: number): void {
    this.election = election;
    this.membership.begin(firstReadAt);
  }

  members(): number {
    return this.membership.live().length;
  }

  wake(message: WakeUp): void {
    this.membership.wake(message);
  }

  /** Leaves first, so that the others count one member less before the lock is handed over. */
  stop(): Promise<void> {
    return this.membership.stop();
  }

  private check(): void {
    const met = this.isMet();
    const was = this.met;
    this.met = met;
    // Without our own row (renewals failing) the lock's own deadline stops it ('expired').
    const self = this.membership.live().some(m => m.self);
    if (!met && self && this.election?.isMaster) this.election.handOver('quorum');
    else if (met && !was) this.election?.wake();
  }
}
