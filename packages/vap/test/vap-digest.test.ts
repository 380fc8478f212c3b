import { describe, expect, it } from '@jest/globals';
import {
  DEFAULT_VAP_ITERATIONS,
  VAP_NONCE_BYTES,
  VAP_SALT_BYTES,
  VapAuthenticator,
  VapReplayCache,
  computeVapDigest,
  createVapVerifier,
  decoySalt,
  deriveVapKey,
  deriveVapKeyAsync,
  digestsEqual,
  type VapVerifier,
} from '../src/vap-digest.js';
import { thrown } from './helpers.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const SALT = Uint8Array.from({ length: 16 }, (_, i) => i);
const CLIENT_NONCE = new Uint8Array(32).fill(1);
const SERVER_NONCE = new Uint8Array(32).fill(2);
const SECRET = new Uint8Array(32).fill(9);

describe('digest', () => {
  // Vectors computed independently with Python's hashlib.pbkdf2_hmac and hmac.
  it('matches the known answer', () => {
    const key = deriveVapKey('secret-password', SALT, 10_000);
    expect(hex(key)).toBe('b010b2007bc0495bdd723fe7dc934ac18c5dada2e0c6650d7036e137595610b0');
    expect(hex(computeVapDigest(key, 'cucm', CLIENT_NONCE, SERVER_NONCE))).toBe(
      '476dff3e0125ff2fdeddd1b48dc7b1dcf9d8100fa1708e6d84dc18d72b38e6f9',
    );
  });

  it('encodes the password as UTF-8, and derives the same key on the thread pool', async () => {
    const key = await deriveVapKeyAsync('pässwörd', new Uint8Array(16), 1_000);
    expect(hex(key)).toBe('e9485ad3a542794ba76363717d0cb1f75c802fbd9b61ac076e517221f82fe8f6');
    expect(hex(deriveVapKey('pässwörd', new Uint8Array(16), 1_000))).toBe(hex(key));
  });

  it('binds the digest to the username and both nonces', () => {
    const key = deriveVapKey('pw', SALT, 1_000);
    const base = hex(computeVapDigest(key, 'cucm', CLIENT_NONCE, SERVER_NONCE));
    expect(hex(computeVapDigest(key, 'cucm2', CLIENT_NONCE, SERVER_NONCE))).not.toBe(base);
    expect(hex(computeVapDigest(key, 'cucm', SERVER_NONCE, SERVER_NONCE))).not.toBe(base);
    expect(hex(computeVapDigest(key, 'cucm', CLIENT_NONCE, CLIENT_NONCE))).not.toBe(base);
  });

  it('refuses iteration counts outside the allowed range', () => {
    expect(thrown(() => deriveVapKey('pw', SALT, 10)).code).toBe('E_VAP_BAD_CREDENTIALS');
  });

  it('compares digests over their whole length and refuses other lengths', () => {
    const a = new Uint8Array(32).fill(5);
    const lastDiffers = a.slice();
    lastDiffers[31] = 6;
    expect(digestsEqual(a, a.slice())).toBe(true);
    expect(digestsEqual(a, lastDiffers)).toBe(false);
    expect(digestsEqual(a, a.subarray(0, 31))).toBe(false);
    expect(digestsEqual(a, new Uint8Array(0))).toBe(false);
  });

  it('keeps only a derived key: the verifier holds no password', () => {
    const v = createVapVerifier('cucm', 'my-password', { iterations: 1_000 });
    expect(v.salt).toHaveLength(VAP_SALT_BYTES);
    expect(JSON.stringify({ ...v, salt: hex(v.salt), key: hex(v.key) })).not.toContain('my-password');
    expect(hex(v.key)).toBe(hex(deriveVapKey('my-password', v.salt, 1_000)));
    expect(createVapVerifier('cucm', 'pw').iterations).toBe(DEFAULT_VAP_ITERATIONS);
  });
});

