import { randomBytes, randomInt } from 'node:crypto';
import { ImeError, type TrustGroup, evaluateTrust, isImeError } from '@ime/core';
import {
  MAX_ATTEMPTS,
  MAX_SLOTS,
  type PvpRequest,
  type PvpResponseBody,
  type SlotAnswer,
  TERMINATOR_NONCE_BYTES,
  encodeGrant,
} from './pvp-codec.js';
import { InlinePvpCrypto, type PvpCrypto } from './pvp-crypto-pool.js';
import { PVP_SUITE, type VerifierResponse, confirmMatches, sealGrant, slotContext } from './pvp-pake.js';
import { type ProofKind, canonicalCallSecret, proofValue, terminatorCells } from './pvp-secret.js';
import type { RateLimiter } from './rate-limiter.js';
import type { StoredVcr, VcrStore } from './vcr-store.js';

/**
 * The terminating side of a validation (SPEC §6): the peer that claims the called number answers an
 * originator that says it called it. It never says whether it holds a matching call: every session
 * gets the same offer and every attempt the same number of slots (real candidate calls padded with
 * dummies that cost the same), and only a mutual proof in one slot yields a result.
 *
 * Refusals that reveal nothing about calls come first: a number this peer does not claim, a caller
 * domain its trust lists block (ValidationsBlocked), or a caller over its attempt rate
 * (BlockedValidationTermTLSLimit).
 */

/** What this peer knows about a number it claims. */
export interface TerminatingClaim {
  readonly sipUri: string;
  /** Trust lists of the Vservice that publishes the number (guide L2967–L3053). */
  readonly trustGroups: readonly TrustGroup[];
  /** Mints a ticket for the calling domain and the number (SPEC §7). */
  issueTicket(callingDomain: string, number: string): string;
}

export interface TerminatorPolicy {
  /** Slots per attempt (candidate calls considered at once). */
  readonly slots: number;
  readonly maxAttempts: number;
  /** The largest coarse window an originator may name. */
  readonly maxWindowMs: number;
  /** The widest time cell accepted (2 × the tolerance). */
  readonly maxCellMs: number;
  readonly sessionTtlMs: number;
  readonly maxSessions: number;
}

export const DEFAULT_TERMINATOR_POLICY: TerminatorPolicy = {
  slots: 3,
  maxAttempts: 6,
  maxWindowMs: 10 * 60 * 1000,
  maxCellMs: 10_000,
  sessionTtlMs: 30_000,
  maxSessions: 10_000,
};

export type TerminatorEvent =
  | { readonly kind: 'blocked'; readonly peerId: string; readonly domain: string; readonly reason: string }
  | { readonly kind: 'rate-limited'; readonly peerId: string }
  | { readonly kind: 'validated'; readonly peerId: string; readonly domain: string; readonly number: string; readonly value: 8 | 12 }
  | { readonly kind: 'closed'; readonly peerId: string; readonly reason: string };

export interface TerminatorOptions {
  readonly selfPeerId: string;
  /** This peer's domain, as bound in its ring certificate. */
  readonly domain: string;
  readonly vcrs: VcrStore;
  readonly claim: (number: string) => TerminatingClaim | undefined;
  /** Attempts per remote peer (a Start and each Attempt take one). */
  readonly limiter: RateLimiter;
  readonly policy?: Partial<TerminatorPolicy>;
  readonly onEvent?: (event: TerminatorEvent) => void;
  readonly now?: () => number;
  /** Where the key exchanges run (default: the event loop). */
  readonly crypto?: PvpCrypto;
}

interface SlotState {
  readonly candidate: StoredVcr | undefined;
  readonly expectedConfirm: Uint8Array;
  readonly key: Uint8Array;
  readonly proof: ProofKind;
}

interface Session {
  readonly peerId: string;
  readonly callingDomain: string;
  readonly called: string;
  readonly windowStartMs: number;
  readonly cellMs: number;
  readonly terminatorNonce: Uint8Array;
  /** Real candidates at random positions, `undefined` for dummy slots. */
  readonly slots: readonly (StoredVcr | undefined)[];
  readonly claim: TerminatingClaim;
  readonly expiresAtMs: number;
  attempt: number;
  answered: SlotState[] | undefined;
}

const USED_SET_MAX = 100_000;

function sessionKey(peerId: string, sessionId: Uint8Array): string {
  return `${peerId}/${Buffer.from(sessionId).toString('hex')}`;
}

function vcrKey(v: StoredVcr): string {
  return `${v.called}/${v.startMs}/${v.callId}`;
}

