import { describe, expect, it } from '@jest/globals';
import { checkTicketEpoch, checkTicketPassword, deriveTicketKey } from '../src/ticket-secret.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('ticket password rules (10–64 printable US-ASCII, no space)', () => {
  it.each([
    ['password1234', true],
    ['a'.repeat(10), true],
    ['~'.repeat(64), true],
    ['!#$%&()*+,-./:;<=>?@[]^_`{|}~', true],
    ['tuvwxyz{|}~', true], // beyond the guide's 0x73: accepted on purpose (SPEC §7)
  ])('accepts %j', (pw) => {
    expect(checkTicketPassword(pw)).toBe(pw);
  });

  it.each([
    [undefined, 'E_TICKET_PASSWORD_NOT_STRING'],
    [1234567890, 'E_TICKET_PASSWORD_NOT_STRING'],
    ['', 'E_TICKET_PASSWORD_LENGTH'],
    ['a'.repeat(9), 'E_TICKET_PASSWORD_LENGTH'],
    ['a'.repeat(65), 'E_TICKET_PASSWORD_LENGTH'],
    ['password 1234', 'E_TICKET_PASSWORD_CHARACTER'],
    ['password\t1234', 'E_TICKET_PASSWORD_CHARACTER'],
    ['passwörd1234', 'E_TICKET_PASSWORD_CHARACTER'],
    ['password1234\u007f', 'E_TICKET_PASSWORD_CHARACTER'],
  ])('refuses %j with %s', (pw, code) => {
    expect(codeOf(() => checkTicketPassword(pw))).toBe(code);
  });

  it('never repeats the password in its messages', () => {
    try {
      checkTicketPassword('secret password');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });
});

describe('ticket epochs (1–255)', () => {
  it.each([1, 255, '7', 128])('accepts %j', (e) => {
    expect(checkTicketEpoch(e)).toBe(Number(e));
  });

  it.each([0, 256, -1, 1.5, Number.NaN, '0', '256', 'one', '', null, undefined, '1e2', ' 1'])('refuses %j with E_TICKET_EPOCH', (e) => {
    expect(codeOf(() => checkTicketEpoch(e))).toBe('E_TICKET_EPOCH');
  });
});

describe('key derivation', () => {
  it('depends on both password and epoch', () => {
    const a = deriveTicketKey('password1234', 1);
    expect(a.key).toHaveLength(32);
    expect(deriveTicketKey('password1234', 1).key.equals(a.key)).toBe(true);
    expect(deriveTicketKey('password1234', 2).key.equals(a.key)).toBe(false);
    expect(deriveTicketKey('password1235', 1).key.equals(a.key)).toBe(false);
  });
});
