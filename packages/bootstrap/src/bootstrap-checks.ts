import { ImeError, describeInput, parseDomain } from '@ime/core';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';

/**
 * Input checks shared by the bootstrap's protocols, its admin API and the merge of state from other
 * bootstraps. They mirror the limits `validateRingConfiguration` (@ime/admission) puts on a signed
 * configuration: anything the bootstrap accepts must later fit a configuration, or one bad entry
 * would stop every later configuration from being signed.
 */

export const MAX_ADDRESSES = 8;
export const MAX_ADDRESS_LENGTH = 256;
export const MAX_CONTACT_LENGTH = 256;
export const MAX_SOFTWARE_VERSION_LENGTH = 32;
export const MAX_NOTE_LENGTH = 256;
export const MAX_REASON_LENGTH = 512;
export const MAX_MOTD_LENGTH = 512;
export const MAX_VIRTUAL_NODES = 64;
export const MAX_STORAGE_QUOTA = 1_000_000_000;

// The same form @ime/admission accepts in a configuration (it keeps its own copy private).
const MULTIADDR = /^\/[a-z][a-z0-9-]*(\/[\x21-\x2e\x30-\x7e]+)*$/;
// Controls (including ANSI escapes) would let a peer or a configuration rewrite an operator's terminal.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const VERSION = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/;
const SOFTWARE_VERSION = /^[\x21-\x7e]*$/;

/** The canonical text form of an Ed25519 PeerId, or undefined. Roster, bans and certificates compare PeerIds as strings. */
export function canonicalPeerId(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128) return undefined;
  try {
    const id = peerIdFromString(value);
    return id.type === 'Ed25519' && id.toString() === value ? value : undefined;
  } catch {
    return undefined;
  }
}

export function checkPeerId(value: unknown, code: string, what = 'peerId'): string {
  const id = canonicalPeerId(value);
  if (id === undefined) throw new ImeError(code, `${what} ${describeInput(value)} is not an Ed25519 PeerId`);
  return id;
}

/** Lower case, no trailing dot; the form roster entries and certificates carry. */
export function checkDomain(value: unknown, code: string): string {
  try {
    return parseDomain(value);
  } catch (err) {
    const reason = err instanceof ImeError ? err.code : 'invalid';
    throw new ImeError(code, `domain ${describeInput(value)} is not a valid domain (${reason})`, { reason });
  }
}

/** Text shown to operators (contact, note, reason, message of the day): bounded, no control characters. */
export function checkText(value: unknown, max: number, code: string, what: string): string {
  if (typeof value !== 'string' || value.length > max) throw new ImeError(code, `${what} must be text of at most ${max} characters`);
  if (CONTROL.test(value)) throw new ImeError(code, `${what} must not contain control characters`);
  return value;
}

export function isAddress(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > MAX_ADDRESS_LENGTH || !MULTIADDR.test(value)) return false;
  try {
    multiaddr(value);
    return true;
  } catch {
    return false;
  }
}

/** At most 8 multiaddrs of at most 256 characters; duplicates dropped, order kept. */
export function checkAddresses(value: unknown, code: string, what = 'addresses'): string[] {
  if (!Array.isArray(value) || value.length > MAX_ADDRESSES) {
    throw new ImeError(code, `${what} must be a list of at most ${MAX_ADDRESSES} multiaddrs`);
  }
  const out: string[] = [];
  for (const a of value) {
    if (!isAddress(a)) {
      throw new ImeError(code, `${what}: ${describeInput(a)} is not a multiaddr of at most ${MAX_ADDRESS_LENGTH} characters`);
    }
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

export function checkSoftwareVersion(value: unknown, code: string): string {
  if (typeof value !== 'string' || value.length > MAX_SOFTWARE_VERSION_LENGTH || !SOFTWARE_VERSION.test(value)) {
    throw new ImeError(code, `the software version must be at most ${MAX_SOFTWARE_VERSION_LENGTH} printable characters`);
  }
  return value;
}

/** `major.minor.patch` or empty (no minimum): what a configuration's minSoftwareVersion allows. */
export function checkMinVersion(value: unknown, code: string): string {
  if (typeof value !== 'string' || (value !== '' && !VERSION.test(value))) {
    throw new ImeError(code, `the minimum software version must be empty or like 1.2.3, got ${describeInput(value)}`);
  }
  return value;
}

export function checkInteger(value: unknown, min: number, max: number, code: string, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ImeError(code, `${what} must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
