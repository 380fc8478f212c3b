import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { ime } from '@ime/wire';
import { createDecipheriv, createHash, createHmac, createPublicKey, hkdfSync, randomBytes, verify } from 'node:crypto';
import {
  DID_KEY_BYTES,
  type DidClaim,
  type DidRecord,
  MAX_DID_RECORD_BYTES,
  MIN_RING_SALT_BYTES,
  NONCE_BYTES,
  PUBLISHER_KEY_BYTES,
  type Publisher,
  SIGNATURE_BYTES,
  VSERVICE_ID_MAX_LENGTH,
  decodeDidRecord,
  didRecordKey,
  didRecordProblem,
  encodeDidRecord,
  generatePublisher,
  openDidRecord,
  publisherFromSeed,
  sealDidRecord,
  sealDidTombstone,
  verifyDidRecord,
} from '../src/did-record.js';
import { type E164, parseE164 } from '../src/e164.js';
import { ImeError } from '../src/errors.js';
import { expectSafeMessage, thrown } from './helpers.js';

const SALT = Uint8Array.from(randomBytes(32));
const OTHER_SALT = Uint8Array.from(randomBytes(32));
const NUMBER = parseE164('+14085550123');
const OTHER_NUMBER = parseE164('+14085550124');
const CLAIM: DidClaim = { vserviceId: 'vservice-alpha', publishedAtMs: 1_700_000_000_000 };
const EXPIRES = 1_700_086_400_000;

const alice = generatePublisher();
const mallory = generatePublisher();

function seal(overrides: Partial<Parameters<typeof sealDidRecord>[0]> = {}): DidRecord {
  return sealDidRecord({
    ringSalt: SALT,
    number: NUMBER,
    publisher: alice,
    claim: CLAIM,
    sequence: 1,
    expiresAtMs: EXPIRES,
    ...overrides,
  });
}

/** Whether `needle` occurs anywhere in `haystack`. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
}

// The documented construction (did-record.ts header), rebuilt here independently. The first tests
// below check genuine records against it, so the forgeries built with it later are meaningful.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
function canonicalBytes(r: Omit<DidRecord, 'signature'>): Buffer {
  return Buffer.concat([
    Buffer.from('ime-did-record-v1\0'),
    r.key,
    r.publisherKey,
    u64(r.sequence),
    u64(r.expiresAtMs),
    Buffer.from([r.tombstone ? 1 : 0, r.nonce.length]),
    r.nonce,
    r.sealedClaim,
  ]);
}
/** What an attacker holding its own Ed25519 key can do: sign any record it likes. */
function resign(r: Omit<DidRecord, 'signature'>, by: Publisher): DidRecord {
  return { ...r, publisherKey: by.publicKey, signature: by.sign(canonicalBytes({ ...r, publisherKey: by.publicKey })) };
}
function claimKeyFor(salt: Uint8Array, number: string): Buffer {
  return Buffer.from(hkdfSync('sha256', number, salt, Buffer.from('ime-did-claim-v1'), 32));
}
function tryDecrypt(r: DidRecord, key: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, r.nonce);
  d.setAAD(Buffer.concat([Buffer.from('ime-did-claim-aad-v1\0'), r.key, r.publisherKey]));
  d.setAuthTag(r.sealedClaim.subarray(r.sealedClaim.length - 16));
  return Buffer.concat([d.update(r.sealedClaim.subarray(0, r.sealedClaim.length - 16)), d.final()]);
}

