// The wire format of wake-ups across processes: the payload of PostgreSQL's
// NOTIFY (store/postgres/postgres-notifier.ts sends and hears it; its SQL
// writes two kinds of payload itself, an enable's and a renewal's): which
// locks changed and how, in at most the 8000 bytes PostgreSQL carries.

import type {FreedLock, LockChange} from '../store/lock-store';

/** PostgreSQL's limit on a NOTIFY payload is 8000 bytes. */
const MAX_PAYLOAD = 7900;
/** The payload that wakes every lock: too many names to list. */
const ANY_LOCK = '*';

/**
 * The payload: a JSON array with an entry per lock: its name, or
 * [name, fencingToken, renewalId] for a freed lock, or [name, "disabled" |
 * "enabled"] for an operator's change, followed by fencingToken and
 * renewalId when the lock was free (an enable: take it over unread), or
 * [name, "submitted"] for a task submitted to the queue of that name, or
 * [name, "checkpoint"] for a checkpoint its master saved.
 */
export function encodePayload(changes: LockChange[]): string {
  const payload = JSON.stringify(
    changes.map(c => {
      const freed = c.freed ? [c.freed.fencingToken, c.freed.renewalId] : [];
      if (c.submitted) return [c.lockName, 'submitted'];
      if (c.checkpoint) return [c.lockName, 'checkpoint'];
      if (c.control) return [c.lockName, c.control, ...freed];
      return c.freed ? [c.lockName, ...freed] : c.lockName;
    }),
  );
  return Buffer.byteLength(payload) < MAX_PAYLOAD ? payload : ANY_LOCK;
}

/**
 * The changes of a payload; undefined (wake every lock) for anything else.
 * A renewal's announcement is an object: `{"renewed": instanceId,
 * "renewalId": ..., "locks": [[name, fencingToken], ...]}`.
 */
export function parsePayload(payload: string | undefined): LockChange[] | undefined {
  let entries: unknown;
  try {
    entries = JSON.parse(payload ?? '');
  } catch {
    return undefined; // ANY_LOCK, or a payload from something else on our channel
  }
  if (isRenewal(entries)) {
    const {renewed: instanceId, renewalId} = entries;
    return entries.locks.map(([lockName, fencingToken]) => ({
      lockName,
      renewed: {instanceId, fencingToken, renewalId},
    }));
  }
  if (!Array.isArray(entries)) return undefined;
  const changes = entries.map(toChange);
  return changes.every(c => c !== undefined) ? (changes as LockChange[]) : undefined;
}

function isRenewal(
  value: unknown,
): value is {renewed: string; renewalId: string; locks: [string, number][]} {
  const v = value as {renewed?: unknown; renewalId?: unknown; locks?: unknown};
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.renewed === 'string' &&
    v.renewed !== '' &&
    typeof v.renewalId === 'string' &&
    v.renewalId !== '' &&
    Array.isArray(v.locks) &&
    v.locks.every(
      (l: unknown) =>
        Array.isArray(l) &&
        l.length === 2 &&
        typeof l[0] === 'string' &&
        Number.isSafeInteger(l[1]) &&
        (l[1] as number) >= 1,
    )
  );
}

function toChange(entry: unknown): LockChange | undefined {
  if (typeof entry === 'string') return {lockName: entry};
  if (!Array.isArray(entry) || typeof entry[0] !== 'string') return undefined;
  const [lockName, ...rest] = entry as [string, ...unknown[]];
  if (rest.length === 1 && rest[0] === 'submitted') return {lockName, submitted: true};
  if (rest.length === 1 && rest[0] === 'checkpoint') return {lockName, checkpoint: true};
  const control = rest[0] === 'disabled' || rest[0] === 'enabled' ? rest[0] : undefined;
  if (control) rest.shift();
  if (rest.length === 0) return control ? {lockName, control} : undefined;
  const freed = toFreed(rest);
  if (!freed) return undefined;
  return control ? {lockName, control, freed} : {lockName, freed};
}

function toFreed(entry: unknown[]): FreedLock | undefined {
  const [fencingToken, renewalId] = entry;
  return entry.length === 2 &&
    Number.isSafeInteger(fencingToken) &&
    (fencingToken as number) >= 1 &&
    typeof renewalId === 'string' &&
    renewalId !== ''
    ? {fencingToken: fencingToken as number, renewalId}
    : undefined;
}
