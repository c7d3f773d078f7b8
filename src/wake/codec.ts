// The wire format of wake-ups across processes: the payload of PostgreSQL's
// NOTIFY (store/postgres/postgres-notifier.ts sends and hears it; the SQL of
// store/postgres/postgres-lock-store.ts writes two kinds of payload itself, an
// enable's and a renewal's): which locks changed and how, in at most the 8000
// bytes PostgreSQL carries.
// The wire format is unchanged since 0.1.0 (where the messages were optional
// flags of one object), byte for byte: replicas of both versions in one
// cluster understand each other.

import {randomBytes} from 'crypto';
import {ANYTHING, FreedLock, unknownKind, WakeUp} from './messages';

/** PostgreSQL's limit on a NOTIFY payload is 8000 bytes. */
const MAX_PAYLOAD = 7900;
/** The payload of `anything`: too many names to list, or a wake-up that names none. */
const ANY_LOCK = '*';

/**
 * The payload: a JSON array with an entry per wake-up: the name alone for
 * `joined`; [name, fencingToken, renewalId] for `released`; [name,
 * "disabled" | "enabled"] for `control`, followed by fencingToken and
 * renewalId when it carries `freed`; [name, "submitted"]; [name,
 * "checkpoint"]. `anything`, or a payload over the limit: "*".
 */
export function encodePayload(messages: WakeUp[]): string {
  const entries: unknown[] = [];
  for (const message of messages) {
    const entry = toEntry(message);
    if (entry === undefined) return ANY_LOCK;
    entries.push(entry);
  }
  const payload = JSON.stringify(entries);
  return Buffer.byteLength(payload) < MAX_PAYLOAD ? payload : ANY_LOCK;
}

/** The entry of one wake-up; undefined for `anything`. */
function toEntry(message: WakeUp): unknown {
  switch (message.kind) {
    case 'released':
      return [message.lockName, message.freed.fencingToken, message.freed.renewalId];
    case 'control': {
      const {lockName, control, freed} = message;
      return freed ? [lockName, control, freed.fencingToken, freed.renewalId] : [lockName, control];
    }
    case 'submitted':
    case 'checkpoint':
      return [message.lockName, message.kind];
    case 'joined':
      return message.lockName;
    case 'renewed':
      // A renewal announces itself in its own statement (postgres-lock-store.ts's
      // renewAndNotify); sent here, the others hear its name alone and read the row.
      return message.lockName;
    case 'anything':
      return undefined;
    default:
      return toEntry(unknownKind(message));
  }
}

/**
 * The wake-ups of a payload; `[anything]` for "*" and for any payload it
 * cannot trust whole. A renewal's announcement is an object: `{"renewed":
 * instanceId, "renewalId": ..., "locks": [[name, fencingToken], ...]}`.
 */
/** A NOTIFY that proves a LISTEN: unique, and no wake-up to anyone who hears it. */
export function probePayload(): string {
  return JSON.stringify({probe: randomBytes(8).toString('hex')});
}

export function parsePayload(payload: string | undefined): WakeUp[] {
  let entries: unknown;
  try {
    entries = JSON.parse(payload ?? '');
  } catch {
    return [ANYTHING]; // ANY_LOCK, or a payload from something else on our channel
  }
  if (isProbe(entries)) return [];
  if (isRenewal(entries)) {
    const {renewed: instanceId, renewalId} = entries;
    return entries.locks.map(([lockName, fencingToken]) => ({
      kind: 'renewed',
      lockName,
      renewed: {instanceId, fencingToken, renewalId},
    }));
  }
  if (!Array.isArray(entries)) return [ANYTHING];
  const messages = entries.map(fromEntry);
  return messages.every(m => m !== undefined) ? (messages as WakeUp[]) : [ANYTHING];
}

function isProbe(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as {probe?: unknown}).probe === 'string'
  );
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

/** The wake-up of one entry; undefined for an entry it does not understand. */
function fromEntry(entry: unknown): WakeUp | undefined {
  if (typeof entry === 'string') return {kind: 'joined', lockName: entry};
  if (!Array.isArray(entry) || typeof entry[0] !== 'string') return undefined;
  const [lockName, ...rest] = entry as [string, ...unknown[]];
  if (rest.length === 1 && (rest[0] === 'submitted' || rest[0] === 'checkpoint')) {
    return {kind: rest[0], lockName};
  }
  const control = rest[0] === 'disabled' || rest[0] === 'enabled' ? rest[0] : undefined;
  if (control) rest.shift();
  if (rest.length === 0) return control ? {kind: 'control', lockName, control} : undefined;
  const freed = toFreed(rest);
  if (!freed) return undefined;
  return control
    ? {kind: 'control', lockName, control, freed}
    : {kind: 'released', lockName, freed};
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
