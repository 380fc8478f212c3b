import { ImeError, decodeWire, domainProblem, e164Problem } from '@ime/core';
import { ime } from '@ime/wire';
import type { ProofKind } from './pvp-secret.js';

/**
 * The validation exchange's messages (proto/validation.proto) as plain typed values. Everything that
 * arrives from the network is length-checked before decoding and every field is checked before use;
 * a bad message becomes E_PVP_MALFORMED (or the wire codes of the core) and never reaches the
 * cryptography.
 */

export const VALIDATION_PROTOCOL = '/ime/validate/1.0.0';
export const VALIDATION_WIRE_VERSION = 1;
/** Largest request or response either side decodes: 8 slots of 97 bytes plus a grant fit easily. */
export const MAX_VALIDATION_MESSAGE_BYTES = 16 * 1024;
export const SESSION_ID_BYTES = 16;
export const TERMINATOR_NONCE_BYTES = 16;
export const MAX_SLOTS = 8;
export const MAX_ATTEMPTS = 8;
const SHARE_BYTES = 65;
const CONFIRM_BYTES = 32;
const MAX_SEALED_BYTES = 8 * 1024;
const MAX_TICKET_CHARS = 4096;
const MAX_SIP_URI_CHARS = 512;
const MAX_SUITE_CHARS = 128;
/** Coarse windows and cells a terminator will consider at all (its own limits are tighter). */
const MAX_WINDOW_MS = 24 * 3600 * 1000;
const MAX_CELL_MS = 3600 * 1000;

export type PvpRequestBody =
  | { readonly kind: 'start'; readonly called: string; readonly windowStartMs: number; readonly windowMs: number; readonly cellMs: number; readonly suite: string }
  | { readonly kind: 'attempt'; readonly attempt: number; readonly proof: ProofKind; readonly share: Uint8Array }
  | { readonly kind: 'confirm'; readonly attempt: number; readonly slot: number; readonly confirm: Uint8Array }
  | { readonly kind: 'abandon' };

export interface PvpRequest {
  readonly sessionId: Uint8Array;
  readonly body: PvpRequestBody;
}

export interface SlotAnswer {
  readonly share: Uint8Array;
  readonly confirm: Uint8Array;
}

export type PvpResponseBody =
  | { readonly kind: 'offer'; readonly slots: number; readonly maxAttempts: number; readonly terminatorNonce: Uint8Array }
  | { readonly kind: 'answer'; readonly attempt: number; readonly slots: readonly SlotAnswer[] }
  | { readonly kind: 'result'; readonly nonce: Uint8Array; readonly sealed: Uint8Array }
  | { readonly kind: 'refused'; readonly code: string; readonly message: string }
  | { readonly kind: 'closed' };

export interface PvpResponse {
  readonly sessionId: Uint8Array;
  readonly body: PvpResponseBody;
}

/** What the terminator grants after a mutual proof, sealed under the agreed key. */
export interface ValidationGrant {
  readonly domain: string;
  readonly sipUri: string;
  readonly ticket: string;
  readonly value: 8 | 12;
}

const PROOF_KINDS: Record<number, ProofKind> = { 1: 'start-stop', 2: 'start-only' };
const PROOF_CODES: Record<ProofKind, number> = { 'start-stop': 1, 'start-only': 2 };

function malformed(message: string): ImeError {
  return new ImeError('E_PVP_MALFORMED', message);
}

function bytesOf(value: Uint8Array | null | undefined, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw malformed(`${what} must be ${length} bytes, got ${value instanceof Uint8Array ? value.length : 'none'}`);
  }
  return value;
}

function count(value: number | null | undefined, min: number, max: number, what: string): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw malformed(`${what} must be from ${min} to ${max}, got ${n}`);
  return n;
}

function checkVersion(version: number | null | undefined, what: string): void {
  if ((version ?? 0) !== VALIDATION_WIRE_VERSION) {
    throw new ImeError('E_WIRE_VERSION', `${what} has validation protocol version ${version ?? 0}, not ${VALIDATION_WIRE_VERSION}`);
  }
}