describe('didRecordKey: the ring-salted one-way hash of the number', () => {
  it('is 32 bytes and deterministic', () => {
    const k = didRecordKey(SALT, NUMBER);
    expect(k).toBeInstanceOf(Uint8Array);
    expect(k).toHaveLength(DID_KEY_BYTES);
    expect(Buffer.from(didRecordKey(SALT, NUMBER)).equals(k)).toBe(true);
  });

  it('is HMAC-SHA256 keyed with the ring salt', () => {
    const expected = createHmac('sha256', SALT).update('ime-did-key-v1\0').update(NUMBER).digest();
    expect(Buffer.from(didRecordKey(SALT, NUMBER)).equals(expected)).toBe(true);
  });

  it('differs between salts (rings) and between numbers', () => {
    const k = Buffer.from(didRecordKey(SALT, NUMBER));
    expect(k.equals(didRecordKey(OTHER_SALT, NUMBER))).toBe(false);
    expect(k.equals(didRecordKey(SALT, OTHER_NUMBER))).toBe(false);
  });

  it('is not an unsalted hash of the number and does not contain it', () => {
    const k = didRecordKey(SALT, NUMBER);
    expect(Buffer.from(k).equals(createHash('sha256').update(NUMBER).digest())).toBe(false);
    expect(contains(k, Buffer.from(NUMBER))).toBe(false);
  });

  it('gives distinct keys for distinct numbers (property)', () => {
    const numberArb = fc
      .string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 15 })
      .map((d) => parseE164('+' + d));
    fc.assert(
      fc.property(numberArb, numberArb, (a, b) => {
        fc.pre(a !== b);
        expect(Buffer.from(didRecordKey(SALT, a)).equals(didRecordKey(SALT, b))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it(`accepts a salt of exactly ${MIN_RING_SALT_BYTES} bytes`, () => {
    expect(MIN_RING_SALT_BYTES).toBe(16);
    expect(didRecordKey(new Uint8Array(16), NUMBER)).toHaveLength(32);
  });
});

describe('publishers', () => {
  it('derives the RFC 8032 public key from a seed (test vector 1)', () => {
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
    const p = publisherFromSeed(seed);
    expect(Buffer.from(p.publicKey).toString('hex')).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    // and signs like RFC 8032 (empty message)
    expect(Buffer.from(p.sign(new Uint8Array(0))).toString('hex')).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
  });

  it('generates distinct 32-byte identities whose signatures verify', () => {
    expect(alice.publicKey).toHaveLength(PUBLISHER_KEY_BYTES);
    expect(Buffer.from(alice.publicKey).equals(mallory.publicKey)).toBe(false);
    const msg = Buffer.from('hello');
    const sig = alice.sign(msg);
    expect(sig).toHaveLength(SIGNATURE_BYTES);
    const pub = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, alice.publicKey]), format: 'der', type: 'spki' });
    expect(verify(null, msg, pub, sig)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['31 bytes', new Uint8Array(31)],
    ['33 bytes', new Uint8Array(33)],
    ['0 bytes', new Uint8Array(0)],
    ['a hex string', '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'],
    ['an array of 32 numbers', new Array<number>(32).fill(1)],
    ['null', null],
    ['an ArrayBuffer', new ArrayBuffer(32)],
  ])('E_PUBLISHER_KEY: publisherFromSeed refuses %s', (_label, seed) => {
    const err = thrown(() => publisherFromSeed(seed as Uint8Array));
    expect(err.code).toBe('E_PUBLISHER_KEY');
    expectSafeMessage(err);
  });
});

describe('seal and open: round trip', () => {
  it('opens with the number and returns the claim and the signed fields', () => {
    const r = seal({ sequence: 7 });
    expect(openDidRecord(r, { ringSalt: SALT, number: NUMBER })).toEqual({
      vserviceId: CLAIM.vserviceId,
      publishedAtMs: CLAIM.publishedAtMs,
      publisherKey: alice.publicKey,
      sequence: 7,
      expiresAtMs: EXPIRES,
    });
  });

  it('has the documented shape', () => {
    const r = seal();
    expect(didRecordProblem(r)).toBeUndefined();
    expect(Buffer.from(r.key).equals(didRecordKey(SALT, NUMBER))).toBe(true);
    expect(Buffer.from(r.publisherKey).equals(alice.publicKey)).toBe(true);
    expect(r.tombstone).toBe(false);
    expect(r.nonce).toHaveLength(NONCE_BYTES);
    expect(r.signature).toHaveLength(SIGNATURE_BYTES);
  });

  it('survives encode/decode', () => {
    const r = seal();
    const bytes = encodeDidRecord(r);
    expect(bytes.length).toBeLessThanOrEqual(MAX_DID_RECORD_BYTES);
    const back = decodeDidRecord(bytes);
    for (const f of ['key', 'publisherKey', 'nonce', 'sealedClaim', 'signature'] as const) {
      expect(Buffer.from(back[f]).equals(r[f])).toBe(true);
    }
    expect(back.sequence).toBe(r.sequence);
    expect(back.expiresAtMs).toBe(r.expiresAtMs);
    expect(back.tombstone).toBe(false);
    expect(Buffer.from(encodeDidRecord(back)).equals(bytes)).toBe(true);
    expect(openDidRecord(back, { ringSalt: SALT, number: NUMBER }).vserviceId).toBe(CLAIM.vserviceId);
  });

  it('round-trips the largest values: a 64-character Vservice id and the largest safe times', () => {
    const vserviceId = '~'.repeat(VSERVICE_ID_MAX_LENGTH);
    const r = seal({
      claim: { vserviceId, publishedAtMs: Number.MAX_SAFE_INTEGER },
      sequence: Number.MAX_SAFE_INTEGER,
      expiresAtMs: Number.MAX_SAFE_INTEGER,
    });
    const bytes = encodeDidRecord(r);
    expect(bytes.length).toBeLessThanOrEqual(MAX_DID_RECORD_BYTES);
    expect(openDidRecord(decodeDidRecord(bytes), { ringSalt: SALT, number: NUMBER })).toEqual({
      vserviceId,
      publishedAtMs: Number.MAX_SAFE_INTEGER,
      publisherKey: alice.publicKey,
      sequence: Number.MAX_SAFE_INTEGER,
      expiresAtMs: Number.MAX_SAFE_INTEGER,
    });
  });

  it('round-trips zero times', () => {
    const r = seal({ claim: { vserviceId: 'v', publishedAtMs: 0 }, expiresAtMs: 0 });
    expect(openDidRecord(decodeDidRecord(encodeDidRecord(r)), { ringSalt: SALT, number: NUMBER })).toMatchObject({
      vserviceId: 'v',
      publishedAtMs: 0,
      expiresAtMs: 0,
    });
  });

  it('uses a fresh nonce each time, so sealing the same claim twice gives different ciphertexts', () => {
    const a = seal();
    const b = seal();
    expect(Buffer.from(a.key).equals(b.key)).toBe(true);
    expect(Buffer.from(a.nonce).equals(b.nonce)).toBe(false);
    expect(Buffer.from(a.sealedClaim).equals(b.sealedClaim)).toBe(false);
  });

  it('never repeats a nonce across many seals (the pooled randomness hands out each slice once)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(Buffer.from(seal().nonce).toString('hex'));
    expect(seen.size).toBe(2000);
  });

  it('skips only the signature check when the caller says it verified the record, never the shape or the key', () => {
    const r = seal();
    const forged = { ...r, signature: new Uint8Array(64).fill(7) };
    expect(thrown(() => openDidRecord(forged, { ringSalt: SALT, number: NUMBER })).code).toBe('E_DID_RECORD_SIGNATURE');
    expect(openDidRecord(forged, { ringSalt: SALT, number: NUMBER, signatureVerified: true }).vserviceId).toBe(CLAIM.vserviceId);
    expect(thrown(() => openDidRecord({ ...r, signature: new Uint8Array(3) }, { ringSalt: SALT, number: NUMBER, signatureVerified: true })).code).toBe(
      'E_DID_RECORD_MALFORMED',
    );
    expect(thrown(() => openDidRecord(r, { ringSalt: SALT, number: OTHER_NUMBER, signatureVerified: true })).code).toBe('E_DID_RECORD_KEY_MISMATCH');
  });

  it('gives two publishers of the same number the same key (one key holds both claims)', () => {
    const a = seal();
    const m = seal({ publisher: mallory, claim: { vserviceId: 'vservice-mallory', publishedAtMs: 1 } });
    expect(Buffer.from(a.key).equals(m.key)).toBe(true);
    expect(openDidRecord(m, { ringSalt: SALT, number: NUMBER }).vserviceId).toBe('vservice-mallory');
    expect(openDidRecord(a, { ringSalt: SALT, number: NUMBER }).vserviceId).toBe(CLAIM.vserviceId);
  });

  it('round-trips random claims (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 64 }),
        fc.nat(),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 15 }),
        (vserviceId, publishedAtMs, sequence, digits) => {
          const number = parseE164('+' + digits);
          const r = seal({ number, claim: { vserviceId, publishedAtMs }, sequence });
          const opened = openDidRecord(decodeDidRecord(encodeDidRecord(r)), { ringSalt: SALT, number });
          expect(opened).toMatchObject({ vserviceId, publishedAtMs, sequence });
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('what the storing peer sees', () => {
  it('can verify the publisher signature without the number', () => {
    expect(() => verifyDidRecord(seal())).not.toThrow();
    expect(() => verifyDidRecord(decodeDidRecord(encodeDidRecord(seal())))).not.toThrow();
  });

  it('the signature is Ed25519 by the publisher over the canonical record bytes', () => {
    const r = seal();
    const pub = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, alice.publicKey]), format: 'der', type: 'spki' });
    expect(verify(null, canonicalBytes(r), pub, r.signature)).toBe(true);
  });

  it('the claim is AES-256-GCM under HKDF(number, ring salt), bound to the key and the publisher', () => {
    const r = seal();
    // positive control: the number's key opens it
    expect(() => tryDecrypt(r, claimKeyFor(SALT, NUMBER))).not.toThrow();
  });

  it('the record bytes contain neither the number nor the claim', () => {
    for (const r of [seal(), sealDidTombstone({ ringSalt: SALT, number: NUMBER, publisher: alice, sequence: 2, expiresAtMs: EXPIRES })]) {
      const bytes = encodeDidRecord(r);
      expect(contains(bytes, Buffer.from(NUMBER))).toBe(false); // "+14085550123"
      expect(contains(bytes, Buffer.from(NUMBER.slice(1)))).toBe(false); // "14085550123"
      expect(contains(bytes, Buffer.from(NUMBER.slice(-7)))).toBe(false); // the subscriber part
      expect(contains(bytes, Buffer.from(NUMBER, 'utf16le'))).toBe(false);
      expect(contains(bytes, Buffer.from(CLAIM.vserviceId))).toBe(false);
    }
  });

  it('cannot open a record with another number: E_DID_RECORD_KEY_MISMATCH', () => {
    const err = thrown(() => openDidRecord(seal(), { ringSalt: SALT, number: OTHER_NUMBER }));
    expect(err.code).toBe('E_DID_RECORD_KEY_MISMATCH');
    expect(err.message).not.toContain(NUMBER);
    expect(err.message).not.toContain(OTHER_NUMBER);
    expectSafeMessage(err);
  });

  it('cannot open a record with the number under another ring salt: E_DID_RECORD_KEY_MISMATCH', () => {
    expect(thrown(() => openDidRecord(seal(), { ringSalt: OTHER_SALT, number: NUMBER })).code).toBe(
      'E_DID_RECORD_KEY_MISMATCH',
    );
  });

  it('even forcing the key does not help: the claim key of another number does not decrypt', () => {
    const r = seal();
    expect(() => tryDecrypt(r, claimKeyFor(SALT, OTHER_NUMBER))).toThrow();
    expect(() => tryDecrypt(r, claimKeyFor(OTHER_SALT, NUMBER))).toThrow();
    // nor does the record key, which the storing peer does know
    expect(() => tryDecrypt(r, Buffer.from(r.key))).toThrow();
  });

  it('even forcing the key does not help: relabelling the record with the other number\'s key breaks the signature', () => {
    const r = seal();
    const relabelled: DidRecord = { ...r, key: didRecordKey(SALT, OTHER_NUMBER) };
    expect(thrown(() => openDidRecord(relabelled, { ringSalt: SALT, number: OTHER_NUMBER })).code).toBe(
      'E_DID_RECORD_SIGNATURE',
    );
  });

  it('even forcing the key does not help: relabelled and re-signed, the claim does not decrypt', () => {
    const r = seal();
    const forged = resign({ ...r, key: didRecordKey(SALT, OTHER_NUMBER) }, mallory);
    expect(() => verifyDidRecord(forged)).not.toThrow(); // a well-formed, validly signed record
    expect(thrown(() => openDidRecord(forged, { ringSalt: SALT, number: OTHER_NUMBER })).code).toBe(
      'E_DID_RECORD_DECRYPT',
    );
  });
});

