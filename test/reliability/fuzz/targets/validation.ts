import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isImeError, parseTrustGroup } from '@ime/core';
import { type Database, openDatabase } from '@ime/runtime';
import { TicketIssuer } from '@ime/ticket';
import {
  ProverAttempt,
  PvpTerminator,
  RateLimiter,
  type TerminatingClaim,
  VcrStore,
  canonicalCallSecret,
  decodeGrant,
  decodeRequest,
  decodeResponse,
  encodeResponse,
  openGrant,
  originatorPlan,
  proverScalars,
  verifierRespond,
  verifierScalars,
} from '@ime/validator';
import { type FuzzOutcome, type FuzzTarget, checkCode, checkRemoteCode, hex, inputHash, oracle, refusedWith } from '../engine.js';
import { DOMAINS, FUZZ_NOW_MS, GRANT_KEY, NUMBERS, TICKETS, identities } from '../fixture.js';
import { VALIDATION_CALL, VALIDATION_CELL_MS, corpusSlotContext } from '../generate.js';

/**
 * Validation messages (validation.proto), offered to every reader that takes them from the network:
 *  - as a request: decoded (pvp-codec.ts) and handed to a real terminator (pvp-terminator.ts) with a
 *    VCR store on LevelDB holding the call the seeds are about, real trust lists and a real rate
 *    limiter, exactly as the peer's validation service does; its answer must encode and decode;
 *  - as a response: decoded, and an answer's slots checked by a real SPAKE2+ prover (pvp-pake.ts),
 *    a result opened under the corpus's grant key;
 *  - as a grant: decoded.
 * The terminator keeps its sessions between inputs (a start opens one, an attempt with the same
 * session id uses it), on a clock that moves 50 ms per input so sessions and rate limits expire.
 */

export interface ValidationTargetHandle {
  readonly target: FuzzTarget;
  readonly stats: { attemptsAnswered: number; slotsChecked: number; sharesChecked: number; grantsOpened: number };
  close(): Promise<void>;
}