describe('VapAuthenticator', () => {
  const verifier: VapVerifier = createVapVerifier('cucm', 'right-password', { iterations: 1_000 });
  const lookup = (u: string) => (u === verifier.username ? verifier : undefined);
  const answer = (password: string, state: { salt: Uint8Array; iterations: number; serverNonce: Uint8Array }, username = 'cucm') =>
    computeVapDigest(deriveVapKey(password, state.salt, state.iterations), username, CLIENT_NONCE, state.serverNonce);

  it('accepts the right password once per challenge', () => {
    const auth = new VapAuthenticator({ secret: SECRET, lookup });
    const state = auth.challenge('cucm', CLIENT_NONCE);
    expect(state.serverNonce).toHaveLength(VAP_NONCE_BYTES);
    const digest = answer('right-password', state);
    expect(auth.verify(state, digest)).toEqual({ ok: true });
    expect(auth.verify(state, digest)).toEqual({ ok: false, code: 'E_VAP_AUTH', reason: 'challenge already answered' });
  });

  it('refuses a wrong password', () => {
    const auth = new VapAuthenticator({ secret: SECRET, lookup });
    const state = auth.challenge('cucm', CLIENT_NONCE);
    expect(auth.verify(state, answer('wrong-password', state))).toEqual({ ok: false, code: 'E_VAP_AUTH', reason: 'wrong password' });
  });

  it('gives a fresh server nonce to every challenge', () => {
    const auth = new VapAuthenticator({ secret: SECRET, lookup });
    expect(hex(auth.challenge('cucm', CLIENT_NONCE).serverNonce)).not.toBe(hex(auth.challenge('cucm', CLIENT_NONCE).serverNonce));
  });

  it('refuses a digest it accepted before, as a replay', () => {
    const replay = new VapReplayCache();
    const auth = new VapAuthenticator({ secret: SECRET, lookup, replay });
    const state = auth.challenge('cucm', CLIENT_NONCE);
    const digest = answer('right-password', state);
    expect(auth.verify(state, digest).ok).toBe(true);
    const again = auth.challenge('cucm', CLIENT_NONCE);
    expect(auth.verify(again, digest)).toEqual({ ok: false, code: 'E_VAP_REPLAY', reason: 'replayed digest' });
  });

  it('does not let an unknown username be told apart at the Challenge', () => {
    const auth = new VapAuthenticator({ secret: SECRET, lookup, decoyIterations: 1_000 });
    const known = auth.challenge('cucm', CLIENT_NONCE);
    const unknown = auth.challenge('nobody', CLIENT_NONCE);
    // same shape: nonce and salt sizes, iteration count
    expect(unknown.salt).toHaveLength(known.salt.length);
    expect(unknown.serverNonce).toHaveLength(known.serverNonce.length);
    expect(unknown.iterations).toBe(known.iterations);
    // stable per username (a real user's salt does not change between attempts either) …
    expect(hex(auth.challenge('nobody', CLIENT_NONCE).salt)).toBe(hex(unknown.salt));
    expect(hex(unknown.salt)).toBe(hex(decoySalt(SECRET, 'nobody')));
    // … different between usernames and between servers
    expect(hex(auth.challenge('nobody2', CLIENT_NONCE).salt)).not.toBe(hex(unknown.salt));
    expect(hex(decoySalt(new Uint8Array(32).fill(8), 'nobody'))).not.toBe(hex(unknown.salt));
    // and it fails only at Register, with the same code as a wrong password
    const result = auth.verify(unknown, answer('anything', unknown, 'nobody'));
    expect(result).toEqual({ ok: false, code: 'E_VAP_AUTH', reason: 'unknown username' });
  });

  it('refuses a Register made against credentials that changed since the Challenge', () => {
    let current = verifier;
    const auth = new VapAuthenticator({ secret: SECRET, lookup: () => current });
    const state = auth.challenge('cucm', CLIENT_NONCE);
    const digest = answer('right-password', state);
    current = createVapVerifier('cucm', 'new-password', { iterations: 1_000 });
    expect(auth.verify(state, digest)).toEqual({ ok: false, code: 'E_VAP_AUTH', reason: 'wrong password' });
  });

  it('refuses a short secret', () => {
    expect(thrown(() => new VapAuthenticator({ secret: new Uint8Array(4), lookup })).code).toBe('E_VAP_BAD_SETTING');
  });
});

describe('VapReplayCache', () => {
  it('forgets digests after their time and keeps at most its size', () => {
    let now = 0;
    const cache = new VapReplayCache({ ttlMs: 100, maxEntries: 3, now: () => now });
    const d = (n: number) => new Uint8Array(32).fill(n);
    cache.remember(d(1));
    expect(cache.has(d(1))).toBe(true);
    now = 101;
    expect(cache.has(d(1))).toBe(false);
    for (let i = 2; i <= 6; i++) cache.remember(d(i));
    expect(cache.size).toBeLessThanOrEqual(3);
    expect(cache.has(d(6))).toBe(true);
    expect(cache.has(d(2))).toBe(false);
  });
});
