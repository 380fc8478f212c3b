import { createHmac } from 'node:crypto';
import { TicketIssuer, TicketVerifier, deriveTicketKey, splitTicket } from '@ime/ticket';
import { type Suite, measureRates, round3, target } from '../harness.js';

/**
 * Ticket sign and verify rates next to bare node:crypto HMAC-SHA256 over the same bytes, in the same
 * run, so the ratio does not depend on the machine. Target: verify ≥ 50 % of bare HMAC.
 */
type Measured = ReturnType<typeof measureRates>[number];

export const ticketSuite: Suite = {
  name: 'ticket',
  description: 'ticket issue/verify against bare HMAC-SHA256',
  run({ quick, progress }) {
    const rate = { roundMs: quick ? 150 : 400, rounds: quick ? 5 : 15 };
    const password = 'bench-ticket-password';
    const issuer = new TicketIssuer(password, 1);
    const verifier = new TicketVerifier({ current: { password, epoch: 1 } });
    const input = { issuerDomain: 'globex.example', callingDomain: 'acme.example', numbers: ['+12125551234'] };
    const { ticket } = issuer.issue(input);
    const request = { callingDomain: 'acme.example', calledNumber: '+12125551234' };
    if (!verifier.verify(ticket, request).valid) throw new Error('bench ticket does not verify');

    // The baseline MACs exactly what a verify MACs: the ticket's signed bytes, under the derived key.
    const key = deriveTicketKey(password, 1).key;
    const signed = Buffer.from(splitTicket(ticket).signed);

    progress('ticket: bare HMAC-SHA256, verify and issue, in interleaved rounds');
    const [hmac, verify, issue] = measureRates(
      [() => createHmac('sha256', key).update(signed).digest(), () => verifier.verify(ticket, request), () => issuer.issue(input)],
      rate,
    ) as [Measured, Measured, Measured];
    const ratio = verify.ratioToFirst;
    return {
      rows: [
        { bench: 'ticket', system: 'node-hmac', op: 'hmac-sha256', ops_per_sec: round3(hmac.opsPerSec), n: hmac.n, bytes: signed.length },
        { bench: 'ticket', system: 'ours', op: 'verify', ops_per_sec: round3(verify.opsPerSec), n: verify.n },
        { bench: 'ticket', system: 'ours', op: 'issue', ops_per_sec: round3(issue.opsPerSec), n: issue.n },
      ],
      targets: [target('ticket verify / bare HMAC-SHA256', '>= 0.5', ratio, ratio >= 0.5)],
    };
  },
};
