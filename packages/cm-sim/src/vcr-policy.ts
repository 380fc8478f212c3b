import { ImeError, isE164 } from '@ime/core';
import type { Vcr, VcrDirection } from '@ime/vap';

/**
 * Which PSTN calls become VCRs (guide L232–L237, checklist §4.2). After every PSTN call both call
 * managers upload one, except when:
 *   ime-call       the call did not use the PSTN: the originating side had an enabled learned route
 *   unanswered     no call happened that either side could later prove
 *   not-e164       a number is not +E.164 (a withheld caller id is empty) — L3273, L3528
 *   excluded       our own number is an exclusion number (fax, analog line)
 *   route-learned  we already have a route for the number we called: uploads are for unlearned DIDs (L3525)
 * Pure; the simulator counts each reason.
 */

export type VcrSkipReason = 'ime-call' | 'unanswered' | 'not-e164' | 'excluded' | 'route-learned' | 'queue-full';

export const VCR_SKIP_REASONS: readonly VcrSkipReason[] = ['ime-call', 'unanswered', 'not-e164', 'excluded', 'route-learned', 'queue-full'];

/** What the PSTN switch tells a call manager about a call (its `POST /v1/pstn/events`). */
export interface PstnEvent {
  readonly callId: string;
  readonly direction: VcrDirection;
  readonly calling: string;
  readonly called: string;
  readonly startMs: number;
  readonly stopMs: number;
  readonly answered: boolean;
  readonly viaIme: boolean;
}

function bad(message: string): ImeError {
  return new ImeError('E_CM_BAD_EVENT', message);
}

/** Checks a notification's shape; the numbers are kept as given, judging them is the policy's job. */
export function parsePstnEvent(body: unknown): PstnEvent {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('a call event must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.callId !== 'string' || !/^[A-Za-z0-9._:-]{1,128}$/.test(b.callId)) throw bad('callId must be 1–128 characters of [A-Za-z0-9._:-]');
  if (b.direction !== 'originating' && b.direction !== 'terminating') throw bad('direction must be originating or terminating');
  for (const k of ['calling', 'called'] as const) {
    if (typeof b[k] !== 'string' || (b[k] as string).length > 32) throw bad(`${k} must be a string of at most 32 characters`);
  }
  for (const k of ['startMs', 'stopMs'] as const) {
    if (!Number.isSafeInteger(b[k]) || (b[k] as number) < 0) throw bad(`${k} must be a time in ms since the epoch`);
  }
  if ((b.stopMs as number) < (b.startMs as number)) throw bad('stopMs must not be before startMs');
  if (typeof b.answered !== 'boolean') throw bad('answered must be true or false');
  if (b.viaIme !== undefined && typeof b.viaIme !== 'boolean') throw bad('viaIme must be true or false');
  return {
    callId: b.callId,
    direction: b.direction,
    calling: b.calling as string,
    called: b.called as string,
    startMs: b.startMs as number,
    stopMs: b.stopMs as number,
    answered: b.answered,
    viaIme: b.viaIme === true,
  };
}

export interface VcrPolicyContext {
  readonly isExcluded: (number: string) => boolean;
  /** An unexpired learned route, enabled or not. */
  readonly hasRoute: (number: string) => boolean;
}

export type VcrDecision = { readonly upload: Vcr } | { readonly skip: VcrSkipReason };

export function decideVcr(event: PstnEvent, context: VcrPolicyContext): VcrDecision {
  if (event.viaIme) return { skip: 'ime-call' };
  if (!event.answered) return { skip: 'unanswered' };
  if (!isE164(event.calling) || !isE164(event.called)) return { skip: 'not-e164' };
  const ours = event.direction === 'originating' ? event.calling : event.called;
  if (context.isExcluded(ours)) return { skip: 'excluded' };
  // Only the originating side can tell: the terminating side's VCR serves the caller's validation
  // of our number, which the caller has not learned whatever routes we hold.
  if (event.direction === 'originating' && context.hasRoute(event.called)) return { skip: 'route-learned' };
  return {
    upload: { calling: event.calling, called: event.called, startMs: event.startMs, stopMs: event.stopMs, direction: event.direction, callId: event.callId },
  };
}
