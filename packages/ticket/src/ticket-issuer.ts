import { randomUUID } from 'node:crypto';
import { type E164, ImeError, parseDomain, parseE164 } from '@ime/core';
import { MAX_TICKET_NUMBERS, type TicketClaims, assembleTicket, decodeClaims, splitTicket } from './ticket-codec.js';
import { type TicketKey, deriveTicketKey } from './ticket-secret.js';

/** Routes and their tickets live one year (guide L243–L245). */
export const TICKET_DEFAULT_VALIDITY_MS = 365 * 24 * 3600 * 1000;
/** Longest validity an issuer grants: ten years. */
export const TICKET_MAX_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;

export type TicketIssueErrorCode = 'E_TICKET_NO_NUMBERS' | 'E_TICKET_TOO_MANY_NUMBERS' | 'E_TICKET_VALIDITY' | 'E_TICKET_TOO_LARGE';

export interface IssueTicketInput {
  /** The terminating enterprise (the issuer's own domain). */
  readonly issuerDomain: string;
  /** The calling enterprise, as bound in its ring certificate. */
  readonly callingDomain: string;
  readonly numbers: readonly string[];
  readonly nowMs?: number;
  readonly validForMs?: number;
}

export interface IssuedTicket {
  readonly ticket: string;
  readonly claims: TicketClaims;
}

/** Mints tickets under one (password, epoch). The terminating peer keeps one per active epoch. */
export class TicketIssuer {
  readonly #key: TicketKey;

  constructor(password: unknown, epoch: unknown) {
    this.#key = deriveTicketKey(password, epoch);
  }

  get epoch(): number {
    return this.#key.epoch;
  }

  issue(input: IssueTicketInput): IssuedTicket {
    const issuerDomain = parseDomain(input.issuerDomain);
    const callingDomain = parseDomain(input.callingDomain);
    if (!Array.isArray(input.numbers) || input.numbers.length === 0) {
      throw new ImeError('E_TICKET_NO_NUMBERS', 'a ticket must permit at least one number');
    }
    const numbers: E164[] = [...new Set(input.numbers.map((n) => parseE164(n)))];
    if (numbers.length > MAX_TICKET_NUMBERS) {
      throw new ImeError('E_TICKET_TOO_MANY_NUMBERS', `a ticket permits at most ${MAX_TICKET_NUMBERS} numbers`);
    }
    const validForMs = input.validForMs ?? TICKET_DEFAULT_VALIDITY_MS;
    if (!Number.isSafeInteger(validForMs) || validForMs < 0 || validForMs > TICKET_MAX_VALIDITY_MS) {
      throw new ImeError('E_TICKET_VALIDITY', 'ticket validity must be a whole number of milliseconds from 0 to ten years');
    }
    const issuedAtMs = input.nowMs ?? Date.now();
    const ticket = assembleTicket(this.#key.epoch, this.#key.key, {
      issuerDomain,
      callingDomain,
      numbers,
      issuedAtMs,
      expiresAtMs: issuedAtMs + validForMs,
      ticketId: Buffer.from(randomUUID().replace(/-/g, ''), 'hex'),
    });
    return { ticket, claims: decodeClaims(splitTicket(ticket).claims) };
  }
}