export function encodeRequest(request: PvpRequest): Uint8Array {
  const b = request.body;
  const body: ime.v1.IValidationRequest =
    b.kind === 'start'
      ? { start: { calledNumber: b.called, windowStartMs: b.windowStartMs, windowMs: b.windowMs, cellMs: b.cellMs, suite: b.suite } }
      : b.kind === 'attempt'
        ? { attempt: { attempt: b.attempt, kind: PROOF_CODES[b.proof], share: b.share } }
        : b.kind === 'confirm'
          ? { confirm: { attempt: b.attempt, slot: b.slot, confirm: b.confirm } }
          : { abandon: {} };
  return ime.v1.ValidationRequest.encode({ version: VALIDATION_WIRE_VERSION, sessionId: request.sessionId, ...body }).finish();
}

export function decodeRequest(bytes: unknown): PvpRequest {
  const m = decodeWire(ime.v1.ValidationRequest, bytes, MAX_VALIDATION_MESSAGE_BYTES, 'validation request');
  checkVersion(m.version, 'the validation request');
  const sessionId = bytesOf(m.sessionId, SESSION_ID_BYTES, 'the session id');
  switch (m.body) {
    case 'start': {
      const s = m.start as ime.v1.ValidationStart;
      const problem = e164Problem(s.calledNumber);
      if (problem) throw malformed(`the called number: ${problem.message}`);
      const windowStartMs = Number(s.windowStartMs);
      if (!Number.isSafeInteger(windowStartMs) || windowStartMs < 0) throw malformed('the window start must be a time in milliseconds');
      if (typeof s.suite !== 'string' || s.suite.length === 0 || s.suite.length > MAX_SUITE_CHARS) throw malformed('the key exchange suite is missing or too long');
      return {
        sessionId,
        body: {
          kind: 'start',
          called: s.calledNumber,
          windowStartMs,
          windowMs: count(s.windowMs, 1, MAX_WINDOW_MS, 'the window'),
          cellMs: count(s.cellMs, 1, MAX_CELL_MS, 'the time cell'),
          suite: s.suite,
        },
      };
    }
    case 'attempt': {
      const a = m.attempt as ime.v1.ValidationAttempt;
      const proof = PROOF_KINDS[a.kind];
      if (proof === undefined) throw malformed(`unknown proof kind ${a.kind}`);
      return { sessionId, body: { kind: 'attempt', attempt: count(a.attempt, 1, MAX_ATTEMPTS, 'the attempt'), proof, share: bytesOf(a.share, SHARE_BYTES, 'the key share') } };
    }
    case 'confirm': {
      const c = m.confirm as ime.v1.ValidationConfirm;
      return {
        sessionId,
        body: {
          kind: 'confirm',
          attempt: count(c.attempt, 1, MAX_ATTEMPTS, 'the attempt'),
          slot: count(c.slot, 0, MAX_SLOTS - 1, 'the slot'),
          confirm: bytesOf(c.confirm, CONFIRM_BYTES, 'the confirmation tag'),
        },
      };
    }
    case 'abandon':
      return { sessionId, body: { kind: 'abandon' } };
    default:
      throw malformed('a validation request needs a body');
  }
}

export function encodeResponse(response: PvpResponse): Uint8Array {
  const b = response.body;
  const body: ime.v1.IValidationResponse =
    b.kind === 'offer'
      ? { offer: { slots: b.slots, maxAttempts: b.maxAttempts, terminatorNonce: b.terminatorNonce } }
      : b.kind === 'answer'
        ? { answer: { attempt: b.attempt, slots: b.slots.map((s) => ({ share: s.share, confirm: s.confirm })) } }
        : b.kind === 'result'
          ? { result: { nonce: b.nonce, sealed: b.sealed } }
          : b.kind === 'refused'
            ? { refused: { code: b.code, message: b.message } }
            : { closed: {} };
  return ime.v1.ValidationResponse.encode({ version: VALIDATION_WIRE_VERSION, sessionId: response.sessionId, ...body }).finish();
}