describe('tampering', () => {
  const OK_CODES = [
    'E_WIRE_MALFORMED',
    'E_DID_RECORD_MALFORMED',
    'E_DID_RECORD_SIGNATURE',
    'E_DID_RECORD_KEY_MISMATCH',
    'E_DID_RECORD_DECRYPT',
  ];

  it.each([0x01, 0x80, 0xff])('flipping any single byte of an encoded record (xor %i) makes decode+open fail', (mask) => {
    const bytes = encodeDidRecord(seal());
    let checked = 0;
    for (let i = 0; i < bytes.length; i++) {
      const bad = Uint8Array.from(bytes);
      bad[i] = bad[i]! ^ mask;
      let error: unknown;
      try {
        openDidRecord(decodeDidRecord(bad), { ringSalt: SALT, number: NUMBER });
      } catch (err) {
        error = err;
      }
      if (!(error instanceof ImeError) || !OK_CODES.includes(error.code)) {
        throw new Error(`byte ${i} xor ${mask}: expected a refusal, got ${String(error)}`);
      }
      checked++;
    }
    expect(checked).toBe(bytes.length);
    expect(checked).toBeGreaterThan(150);
  });

  it.each([0x01, 0x80, 0xff])('the storing peer notices any flipped byte (xor %i) without the number', (mask) => {
    for (const r of [seal(), sealDidTombstone({ ringSalt: SALT, number: NUMBER, publisher: alice, sequence: 2, expiresAtMs: EXPIRES })]) {
      const bytes = encodeDidRecord(r);
      for (let i = 0; i < bytes.length; i++) {
        const bad = Uint8Array.from(bytes);
        bad[i] = bad[i]! ^ mask;
        let error: unknown;
        try {
          verifyDidRecord(decodeDidRecord(bad));
        } catch (err) {
          error = err;
        }
        if (!(error instanceof ImeError) || !OK_CODES.includes(error.code)) {
          throw new Error(`${r.tombstone ? 'tombstone' : 'record'} byte ${i} xor ${mask}: expected a refusal, got ${String(error)}`);
        }
      }
    }
  });

  it.each<[string, (r: DidRecord) => DidRecord, string]>([
    ['a changed sequence', (r) => ({ ...r, sequence: r.sequence + 1 }), 'E_DID_RECORD_SIGNATURE'],
    ['a later expiry', (r) => ({ ...r, expiresAtMs: r.expiresAtMs + 1 }), 'E_DID_RECORD_SIGNATURE'],
    ['another publisher key', (r) => ({ ...r, publisherKey: mallory.publicKey }), 'E_DID_RECORD_SIGNATURE'],
    ['a changed nonce', (r) => ({ ...r, nonce: Uint8Array.from(r.nonce, (b, i) => (i === 0 ? b ^ 1 : b)) }), 'E_DID_RECORD_SIGNATURE'],
    ['a flipped ciphertext bit', (r) => ({ ...r, sealedClaim: Uint8Array.from(r.sealedClaim, (b, i) => (i === 0 ? b ^ 1 : b)) }), 'E_DID_RECORD_SIGNATURE'],
    ['a zeroed signature', (r) => ({ ...r, signature: new Uint8Array(64) }), 'E_DID_RECORD_SIGNATURE'],
    ['the tombstone flag set', (r) => ({ ...r, tombstone: true }), 'E_DID_RECORD_MALFORMED'],
    ['a re-signed flipped ciphertext bit', (r) => resign({ ...r, sealedClaim: Uint8Array.from(r.sealedClaim, (b, i) => (i === 0 ? b ^ 1 : b)) }, alice), 'E_DID_RECORD_DECRYPT'],
    ['a re-signed changed nonce', (r) => resign({ ...r, nonce: new Uint8Array(12) }, alice), 'E_DID_RECORD_DECRYPT'],
  ])('%s is refused', (_label, tamper, code) => {
    const err = thrown(() => openDidRecord(tamper(seal()), { ringSalt: SALT, number: NUMBER }));
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('a claim transplanted into another publisher\'s record fails', () => {
    const aliceRecord = seal();
    const malloryRecord = seal({ publisher: mallory, claim: { vserviceId: 'vservice-mallory', publishedAtMs: 1 } });
    const transplanted = { ...malloryRecord, nonce: aliceRecord.nonce, sealedClaim: aliceRecord.sealedClaim };
    // as is: mallory's signature does not cover alice's claim
    expect(thrown(() => openDidRecord(transplanted, { ringSalt: SALT, number: NUMBER })).code).toBe('E_DID_RECORD_SIGNATURE');
    // re-signed by mallory: the signature is fine, but the claim is bound to alice's key
    const resigned = resign(transplanted, mallory);
    expect(() => verifyDidRecord(resigned)).not.toThrow();
    expect(thrown(() => openDidRecord(resigned, { ringSalt: SALT, number: NUMBER })).code).toBe('E_DID_RECORD_DECRYPT');
  });

  it('a claim transplanted to another number\'s key by its own publisher fails', () => {
    const r = seal();
    const moved = resign({ ...r, key: didRecordKey(SALT, OTHER_NUMBER) }, alice);
    expect(() => verifyDidRecord(moved)).not.toThrow();
    expect(thrown(() => openDidRecord(moved, { ringSalt: SALT, number: OTHER_NUMBER })).code).toBe('E_DID_RECORD_DECRYPT');
  });
});

describe('tombstones', () => {
  const tomb = (): DidRecord =>
    sealDidTombstone({ ringSalt: SALT, number: NUMBER, publisher: alice, sequence: 2, expiresAtMs: EXPIRES });

  it('verify without the number and carry no claim', () => {
    const t = tomb();
    expect(() => verifyDidRecord(t)).not.toThrow();
    expect(t.tombstone).toBe(true);
    expect(t.nonce).toHaveLength(0);
    expect(t.sealedClaim).toHaveLength(0);
    expect(Buffer.from(t.key).equals(seal().key)).toBe(true);
  });

  it('open with E_DID_RECORD_TOMBSTONE, also after encode/decode', () => {
    for (const t of [tomb(), decodeDidRecord(encodeDidRecord(tomb()))]) {
      const err = thrown(() => openDidRecord(t, { ringSalt: SALT, number: NUMBER }));
      expect(err.code).toBe('E_DID_RECORD_TOMBSTONE');
      expectSafeMessage(err);
    }
  });

  it('survive encode/decode field for field', () => {
    const t = tomb();
    const back = decodeDidRecord(encodeDidRecord(t));
    expect(back.tombstone).toBe(true);
    expect(back.sequence).toBe(2);
    expect(Buffer.from(back.signature).equals(t.signature)).toBe(true);
  });

  it('do not reveal the number to a party without it (E_DID_RECORD_KEY_MISMATCH with another number)', () => {
    expect(thrown(() => openDidRecord(tomb(), { ringSalt: SALT, number: OTHER_NUMBER })).code).toBe(
      'E_DID_RECORD_KEY_MISMATCH',
    );
  });

  it('cannot be forged by another publisher under the victim\'s key', () => {
    const t = tomb();
    expect(thrown(() => verifyDidRecord({ ...t, publisherKey: mallory.publicKey })).code).toBe('E_DID_RECORD_SIGNATURE');
  });

  it('cannot be turned back into a claim', () => {
    expect(thrown(() => verifyDidRecord({ ...tomb(), tombstone: false })).code).toBe('E_DID_RECORD_MALFORMED');
  });
});

describe('decodeDidRecord: untrusted bytes', () => {
  const good = encodeDidRecord(seal());

  it.each<[string, string, unknown]>([
    ['E_WIRE_NOT_BYTES', 'a string', 'not bytes'],
    ['E_WIRE_NOT_BYTES', 'null', null],
    ['E_WIRE_NOT_BYTES', 'an array', Array.from(good)],
    ['E_WIRE_TOO_LARGE', `${MAX_DID_RECORD_BYTES + 1} bytes`, new Uint8Array(MAX_DID_RECORD_BYTES + 1)],
    ['E_WIRE_TOO_LARGE', 'a valid record padded past the limit', Uint8Array.from([...good, ...new Uint8Array(MAX_DID_RECORD_BYTES)])],
    ['E_WIRE_TOO_LARGE', '10 MB', new Uint8Array(10 << 20)],
    ['E_WIRE_MALFORMED', 'a truncated record', good.subarray(0, good.length - 1)],
    ['E_WIRE_MALFORMED', 'half a record', good.subarray(0, good.length >> 1)],
    ['E_WIRE_MALFORMED', 'garbage 0xff bytes', new Uint8Array(64).fill(0xff)],
    ['E_WIRE_MALFORMED', 'an invalid wire type', Uint8Array.from([0x0f, 0, 0, 0])],
    ['E_WIRE_MALFORMED', `${MAX_DID_RECORD_BYTES} zero bytes (field number 0)`, new Uint8Array(MAX_DID_RECORD_BYTES)],
    ['E_DID_RECORD_MALFORMED', 'no bytes at all', new Uint8Array(0)],
    ['E_DID_RECORD_MALFORMED', 'a DidClaim message instead', encodeClaimOnly()],
    ['E_DID_RECORD_MALFORMED', 'a record with a 31-byte key', encodeDidRecord({ ...seal(), key: new Uint8Array(31).fill(1) })],
    ['E_DID_RECORD_MALFORMED', 'a record without a signature', encodeDidRecord({ ...seal(), signature: new Uint8Array(0) })],
    ['E_DID_RECORD_MALFORMED', 'a record with sequence 0', encodeDidRecord({ ...seal(), sequence: 0 })],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => decodeDidRecord(input));
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('accepts a record of exactly the size limit (unknown fields are ignored, the signature still verifies)', () => {
    // field 15, wire type 2 (0x7a), padding so the whole message is exactly MAX_DID_RECORD_BYTES
    const padLength = MAX_DID_RECORD_BYTES - good.length - 3;
    const pad = Uint8Array.from([0x7a, 0x80 | (padLength & 0x7f), padLength >> 7, ...new Uint8Array(padLength)]);
    const bytes = Uint8Array.from([...good, ...pad]);
    expect(bytes).toHaveLength(MAX_DID_RECORD_BYTES);
    const r = decodeDidRecord(bytes);
    expect(openDidRecord(r, { ringSalt: SALT, number: NUMBER }).vserviceId).toBe(CLAIM.vserviceId);
  });

  it('throws only ImeErrors on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const err = thrown(() => decodeDidRecord(bytes));
        expect(['E_WIRE_MALFORMED', 'E_DID_RECORD_MALFORMED']).toContain(err.code);
      }),
    );
  });
});

