import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { ec } from '@matter/general';
import {
  CONFIRM_BYTES,
  PVP_SUITE,
  ProverAttempt,
  SHARE_BYTES,
  type SlotContextInput,
  bareAttemptCost,
  confirmMatches,
  dummyVerifierScalars,
  openGrant,
  proverScalars,
  sealGrant,
  slotContext,
  verifierRespond,
  verifierScalars,
} from '../src/pvp-pake.js';
import { type CallDetails, type SecretCells, canonicalCallSecret } from '../src/pvp-secret.js';

const CELL_MS = 10_000;
const CALL: CallDetails = { calling: '+14085550100', called: '+12125550199', startMs: 1_770_000_003_000, stopMs: 1_770_000_187_000 };
const CELLS: SecretCells = { kind: 'start-stop', startCell: 177_000_000, stopCell: 177_000_018 };
const SECRET = canonicalCallSecret(CALL, CELLS, CELL_MS);

const SESSION = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const NONCE = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

function ctx(over: Partial<SlotContextInput> = {}): Uint8Array {
  return slotContext({
    sessionId: SESSION,
    terminatorNonce: NONCE,
    originatorPeer: 'peer-o',
    terminatorPeer: 'peer-t',
    called: CALL.called,
    windowStartMs: 1_770_000_000_000,
    cellMs: CELL_MS,
    attempt: 1,
    slot: 0,
    ...over,
  });
}

