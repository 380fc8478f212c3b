import { type E164, ImeError, parseE164 } from '@ime/core';
import { MAX_CLOCK_SKEW_MS } from './pstn-config.js';

/**
 * What one simulated call tells each side (pure). Time is simulated: the call is over the moment it
 * is placed (stop = start + duration), so a test of a one-hour call does not wait an hour. The
 * originating side sees the true times; the terminating side sees them shifted by one skew (its
 * clock is off by that much, for start and stop alike), so the difference the validators must
 * tolerate is exactly the skew.
 */

export const DEFAULT_DURATION_SEC = 60;
export const MAX_DURATION_SEC = 86_400;

export type CallDirection = 'originating' | 'terminating';

export interface CallRequest {
  readonly from: E164;
  readonly to: E164;
  readonly durationSec: number;
  /** What the terminating side is shown: a number, or '' when the caller withheld it. */
  readonly presentedCallerId: string;
  readonly answered: boolean;
  /** A fixed skew for this call instead of a random one within the configured bound. */
  readonly skewMs?: number;
}

/** What a call manager's callback receives (`POST <callbackUrl>`). */
export interface CallNotification {
  readonly callId: string;
  readonly direction: CallDirection;
  readonly calling: string;
  readonly called: string;
  readonly startMs: number;
  readonly stopMs: number;
  readonly answered: boolean;
  /** The originating call manager routed the call over IME (a learned route), not over the PSTN. */
  readonly viaIme: boolean;
}

function bad(code: string, message: string): ImeError {
  return new ImeError(code, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a `POST /v1/calls` body. */
export function parseCallRequest(body: unknown): CallRequest {
  if (!isObject(body)) throw bad('E_ADMIN_BAD_REQUEST', 'the request body must be a JSON object');
  const known = new Set(['from', 'to', 'durationSec', 'callerId', 'answered', 'skewMs']);
  for (const k of Object.keys(body)) if (!known.has(k)) throw bad('E_ADMIN_BAD_REQUEST', `unknown field ${JSON.stringify(k.slice(0, 40))}`);
  const from = parseE164(body.from);
  const to = parseE164(body.to);
  if (from === to) throw bad('E_PSTN_SAME_NUMBER', 'a number cannot call itself');
  const durationSec = body.durationSec ?? DEFAULT_DURATION_SEC;
  if (typeof durationSec !== 'number' || !Number.isInteger(durationSec) || durationSec < 0 || durationSec > MAX_DURATION_SEC) {
    throw bad('E_PSTN_DURATION', `durationSec must be a whole number of seconds from 0 to ${MAX_DURATION_SEC}`);
  }
  let presentedCallerId: string = from;
  if (body.callerId !== undefined) {
    if (body.callerId === 'withheld') presentedCallerId = '';
    else {
      try {
        presentedCallerId = parseE164(body.callerId);
      } catch (err) {
        throw bad('E_PSTN_CALLER_ID', `callerId must be "withheld" or a +E.164 number: ${(err as Error).message}`);
      }
    }
  }
  const answered = body.answered ?? true;
  if (typeof answered !== 'boolean') throw bad('E_ADMIN_BAD_REQUEST', 'answered must be true or false');
  const skewMs = body.skewMs;
  if (skewMs !== undefined && (typeof skewMs !== 'number' || !Number.isInteger(skewMs) || Math.abs(skewMs) > MAX_CLOCK_SKEW_MS)) {
    throw bad('E_PSTN_SKEW', `skewMs must be a whole number of milliseconds within ±${MAX_CLOCK_SKEW_MS}`);
  }
  return { from, to, durationSec, presentedCallerId, answered, ...(skewMs === undefined ? {} : { skewMs }) };
}

export interface PlannedCall {
  readonly callId: string;
  readonly startMs: number;
  readonly stopMs: number;
  readonly skewMs: number;
  readonly originating: Omit<CallNotification, 'viaIme'>;
  readonly terminating: Omit<CallNotification, 'viaIme'>;
}

export function planCall(request: CallRequest, callId: string, nowMs: number, skewMs: number): PlannedCall {
  const startMs = nowMs;
  const stopMs = startMs + request.durationSec * 1000;
  const common = { callId, called: request.to, answered: request.answered };
  return {
    callId,
    startMs,
    stopMs,
    skewMs,
    originating: { ...common, direction: 'originating', calling: request.from, startMs, stopMs },
    terminating: { ...common, direction: 'terminating', calling: request.presentedCallerId, startMs: startMs + skewMs, stopMs: stopMs + skewMs },
  };
}
