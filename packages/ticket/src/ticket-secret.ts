import { pbkdf2Sync } from 'node:crypto';
import { ImeError, describeInput } from '@ime/core';

/**
 * The ticket secret shared by the terminating peer and its edge: a password and an epoch
 * (guide L1740–L1741, L5029–L5049). The HMAC key is PBKDF2-HMAC-SHA256 (RFC 8018, as the ViPR ticket
 * draft cites PKCS #5) of the password, salted with the epoch, so that a ticket seen on the wire does
 * not make a weak password cheap to guess. The key is derived once per (password, epoch) and kept.
 */

export const TICKET_EPOCH_MIN = 1;
export const TICKET_EPOCH_MAX = 255;
export const TICKET_PASSWORD_MIN = 10;
export const TICKET_PASSWORD_MAX = 64;
/** OWASP's 2023 figure for PBKDF2-HMAC-SHA256; ≈ 90 ms on the reference machine, paid once per epoch. */
export const TICKET_KDF_ITERATIONS = 600_000;
const TICKET_KDF_SALT = 'ime-ticket-key-v1|epoch=';

export type TicketSecretErrorCode =
  | 'E_TICKET_PASSWORD_NOT_STRING'
  | 'E_TICKET_PASSWORD_LENGTH'
  | 'E_TICKET_PASSWORD_CHARACTER'
  | 'E_TICKET_EPOCH';

/**
 * Checks a ticket password: 10–64 printable US-ASCII characters without space. The guide says
 * 0x21–0x73 (L5042), which would forbid t–z and looks like a typo; we accept 0x21–0x7E. Messages
 * never repeat the password.
 */
export function checkTicketPassword(password: unknown): string {
  if (typeof password !== 'string') {
    throw new ImeError('E_TICKET_PASSWORD_NOT_STRING', 'the ticket password must be text');
  }
  if (password.length < TICKET_PASSWORD_MIN || password.length > TICKET_PASSWORD_MAX) {
    throw new ImeError(
      'E_TICKET_PASSWORD_LENGTH',
      `the ticket password has ${password.length} characters; it must have ${TICKET_PASSWORD_MIN}–${TICKET_PASSWORD_MAX}`,
    );
  }
  for (let i = 0; i < password.length; i++) {
    const c = password.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) {
      throw new ImeError(
        'E_TICKET_PASSWORD_CHARACTER',
        `the ticket password's character ${i + 1} is ${c === 0x20 ? 'a space' : 'not printable US-ASCII'}; use characters 0x21–0x7E only`,
        { position: i + 1 },
      );
    }
  }
  return password;
}

/** Checks an epoch: an integer 1–255 (guide L5035–L5041). Strings of digits are accepted. */
export function checkTicketEpoch(epoch: unknown): number {
  const n = typeof epoch === 'string' && /^\d{1,3}$/.test(epoch) ? Number(epoch) : epoch;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < TICKET_EPOCH_MIN || n > TICKET_EPOCH_MAX) {
    throw new ImeError(
      'E_TICKET_EPOCH',
      `the ticket epoch must be an integer from ${TICKET_EPOCH_MIN} to ${TICKET_EPOCH_MAX}, got ${describeInput(typeof epoch === 'number' ? String(epoch) : epoch)}`,
    );
  }
  return n;
}

/** A validated (password, epoch) pair with its derived HMAC key. The password itself is not kept. */
export interface TicketKey {
  readonly epoch: number;
  readonly key: Buffer;
}

export function deriveTicketKey(password: unknown, epoch: unknown): TicketKey {
  const e = checkTicketEpoch(epoch);
  const p = checkTicketPassword(password);
  return { epoch: e, key: pbkdf2Sync(p, TICKET_KDF_SALT + e, TICKET_KDF_ITERATIONS, 32, 'sha256') };
}
