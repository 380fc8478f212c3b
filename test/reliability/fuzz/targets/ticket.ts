import { isImeError, sameDomain } from '@ime/core';
import { ISSUE_TIME_SKEW_MS, DEFAULT_EPOCH_GRACE_MS, TicketVerifier, type TicketVerdict, deriveTicketKey, inspectTicket, ticketMac, ticketRefusalCode } from '@ime/ticket';
import { ime } from '@ime/wire';
import { type FuzzOutcome, type FuzzTarget, checkCode, inputHash, oracle, prng } from '../engine.js';
import { DOMAINS, FUZZ_NOW_MS, NUMBERS, TICKETS } from '../fixture.js';

/**
 * Tickets at the edge (ticket-codec.ts, ticket-verifier.ts): a verifier holding the terminating
 * enterprise's current password and epoch and the previous ones (retired a day ago, still in their
 * grace period) checks a call from a calling domain to a number.
 *
 * Each input is the ticket's raw bytes (version, epoch, claims, MAC) and is checked three ways:
 *  - as issued text (base64url of the bytes): NO changed ticket may be accepted — one accepted must
 *    be, character for character, a ticket of the corpus;
 *  - as text with a few characters changed (non-alphabet characters, a bad tail, a cut): same rule;
 *  - re-MACed with the epoch's real key, which takes the input past the MAC into the claims decoder
 *    and the checks after it: one accepted must really permit the call (domain, number, validity,
 *    epoch grace), as an independent decoding of its claims says.
 * Every refusal's reason maps to an E_TICKET_… code. inspectTicket (operators' display of an
 * unverified ticket) must read the text or refuse it with a code.
 */

const MAC_BYTES = 32;
const TEXT_NOISE = ['=', '+', '/', ' ', '\n', '.', '\u00e9', '\u0000', 'A', '_', '-'];

export function ticketTarget(seeds: readonly Uint8Array[]): FuzzTarget & { readonly stats: { remaced: number; remacedAccepted: number } } {
  const verifier = new TicketVerifier({
    current: { password: TICKETS.password, epoch: TICKETS.epoch },
    previous: { password: TICKETS.previousPassword, epoch: TICKETS.previousEpoch, retiredAtMs: TICKETS.previousRetiredAtMs },
  });
  const keys = new Map<number, Buffer>([
    [TICKETS.epoch, deriveTicketKey(TICKETS.password, TICKETS.epoch).key],
    [TICKETS.previousEpoch, deriveTicketKey(TICKETS.previousPassword, TICKETS.previousEpoch).key],
  ]);
  const seedTexts = new Set(seeds.map((s) => Buffer.from(s).toString('base64url')));
  const callers = [DOMAINS.alpha, 'initech.example', 'ACME.example', DOMAINS.stranger];
  const stats = { remaced: 0, remacedAccepted: 0 };

  const requestFor = (h: number) => ({
    callingDomain: callers[h % callers.length] as string,
    calledNumber: NUMBERS[(h >>> 4) % NUMBERS.length] as string,
    nowMs: FUZZ_NOW_MS,
  });

  function refusal(verdict: TicketVerdict, where: string): FuzzOutcome | undefined {
    if (verdict.valid) return undefined;
    return { refused: checkCode(ticketRefusalCode(verdict.reason), where) };
  }

  /** A few character-level edits of ticket text, from a PRNG seeded by the input (replayable from it). */
  function garble(text: string, h: number): string {
    const rand = prng(h);
    let t = text;
    for (let i = 0, n = 1 + rand.int(3); i < n; i++) {
      const at = rand.int(t.length + 1);
      switch (rand.int(4)) {
        case 0:
          t = t.slice(0, at) + (TEXT_NOISE[rand.int(TEXT_NOISE.length)] as string) + t.slice(at);
          break;
        case 1:
          t = t.slice(0, at) + t.slice(at + 1);
          break;
        case 2:
          t = t.slice(0, at);
          break;
        default:
          t = t.slice(0, at) + String.fromCharCode(0x21 + rand.int(0x5e)) + t.slice(at + 1);
      }
    }
    return t;
  }

  /** Whether the claims really permit this call, read independently of the verifier. */
  function permits(bytes: Uint8Array, request: ReturnType<typeof requestFor>): boolean {
    const epoch = bytes[1] as number;
    const claims = ime.v1.TicketClaims.decode(bytes.subarray(2, bytes.length - MAC_BYTES));
    const epochUsable = epoch === TICKETS.epoch || (epoch === TICKETS.previousEpoch && request.nowMs < TICKETS.previousRetiredAtMs + DEFAULT_EPOCH_GRACE_MS);
    return (
      bytes[0] === 1 &&
      epochUsable &&
      request.nowMs < claims.expiresAtMs &&
      claims.issuedAtMs <= request.nowMs + ISSUE_TIME_SKEW_MS &&
      sameDomain(claims.callingDomain, request.callingDomain) &&
      claims.numbers.includes(request.calledNumber)
    );
  }

  return {
    name: 'ticket',
    seeds,
    stats,
    // The claims are a protobuf message between the version and epoch bytes and the MAC.
    envelope: (input) => (input.length > 2 + MAC_BYTES ? { head: 2, tail: MAC_BYTES } : undefined),
    run(input): FuzzOutcome {
      const h = inputHash(input);
      const request = requestFor(h);

      const text = Buffer.from(input).toString('base64url');
      const verdict = verifier.verify(text, request);
      oracle(!verdict.valid || seedTexts.has(text), 'a changed ticket was accepted');

      const garbled = garble(text, h);
      const second = verifier.verify(garbled, request);
      oracle(!second.valid || seedTexts.has(garbled), 'a ticket with changed characters was accepted');
      refusal(second, 'garbled text');

      try {
        // What operators are shown of an unverified ticket: its times must be printable dates.
        const { claims } = inspectTicket(text);
        for (const ms of [claims.issuedAtMs, claims.expiresAtMs]) oracle(Number.isFinite(new Date(ms).getTime()), `inspectTicket passed a time no Date holds (${ms})`);
      } catch (err) {
        if (!isImeError(err)) throw err;
        checkCode(err.code, 'inspectTicket');
      }

      const key = keys.get(input[1] as number);
      if (key !== undefined && input.length > 2 + MAC_BYTES) {
        stats.remaced++;
        const signed = input.subarray(0, input.length - MAC_BYTES);
        const remaced = Buffer.concat([signed, ticketMac(key, signed)]);
        const third = verifier.verify(remaced.toString('base64url'), request);
        if (third.valid) {
          stats.remacedAccepted++;
          oracle(permits(remaced, request), 'a ticket was accepted for a call its claims do not permit');
        } else {
          refusal(third, 're-MACed');
        }
      }

      return refusal(verdict, 'as issued') ?? { accepted: true };
    },
  };
}