export async function validationTarget(seeds: readonly Uint8Array[]): Promise<ValidationTargetHandle> {
  const ids = await identities();
  const dir = mkdtempSync(join(tmpdir(), 'ime-fuzz-validation-'));
  let db: Database | undefined;
  const close = async () => {
    await db?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    db = await openDatabase(dir);
    let clock = FUZZ_NOW_MS;
    const now = () => clock;
    const vcrs = await VcrStore.open({ db, now });
    const added = await vcrs.add(
      [
        { ...VALIDATION_CALL, direction: 'terminating', callId: 'fuzz-call-1' },
        { ...VALIDATION_CALL, startMs: VALIDATION_CALL.startMs + 20_000, stopMs: VALIDATION_CALL.stopMs + 20_000, direction: 'terminating', callId: 'fuzz-call-2' },
        { ...VALIDATION_CALL, called: NUMBERS[1], direction: 'terminating', callId: 'fuzz-call-3' },
      ],
      'fuzz',
    );
    oracle(added.accepted === 3, `the VCR store refused the corpus's calls: ${JSON.stringify(added.refused)}`);
    const issuer = new TicketIssuer(TICKETS.password, TICKETS.epoch);
    const claim: TerminatingClaim = {
      sipUri: 'sip:85b3@globex.example:5060;transport=tcp',
      trustGroups: [parseTrustGroup({ name: 'blocked', trusted: false, elements: [DOMAINS.stranger] })],
      issueTicket: (callingDomain, number) => issuer.issue({ issuerDomain: TICKETS.issuerDomain, callingDomain, numbers: [number], nowMs: clock }).ticket,
    };
    const claimed = new Set<string>([NUMBERS[0], NUMBERS[1], NUMBERS[2]]);
    const terminator = new PvpTerminator({
      selfPeerId: ids.beta.peerId,
      domain: ids.beta.domain,
      vcrs,
      claim: (number) => (claimed.has(number) ? claim : undefined),
      limiter: new RateLimiter({ perMinute: 120, burst: 20, now }),
      now,
    });
    // The originator's side of the corpus's exchange: the answers in the corpus were made for it.
    const plan = originatorPlan(VALIDATION_CALL, VALIDATION_CELL_MS);
    const prover = ProverAttempt.start(proverScalars(canonicalCallSecret(VALIDATION_CALL, plan[0] as (typeof plan)[number], VALIDATION_CELL_MS)));
    const contexts = [0, 1, 2, 3, 4, 5, 6, 7].map((slot) => corpusSlotContext(ids, slot));
    const verifier = verifierScalars(canonicalCallSecret(VALIDATION_CALL, plan[0] as (typeof plan)[number], VALIDATION_CELL_MS));
    const stats = { attemptsAnswered: 0, slotsChecked: 0, sharesChecked: 0, grantsOpened: 0 };

    // The shares in the corpus are valid P-256 points, and a whole SPAKE2+ computation on one costs
    // milliseconds. The seed check and the terminator's sessions run them; direct share checks skip
    // them (a mutated share that is still a valid point is astronomically rare, so nothing is lost),
    // and answers carrying a corpus share are computed for the first few hundred confirmations only.
    const corpusShares = new Set<string>();
    for (const seed of seeds) {
      try {
        const r = decodeRequest(seed);
        if (r.body.kind === 'attempt') corpusShares.add(hex(r.body.share));
      } catch {
        // not a request
      }
      try {
        const r = decodeResponse(seed);
        if (r.body.kind === 'answer') for (const slot of r.body.slots) corpusShares.add(hex(slot.share));
      } catch {
        // not a response
      }
    }
    const VALID_SHARE_BUDGET = 300;
    let validShareChecks = 0;

    /** Runs `fn`; an ImeError is a refusal (its code returned), anything else goes to the fuzzer. */
    async function refusal(fn: () => unknown): Promise<string | undefined> {
      try {
        await fn();
        return undefined;
      } catch (err) {
        if (isImeError(err)) return err.code;
        throw err;
      }
    }

    const target: FuzzTarget = {
      name: 'validation',
      seeds,
      async run(input): Promise<FuzzOutcome> {
        clock += 50;
        const h = inputHash(input);
        // The remote, by the input's hash: mostly the caller the seeds are from, one in seven a peer
        // whose domain the claim's trust list blocks.
        const remote = h % 7 === 6 ? { peerId: ids.stranger.peerId, domain: DOMAINS.stranger } : { peerId: ids.alpha.peerId, domain: ids.alpha.domain };

        // As a response, at the originator.
        const responseCode = await refusal(async () => {
          const response = decodeResponse(input);
          const body = response.body;
          if (body.kind === 'refused') checkRemoteCode(body.code, 'a decoded refusal');
          if (body.kind === 'answer') {
            for (const [slot, s] of body.slots.entries()) {
              if (corpusShares.has(hex(s.share)) && validShareChecks++ >= VALID_SHARE_BUDGET) continue;
              stats.slotsChecked++;
              const code = await refusal(() => prover.check(contexts[slot] as Uint8Array, s.share, s.confirm));
              if (code !== undefined) checkCode(code, 'prover check');
            }
          }
          if (body.kind === 'result') {
            const grant = decodeGrant(openGrant(GRANT_KEY, body.nonce, body.sealed));
            stats.grantsOpened++;
            oracle(grant.value === 8 || grant.value === 12, 'a grant worth neither 8 nor 12 was decoded');
          }
        });
        if (responseCode !== undefined) checkCode(responseCode, 'response side');

        // As a grant.
        const grantCode = await refusal(() => decodeGrant(input));
        if (grantCode !== undefined) checkCode(grantCode, 'grant side');

        // As a request, at the terminator: the outcome this input is counted by.
        let request;
        try {
          request = decodeRequest(input);
        } catch (err) {
          if (isImeError(err)) return refusedWith(err.code, 'decode');
          throw err;
        }
        // The share check itself, on every share the corpus does not hold (see corpusShares).
        if (request.body.kind === 'attempt' && !corpusShares.has(hex(request.body.share))) {
          stats.sharesChecked++;
          const code = await refusal(() => verifierRespond(verifier, contexts[0] as Uint8Array, (request.body as { share: Uint8Array }).share));
          if (code !== undefined) checkCode(code, 'verifier share check');
        }
        const body = await terminator.handle(request, remote);
        // The answer goes back on the wire: it must encode, and decode at the other side.
        const echoed = decodeResponse(encodeResponse({ sessionId: request.sessionId, body }));
        oracle(echoed.body.kind === body.kind, `the terminator's ${body.kind} answer did not survive the wire`);
        if (body.kind === 'answer') stats.attemptsAnswered++;
        if (body.kind === 'refused') return refusedWith(checkCode(body.code, 'terminator refusal'), request.body.kind);
        return { accepted: true, note: `${request.body.kind}->${body.kind}` };
      },
    };
    return { target, stats, close };
  } catch (err) {
    await close();
    throw err;
  }
}
