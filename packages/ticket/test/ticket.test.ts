import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { MAX_TICKET_CHARS, splitTicket, ticketMac } from '../src/ticket-codec.js';
import { TicketIssuer, TICKET_DEFAULT_VALIDITY_MS } from '../src/ticket-issuer.js';
import { deriveTicketKey } from '../src/ticket-secret.js';
import { TicketVerifier, inspectTicket, ticketRefusalCode } from '../src/ticket-verifier.js';

// Key derivation is deliberately slow, so issuers and verifiers are made once for the whole file.
const PASSWORD = 'correct-horse-battery';
const OTHER_PASSWORD = 'another-password-42';
const NOW = Date.parse('2026-11-24T12:00:00Z');
const DAY = 24 * 3600 * 1000;

const issuer1 = new TicketIssuer(PASSWORD, 1);
const issuer2 = new TicketIssuer(PASSWORD, 2);
const forger = new TicketIssuer(OTHER_PASSWORD, 1);
const edge = new TicketVerifier({ current: { password: PASSWORD, epoch: 1 } });

const request = { callingDomain: 'acme.example', calledNumber: '+14085550100', nowMs: NOW + DAY };

function mint(overrides: Partial<Parameters<TicketIssuer['issue']>[0]> = {}, by = issuer1): string {
  return by.issue({
    issuerDomain: 'globex.example',
    callingDomain: 'acme.example',
    numbers: ['+14085550100', '+14085550101'],
    nowMs: NOW,
    ...overrides,
  }).ticket;
}

const good = mint();