export class PvpTerminator {
  readonly #o: TerminatorOptions;
  readonly #policy: TerminatorPolicy;
  readonly #now: () => number;
  readonly #sessions = new Map<string, Session>();
  /** Calls used by a validation in this process, before the store's write lands. */
  readonly #used = new Set<string>();
  readonly #crypto: PvpCrypto;

  constructor(options: TerminatorOptions) {
    this.#o = options;
    this.#crypto = options.crypto ?? new InlinePvpCrypto();
    const policy = { ...DEFAULT_TERMINATOR_POLICY, ...options.policy };
    this.#policy = { ...policy, slots: Math.min(Math.max(1, policy.slots), MAX_SLOTS), maxAttempts: Math.min(Math.max(1, policy.maxAttempts), MAX_ATTEMPTS) };
    this.#now = options.now ?? Date.now;
  }

  get policy(): TerminatorPolicy {
    return this.#policy;
  }

  get openSessions(): number {
    return this.#sessions.size;
  }

  /** Answers one request of `peerId`, whose domain is the one its ring certificate binds. */
  async handle(request: PvpRequest, remote: { peerId: string; domain: string }): Promise<PvpResponseBody> {
    const body = request.body;
    const key = sessionKey(remote.peerId, request.sessionId);
    if (body.kind === 'start') return this.#start(key, body, remote);
    const session = this.#sessions.get(key);
    if (!session || session.expiresAtMs <= this.#now()) {
      this.#sessions.delete(key);
      return { kind: 'closed' };
    }
    if (body.kind === 'abandon') {
      this.#close(key, session, 'abandoned');
      return { kind: 'closed' };
    }
    if (body.kind === 'attempt') {
      if (body.attempt !== session.attempt + 1 || body.attempt > this.#policy.maxAttempts) {
        this.#close(key, session, 'attempt out of order');
        return { kind: 'closed' };
      }
      if (!this.#o.limiter.take(remote.peerId)) {
        this.#close(key, session, 'rate limited');
        this.#o.onEvent?.({ kind: 'rate-limited', peerId: remote.peerId });
        return { kind: 'refused', code: 'E_PVP_RATE_LIMITED', message: 'too many validation attempts from this peer; try later' };
      }
      session.attempt = body.attempt;
      return this.#answer(session, body.attempt, body.proof, body.share, request.sessionId, remote.peerId);
    }
    return this.#confirm(key, session, body.attempt, body.slot, body.confirm);
  }