function encodeClaimOnly(): Uint8Array {
  return ime.v1.DidClaim.encode({ vserviceId: CLAIM.vserviceId, publishedAtMs: CLAIM.publishedAtMs }).finish();
}

describe('didRecordProblem: structural checks (E_DID_RECORD_MALFORMED)', () => {
  const r = seal();
  it.each<[string, Partial<Record<keyof DidRecord, unknown>>]>([
    ['a 31-byte key', { key: new Uint8Array(31) }],
    ['a 33-byte key', { key: new Uint8Array(33) }],
    ['a key that is not bytes', { key: 'k'.repeat(32) }],
    ['a 31-byte publisher key', { publisherKey: new Uint8Array(31) }],
    ['a missing publisher key', { publisherKey: undefined }],
    ['sequence 0', { sequence: 0 }],
    ['a negative sequence', { sequence: -1 }],
    ['a fractional sequence', { sequence: 1.5 }],
    ['a NaN sequence', { sequence: Number.NaN }],
    ['an unsafe sequence', { sequence: 2 ** 53 }],
    ['a string sequence', { sequence: '1' }],
    ['a negative expiry', { expiresAtMs: -1 }],
    ['a fractional expiry', { expiresAtMs: 0.5 }],
    ['an infinite expiry', { expiresAtMs: Number.POSITIVE_INFINITY }],
    ['an 11-byte nonce', { nonce: new Uint8Array(11) }],
    ['a 13-byte nonce', { nonce: new Uint8Array(13) }],
    ['a missing nonce', { nonce: undefined }],
    ['a sealed claim of just a tag (16 bytes)', { sealedClaim: new Uint8Array(16) }],
    ['a sealed claim of 513 bytes', { sealedClaim: new Uint8Array(513) }],
    ['a missing sealed claim', { sealedClaim: null }],
    ['a 63-byte signature', { signature: new Uint8Array(63) }],
    ['a missing signature', { signature: undefined }],
    ['a tombstone with a nonce', { tombstone: true, sealedClaim: new Uint8Array(0) }],
    ['a tombstone with a claim', { tombstone: true, nonce: new Uint8Array(0) }],
  ])('refuses %s', (_label, change) => {
    const bad = { ...r, ...change } as DidRecord;
    expect(didRecordProblem(bad)?.code).toBe('E_DID_RECORD_MALFORMED');
    const err = thrown(() => verifyDidRecord(bad));
    expect(err.code).toBe('E_DID_RECORD_MALFORMED');
    expect(thrown(() => openDidRecord(bad, { ringSalt: SALT, number: NUMBER })).code).toBe('E_DID_RECORD_MALFORMED');
    expectSafeMessage(err);
  });
});

