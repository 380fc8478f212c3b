import { createHmac } from 'node:crypto';
import { type Domain, type E164, ImeError, decodeWire, domainProblem, e164Problem } from '@ime/core';
import { ime } from '@ime/wire';

/**
 * The ticket's bytes: version (1) | epoch (1) | TicketClaims (protobuf) | HMAC-SHA256 (32), carried as
 * base64url without padding. The MAC covers every byte before it, so no byte can change unnoticed; the
 * text form is accepted only in its one canonical spelling, so no character can either.
 */

export const TICKET_VERSION = 1;
export const MAC_BYTES = 32;
const HEADER_BYTES = 2;
/** Longest ticket text accepted; checked before decoding. Fits a SIP header comfortably. */
export const MAX_TICKET_CHARS = 2048;
export const MAX_TICKET_NUMBERS = 100;
export const TICKET_ID_BYTES = 16;

export interface TicketClaims {
  readonly issuerDomain: Domain;
  readonly callingDomain: Domain;
  readonly numbers: readonly E164[];
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  /** The ticket id as a UUID string. */
  readonly ticketId: string;
}

/** A ticket split into its parts; nothing about it is verified yet. */
export interface TicketParts {
  readonly version: number;
  readonly epoch: number;
  /** version | epoch | claims: what the MAC covers. */
  readonly signed: Buffer;
  readonly claims: Buffer;
  readonly mac: Buffer;
}

export type TicketCodecErrorCode = 'E_TICKET_MALFORMED';

function malformed(why: string): ImeError<TicketCodecErrorCode> {
  return new ImeError('E_TICKET_MALFORMED', `malformed ticket: ${why}`);
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Node's decoder ignores the unused low bits of the last character, so two spellings would decode to
 * the same bytes; only the one whose unused bits are zero is canonical.
 */
function canonicalTail(text: string): boolean {
  const rem = text.length % 4;
  if (rem === 0) return true;
  const last = ALPHABET.indexOf(text[text.length - 1] as string);
  return (last & (rem === 2 ? 0x0f : 0x03)) === 0;
}

/** Splits ticket text into parts, refusing anything that is not a canonical, well-framed ticket. */
export function splitTicket(text: unknown): TicketParts {
  if (typeof text !== 'string' || text.length === 0) throw malformed('empty');
  if (text.length > MAX_TICKET_CHARS) throw malformed(`longer than ${MAX_TICKET_CHARS} characters`);
  if (!BASE64URL.test(text) || text.length % 4 === 1) throw malformed('not base64url text');
  if (!canonicalTail(text)) throw malformed('not canonical base64url');
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.length <= HEADER_BYTES + MAC_BYTES) throw malformed('too short');
  const version = bytes[0] as number;
  if (version !== TICKET_VERSION) throw malformed(`unsupported version ${version}`);
  const end = bytes.length - MAC_BYTES;
  return {
    version,
    epoch: bytes[1] as number,
    signed: bytes.subarray(0, end),
    claims: bytes.subarray(HEADER_BYTES, end),
    mac: bytes.subarray(end),
  };
}

export function ticketMac(key: Buffer, signed: Uint8Array): Buffer {
  return createHmac('sha256', key).update(signed).digest();
}

function uuidFromBytes(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The largest time a JavaScript Date holds, in ms since the epoch. */
const MAX_DATE_MS = 8.64e15;

function isTicketTime(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DATE_MS;
}

/**
 * Decodes the claims. After the MAC matched (`authenticated`), the issuer — which validated every
 * domain and number when it signed — is known to have written them, so only their framing is checked;
 * for display of an unverified ticket (`ticket inspect`) every field is checked.
 */
export function decodeClaims(claims: Uint8Array, authenticated = false): TicketClaims {
  let m: ime.v1.TicketClaims;
  try {
    m = decodeWire(ime.v1.TicketClaims, claims, MAX_TICKET_CHARS, 'ticket claims');
  } catch (err) {
    throw malformed(err instanceof Error ? err.message : String(err));
  }
  if (m.numbers.length === 0 || m.numbers.length > MAX_TICKET_NUMBERS) throw malformed('bad number list');
  if (!authenticated) {
    if (domainProblem(m.issuerDomain)) throw malformed('bad issuer domain');
    if (domainProblem(m.callingDomain)) throw malformed('bad calling domain');
    for (const n of m.numbers) if (e164Problem(n)) throw malformed('a permitted number is not +E.164');
  }
  // Times must be ones a Date holds: the verifier's refusals and `ticket inspect` print them, and
  // toISOString throws a RangeError beyond ±8.64e15 ms (found by fuzzing).
  if (!isTicketTime(m.issuedAtMs) || !isTicketTime(m.expiresAtMs) || m.expiresAtMs < m.issuedAtMs) {
    throw malformed('bad validity period');
  }
  if (m.ticketId.length !== TICKET_ID_BYTES) throw malformed('bad ticket id');
  return new DecodedClaims(m);
}

/** Claims read from a ticket. The id is formatted only when asked for: the edge rarely needs it. */
class DecodedClaims implements TicketClaims {
  readonly issuerDomain: Domain;
  readonly callingDomain: Domain;
  readonly numbers: readonly E164[];
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly #ticketId: Uint8Array;

  constructor(m: ime.v1.TicketClaims) {
    this.issuerDomain = m.issuerDomain as Domain;
    this.callingDomain = m.callingDomain as Domain;
    this.numbers = m.numbers as E164[];
    this.issuedAtMs = m.issuedAtMs;
    this.expiresAtMs = m.expiresAtMs;
    this.#ticketId = m.ticketId;
  }

  get ticketId(): string {
    return uuidFromBytes(this.#ticketId);
  }

  toJSON(): Record<string, unknown> {
    const { issuerDomain, callingDomain, numbers, issuedAtMs, expiresAtMs, ticketId } = this;
    return { issuerDomain, callingDomain, numbers, issuedAtMs, expiresAtMs, ticketId };
  }
}

/** Claims as the issuer writes them, already checked. */
export interface UnsignedClaims {
  readonly issuerDomain: Domain;
  readonly callingDomain: Domain;
  readonly numbers: readonly E164[];
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly ticketId: Uint8Array;
}

/** Builds ticket text from checked claims and a key. */
export function assembleTicket(epoch: number, key: Buffer, claims: UnsignedClaims): string {
  const body = ime.v1.TicketClaims.encode({ ...claims, numbers: [...claims.numbers] }).finish();
  const signed = Buffer.concat([Buffer.from([TICKET_VERSION, epoch]), body]);
  const text = Buffer.concat([signed, ticketMac(key, signed)]).toString('base64url');
  if (text.length > MAX_TICKET_CHARS) {
    throw new ImeError('E_TICKET_TOO_LARGE', `the ticket would be ${text.length} characters; the limit is ${MAX_TICKET_CHARS}`);
  }
  return text;
}
