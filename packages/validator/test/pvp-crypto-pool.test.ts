import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from '@jest/globals';
import { rejectionCode } from '../../core/test/helpers.js';
import { type PvpCrypto, InlinePvpCrypto, PvpCryptoPool, createPvpCrypto } from '../src/pvp-crypto-pool.js';
import { ProverAttempt, confirmMatches, proverScalars, slotContext } from '../src/pvp-pake.js';

const SECRET = 'ime-pvp-v1|start-stop|cell=10000|calling=+14085550100|called=+12125550199|start=177000000|stop=177000006';

function contexts(n: number): Uint8Array[] {
  const sessionId = randomBytes(16);
  const terminatorNonce = randomBytes(16);
  return Array.from({ length: n }, (_, slot) =>
    slotContext({ sessionId, terminatorNonce, originatorPeer: 'o', terminatorPeer: 't', called: '+12125550199', windowStartMs: 1_770_000_000_000, cellMs: 10_000, attempt: 1, slot }),
  );
}

/** One whole attempt through `crypto`: the real secret in `realSlot`, dummies elsewhere. */
async function attempt(crypto: PvpCrypto, proverSecret: string, realSlot: number, slots = 3) {
  const prover = ProverAttempt.start(proverScalars(proverSecret));
  const ctx = contexts(slots);
  const secrets = Array.from({ length: slots }, (_, i) => (i === realSlot ? SECRET : null));
  const answered = await crypto.run({ op: 'answer', secrets, contexts: ctx, share: prover.share });
  if (answered.op !== 'answer') throw new Error('wrong job');
  const checked = await crypto.run({
    op: 'check',
    state: prover.exportState(),
    slots: answered.slots.map((r, i) => ({ context: ctx[i] as Uint8Array, share: r.share, confirm: r.confirm })),
  });
  if (checked.op !== 'check') throw new Error('wrong job');
  return { answered: answered.slots, match: checked.match };
}

describe('PVP crypto threads', () => {
  const pool = createPvpCrypto(2);
  afterAll(() => pool.close());

  it('runs on worker threads when the build is there', () => {
    expect(pool).toBeInstanceOf(PvpCryptoPool);
    expect(createPvpCrypto(0)).toBeInstanceOf(InlinePvpCrypto);
  });

  it('a matching secret proves the real slot both ways, on threads as on the event loop', async () => {
    for (const crypto of [pool, new InlinePvpCrypto()]) {
      const { answered, match } = await attempt(crypto, SECRET, 2);
      expect(match?.slot).toBe(2);
      expect(confirmMatches(answered[2]?.expectedConfirm as Uint8Array, match?.confirm as Uint8Array)).toBe(true);
      expect(Buffer.from(match?.key as Uint8Array).equals(Buffer.from(answered[2]?.key as Uint8Array))).toBe(true);
    }
  });

  it('a wrong secret matches no slot', async () => {
    const { match } = await attempt(pool, SECRET.replace('start=177000000', 'start=177000001'), 0);
    expect(match).toBeUndefined();
  });

  it('many attempts at once spread over the threads and all complete', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(pool, SECRET, i % 3)));
    expect(results.map((r) => r.match?.slot)).toEqual(Array.from({ length: 12 }, (_, i) => i % 3));
  });

  it("a malformed share from the other peer is refused with the exchange's own code", async () => {
    const code = await rejectionCode(pool.run({ op: 'answer', secrets: [SECRET], contexts: contexts(1), share: new Uint8Array(65) }));
    expect(code).toBe('E_PVP_BAD_SHARE');
    // The thread survived the refusal.
    expect((await attempt(pool, SECRET, 0)).match?.slot).toBe(0);
  });

  it('refuses work after close, and an out-of-range thread count', async () => {
    const closing = createPvpCrypto(1);
    await attempt(closing, SECRET, 0);
    await closing.close();
    expect(await rejectionCode(closing.run({ op: 'answer', secrets: [null], contexts: contexts(1), share: new Uint8Array(65) }))).toBe('E_PVP_CRYPTO_CLOSED');
    expect(() => createPvpCrypto(17)).toThrow(expect.objectContaining({ code: 'E_CONFIG_INVALID' }));
  });
});