  async #start(
    key: string,
    body: Extract<PvpRequest['body'], { kind: 'start' }>,
    remote: { peerId: string; domain: string },
  ): Promise<PvpResponseBody> {
    const p = this.#policy;
    if (body.suite !== PVP_SUITE) return { kind: 'refused', code: 'E_PVP_SUITE', message: `this peer runs ${PVP_SUITE}` };
    if (body.windowMs > p.maxWindowMs || body.cellMs > p.maxCellMs) {
      return { kind: 'refused', code: 'E_PVP_PARAMETERS', message: `windows up to ${p.maxWindowMs} ms and time cells up to ${p.maxCellMs} ms are accepted` };
    }
    const claim = this.#o.claim(body.called);
    if (!claim) return { kind: 'refused', code: 'E_PVP_NOT_CLAIMED', message: 'this peer does not claim that number' };
    const trust = evaluateTrust(claim.trustGroups, { domain: remote.domain });
    if (!trust.trusted) {
      this.#o.onEvent?.({ kind: 'blocked', peerId: remote.peerId, domain: remote.domain, reason: trust.reason });
      return { kind: 'refused', code: 'E_PVP_BLOCKED', message: 'this enterprise does not validate calls from your domain' };
    }
    if (!this.#o.limiter.take(remote.peerId)) {
      this.#o.onEvent?.({ kind: 'rate-limited', peerId: remote.peerId });
      return { kind: 'refused', code: 'E_PVP_RATE_LIMITED', message: 'too many validation attempts from this peer; try later' };
    }
    this.#sweep();
    if (this.#sessions.size >= p.maxSessions) return { kind: 'refused', code: 'E_PVP_BUSY', message: 'too many validations in progress; try later' };
    const candidates = await this.#candidates(body.called, body.windowStartMs, body.windowMs, body.cellMs);
    const slots: (StoredVcr | undefined)[] = Array.from({ length: p.slots }, () => undefined);
    // Real candidates go to random slots, so a slot's position says nothing.
    const free = slots.map((_, i) => i);
    for (const c of candidates) slots[free.splice(randomInt(free.length), 1)[0] as number] = c;
    const session: Session = {
      peerId: remote.peerId,
      callingDomain: remote.domain,
      called: body.called,
      windowStartMs: body.windowStartMs,
      cellMs: body.cellMs,
      terminatorNonce: randomBytes(TERMINATOR_NONCE_BYTES),
      slots,
      claim,
      expiresAtMs: this.#now() + p.sessionTtlMs,
      attempt: 0,
      answered: undefined,
    };
    this.#sessions.set(key, session);
    return { kind: 'offer', slots: p.slots, maxAttempts: p.maxAttempts, terminatorNonce: session.terminatorNonce };
  }

  /**
   * Unused terminating calls of the number that started in the window, widened by the skew the time
   * cells absorb; when there are more than slots, those nearest the window's middle.
   */
  async #candidates(called: string, windowStartMs: number, windowMs: number, cellMs: number): Promise<StoredVcr[]> {
    const margin = 2 * cellMs;
    const found = (await this.#o.vcrs.candidatesFor(called, Math.max(0, windowStartMs - margin), windowStartMs + windowMs + margin, 64)).filter(
      (v) => !this.#used.has(vcrKey(v)),
    );
    const middle = windowStartMs + windowMs / 2;
    return found.sort((a, b) => Math.abs(a.startMs - middle) - Math.abs(b.startMs - middle)).slice(0, this.#policy.slots);
  }

  async #answer(session: Session, attempt: number, proof: ProofKind, share: Uint8Array, sessionId: Uint8Array, originatorPeer: string): Promise<PvpResponseBody> {
    const secrets = session.slots.map((candidate) =>
      candidate ? canonicalCallSecret(candidate, terminatorCells(candidate, proof, session.cellMs), session.cellMs) : null,
    );
    let slots: readonly VerifierResponse[];
    try {
      const contexts = session.slots.map((_, slot) =>
        slotContext({
          sessionId,
          terminatorNonce: session.terminatorNonce,
          originatorPeer,
          terminatorPeer: this.#o.selfPeerId,
          called: session.called,
          windowStartMs: session.windowStartMs,
          cellMs: session.cellMs,
          attempt,
          slot,
        }),
      );
      const result = await this.#crypto.run({ op: 'answer', secrets, contexts, share });
      if (result.op !== 'answer') throw new ImeError('E_PVP_CRYPTO_FAULT', 'a crypto thread answered the wrong job');
      slots = result.slots;
    } catch (err) {
      if (isImeError(err)) return { kind: 'refused', code: err.code, message: err.message };
      throw err;
    }
    session.answered = slots.map((r, slot) => ({ candidate: session.slots[slot], expectedConfirm: r.expectedConfirm, key: r.key, proof }));
    return { kind: 'answer', attempt, slots: slots.map((r) => ({ share: r.share, confirm: r.confirm })) };
  }

  async #confirm(key: string, session: Session, attempt: number, slot: number, confirm: Uint8Array): Promise<PvpResponseBody> {
    // One confirmation per session: a wrong tag ends it like any other failure.
    this.#sessions.delete(key);
    const state = session.answered?.[slot];
    if (attempt !== session.attempt || !state || !confirmMatches(state.expectedConfirm, confirm) || !state.candidate) {
      this.#o.onEvent?.({ kind: 'closed', peerId: session.peerId, reason: 'confirmation did not check' });
      return { kind: 'closed' };
    }
    const used = vcrKey(state.candidate);
    // Another session may have used the same call since this one started: one call, one validation.
    const stillUnused = (await this.#o.vcrs.candidatesFor(state.candidate.called, state.candidate.startMs, state.candidate.startMs, 64)).some(
      (v) => vcrKey(v) === used,
    );
    if (this.#used.has(used) || !stillUnused) {
      this.#o.onEvent?.({ kind: 'closed', peerId: session.peerId, reason: 'call already used' });
      return { kind: 'closed' };
    }
    // Kept after the store's write too: a session that checked the store before it landed must still
    // see the call as used. The store answers for calls older than this set's bound.
    if (this.#used.size >= USED_SET_MAX) this.#used.clear();
    this.#used.add(used);
    await this.#o.vcrs.markUsed(state.candidate, this.#now());
    const value = proofValue(state.proof);
    const ticket = session.claim.issueTicket(session.callingDomain, session.called);
    const sealed = sealGrant(state.key, encodeGrant({ domain: this.#o.domain, sipUri: session.claim.sipUri, ticket, value }));
    this.#o.onEvent?.({ kind: 'validated', peerId: session.peerId, domain: session.callingDomain, number: session.called, value });
    return { kind: 'result', nonce: sealed.nonce, sealed: sealed.sealed };
  }

  #close(key: string, session: Session, reason: string): void {
    this.#sessions.delete(key);
    this.#o.onEvent?.({ kind: 'closed', peerId: session.peerId, reason });
  }

  #sweep(): void {
    const now = this.#now();
    for (const [k, s] of this.#sessions) if (s.expiresAtMs <= now) this.#sessions.delete(k);
  }
}