describe('issue and verify', () => {
  it('round-trips: a fresh ticket verifies and carries its claims', () => {
    const v = edge.verify(good, request);
    expect(v).toMatchObject({ valid: true, epoch: 1 });
    if (!v.valid) throw new Error('unreachable');
    expect(v.claims.issuerDomain).toBe('globex.example');
    expect(v.claims.callingDomain).toBe('acme.example');
    expect(v.claims.numbers).toEqual(['+14085550100', '+14085550101']);
    expect(v.claims.issuedAtMs).toBe(NOW);
    expect(v.claims.expiresAtMs).toBe(NOW + TICKET_DEFAULT_VALIDITY_MS);
    expect(v.claims.ticketId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('accepts every permitted number and a differently-cased calling domain', () => {
    expect(edge.verify(good, { ...request, calledNumber: '+14085550101' }).valid).toBe(true);
    expect(edge.verify(good, { ...request, callingDomain: 'ACME.Example.' }).valid).toBe(true);
  });

  it('is text safe for a SIP header: base64url only, no padding', () => {
    expect(good).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('gives every ticket its own id', () => {
    expect(inspectTicket(mint()).claims.ticketId).not.toBe(inspectTicket(mint()).claims.ticketId);
  });

  it('normalises and de-duplicates what it signs', () => {
    const t = mint({ issuerDomain: 'GLOBEX.example', numbers: ['+14085550100', '+14085550100'] });
    expect(inspectTicket(t).claims).toMatchObject({ issuerDomain: 'globex.example', numbers: ['+14085550100'] });
  });
});

describe('refusal reasons', () => {
  it.each([
    ['bad-signature', () => edge.verify(mint({}, forger), request)],
    ['unknown-epoch', () => edge.verify(mint({}, issuer2), request)],
    ['expired', () => edge.verify(good, { ...request, nowMs: NOW + TICKET_DEFAULT_VALIDITY_MS })],
    ['expired', () => edge.verify(mint({ validForMs: 0 }), { ...request, nowMs: NOW })],
    ['not-yet-valid', () => edge.verify(good, { ...request, nowMs: NOW - 3600_000 })],
    ['domain-mismatch', () => edge.verify(good, { ...request, callingDomain: 'initech.example' })],
    ['domain-mismatch', () => edge.verify(good, { ...request, callingDomain: 'sub.acme.example' })],
    ['number-not-permitted', () => edge.verify(good, { ...request, calledNumber: '+14085550102' })],
    ['number-not-permitted', () => edge.verify(good, { ...request, calledNumber: '14085550100' })],
    ['malformed', () => edge.verify('', request)],
    ['malformed', () => edge.verify(undefined, request)],
    ['malformed', () => edge.verify('not a ticket!', request)],
    ['malformed', () => edge.verify(good + '=', request)],
    ['malformed', () => edge.verify(good.slice(0, 40), request)],
    ['malformed', () => edge.verify('A'.repeat(MAX_TICKET_CHARS + 4), request)],
  ])('%s', (reason, verify) => {
    const v = verify();
    expect(v.valid).toBe(false);
    if (v.valid) return;
    expect(v.reason).toBe(reason);
    expect(v.detail.length).toBeGreaterThan(0);
  });

  it('refuses an unknown version even with a correct MAC', () => {
    const bytes = Buffer.from(good, 'base64url');
    bytes[0] = 2;
    const key = deriveTicketKey(PASSWORD, 1).key;
    const signed = bytes.subarray(0, bytes.length - 32);
    ticketMac(key, signed).copy(bytes, bytes.length - 32);
    const v = edge.verify(bytes.toString('base64url'), request);
    expect(v).toMatchObject({ valid: false, reason: 'malformed' });
  });

  it('refuses well-signed but nonsensical claims as malformed', () => {
    const key = deriveTicketKey(PASSWORD, 1).key;
    const signed = Buffer.from([1, 1, 0x0a, 0x01, 0x21]); // issuer_domain = "!"
    const text = Buffer.concat([signed, ticketMac(key, signed)]).toString('base64url');
    expect(edge.verify(text, request)).toMatchObject({ valid: false, reason: 'malformed' });
  });

  it('maps reasons to error codes', () => {
    expect(ticketRefusalCode('bad-signature')).toBe('E_TICKET_BAD_SIGNATURE');
    expect(ticketRefusalCode('number-not-permitted')).toBe('E_TICKET_NUMBER_NOT_PERMITTED');
  });
});

describe('issuing refuses bad input with a code', () => {
  it.each([
    [{ issuerDomain: 'bad domain' }, 'E_DOMAIN_INVALID_CHARACTER'],
    [{ callingDomain: '' }, 'E_DOMAIN_EMPTY'],
    [{ numbers: [] }, 'E_TICKET_NO_NUMBERS'],
    [{ numbers: ['4085550100'] }, 'E_E164_MISSING_PLUS'],
    [{ numbers: Array.from({ length: 101 }, (_, i) => `+1408555${String(i).padStart(4, '0')}`) }, 'E_TICKET_TOO_MANY_NUMBERS'],
    [{ validForMs: -1 }, 'E_TICKET_VALIDITY'],
    [{ validForMs: 11 * 365 * DAY }, 'E_TICKET_VALIDITY'],
  ])('%j → %s', (overrides, code) => {
    expect(() => mint(overrides)).toThrow(expect.objectContaining({ code }));
  });

  it('refuses bad secrets when constructed', () => {
    expect(() => new TicketIssuer('short', 1)).toThrow(expect.objectContaining({ code: 'E_TICKET_PASSWORD_LENGTH' }));
    expect(() => new TicketIssuer(PASSWORD, 0)).toThrow(expect.objectContaining({ code: 'E_TICKET_EPOCH' }));
  });
});

describe('epoch rotation keeps the previous epoch for a grace period', () => {
  const retiredAtMs = NOW + 10 * DAY;
  const rotated = new TicketVerifier({
    current: { password: OTHER_PASSWORD, epoch: 2 },
    previous: { password: PASSWORD, epoch: 1, retiredAtMs },
  });

  it('accepts old-epoch tickets within the grace period and new ones always', () => {
    expect(rotated.verify(good, { ...request, nowMs: retiredAtMs + 7 * DAY - 1 }).valid).toBe(true);
    const fresh = new TicketIssuer(OTHER_PASSWORD, 2).issue({
      issuerDomain: 'globex.example',
      callingDomain: 'acme.example',
      numbers: ['+14085550100'],
      nowMs: NOW,
    }).ticket;
    expect(rotated.verify(fresh, { ...request, nowMs: retiredAtMs + 30 * DAY }).valid).toBe(true);
  });

  it('refuses old-epoch tickets once the grace period is over', () => {
    expect(rotated.verify(good, { ...request, nowMs: retiredAtMs + 7 * DAY })).toMatchObject({
      valid: false,
      reason: 'unknown-epoch',
    });
  });

  it('honours a configured grace period, including none', () => {
    const strict = new TicketVerifier({
      current: { password: OTHER_PASSWORD, epoch: 2 },
      previous: { password: PASSWORD, epoch: 1, retiredAtMs },
      graceMs: 0,
    });
    expect(strict.verify(good, { ...request, nowMs: retiredAtMs })).toMatchObject({ reason: 'unknown-epoch' });
  });

  it('refuses a configuration that reuses the current epoch', () => {
    expect(
      () => new TicketVerifier({ current: { password: OTHER_PASSWORD, epoch: 1 }, previous: { password: PASSWORD, epoch: 1, retiredAtMs } }),
    ).toThrow(expect.objectContaining({ code: 'E_TICKET_EPOCH_REUSED' }));
    expect(() => new TicketVerifier({ current: { password: PASSWORD, epoch: 1 }, graceMs: -1 })).toThrow(
      expect.objectContaining({ code: 'E_TICKET_GRACE' }),
    );
  });
});

describe('tamper resistance', () => {
  const validAt = { ...request };

  it('no single-byte change anywhere in the ticket bytes verifies (every position, every value)', () => {
    const bytes = Buffer.from(good, 'base64url');
    let tried = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (let delta = 1; delta < 256; delta++) {
        const copy = Buffer.from(bytes);
        copy[i] = ((copy[i] as number) + delta) & 0xff;
        expect(edge.verify(copy.toString('base64url'), validAt).valid).toBe(false);
        tried++;
      }
    }
    expect(tried).toBe(bytes.length * 255);
  });

  it('no single-character change of the ticket text verifies (every position, every base64url character)', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < good.length; i++) {
      for (const c of alphabet) {
        if (c === good[i]) continue;
        const mutated = good.slice(0, i) + c + good.slice(i + 1);
        expect(edge.verify(mutated, validAt).valid).toBe(false);
      }
    }
  });

  it('no truncation or extension verifies', () => {
    for (let n = 0; n < good.length; n++) expect(edge.verify(good.slice(0, n), validAt).valid).toBe(false);
    for (const c of ['A', 'AA', 'AAA', 'AAAA']) expect(edge.verify(good + c, validAt).valid).toBe(false);
  });

  it('random tickets with random single-byte mutations never verify (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 9_999_999 }), { minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (suffixes, position, delta) => {
          const numbers = suffixes.map((s) => `+1408${String(s).padStart(7, '0')}`);
          const t = mint({ numbers });
          const bytes = Buffer.from(t, 'base64url');
          const i = position % bytes.length;
          bytes[i] = ((bytes[i] as number) + delta) & 0xff;
          const v = edge.verify(bytes.toString('base64url'), { ...validAt, calledNumber: numbers[0] as string });
          return !v.valid;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the split keeps the MAC over every byte before it', () => {
    const parts = splitTicket(good);
    expect(parts.signed.length + parts.mac.length).toBe(Buffer.from(good, 'base64url').length);
    expect(parts.epoch).toBe(1);
  });
});
