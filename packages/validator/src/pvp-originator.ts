import { randomBytes } from 'node:crypto';
import { ImeError, sameDomain } from '@ime/core';
import { type PvpRequestBody, type PvpResponseBody, SESSION_ID_BYTES, type ValidationGrant, decodeGrant } from './pvp-codec.js';
import { InlinePvpCrypto, type PvpCrypto } from './pvp-crypto-pool.js';
import { PVP_SUITE, ProverAttempt, openGrant, proverScalars, slotContext } from './pvp-pake.js';
import { type CallDetails, canonicalCallSecret, originatorPlan, proofValue } from './pvp-secret.js';

/**
 * The originating side of a validation: proves to the peer that claims the called number that this
 * enterprise really called it, and checks that the claimant proves the same call back. The plan of
 * attempts (which time cells, whether the stop time is included) is fixed by the call's own times,
 * so nothing about the call leaves this peer except the called number and the coarse window.
 */

export interface OriginatorParameters {
  /** Width of the coarse window named in the clear. */
  readonly windowMs: number;
  /** Time cell width (2 × tolerance). */
  readonly cellMs: number;
}

export type ValidationOutcome =
  | { readonly kind: 'success'; readonly grant: ValidationGrant; readonly attempts: number }
  /** The exchange ran and no slot proved the call: the claimant does not hold it (or the details differ). */
  | { readonly kind: 'failure'; readonly attempts: number }
  /** The claimant refused before any proof (blocked, rate limited, not claimed…): nothing was learned. */
  | { readonly kind: 'refused'; readonly code: string; readonly message: string };

/** Sends one request of a session and returns the decoded answer (the RPC layer's job). */
export type PvpSend = (sessionId: Uint8Array, body: PvpRequestBody) => Promise<PvpResponseBody>;

export interface RunValidationInput {
  readonly call: CallDetails;
  readonly selfPeerId: string;
  readonly claimantPeerId: string;
  /** The claimant's domain as its ring certificate binds it; the grant must name the same. */
  readonly claimantDomain: string;
  readonly parameters: OriginatorParameters;
  readonly send: PvpSend;
  /** Where the key exchanges run (default: the event loop). */
  readonly crypto?: PvpCrypto;
}

function unexpected(body: PvpResponseBody, wanted: string): ImeError {
  return new ImeError('E_PVP_UNEXPECTED', `the claimant answered ${body.kind} where ${wanted} was expected`);
}

export async function runValidation(input: RunValidationInput): Promise<ValidationOutcome> {
  const { call, parameters, send } = input;
  const crypto = input.crypto ?? new InlinePvpCrypto();
  const sessionId = randomBytes(SESSION_ID_BYTES);
  const windowStartMs = Math.floor(call.startMs / parameters.windowMs) * parameters.windowMs;
  const offer = await send(sessionId, {
    kind: 'start',
    called: call.called,
    windowStartMs,
    windowMs: parameters.windowMs,
    cellMs: parameters.cellMs,
    suite: PVP_SUITE,
  });
  if (offer.kind === 'refused') return { kind: 'refused', code: offer.code, message: offer.message };
  if (offer.kind !== 'offer') throw unexpected(offer, 'an offer');
  const plan = originatorPlan(call, parameters.cellMs).slice(0, offer.maxAttempts);
  let attempt = 0;
  try {
    for (const cells of plan) {
      attempt++;
      const prover = ProverAttempt.start(proverScalars(canonicalCallSecret(call, cells, parameters.cellMs)));
      const answer = await send(sessionId, { kind: 'attempt', attempt, proof: cells.kind, share: prover.share });
      if (answer.kind === 'refused') return { kind: 'refused', code: answer.code, message: answer.message };
      if (answer.kind === 'closed') return { kind: 'failure', attempts: attempt };
      if (answer.kind !== 'answer' || answer.attempt !== attempt) throw unexpected(answer, `the answer to attempt ${attempt}`);
      if (answer.slots.length !== offer.slots) throw new ImeError('E_PVP_UNEXPECTED', `the claimant offered ${offer.slots} slots and answered ${answer.slots.length}`);
      const slots = answer.slots.map((s, slot) => ({
        share: s.share,
        confirm: s.confirm,
        context: slotContext({
          sessionId,
          terminatorNonce: offer.terminatorNonce,
          originatorPeer: input.selfPeerId,
          terminatorPeer: input.claimantPeerId,
          called: call.called,
          windowStartMs,
          cellMs: parameters.cellMs,
          attempt,
          slot,
        }),
      }));
      const checked = await crypto.run({ op: 'check', state: prover.exportState(), slots });
      if (checked.op !== 'check') throw new ImeError('E_PVP_CRYPTO_FAULT', 'a crypto thread answered the wrong job');
      const match = checked.match;
      if (match !== undefined) {
        const result = await send(sessionId, { kind: 'confirm', attempt, slot: match.slot, confirm: match.confirm });
        if (result.kind !== 'result') return { kind: 'failure', attempts: attempt };
        const grant = decodeGrant(openGrant(match.key, result.nonce, result.sealed));
        if (!sameDomain(grant.domain, input.claimantDomain)) {
          throw new ImeError('E_PVP_GRANT_DOMAIN', `the claimant's grant names ${grant.domain}, but its ring certificate binds ${input.claimantDomain}`);
        }
        if (grant.value !== proofValue(cells.kind)) {
          throw new ImeError('E_PVP_GRANT_VALUE', `the claimant's grant is worth ${grant.value} for a ${cells.kind} proof`);
        }
        return { kind: 'success', grant, attempts: attempt };
      }
    }
  } catch (err) {
    // Tell the claimant to drop the session; the error itself is what the caller needs.
    await send(sessionId, { kind: 'abandon' }).catch(() => undefined);
    throw err;
  }
  await send(sessionId, { kind: 'abandon' }).catch(() => undefined);
  return { kind: 'failure', attempts: attempt };
}
