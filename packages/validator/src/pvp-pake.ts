import * as nodeCrypto from 'node:crypto';
import { ImeError, parseE164 } from '@ime/core';
import { Bytes, type NodeJsCryptoApiLike, NodeJsStyleCrypto, Spake2p, ec } from '@matter/general';

/**
 * The key exchange of a peer validation (PVP): SPAKE2+ over P-256 as matter.js implements it for Matter
 * commissioning (draft-bar-cfrg-spake2plus-01, SHA-256, HKDF, HMAC), used unchanged.
 *
 * The password is the canonical call string (pvp-secret.ts). The originator O is the SPAKE2+ prover
 * (holds w0, w1); the terminator T is the verifier (holds w0 and L = w1·G). Per attempt O sends one share
 * X; T answers a fixed number of slots, each with its own context (slotContext) and its own secret —
 * real candidates padded with dummies, so the answer looks the same whatever T holds. O tests every
 * slot's cB with the same X and x; on a match it sends that slot's cA and T checks it. A wrong password
 * on either side learns one bit ("no") per slot and nothing to guess offline with.
 *
 * Everything that arrives from the other peer is checked for length and curve membership before it
 * reaches the library; every failure is an ImeError, never a crash.
 */

/** A stable id both sides compare before they start, so a future change of suite cannot half-work. */
export const PVP_SUITE = 'SPAKE2+-P256-SHA256 (matter.js Spake2p)';
/** An uncompressed P-256 point (04 ‖ x ‖ y): X and Y. */
export const SHARE_BYTES = 65;
/** HMAC-SHA256: cA and cB. */
export const CONFIRM_BYTES = 32;
/** The key a matched slot yields, for sealGrant/openGrant (AES-256-GCM). */
export const GRANT_KEY_BYTES = 32;
export const GRANT_NONCE_BYTES = 12;
const GRANT_TAG_BYTES = 16;
/** Upper bound for bareAttemptCost, a guard against a typo running the benchmark for an hour. */
const MAX_BENCH_SLOTS = 1024;

const W_SALT = 'ime-pvp-v1';
const W_INFO = 'w0w1';
/** Matter takes 40 bytes per scalar (group size + 8) so the reduction mod n is close to uniform. */
const W_HALF_BYTES = 40;
const GRANT_INFO = 'ime-pvp-grant';
const CONTEXT_LABEL = 'ime-pvp-v1/slot';
const MAX_CONTEXT_BYTES_FIELD = 256;

const { Point } = ec.p256;
const ORDER: bigint = Point.CURVE().n;
const BASE_BYTES = Point.BASE.toBytes(false);
const encoder = new TextEncoder();

/** node:crypto's typings differ in detail from the subset matter.js declares; the runtime shape is the one it expects. */
const crypto = new NodeJsStyleCrypto(nodeCrypto as unknown as NodeJsCryptoApiLike);

export type PvpErrorCode = 'E_PVP_PARAMETERS' | 'E_PVP_BAD_SHARE' | 'E_PVP_SEALED';

export interface ProverScalars {
  readonly w0: bigint;
  readonly w1: bigint;
}

export interface VerifierScalars {
  readonly w0: bigint;
  /** w1·G, uncompressed. */
  readonly L: Uint8Array;
}

function parameterError(message: string, details?: Readonly<Record<string, unknown>>): ImeError<'E_PVP_PARAMETERS'> {
  return new ImeError('E_PVP_PARAMETERS', message, details);
}

function badShare(message: string, details?: Readonly<Record<string, unknown>>): ImeError<'E_PVP_BAD_SHARE'> {
  return new ImeError('E_PVP_BAD_SHARE', message, details);
}

/** A private copy as a plain Uint8Array, so callers never hold a view into library buffers. */
function copy(b: Bytes): Uint8Array {
  return Uint8Array.from(Bytes.of(b));
}

function scalarBytes(s: bigint): Uint8Array {
  return Bytes.of(Bytes.fromBigInt(s, 32));
}

/** A nonzero scalar below the group order: zero would make the share the bare password point. */
function randomScalar(): bigint {
  for (;;) {
    const r = crypto.randomBigInt(32, ORDER);
    if (r !== 0n) return r;
  }
}

/**
 * w0, w1 from the canonical string: HKDF-SHA256(ikm = secret utf8, salt = 'ime-pvp-v1', info = 'w0w1'),
 * 80 bytes, each 40-byte half reduced mod the P-256 order (as Matter reduces its PBKDF output). No slow
 * KDF: the terminator holds the call details in clear anyway and the PAKE prevents offline guessing.
 */
