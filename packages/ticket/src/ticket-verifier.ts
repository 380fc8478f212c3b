import { timingSafeEqual } from 'node:crypto';
import { ImeError, isImeError, sameDomain } from '@ime/core';
import { type TicketClaims, decodeClaims, splitTicket, ticketMac } from './ticket-codec.js';
import { type TicketKey, deriveTicketKey } from './ticket-secret.js';

/**
 * The edge check (SPEC §7, guide L247–L250): a ticket admits a call when its MAC verifies under a
 * known epoch, it has not expired, the calling domain is the one it names, and the called number is
 * one it permits. Each refusal has its own reason so an operator can tell why a call was dropped.
 */

export type TicketRefusalReason =
  | 'malformed'
  | 'unknown-epoch'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'domain-mismatch'
  | 'number-not-permitted';

export type TicketVerdict =
  | { readonly valid: true; readonly epoch: number; readonly claims: TicketClaims }
  | { readonly valid: false; readonly reason: TicketRefusalReason; readonly detail: string };

/** The error code the CLI and logs use for a refusal reason: `bad-signature` → `E_TICKET_BAD_SIGNATURE`. */
export function ticketRefusalCode(reason: TicketRefusalReason): string {
  return `E_TICKET_${reason.toUpperCase().replace(/-/g, '_')}`;
}

/** After a password change, tickets of the previous epoch stay valid this long (ours). */
export const DEFAULT_EPOCH_GRACE_MS = 7 * 24 * 3600 * 1000;
/** Tolerated clock difference between issuer and verifier for the issue time. */
export const ISSUE_TIME_SKEW_MS = 5 * 60 * 1000;

export interface TicketSecretInput {
  readonly password: unknown;
  readonly epoch: unknown;
}

export interface TicketVerifierOptions {
  readonly current: TicketSecretInput;
  /** The secret in force before the last rotation, and when it was retired. */
  readonly previous?: TicketSecretInput & { readonly retiredAtMs: number };
  readonly graceMs?: number;
}

export interface TicketRequest {
  /** The calling enterprise's domain, as authenticated (TLS certificate or ring certificate). */
  readonly callingDomain: string;
  /** The called number from the request, +E.164. */
  readonly calledNumber: string;
  readonly nowMs?: number;
}

function refuse(reason: TicketRefusalReason, detail: string): TicketVerdict {
  return { valid: false, reason, detail };
}

export class TicketVerifier {
  readonly #current: TicketKey;
  readonly #previous: (TicketKey & { retiredAtMs: number }) | undefined;
  readonly #graceMs: number;

  constructor(options: TicketVerifierOptions) {
    this.#current = deriveTicketKey(options.current.password, options.current.epoch);
    const graceMs = options.graceMs ?? DEFAULT_EPOCH_GRACE_MS;
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) {
      throw new ImeError('E_TICKET_GRACE', 'the epoch grace period must be a non-negative number of milliseconds');
    }
    this.#graceMs = graceMs;
    if (options.previous) {
      const prev = deriveTicketKey(options.previous.password, options.previous.epoch);
      if (prev.epoch === this.#current.epoch) {
        throw new ImeError('E_TICKET_EPOCH_REUSED', `the previous epoch must differ from the current one (${prev.epoch})`);
      }
      if (!Number.isSafeInteger(options.previous.retiredAtMs)) {
        throw new ImeError('E_TICKET_GRACE', 'the previous epoch needs the time it was retired');
      }
      this.#previous = { ...prev, retiredAtMs: options.previous.retiredAtMs };
    }
  }

  verify(ticket: unknown, request: TicketRequest): TicketVerdict {
    const nowMs = request.nowMs ?? Date.now();
    let parts;
    try {
      parts = splitTicket(ticket);
    } catch (err) {
      return refuse('malformed', isImeError(err) ? err.message : 'malformed ticket');
    }
    let key: Buffer;
    if (parts.epoch === this.#current.epoch) {
      key = this.#current.key;
    } else if (this.#previous && parts.epoch === this.#previous.epoch) {
      if (nowMs >= this.#previous.retiredAtMs + this.#graceMs) {
        return refuse('unknown-epoch', `epoch ${parts.epoch} was retired and its grace period is over`);
      }
      key = this.#previous.key;
    } else {
      return refuse('unknown-epoch', `epoch ${parts.epoch} is not configured here`);
    }
    if (!timingSafeEqual(ticketMac(key, parts.signed), parts.mac)) {
      return refuse('bad-signature', 'the ticket MAC does not match (forged, altered, or another password)');
    }
    let claims: TicketClaims;
    try {
      claims = decodeClaims(parts.claims, true);
    } catch (err) {
      return refuse('malformed', isImeError(err) ? err.message : 'malformed ticket');
    }
    if (nowMs >= claims.expiresAtMs) {
      return refuse('expired', `the ticket expired at ${new Date(claims.expiresAtMs).toISOString()}`);
    }
    if (claims.issuedAtMs > nowMs + ISSUE_TIME_SKEW_MS) {
      return refuse('not-yet-valid', `the ticket is issued in the future (${new Date(claims.issuedAtMs).toISOString()})`);
    }
    if (!sameDomain(claims.callingDomain, request.callingDomain)) {
      return refuse('domain-mismatch', `the ticket was issued to ${claims.callingDomain}, not to this caller`);
    }
    if (!claims.numbers.includes(request.calledNumber as (typeof claims.numbers)[number])) {
      return refuse('number-not-permitted', 'the ticket does not permit the called number');
    }
    return { valid: true, epoch: parts.epoch, claims };
  }
}

/** Reads a ticket's claims without verifying anything, for operators diagnosing a refusal. */
export function inspectTicket(ticket: unknown): { version: number; epoch: number; claims: TicketClaims } {
  const parts = splitTicket(ticket);
  return { version: parts.version, epoch: parts.epoch, claims: decodeClaims(parts.claims) };
}
