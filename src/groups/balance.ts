// The balance rule of a group: from who holds what now, the owner each
// resource should have. A pure function of the snapshot, so that members
// reading the same rows agree on every move without talking to each other.
//
// Rules, for R resources and M live members:
//  - Each member's quota is floor(R/M) or ceil(R/M); the R mod M ceil quotas
//    go to the members holding most now (then by instanceId), so that a
//    balanced group moves nothing.
//  - A member keeps up to its quota of what it holds (its favourites first,
//    by a hash of resource and member), and nothing more.
//  - The rest (unheld, held by a member no longer alive, or over a quota) is
//    dealt out to the members under quota, each resource to its favourite
//    member among those with room (rendezvous hashing), so a join or a crash
//    moves about R/M resources, spread evenly.
// Applying the plan and computing it again gives the same plan: a fixed point.

/** resourceId -> instanceId of its holder ('' when nobody holds it). */
export type Holders = ReadonlyMap<string, string>;

/** The owner each resource should have; empty when there are no members. */
export function balance(members: readonly string[], holders: Holders): Map<string, string> {
  const plan = new Map<string, string>();
  if (!members.length) return plan;
  const live = new Set(members);
  const held = new Map<string, string[]>(members.map(m => [m, []]));
  const pool: string[] = [];
  for (const [resource, holder] of holders) {
    if (live.has(holder)) held.get(holder)!.push(resource);
    else pool.push(resource);
  }
  const base = Math.floor(holders.size / members.length);
  let extra = holders.size % members.length;
  const byHoldings = [...members].sort(
    (a, b) => held.get(b)!.length - held.get(a)!.length || compare(a, b),
  );
  const room = new Map<string, number>();
  for (const member of byHoldings) {
    const quota = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    const mine = held
      .get(member)!
      .sort((a, b) => score(b, member) - score(a, member) || compare(a, b));
    mine.slice(0, quota).forEach(resource => plan.set(resource, member));
    pool.push(...mine.slice(quota));
    room.set(member, quota - Math.min(quota, mine.length));
  }
  for (const resource of pool.sort(compare)) {
    let best: string | undefined;
    for (const member of members) {
      if (!room.get(member)) continue;
      if (best === undefined || isFavourite(resource, member, best)) best = member;
    }
    plan.set(resource, best!); // rooms add up to the pool's size
    room.set(best!, room.get(best!)! - 1);
  }
  return plan;
}

function isFavourite(resource: string, member: string, than: string): boolean {
  const a = score(resource, member);
  const b = score(resource, than);
  return a > b || (a === b && compare(member, than) < 0);
}

/** FNV-1a of resource and member: how much `member` wants `resource`. */
function score(resource: string, member: string): number {
  let hash = 0x811c9dc5;
  const key = `${resource}\u0000${member}`;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