export function decodeResponse(bytes: unknown): PvpResponse {
  const m = decodeWire(ime.v1.ValidationResponse, bytes, MAX_VALIDATION_MESSAGE_BYTES, 'validation response');
  checkVersion(m.version, 'the validation response');
  const sessionId = bytesOf(m.sessionId, SESSION_ID_BYTES, 'the session id');
  switch (m.body) {
    case 'offer': {
      const o = m.offer as ime.v1.ValidationOffer;
      return {
        sessionId,
        body: {
          kind: 'offer',
          slots: count(o.slots, 1, MAX_SLOTS, 'the slot count'),
          maxAttempts: count(o.maxAttempts, 1, MAX_ATTEMPTS, 'the attempt budget'),
          terminatorNonce: bytesOf(o.terminatorNonce, TERMINATOR_NONCE_BYTES, 'the terminator nonce'),
        },
      };
    }
    case 'answer': {
      const a = m.answer as ime.v1.ValidationAnswer;
      const slots = a.slots ?? [];
      if (slots.length < 1 || slots.length > MAX_SLOTS) throw malformed(`an answer must have 1 to ${MAX_SLOTS} slots, got ${slots.length}`);
      return {
        sessionId,
        body: {
          kind: 'answer',
          attempt: count(a.attempt, 1, MAX_ATTEMPTS, 'the attempt'),
          slots: slots.map((s, i) => ({ share: bytesOf(s.share, SHARE_BYTES, `slot ${i}'s key share`), confirm: bytesOf(s.confirm, CONFIRM_BYTES, `slot ${i}'s tag`) })),
        },
      };
    }
    case 'result': {
      const r = m.result as ime.v1.ValidationResult;
      const sealed = r.sealed;
      if (!(sealed instanceof Uint8Array) || sealed.length === 0 || sealed.length > MAX_SEALED_BYTES) throw malformed('the sealed result is missing or too large');
      return { sessionId, body: { kind: 'result', nonce: bytesOf(r.nonce, 12, 'the result nonce'), sealed } };
    }
    case 'refused': {
      const e = m.refused as ime.v1.ErrorInfo;
      const code = /^E_[A-Z0-9_]{1,60}$/.test(e.code ?? '') ? e.code : 'E_PVP_REFUSED';
      return { sessionId, body: { kind: 'refused', code, message: String(e.message ?? '').slice(0, 300) } };
    }
    case 'closed':
      return { sessionId, body: { kind: 'closed' } };
    default:
      throw malformed('a validation response needs a body');
  }
}

export function encodeGrant(grant: ValidationGrant): Uint8Array {
  return ime.v1.ValidationGrant.encode({ domain: grant.domain, sipUri: grant.sipUri, ticket: grant.ticket, value: grant.value }).finish();
}

export function decodeGrant(bytes: Uint8Array): ValidationGrant {
  const g = decodeWire(ime.v1.ValidationGrant, bytes, MAX_SEALED_BYTES, 'validation grant');
  const domain = domainProblem(g.domain) ? undefined : g.domain.toLowerCase();
  if (domain === undefined) throw malformed('the grant names no valid domain');
  if (typeof g.sipUri !== 'string' || !/^sips?:/i.test(g.sipUri) || g.sipUri.length > MAX_SIP_URI_CHARS) throw malformed('the grant has no valid SIP URI');
  if (typeof g.ticket !== 'string' || g.ticket.length === 0 || g.ticket.length > MAX_TICKET_CHARS || !/^[A-Za-z0-9_-]+$/.test(g.ticket)) {
    throw malformed('the grant has no valid ticket');
  }
  if (g.value !== 8 && g.value !== 12) throw malformed(`the grant is worth ${g.value}, not 8 or 12`);
  return { domain, sipUri: g.sipUri, ticket: g.ticket, value: g.value };
}