function deriveW(secret: string): { w0: bigint; w1: bigint } {
  if (typeof secret !== 'string' || secret.length === 0) throw parameterError('a PVP secret must be a non-empty string');
  const ws = new Uint8Array(nodeCrypto.hkdfSync('sha256', encoder.encode(secret), encoder.encode(W_SALT), encoder.encode(W_INFO), 2 * W_HALF_BYTES));
  const w0 = ec.mod(Bytes.asBigInt(ws.subarray(0, W_HALF_BYTES)), ORDER);
  const w1 = ec.mod(Bytes.asBigInt(ws.subarray(W_HALF_BYTES)), ORDER);
  // Probability 2^-256; refusing is better than a share that leaks the password point.
  if (w0 === 0n || w1 === 0n) throw parameterError('the secret derives a zero scalar');
  return { w0, w1 };
}

export function proverScalars(secret: string): ProverScalars {
  return deriveW(secret);
}

/** The verifier never needs w1 itself, only L = w1·G (the SPAKE2+ "augmented" half). */
export function verifierScalars(secret: string): VerifierScalars {
  const { w0, w1 } = deriveW(secret);
  return { w0, L: copy(crypto.ecMultiply(BASE_BYTES, scalarBytes(w1))) };
}

/** A slot with no real candidate behind it: a random secret through the same derivation, same cost as a real one. */
export function dummyVerifierScalars(): VerifierScalars {
  return verifierScalars(`ime-pvp-dummy|${nodeCrypto.randomBytes(32).toString('hex')}`);
}

/** Binds a slot's exchange to this session; length-prefixed fields. */
export interface SlotContextInput {
  sessionId: Uint8Array;
  terminatorNonce: Uint8Array;
  originatorPeer: string;
  terminatorPeer: string;
  called: string;
  windowStartMs: number;
  cellMs: number;
  attempt: number;
  slot: number;
}

function field(name: string, bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0 || bytes.length > MAX_CONTEXT_BYTES_FIELD) {
    throw parameterError(`slot context field ${name} must have 1–${MAX_CONTEXT_BYTES_FIELD} bytes, got ${bytes.length}`, { field: name });
  }
  return bytes;
}