describe('sealing and opening: malformed input', () => {
  const tombstoneInput = { ringSalt: SALT, number: NUMBER, publisher: alice, sequence: 1, expiresAtMs: EXPIRES };

  it.each<[string, string, () => unknown]>([
    ['E_RING_SALT', 'a 15-byte salt (didRecordKey)', () => didRecordKey(new Uint8Array(15), NUMBER)],
    ['E_RING_SALT', 'an empty salt (didRecordKey)', () => didRecordKey(new Uint8Array(0), NUMBER)],
    ['E_RING_SALT', 'a string salt (didRecordKey)', () => didRecordKey('s'.repeat(32) as unknown as Uint8Array, NUMBER)],
    ['E_RING_SALT', 'a null salt (didRecordKey)', () => didRecordKey(null as unknown as Uint8Array, NUMBER)],
    ['E_RING_SALT', 'an array salt (didRecordKey)', () => didRecordKey(new Array<number>(32).fill(1) as unknown as Uint8Array, NUMBER)],
    ['E_RING_SALT', 'a short salt (sealDidRecord)', () => seal({ ringSalt: new Uint8Array(8) })],
    ['E_RING_SALT', 'a short salt (sealDidTombstone)', () => sealDidTombstone({ ...tombstoneInput, ringSalt: new Uint8Array(8) })],
    ['E_RING_SALT', 'a short salt (openDidRecord)', () => openDidRecord(seal(), { ringSalt: new Uint8Array(8), number: NUMBER })],
    ['E_E164_MISSING_PLUS', 'a number without + (didRecordKey)', () => didRecordKey(SALT, '14085550123' as E164)],
    ['E_E164_INVALID_CHARACTER', 'a pattern as number (sealDidRecord)', () => seal({ number: '+1408555XXXX' as E164 })],
    ['E_E164_TOO_LONG', 'a 16-digit number (sealDidTombstone)', () => sealDidTombstone({ ...tombstoneInput, number: '+1234567890123456' as E164 })],
    ['E_E164_EMPTY', 'an empty number (openDidRecord)', () => openDidRecord(seal(), { ringSalt: SALT, number: '' as E164 })],
    ['E_E164_NOT_STRING', 'a numeric number (openDidRecord)', () => openDidRecord(seal(), { ringSalt: SALT, number: 14085550123 as unknown as E164 })],
    ['E_DID_CLAIM_INVALID', 'an empty Vservice id', () => seal({ claim: { ...CLAIM, vserviceId: '' } })],
    ['E_DID_CLAIM_INVALID', 'a 65-character Vservice id', () => seal({ claim: { ...CLAIM, vserviceId: 'v'.repeat(65) } })],
    ['E_DID_CLAIM_INVALID', 'a Vservice id with a space', () => seal({ claim: { ...CLAIM, vserviceId: 'v s' } })],
    ['E_DID_CLAIM_INVALID', 'a Vservice id with a newline', () => seal({ claim: { ...CLAIM, vserviceId: 'vs\n' } })],
    ['E_DID_CLAIM_INVALID', 'a non-ASCII Vservice id', () => seal({ claim: { ...CLAIM, vserviceId: 'vé' } })],
    ['E_DID_CLAIM_INVALID', 'a numeric Vservice id', () => seal({ claim: { ...CLAIM, vserviceId: 7 as unknown as string } })],
    ['E_DID_CLAIM_INVALID', 'a negative publication time', () => seal({ claim: { ...CLAIM, publishedAtMs: -1 } })],
    ['E_DID_CLAIM_INVALID', 'a fractional publication time', () => seal({ claim: { ...CLAIM, publishedAtMs: 1.5 } })],
    ['E_DID_CLAIM_INVALID', 'an unsafe publication time', () => seal({ claim: { ...CLAIM, publishedAtMs: 2 ** 53 } })],
    ['E_DID_RECORD_MALFORMED', 'sequence 0', () => seal({ sequence: 0 })],
    ['E_DID_RECORD_MALFORMED', 'a negative sequence', () => seal({ sequence: -1 })],
    ['E_DID_RECORD_MALFORMED', 'a fractional sequence', () => seal({ sequence: 1.5 })],
    ['E_DID_RECORD_MALFORMED', 'a NaN sequence', () => seal({ sequence: Number.NaN })],
    ['E_DID_RECORD_MALFORMED', 'sequence 2^64', () => seal({ sequence: 2 ** 64 })],
    ['E_DID_RECORD_MALFORMED', 'a negative expiry', () => seal({ expiresAtMs: -1 })],
    ['E_DID_RECORD_MALFORMED', 'a fractional expiry', () => seal({ expiresAtMs: 0.5 })],
    ['E_DID_RECORD_MALFORMED', 'a tombstone with sequence 0', () => sealDidTombstone({ ...tombstoneInput, sequence: 0 })],
    ['E_DID_RECORD_MALFORMED', 'a tombstone with a fractional sequence', () => sealDidTombstone({ ...tombstoneInput, sequence: 2.5 })],
    ['E_DID_RECORD_MALFORMED', 'a publisher with a 31-byte public key', () => seal({ publisher: { publicKey: new Uint8Array(31), sign: alice.sign } })],
    ['E_DID_RECORD_MALFORMED', 'a publisher whose signatures are not 64 bytes', () => seal({ publisher: { publicKey: alice.publicKey, sign: () => new Uint8Array(10) } })],
  ])('%s: refuses %s', (code, _label, fn) => {
    const err = thrown(fn);
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('does not ask the publisher to sign a record it would then refuse', () => {
    let signed = 0;
    const counting: Publisher = {
      publicKey: alice.publicKey,
      sign: (data) => {
        signed++;
        return alice.sign(data);
      },
    };
    expect(thrown(() => seal({ publisher: counting, sequence: 0 })).code).toBe('E_DID_RECORD_MALFORMED');
    expect(signed).toBe(0);
    seal({ publisher: counting });
    expect(signed).toBe(1);
  });

  it('a signature from the wrong key (publisher key and signer differ) is refused by verification', () => {
    const liar: Publisher = { publicKey: alice.publicKey, sign: mallory.sign };
    const r = seal({ publisher: liar });
    expect(thrown(() => verifyDidRecord(r)).code).toBe('E_DID_RECORD_SIGNATURE');
  });
});