async function codeOf(f: () => Promise<unknown> | unknown): Promise<string | undefined> {
  try {
    await f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('PVP PAKE', () => {
  it('names a stable suite', () => {
    expect(PVP_SUITE).toBe('SPAKE2+-P256-SHA256 (matter.js Spake2p)');
  });

  it('derives the same scalars from the same secret, different ones otherwise, and L is a point', () => {
    const a = proverScalars(SECRET);
    expect(proverScalars(SECRET)).toEqual(a);
    expect(proverScalars(`${SECRET}0`).w0).not.toBe(a.w0);
    expect(a.w0).not.toBe(a.w1);
    const v = verifierScalars(SECRET);
    expect(v.w0).toBe(a.w0);
    expect(v.L).toHaveLength(SHARE_BYTES);
    expect(v.L[0]).toBe(0x04);
    expect(dummyVerifierScalars().w0).not.toBe(dummyVerifierScalars().w0);
  });

  it('with the same secret: the prover accepts, confirmations cross over and both keys are equal', async () => {
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    expect(attempt.share).toHaveLength(SHARE_BYTES);
    const t = await verifierRespond(verifierScalars(SECRET), ctx(), attempt.share);
    const o = await attempt.check(ctx(), t.share, t.confirm);
    expect(o.ok).toBe(true);
    if (!o.ok) return;
    expect(o.confirm).toEqual(t.expectedConfirm);
    expect(confirmMatches(t.expectedConfirm, o.confirm)).toBe(true);
    expect(o.key).toHaveLength(32);
    expect(o.key).toEqual(t.key);
    // fresh randomness per attempt: a second run gives other shares and another key
    const again = ProverAttempt.start(proverScalars(SECRET));
    expect(again.share).not.toEqual(attempt.share);
    const t2 = await verifierRespond(verifierScalars(SECRET), ctx(), again.share);
    expect(t2.share).not.toEqual(t.share);
    expect(t2.key).not.toEqual(t.key);
  });

  it.each([
    ['one digit of the calling number', canonicalCallSecret({ ...CALL, calling: '+14085550101' }, CELLS, CELL_MS)],
    ['the start cell one later', canonicalCallSecret(CALL, { ...CELLS, startCell: CELLS.startCell + 1 }, CELL_MS)],
    ['the start cell one earlier', canonicalCallSecret(CALL, { ...CELLS, startCell: CELLS.startCell - 1 }, CELL_MS)],
    ['start-only instead of start-stop', canonicalCallSecret(CALL, { kind: 'start-only', startCell: CELLS.startCell }, CELL_MS)],
  ])('with a different secret (%s) the prover does not accept and the confirmations differ', async (_what, other) => {
    expect(other).not.toBe(SECRET);
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const t = await verifierRespond(verifierScalars(other), ctx(), attempt.share);
    expect(await attempt.check(ctx(), t.share, t.confirm)).toEqual({ ok: false });
    // and the other way round: a terminator holding the right secret, an originator holding the wrong one
    const wrongO = ProverAttempt.start(proverScalars(other));
    const t2 = await verifierRespond(verifierScalars(SECRET), ctx(), wrongO.share);
    expect(await wrongO.check(ctx(), t2.share, t2.confirm)).toEqual({ ok: false });
  });

  it('among dummy slots only the real one matches, and T accepts only that confirmation', async () => {
    const slots = 6;
    const real = 3;
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const answers = [];
    for (let slot = 0; slot < slots; slot++) {
      const scalars = slot === real ? verifierScalars(SECRET) : dummyVerifierScalars();
      answers.push(await verifierRespond(scalars, ctx({ slot }), attempt.share));
    }
    const results = [];
    for (let slot = 0; slot < slots; slot++) {
      const a = answers[slot]!;
      results.push(await attempt.check(ctx({ slot }), a.share, a.confirm));
    }
    expect(results.map((r) => r.ok)).toEqual([false, false, false, true, false, false]);
    const hit = results[real]!;
    if (!hit.ok) throw new Error('unreachable');
    expect(answers.map((a) => confirmMatches(a.expectedConfirm, hit.confirm))).toEqual([false, false, false, true, false, false]);
    // the real slot's answer checked under a neighbouring slot's context does not match either
    expect((await attempt.check(ctx({ slot: real - 1 }), answers[real]!.share, answers[real]!.confirm)).ok).toBe(false);
  });

  it.each<[string, Partial<SlotContextInput>]>([
    ['another session id', { sessionId: Uint8Array.from({ length: 16 }, () => 7) }],
    ['another terminator nonce', { terminatorNonce: Uint8Array.from({ length: 16 }, () => 7) }],
    ['another originator peer', { originatorPeer: 'peer-x' }],
    ['another attempt', { attempt: 2 }],
    ['another cell width', { cellMs: 12_000 }],
  ])('does not match when the contexts differ (%s)', async (_what, over) => {
    expect(ctx(over)).not.toEqual(ctx());
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const t = await verifierRespond(verifierScalars(SECRET), ctx(), attempt.share);
    expect(await attempt.check(ctx(over), t.share, t.confirm)).toEqual({ ok: false });
  });

  it('encodes contexts with length prefixes, so shifting bytes between fields changes the context', () => {
    expect(ctx({ originatorPeer: 'peer-ox', terminatorPeer: 'peer-t' })).not.toEqual(ctx({ originatorPeer: 'peer-o', terminatorPeer: 'xpeer-t' }));
    expect(ctx({ originatorPeer: 'ab', terminatorPeer: 'c' })).not.toEqual(ctx({ originatorPeer: 'a', terminatorPeer: 'bc' }));
  });

  it('refuses malformed context input with typed errors', async () => {
    expect(await codeOf(() => ctx({ sessionId: new Uint8Array(0) }))).toBe('E_PVP_PARAMETERS');
    expect(await codeOf(() => ctx({ attempt: -1 }))).toBe('E_PVP_PARAMETERS');
    expect(await codeOf(() => ctx({ slot: 1.5 }))).toBe('E_PVP_PARAMETERS');
    expect(await codeOf(() => ctx({ called: '12125550199' }))).toBe('E_E164_MISSING_PLUS');
  });

  it.each<[string, () => Uint8Array]>([
    ['empty', () => new Uint8Array(0)],
    ['too short', () => new Uint8Array(64).fill(4)],
    ['too long', () => new Uint8Array(66).fill(4)],
    ['a compressed point', () => Uint8Array.of(...ProverAttempt.start(proverScalars(SECRET)).share.subarray(0, 33)).fill(2, 0, 1)],
    ['65 random bytes', () => new Uint8Array(randomBytes(65))],
    ['65 random bytes with the uncompressed prefix', () => Uint8Array.of(4, ...randomBytes(64))],
    ['all zero', () => new Uint8Array(65)],
    ['a valid point with y flipped off the curve', () => {
      const p = Uint8Array.from(ProverAttempt.start(proverScalars(SECRET)).share);
      p[64] = p[64]! ^ 1;
      return p;
    }],
  ])('refuses a malformed share X (%s) with E_PVP_BAD_SHARE, never a crash', async (_what, make) => {
    const share = make();
    expect(await codeOf(() => verifierRespond(verifierScalars(SECRET), ctx(), share))).toBe('E_PVP_BAD_SHARE');
  });

  it('refuses a malformed share Y on the prover side with E_PVP_BAD_SHARE', async () => {
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const confirm = new Uint8Array(CONFIRM_BYTES);
    expect(await codeOf(() => attempt.check(ctx(), new Uint8Array(65), confirm))).toBe('E_PVP_BAD_SHARE');
    expect(await codeOf(() => attempt.check(ctx(), new Uint8Array(randomBytes(65)), confirm))).toBe('E_PVP_BAD_SHARE');
    expect(await codeOf(() => attempt.check(ctx(), new Uint8Array(64), confirm))).toBe('E_PVP_BAD_SHARE');
  });

  it('refuses a degenerate share that cancels the password point (X = w0·M, Y = w0·N) instead of deriving a key', async () => {
    // The SPAKE2+ M and N constants (draft-bar-cfrg-spake2plus-01); only a peer that knows w0 could send these.
    const M = ec.p256.Point.fromHex('02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f');
    const N = ec.p256.Point.fromHex('03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49');
    const { w0 } = proverScalars(SECRET);
    expect(await codeOf(() => verifierRespond(verifierScalars(SECRET), ctx(), M.multiply(w0).toBytes(false)))).toBe('E_PVP_BAD_SHARE');
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    expect(await codeOf(() => attempt.check(ctx(), N.multiply(w0).toBytes(false), new Uint8Array(CONFIRM_BYTES)))).toBe('E_PVP_BAD_SHARE');
  });

  it('treats a confirmation of the wrong length as no match', async () => {
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const t = await verifierRespond(verifierScalars(SECRET), ctx(), attempt.share);
    expect(await attempt.check(ctx(), t.share, t.confirm.subarray(0, 16))).toEqual({ ok: false });
    expect(confirmMatches(t.confirm, t.confirm.subarray(0, 31))).toBe(false);
    expect(confirmMatches(new Uint8Array(0), new Uint8Array(0))).toBe(false);
  });

  it('sends the same number of bytes for a dummy slot as for a real one', async () => {
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const realSlot = await verifierRespond(verifierScalars(SECRET), ctx({ slot: 0 }), attempt.share);
    const dummySlot = await verifierRespond(dummyVerifierScalars(), ctx({ slot: 1 }), attempt.share);
    const sent = (r: { share: Uint8Array; confirm: Uint8Array }): number[] => [r.share.length, r.confirm.length];
    expect(sent(realSlot)).toEqual([SHARE_BYTES, CONFIRM_BYTES]);
    expect(sent(dummySlot)).toEqual(sent(realSlot));
    expect(dummySlot.share[0]).toBe(realSlot.share[0]);
    expect(dummySlot.expectedConfirm).toHaveLength(realSlot.expectedConfirm.length);
  });

  it('seals and opens a grant, and refuses anything tampered with E_PVP_SEALED', async () => {
    const key = new Uint8Array(randomBytes(32));
    const grant = new TextEncoder().encode('{"value":12}');
    const { nonce, sealed } = sealGrant(key, grant);
    expect(nonce).toHaveLength(12);
    expect(openGrant(key, nonce, sealed)).toEqual(grant);
    const flipped = Uint8Array.from(sealed);
    flipped[0] = flipped[0]! ^ 1;
    const tag = Uint8Array.from(sealed);
    tag[tag.length - 1] = tag[tag.length - 1]! ^ 1;
    const otherNonce = Uint8Array.from(nonce);
    otherNonce[0] = otherNonce[0]! ^ 1;
    expect(await codeOf(() => openGrant(key, nonce, flipped))).toBe('E_PVP_SEALED');
    expect(await codeOf(() => openGrant(key, nonce, tag))).toBe('E_PVP_SEALED');
    expect(await codeOf(() => openGrant(key, otherNonce, sealed))).toBe('E_PVP_SEALED');
    expect(await codeOf(() => openGrant(new Uint8Array(randomBytes(32)), nonce, sealed))).toBe('E_PVP_SEALED');
    expect(await codeOf(() => openGrant(key, nonce, sealed.subarray(0, 10)))).toBe('E_PVP_SEALED');
    expect(await codeOf(() => openGrant(key.subarray(0, 16), nonce, sealed))).toBe('E_PVP_SEALED');
    expect(await codeOf(() => sealGrant(key.subarray(0, 16), grant))).toBe('E_PVP_PARAMETERS');
  });

  it('opens a grant sealed under the key the exchange agreed on', async () => {
    const attempt = ProverAttempt.start(proverScalars(SECRET));
    const t = await verifierRespond(verifierScalars(SECRET), ctx(), attempt.share);
    const o = await attempt.check(ctx(), t.share, t.confirm);
    if (!o.ok) throw new Error('the exchange did not match');
    const { nonce, sealed } = sealGrant(t.key, Uint8Array.of(1, 2, 3));
    expect(openGrant(o.key, nonce, sealed)).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('measures a bare attempt and refuses silly slot counts', async () => {
    expect(await bareAttemptCost(3)).toBeGreaterThanOrEqual(0);
    expect(await codeOf(() => bareAttemptCost(0))).toBe('E_PVP_PARAMETERS');
  });
});