function uint(name: string, n: number, max: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw parameterError(`slot context field ${name} must be a whole number from 0 to ${max}`, { field: name });
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/**
 * The SPAKE2+ context of one slot. Every field is u32 BE length ‖ bytes, so no two different inputs
 * encode the same (peer names and numbers cannot run into each other). Putting session, nonce, both
 * peers, attempt and slot in the transcript makes a confirmation useless anywhere but where it was made:
 * it cannot be replayed into another session, attempt or slot.
 */
export function slotContext(i: SlotContextInput): Uint8Array {
  if (!(i.sessionId instanceof Uint8Array) || !(i.terminatorNonce instanceof Uint8Array)) {
    throw parameterError('sessionId and terminatorNonce must be bytes');
  }
  if (typeof i.originatorPeer !== 'string' || typeof i.terminatorPeer !== 'string') throw parameterError('peer ids must be strings');
  const fields = [
    encoder.encode(CONTEXT_LABEL),
    field('sessionId', i.sessionId),
    field('terminatorNonce', i.terminatorNonce),
    field('originatorPeer', encoder.encode(i.originatorPeer)),
    field('terminatorPeer', encoder.encode(i.terminatorPeer)),
    encoder.encode(parseE164(i.called)),
    uint('windowStartMs', i.windowStartMs, Number.MAX_SAFE_INTEGER),
    uint('cellMs', i.cellMs, 0xffff_ffff),
    uint('attempt', i.attempt, 0xffff_ffff),
    uint('slot', i.slot, 0xffff_ffff),
  ];
  const out = Buffer.alloc(fields.reduce((n, f) => n + 4 + f.length, 0));
  let at = 0;
  for (const f of fields) {
    at = out.writeUInt32BE(f.length, at);
    out.set(f, at);
    at += f.length;
  }
  return new Uint8Array(out);
}

/** Length, encoding and curve membership of a share from the other peer; the library is only fed valid points. */
function assertShare(share: unknown, who: 'X' | 'Y'): asserts share is Uint8Array {
  if (!(share instanceof Uint8Array) || share.length !== SHARE_BYTES) {
    throw badShare(`share ${who} must be ${SHARE_BYTES} bytes`, { length: share instanceof Uint8Array ? share.length : undefined });
  }
  if (share[0] !== 0x04) throw badShare(`share ${who} is not an uncompressed point`);
  try {
    Point.fromBytes(share).assertValidity();
  } catch {
    throw badShare(`share ${who} is not a point on P-256`);
  }
}

function assertContext(context: unknown): asserts context is Uint8Array {
  if (!(context instanceof Uint8Array) || context.length === 0) throw parameterError('a slot context must be non-empty bytes');
}

/** Ke is 16 bytes in Matter's SPAKE2+; widen it to a 32-byte AES-256 key, labelled for its one use. */
async function grantKey(Ke: Bytes): Promise<Uint8Array> {
  return copy(await crypto.createHkdfKey(Ke, new Uint8Array(0), encoder.encode(GRANT_INFO), GRANT_KEY_BYTES));
}

export type ProverCheck = { ok: true; confirm: Uint8Array; key: Uint8Array } | { ok: false };

/** What ProverAttempt.exportState hands to a crypto thread. */
export interface ProverState {
  readonly scalars: ProverScalars;
  readonly x: bigint;
}

function assertProverScalars(scalars: ProverScalars): void {
  const { w0, w1 } = scalars;
  if (typeof w0 !== 'bigint' || typeof w1 !== 'bigint' || w0 <= 0n || w0 >= ORDER || w1 <= 0n || w1 >= ORDER) {
    throw parameterError('prover scalars must be nonzero and below the P-256 order');
  }
}

/** Prover side: one X per attempt, checked against every slot. */
export class ProverAttempt {
  readonly #scalars: ProverScalars;
  readonly #x: bigint;
  /** X = x·G + w0·M, sent once per attempt. */
  readonly share: Uint8Array;

  private constructor(scalars: ProverScalars, x: bigint) {
    this.#scalars = scalars;
    this.#x = x;
    // X does not depend on the context; each slot's transcript binds its own context in check().
    this.share = copy(new Spake2p(crypto, new Uint8Array(0), x, scalars.w0).computeX());
  }

  static start(scalars: ProverScalars): ProverAttempt {
    assertProverScalars(scalars);
    return new ProverAttempt(scalars, randomScalar());
  }

  /**
   * The attempt's secret state, to finish it on a crypto thread (pvp-crypto-pool.ts): worker threads
   * share this process's memory protection, so it leaves neither the process nor its trust boundary.
   */
  exportState(): ProverState {
    return { scalars: { w0: this.#scalars.w0, w1: this.#scalars.w1 }, x: this.#x };
  }

  static fromState(state: ProverState): ProverAttempt {
    assertProverScalars(state.scalars);
    if (typeof state.x !== 'bigint' || state.x <= 0n || state.x >= ORDER) throw parameterError('a prover state needs a nonzero x below the P-256 order');
    return new ProverAttempt(state.scalars, state.x);
  }

  /**
   * Tests one slot's answer (Y, cB) under this slot's context. Ok when cB matches: then `confirm` (cA) to
   * send and `key` (32 bytes derived from Ke with HKDF info 'ime-pvp-grant'). A malformed Y throws
   * E_PVP_BAD_SHARE (an honest terminator's dummy slots are well-formed, so this marks a broken peer); a
   * wrong cB, including one of the wrong length, is just "not this slot".
   */
  async check(context: Uint8Array, share: Uint8Array, confirm: Uint8Array): Promise<ProverCheck> {
    assertContext(context);
    assertShare(share, 'Y');
    let result: { Ke: Bytes; hAY: Bytes; hBX: Bytes };
    try {
      const spake = new Spake2p(crypto, context, this.#x, this.#scalars.w0);
      result = await spake.computeSecretAndVerifiersFromY(this.#scalars.w1, this.share, share);
    } catch {
      // Y − w0·N at infinity: only a peer that knows w0 can aim for it, and it must not yield a key.
      throw badShare('share Y yields a degenerate exchange');
    }
    if (!confirmMatches(copy(result.hBX), confirm)) return { ok: false };
    return { ok: true, confirm: copy(result.hAY), key: await grantKey(result.Ke) };
  }
}

export interface VerifierResponse {
  /** Y, to send. */
  readonly share: Uint8Array;
  /** cB = hBX, to send. */
  readonly confirm: Uint8Array;
  /** cA = hAY the prover must send back; compare with confirmMatches. */
  readonly expectedConfirm: Uint8Array;
  /** Use only after expectedConfirm matched. */
  readonly key: Uint8Array;
}

/**
 * Verifier side, per slot: Y, cB to send; cA expected; the key. Throws ImeError('E_PVP_BAD_SHARE') when X
 * is not a valid P-256 point or has the wrong length. A dummy slot runs exactly this code with dummy
 * scalars, so its bytes and its cost are those of a real slot.
 */
export async function verifierRespond(scalars: VerifierScalars, context: Uint8Array, share: Uint8Array): Promise<VerifierResponse> {
  assertContext(context);
  assertShare(share, 'X');
  if (typeof scalars.w0 !== 'bigint' || scalars.w0 <= 0n || scalars.w0 >= ORDER || !(scalars.L instanceof Uint8Array) || scalars.L.length !== SHARE_BYTES) {
    throw parameterError('verifier scalars must be a nonzero w0 below the P-256 order and a 65-byte L');
  }
  let result: { Ke: Bytes; hAY: Bytes; hBX: Bytes };
  let Y: Bytes;
  try {
    const spake = new Spake2p(crypto, context, randomScalar(), scalars.w0);
    Y = spake.computeY();
    result = await spake.computeSecretAndVerifiersFromX(scalars.L, share, Y);
  } catch {
    // X − w0·M at infinity: only a peer that knows w0 can aim for it, and it must not yield a key.
    throw badShare('share X yields a degenerate exchange');
  }
  return { share: copy(Y), confirm: copy(result.hBX), expectedConfirm: copy(result.hAY), key: await grantKey(result.Ke) };
}

/** Constant time for equal lengths; false on length mismatch (lengths are public: always CONFIRM_BYTES). */
export function confirmMatches(expected: Uint8Array, got: Uint8Array): boolean {
  if (!(expected instanceof Uint8Array) || !(got instanceof Uint8Array)) return false;
  if (expected.length !== got.length || expected.length === 0) return false;
  return nodeCrypto.timingSafeEqual(expected, got);
}

/** AES-256-GCM under the 32-byte key; nonce 12 random bytes; `sealed` is ciphertext ‖ 16-byte tag. */
export function sealGrant(key: Uint8Array, plaintext: Uint8Array): { nonce: Uint8Array; sealed: Uint8Array } {
  if (!(key instanceof Uint8Array) || key.length !== GRANT_KEY_BYTES) throw parameterError(`a grant key must be ${GRANT_KEY_BYTES} bytes`);
  if (!(plaintext instanceof Uint8Array)) throw parameterError('a grant must be bytes');
  const nonce = new Uint8Array(nodeCrypto.randomBytes(GRANT_NONCE_BYTES));
  const cipher = nodeCrypto.createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GRANT_TAG_BYTES });
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce, sealed: new Uint8Array(sealed) };
}

/** Opens what sealGrant sealed. Throws ImeError('E_PVP_SEALED') on any failure, without saying which. */
export function openGrant(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  try {
    if (!(key instanceof Uint8Array) || key.length !== GRANT_KEY_BYTES) throw new Error('key');
    if (!(nonce instanceof Uint8Array) || nonce.length !== GRANT_NONCE_BYTES) throw new Error('nonce');
    if (!(sealed instanceof Uint8Array) || sealed.length < GRANT_TAG_BYTES) throw new Error('length');
    const body = sealed.subarray(0, sealed.length - GRANT_TAG_BYTES);
    const decipher = nodeCrypto.createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GRANT_TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(sealed.length - GRANT_TAG_BYTES));
    return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
  } catch {
    throw new ImeError('E_PVP_SEALED', 'the sealed grant does not open under this key');
  }
}

/**
 * For the benchmark: the bare cryptography of one attempt with `slots` slots, both sides, in-process;
 * returns ms. Slot 0 is real, the rest dummies; O tests every slot (no early exit) and T checks cA. Fails
 * loudly if the real slot does not match, so a broken exchange cannot pass as a fast one.
 */
export async function bareAttemptCost(slots: number): Promise<number> {
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_BENCH_SLOTS) throw parameterError(`slots must be a whole number from 1 to ${MAX_BENCH_SLOTS}`);
  const secret = 'ime-pvp-v1|start-stop|cell=10000|calling=+14085550100|called=+12125550199|start=177000000|stop=177000006';
  const sessionId = new Uint8Array(nodeCrypto.randomBytes(16));
  const terminatorNonce = new Uint8Array(nodeCrypto.randomBytes(16));
  const contextOf = (slot: number): Uint8Array =>
    slotContext({ sessionId, terminatorNonce, originatorPeer: 'bench-o', terminatorPeer: 'bench-t', called: '+12125550199', windowStartMs: 1_770_000_000_000, cellMs: 10_000, attempt: 0, slot });

  const began = performance.now();
  const attempt = ProverAttempt.start(proverScalars(secret));
  const answers: { context: Uint8Array; response: VerifierResponse }[] = [];
  for (let slot = 0; slot < slots; slot++) {
    const scalars = slot === 0 ? verifierScalars(secret) : dummyVerifierScalars();
    const context = contextOf(slot);
    answers.push({ context, response: await verifierRespond(scalars, context, attempt.share) });
  }
  let matched: { slot: number; confirm: Uint8Array; key: Uint8Array } | undefined;
  for (const [slot, { context, response }] of answers.entries()) {
    const r = await attempt.check(context, response.share, response.confirm);
    if (r.ok && matched === undefined) matched = { slot, confirm: r.confirm, key: r.key };
  }
  const real = answers[0]?.response;
  const sound = matched !== undefined && matched.slot === 0 && real !== undefined && confirmMatches(real.expectedConfirm, matched.confirm);
  const elapsed = performance.now() - began;
  if (!sound) throw new ImeError('E_PVP_SELF_TEST', 'the benchmark exchange did not match its own real slot');
  return elapsed;
}
