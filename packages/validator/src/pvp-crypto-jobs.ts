import { ImeError, isImeError } from '@ime/core';
import { ProverAttempt, type ProverState, type VerifierResponse, dummyVerifierScalars, verifierRespond, verifierScalars } from './pvp-pake.js';

/**
 * The expensive half of a PVP attempt as plain-data jobs, so that they can run on the event loop or on
 * a crypto thread (pvp-crypto-pool.ts) with exactly the same code. A job is one whole attempt's slots:
 * one message per attempt, not per slot.
 */

/** The terminating side: one answer per slot; `null` is a dummy slot (random secret, same cost). */
export interface AnswerSlotsJob {
  readonly op: 'answer';
  readonly secrets: readonly (string | null)[];
  readonly contexts: readonly Uint8Array[];
  /** X from the originator. */
  readonly share: Uint8Array;
}

/** The originating side: the first slot whose cB matches, tested in slot order. */
export interface CheckSlotsJob {
  readonly op: 'check';
  readonly state: ProverState;
  readonly slots: readonly { readonly context: Uint8Array; readonly share: Uint8Array; readonly confirm: Uint8Array }[];
}

export type PvpCryptoJob = AnswerSlotsJob | CheckSlotsJob;

export interface SlotMatch {
  readonly slot: number;
  readonly confirm: Uint8Array;
  readonly key: Uint8Array;
}

export type PvpCryptoResult =
  | { readonly op: 'answer'; readonly slots: readonly VerifierResponse[] }
  | { readonly op: 'check'; readonly match: SlotMatch | undefined };

/** Throws ImeError (E_PVP_…) exactly as the inline exchange would. */
export async function runPvpCryptoJob(job: PvpCryptoJob): Promise<PvpCryptoResult> {
  if (job.op === 'answer') {
    if (job.secrets.length !== job.contexts.length) throw new ImeError('E_PVP_PARAMETERS', 'one context per slot');
    const slots: VerifierResponse[] = [];
    for (const [i, secret] of job.secrets.entries()) {
      const scalars = secret === null ? dummyVerifierScalars() : verifierScalars(secret);
      slots.push(await verifierRespond(scalars, job.contexts[i] as Uint8Array, job.share));
    }
    return { op: 'answer', slots };
  }
  const prover = ProverAttempt.fromState(job.state);
  for (const [slot, s] of job.slots.entries()) {
    const checked = await prover.check(s.context, s.share, s.confirm);
    if (checked.ok) return { op: 'check', match: { slot, confirm: checked.confirm, key: checked.key } };
  }
  return { op: 'check', match: undefined };
}

/** A job's outcome as it crosses a thread boundary: an ImeError keeps its code, anything else is a fault. */
export type PvpCryptoReply = { readonly ok: true; readonly result: PvpCryptoResult } | { readonly ok: false; readonly code: string; readonly message: string };

export async function replyTo(job: PvpCryptoJob): Promise<PvpCryptoReply> {
  try {
    return { ok: true, result: await runPvpCryptoJob(job) };
  } catch (err) {
    if (isImeError(err)) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: 'E_PVP_CRYPTO_FAULT', message: `the key exchange failed on a crypto thread: ${err instanceof Error ? err.message : String(err)}` };
  }
}
