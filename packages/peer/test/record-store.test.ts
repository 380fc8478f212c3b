import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { type DidRecord, type Publisher, generatePublisher, parseE164, sealDidRecord, sealDidTombstone } from '@ime/core';
import { type Database, openDatabase } from '@ime/runtime';
import { RecordStore, TTL_CLOCK_SKEW_MS } from '../src/record-store.js';
import { RING_END, RING_START } from '../src/ring-placement.js';

const SALT = new Uint8Array(32).fill(3);
const TTL = 24 * 3600 * 1000;
const T0 = 1_700_000_000_000;

let dir: string;
let db: Database;
let clock: number;
const now = () => clock;

async function open(options: { capFor?: (hex: string) => number; admitsPublisher?: (publisherKey: Uint8Array) => boolean } = {}): Promise<RecordStore> {
  return RecordStore.open({ db, now, maxTtlMs: TTL, ...options });
}

function seal(publisher: Publisher, number: string, sequence = 1, extra: { expiresAtMs?: number; vserviceId?: string } = {}): DidRecord {
  return sealDidRecord({
    ringSalt: SALT,
    number: parseE164(number),
    publisher,
    claim: { vserviceId: extra.vserviceId ?? 'vs-1', publishedAtMs: clock },
    sequence,
    expiresAtMs: extra.expiresAtMs ?? clock + TTL,
  });
}

function tomb(publisher: Publisher, number: string, sequence: number): DidRecord {
  return sealDidTombstone({ ringSalt: SALT, number: parseE164(number), publisher, sequence, expiresAtMs: clock + TTL });
}

/** A record with a chosen key and a dummy signature: stored through the authenticated-publisher path. */
function raw(publisherKey: Uint8Array, key: Uint8Array, sequence = 1, tombstone = false): DidRecord {
  return {
    key,
    publisherKey,
    sequence,
    expiresAtMs: clock + TTL,
    tombstone,
    nonce: tombstone ? new Uint8Array(0) : randomBytes(12),
    sealedClaim: tombstone ? new Uint8Array(0) : randomBytes(40),
    signature: randomBytes(64),
  };
}

function keyAt(firstByte: number, rest = 0): Uint8Array {
  const k = new Uint8Array(32).fill(rest);
  k[0] = firstByte;
  return k;
}

const codes = (results: { accepted: boolean; code?: string }[]) => results.map((r) => (r.accepted ? 'ok' : r.code));

beforeEach(async () => {
  clock = T0;
  dir = await mkdtemp(join(tmpdir(), 'ime-record-store-'));
  db = await openDatabase(dir);
});

afterEach(async () => {
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('RecordStore: checks, each record on its own', () => {
  it('stores a valid record and reads it back', async () => {
    const store = await open();
    const alice = generatePublisher();
    const r = seal(alice, '+14085550100');
    expect(codes(await store.put([r]))).toEqual(['ok']);
    const got = await store.get(r.key);
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0]!.signature).equals(Buffer.from(r.signature))).toBe(true);
    expect(got[0]!.sequence).toBe(1);
    expect(store.recordCount).toBe(1);
    expect(await store.get(keyAt(9))).toEqual([]);
  });

  it('gives every record of a batch its own result code', async () => {
    const store = await open();
    const alice = generatePublisher();
    const good = seal(alice, '+14085550101');
    const malformed = { ...seal(alice, '+14085550102'), key: new Uint8Array(31) };
    const badSignature = { ...seal(alice, '+14085550103'), signature: new Uint8Array(64).fill(1) };
    const expired = seal(alice, '+14085550104', 1, { expiresAtMs: clock });
    const beyondTtl = seal(alice, '+14085550105', 1, { expiresAtMs: clock + TTL + TTL_CLOCK_SKEW_MS + 1 });
    const atTtlLimit = seal(alice, '+14085550106', 1, { expiresAtMs: clock + TTL + TTL_CLOCK_SKEW_MS });
    const results = await store.put([good, malformed, badSignature, expired, beyondTtl, atTtlLimit]);
    expect(codes(results)).toEqual(['ok', 'E_DID_RECORD_MALFORMED', 'E_DID_RECORD_SIGNATURE', 'E_RECORD_EXPIRED', 'E_RECORD_TTL', 'ok']);
    expect(results[1]!.message).toMatch(/key/);
    expect(store.recordCount).toBe(2);
  });

  it('skips the signature check only for the authenticated publisher', async () => {
    const store = await open();
    const alice = generatePublisher();
    const bob = generatePublisher();
    const unsigned = { ...seal(alice, '+14085550110'), signature: new Uint8Array(64).fill(2) };
    expect(codes(await store.put([unsigned], { authenticatedPublisher: bob.publicKey }))).toEqual(['E_DID_RECORD_SIGNATURE']);
    expect(codes(await store.put([unsigned], { authenticatedPublisher: alice.publicKey }))).toEqual(['ok']);
  });

  it('refuses a non-record without failing the batch', async () => {
    const store = await open();
    const alice = generatePublisher();
    const results = await store.put([null as unknown as DidRecord, seal(alice, '+14085550111')]);
    expect(codes(results)).toEqual(['E_DID_RECORD_MALFORMED', 'ok']);
  });
});

describe('RecordStore: sequences and ownership', () => {
  it('replaces only with a higher sequence; the same record again is accepted without a write', async () => {
    const store = await open();
    const alice = generatePublisher();
    const v5 = seal(alice, '+14085550120', 5, { vserviceId: 'five' });
    expect(codes(await store.put([v5]))).toEqual(['ok']);

    const batch = jest.spyOn(db, 'batch');
    expect(codes(await store.put([v5]))).toEqual(['ok']);
    expect(batch).not.toHaveBeenCalled();
    batch.mockRestore();

    expect(codes(await store.put([seal(alice, '+14085550120', 4)]))).toEqual(['E_STALE_SEQUENCE']);
    const sameSequenceOtherBytes = seal(alice, '+14085550120', 5, { vserviceId: 'other' });
    const [res] = await store.put([sameSequenceOtherBytes]);
    expect(res).toMatchObject({ accepted: false, code: 'E_STALE_SEQUENCE' });
    expect(res!.message).toMatch(/same sequence/);

    expect(codes(await store.put([seal(alice, '+14085550120', 6)]))).toEqual(['ok']);
    const got = await store.get(v5.key);
    expect(got.map((r) => r.sequence)).toEqual([6]);
    expect(store.recordCount).toBe(1);
  });

  it('applies the records of one batch in order', async () => {
    const store = await open();
    const alice = generatePublisher();
    const results = await store.put([seal(alice, '+14085550121', 2), seal(alice, '+14085550121', 1), seal(alice, '+14085550121', 3)]);
    expect(codes(results)).toEqual(['ok', 'E_STALE_SEQUENCE', 'ok']);
    expect((await store.get(seal(alice, '+14085550121').key)).map((r) => r.sequence)).toEqual([3]);
  });

  it('keeps every publisher of a key; one cannot replace another', async () => {
    const store = await open();
    const alice = generatePublisher();
    const bob = generatePublisher();
    const a = seal(alice, '+14085550122', 10);
    const b = seal(bob, '+14085550122', 1);
    expect(codes(await store.put([a, b]))).toEqual(['ok', 'ok']);
    // Bob forging Alice's record with a higher sequence: his signature is not hers.
    const forged = { ...seal(bob, '+14085550122', 11), publisherKey: alice.publicKey };
    expect(codes(await store.put([forged]))).toEqual(['E_DID_RECORD_SIGNATURE']);
    const got = await store.get(a.key);
    expect(got).toHaveLength(2);
    const sorted = [alice.publicKey, bob.publicKey].map((k) => Buffer.from(k)).sort(Buffer.compare);
    expect(got.map((r) => Buffer.from(r.publisherKey))).toEqual(sorted);
    expect(store.recordCount).toBe(2);
  });

  it('stores tombstones, which block older records and count towards the quota but not as records', async () => {
    const store = await open();
    const alice = generatePublisher();
    expect(codes(await store.put([seal(alice, '+14085550130', 1)]))).toEqual(['ok']);
    expect(store.recordCount).toBe(1);
    expect(codes(await store.put([tomb(alice, '+14085550130', 2)]))).toEqual(['ok']);
    expect(store.recordCount).toBe(0);
    expect(store.publisherSlots(alice.publicKey)).toBe(1);
    const held = await store.get(seal(alice, '+14085550130').key);
    expect(held.map((r) => [r.sequence, r.tombstone])).toEqual([[2, true]]);
    // The old value arriving late (a slow replica, a replay) cannot bring the number back.
    expect(codes(await store.put([seal(alice, '+14085550130', 1)]))).toEqual(['E_STALE_SEQUENCE']);
    // A tombstone arriving first blocks the record it withdraws.
    expect(codes(await store.put([tomb(alice, '+14085550131', 5), seal(alice, '+14085550131', 4)]))).toEqual(['ok', 'E_STALE_SEQUENCE']);
    // Publishing again needs a higher sequence.
    expect(codes(await store.put([seal(alice, '+14085550130', 3)]))).toEqual(['ok']);
    expect(store.recordCount).toBe(1);
    expect(store.publisherSlots(alice.publicKey)).toBe(2);
  });
});

describe('RecordStore: admitted publishers only', () => {
  /** The peer's rule, by key: only the publishers listed are admitted members. */
  const admitting = (...members: Publisher[]) => {
    const admitted = new Set(members.map((p) => Buffer.from(p.publicKey).toString('hex')));
    return (publisherKey: Uint8Array) => admitted.has(Buffer.from(publisherKey).toString('hex'));
  };

  it("stores an admitted publisher's records and refuses an outsider's with E_PUBLISHER_NOT_ADMITTED, storing nothing of it", async () => {
    const member = generatePublisher();
    const outsider = generatePublisher();
    const store = await open({ admitsPublisher: admitting(member) });
    const mine = seal(member, '+14085550170');
    const theirs = seal(outsider, '+14085550171');
    const sameKey = seal(outsider, '+14085550170');
    const results = await store.put([mine, theirs, sameKey]);
    expect(codes(results)).toEqual(['ok', 'E_PUBLISHER_NOT_ADMITTED', 'E_PUBLISHER_NOT_ADMITTED']);
    expect(results[1]!.message).toMatch(/not an admitted member/);
    expect(store.recordCount).toBe(1);
    expect(store.publisherSlots(member.publicKey)).toBe(1);
    expect(store.publisherSlots(outsider.publicKey)).toBe(0);
    expect(await store.get(theirs.key)).toEqual([]);
    expect((await store.get(mine.key)).map((r) => Buffer.from(r.publisherKey))).toEqual([Buffer.from(member.publicKey)]);
    expect((await store.scan({ lte: RING_END })).entries).toHaveLength(1);
  });

  it("refuses an outsider's tombstone too, so it cannot take quota slots or block a later record", async () => {
    const member = generatePublisher();
    const outsider = generatePublisher();
    const store = await open({ admitsPublisher: admitting(member) });
    expect(codes(await store.put([tomb(outsider, '+14085550172', 9), tomb(member, '+14085550173', 1)]))).toEqual(['E_PUBLISHER_NOT_ADMITTED', 'ok']);
    expect(store.publisherSlots(outsider.publicKey)).toBe(0);
    expect(store.publisherSlots(member.publicKey)).toBe(1);
    expect(await store.get(tomb(outsider, '+14085550172', 9).key)).toEqual([]);
  });

  it('asks about every record, even one relayed by its authenticated publisher (the handoff path)', async () => {
    const outsider = generatePublisher();
    const asked: string[] = [];
    const store = await open({
      admitsPublisher: (key) => {
        asked.push(Buffer.from(key).toString('hex'));
        return false;
      },
    });
    const records = [raw(outsider.publicKey, keyAt(10)), raw(outsider.publicKey, keyAt(20), 1, true)];
    const results = await store.put(records, { authenticatedPublisher: outsider.publicKey });
    expect(codes(results)).toEqual(['E_PUBLISHER_NOT_ADMITTED', 'E_PUBLISHER_NOT_ADMITTED']);
    expect(asked).toEqual([Buffer.from(outsider.publicKey).toString('hex'), Buffer.from(outsider.publicKey).toString('hex')]);
    expect(store.recordCount).toBe(0);
    expect((await store.scan({ lte: RING_END })).entries).toEqual([]);
  });

  it('follows the rule as it changes: a publisher admitted later is stored, one no longer admitted is refused', async () => {
    const member = generatePublisher();
    let admitted = false;
    const store = await open({ admitsPublisher: () => admitted });
    expect(codes(await store.put([seal(member, '+14085550174', 1)]))).toEqual(['E_PUBLISHER_NOT_ADMITTED']);
    admitted = true;
    expect(codes(await store.put([seal(member, '+14085550174', 1)]))).toEqual(['ok']);
    admitted = false;
    expect(codes(await store.put([seal(member, '+14085550174', 2)]))).toEqual(['E_PUBLISHER_NOT_ADMITTED']);
    expect((await store.get(seal(member, '+14085550174').key)).map((r) => r.sequence)).toEqual([1]);
  });

  it('keeps its own checks first: a malformed or expired record is refused for that, not for its publisher', async () => {
    const outsider = generatePublisher();
    const store = await open({ admitsPublisher: () => false });
    const malformed = { ...seal(outsider, '+14085550175'), key: new Uint8Array(31) };
    const expired = seal(outsider, '+14085550176', 1, { expiresAtMs: clock });
    expect(codes(await store.put([malformed, expired]))).toEqual(['E_DID_RECORD_MALFORMED', 'E_RECORD_EXPIRED']);
  });

  it('without the option, every publisher is accepted as before', async () => {
    const store = await open();
    const anyone = generatePublisher();
    expect(codes(await store.put([seal(anyone, '+14085550177'), tomb(anyone, '+14085550178', 1)]))).toEqual(['ok', 'ok']);
    expect(store.recordCount).toBe(1);
    expect(store.publisherSlots(anyone.publicKey)).toBe(2);
  });
});

describe('RecordStore: quota', () => {
  it('caps new (key, publisher) slots per publisher; replacing is free', async () => {
    const alice = generatePublisher();
    const bob = generatePublisher();
    const aliceHex = Buffer.from(alice.publicKey).toString('hex');
    const store = await open({ capFor: (hex) => (hex === aliceHex ? 2 : 10) });
    const results = await store.put([seal(alice, '+14085550140'), seal(alice, '+14085550141'), seal(alice, '+14085550142')]);
    expect(codes(results)).toEqual(['ok', 'ok', 'E_OVER_QUOTA']);
    expect(codes(await store.put([seal(alice, '+14085550140', 2)]))).toEqual(['ok']);
    expect(codes(await store.put([tomb(alice, '+14085550141', 2)]))).toEqual(['ok']);
    expect(codes(await store.put([tomb(alice, '+14085550143', 1)]))).toEqual(['E_OVER_QUOTA']);
    expect(codes(await store.put([seal(bob, '+14085550142')]))).toEqual(['ok']);
  });

  it('keeps counts across a reopen', async () => {
    const alice = generatePublisher();
    const bob = generatePublisher();
    const store = await open();
    await store.put([seal(alice, '+14085550150'), seal(alice, '+14085550151'), tomb(alice, '+14085550152', 1), seal(bob, '+14085550150')]);
    expect(store.recordCount).toBe(3);
    await db.close();
    db = await openDatabase(dir);
    const reopened = await open({ capFor: () => 3 });
    expect(reopened.recordCount).toBe(3);
    expect(reopened.publisherSlots(alice.publicKey)).toBe(3);
    expect(reopened.publisherSlots(bob.publicKey)).toBe(1);
    expect(codes(await reopened.put([seal(alice, '+14085550153'), seal(bob, '+14085550153')]))).toEqual(['E_OVER_QUOTA', 'ok']);
  });

  it('uses only its own key prefixes in the shared database', async () => {
    const store = await open();
    await db.put(new TextEncoder().encode('meta/identity'), new Uint8Array([1, 2, 3]));
    await db.put(Uint8Array.of(0x03, 1, 2), new Uint8Array([4]));
    const alice = generatePublisher();
    await store.put([seal(alice, '+14085550155')]);
    const prefixes = new Set<number>();
    for await (const k of db.keys()) prefixes.add(k[0]!);
    expect([...prefixes].sort((x, y) => x - y)).toEqual([0x01, 0x02, 0x03, 'm'.charCodeAt(0)]);
    const scanned = await store.scan({ lte: RING_END });
    expect(scanned.entries).toHaveLength(1);
    await db.close();
    db = await openDatabase(dir);
    expect((await open()).recordCount).toBe(1);
  });
});

describe('RecordStore: expiry', () => {
  it('ignores expired records on read, drops them on rewrite, and sweeps them', async () => {
    const alice = generatePublisher();
    const bob = generatePublisher();
    const store = await open();
    const shortLived = seal(alice, '+14085550160', 1, { expiresAtMs: clock + 1000 });
    await store.put([shortLived, seal(alice, '+14085550161', 1, { expiresAtMs: clock + 1000 }), seal(alice, '+14085550162')]);
    expect(store.recordCount).toBe(3);
    clock += 2000;
    expect(await store.get(shortLived.key)).toEqual([]);
    // An expired slot is as good as empty: even a lower sequence is accepted over it.
    expect(codes(await store.put([seal(bob, '+14085550160', 1)]))).toEqual(['ok']);
    expect(store.recordCount).toBe(3); // alice's expired record went with the rewrite, bob's came
    expect(store.publisherSlots(alice.publicKey)).toBe(2);
    expect(await store.sweep()).toBe(1);
    expect(store.recordCount).toBe(2);
    expect(store.publisherSlots(alice.publicKey)).toBe(1);
    expect(await store.sweep()).toBe(0);
    expect((await store.get(shortLived.key)).map((r) => Buffer.from(r.publisherKey))).toEqual([Buffer.from(bob.publicKey)]);
    await db.close();
    db = await openDatabase(dir);
    expect((await open()).recordCount).toBe(2);
  });
});

describe('RecordStore: publishers no longer admitted', () => {
  it('a sweep told who is admitted drops the records of every other publisher, with their slots, and keeps the rest', async () => {
    const alice = generatePublisher();
    const mallory = generatePublisher();
    const store = await open();
    const shared = '+14085550170';
    await store.put([seal(alice, shared), seal(mallory, shared), seal(mallory, '+14085550171'), seal(alice, '+14085550172')]);
    expect(store.recordCount).toBe(4);
    // Without an admission view (no configuration yet) nothing but expiry counts.
    expect(await store.sweep()).toBe(0);
    const admitted = (key: Uint8Array) => Buffer.from(key).equals(Buffer.from(alice.publicKey));
    expect(await store.sweep({ admitted })).toBe(2);
    expect(store.recordCount).toBe(2);
    expect(store.publisherSlots(mallory.publicKey)).toBe(0);
    expect(store.publisherSlots(alice.publicKey)).toBe(2);
    const key = seal(alice, shared).key;
    expect((await store.get(key)).map((r) => Buffer.from(r.publisherKey))).toEqual([Buffer.from(alice.publicKey)]);
    expect(await store.get(seal(mallory, '+14085550171').key)).toEqual([]);
    expect(await store.sweep({ admitted })).toBe(0);
    await db.close();
    db = await openDatabase(dir);
    const reopened = await open();
    expect([reopened.recordCount, reopened.publisherSlots(mallory.publicKey)]).toEqual([2, 0]);
  });
});

describe('RecordStore: scan and digest', () => {
  const alice = generatePublisher();

  async function filled(store: RecordStore, firstBytes: number[]): Promise<void> {
    const results = await store.put(firstBytes.map((b) => raw(alice.publicKey, keyAt(b))), { authenticatedPublisher: alice.publicKey });
    expect(results.every((r) => r.accepted)).toBe(true);
  }

  it('scans in key order, a page at a time, within a range', async () => {
    const store = await open();
    const firsts = Array.from({ length: 25 }, (_, i) => i * 10);
    await filled(store, firsts);
    const seen: number[] = [];
    const mores: boolean[] = [];
    let after: Uint8Array | undefined;
    for (;;) {
      const page = await store.scan({ lte: RING_END }, after ? { after, limit: 10 } : { limit: 10 });
      seen.push(...page.entries.map((e) => e.key[0]!));
      mores.push(page.more);
      expect(page.entries.every((e) => e.records.length === 1)).toBe(true);
      if (!page.more) break;
      after = page.entries[page.entries.length - 1]!.key;
    }
    expect(seen).toEqual(firsts);
    expect(mores).toEqual([true, true, false]);

    const inRange = await store.scan({ gt: keyAt(50), lte: keyAt(100) });
    expect(inRange.entries.map((e) => e.key[0])).toEqual([60, 70, 80, 90, 100]);
    const fromGte = await store.scan({ gte: keyAt(50), lte: keyAt(70) });
    expect(fromGte.entries.map((e) => e.key[0])).toEqual([50, 60, 70]);
    // A range whose start is above its end wraps around the top of the ring, like the first arc.
    const wrapped = await store.scan({ gt: keyAt(215), lte: keyAt(20) });
    expect(wrapped.entries.map((e) => e.key[0])).toEqual([220, 230, 240, 0, 10, 20]);
    const wrappedPage = await store.scan({ gt: keyAt(215), lte: keyAt(20) }, { after: keyAt(240), limit: 2 });
    expect(wrappedPage.entries.map((e) => e.key[0])).toEqual([0, 10]);
    expect(wrappedPage.more).toBe(true);
    const tail = await store.scan({ gt: keyAt(215), lte: keyAt(20) }, { after: keyAt(10) });
    expect(tail.entries.map((e) => e.key[0])).toEqual([20]);
    expect(tail.more).toBe(false);
  });

  it('digests per bucket: equal for equal contents, changed only where a record changed', async () => {
    const storeA = await open();
    const dirB = await mkdtemp(join(tmpdir(), 'ime-record-store-b-'));
    const dbB = await openDatabase(dirB);
    try {
      const storeB = await RecordStore.open({ db: dbB, now, maxTtlMs: TTL });
      const firsts = [3, 40, 64, 100, 130, 190, 200, 255];
      // Same records (same bytes) in both stores, written in different orders.
      const records = firsts.map((b) => raw(alice.publicKey, keyAt(b)));
      const auth = { authenticatedPublisher: alice.publicKey };
      await storeA.put(records, auth);
      await storeB.put([...records].reverse(), auth);

      const whole = { gte: RING_START, lte: RING_END };
      const a = await storeA.digest(whole, 4);
      const b = await storeB.digest(whole, 4);
      expect(a.digests.map((d) => Buffer.from(d).toString('hex'))).toEqual(b.digests.map((d) => Buffer.from(d).toString('hex')));
      // Buckets of 64 first-byte values each.
      expect(a.counts).toEqual([2, 2, 2, 2]);

      // A newer sequence for the record at 130 changes bucket 2 only.
      await storeB.put([raw(alice.publicKey, keyAt(130), 2)], auth);
      const b2 = await storeB.digest(whole, 4);
      const differs = a.digests.map((d, i) => !Buffer.from(d).equals(b2.digests[i]!));
      expect(differs).toEqual([false, false, true, false]);
      expect(b2.counts).toEqual(a.counts);

      // A tombstone counts and changes the digest too.
      await storeB.put([raw(alice.publicKey, keyAt(3), 2, true)], auth);
      const b3 = await storeB.digest(whole, 4);
      expect(Buffer.from(b3.digests[0]!).equals(a.digests[0]!)).toBe(false);
      expect(b3.counts).toEqual(a.counts);

      // A sub-range (bounds exclusive below, inclusive above) and a wrapping one.
      const sub = await storeA.digest({ gt: keyAt(64), lte: keyAt(200) }, 2);
      expect(sub.counts.reduce((x, y) => x + y, 0)).toBe(4); // 100, 130, 190, 200
      const wrap = await storeA.digest({ gt: keyAt(128), lte: keyAt(63) }, 2);
      // 191/256 of the ring from just above 128: the halves split near 223.
      expect(wrap.counts).toEqual([3, 3]); // [130, 190, 200] then [255, 3, 40]

      // Expired records leave the digest.
      clock += TTL + 1;
      const empty = await storeA.digest(whole, 1);
      expect(empty.counts).toEqual([0]);
    } finally {
      await dbB.close();
      await rm(dirB, { recursive: true, force: true });
    }
  });
});

describe('RecordStore: concurrency', () => {
  it('loses no update when batches for the same keys run at once', async () => {
    const store = await open();
    const publishers = Array.from({ length: 8 }, () => generatePublisher());
    const keys = Array.from({ length: 50 }, (_, i) => keyAt(i, 5));
    const results = await Promise.all(
      publishers.map((p) => store.put(keys.map((k) => raw(p.publicKey, k)), { authenticatedPublisher: p.publicKey })),
    );
    expect(results.flat().every((r) => r.accepted)).toBe(true);
    for (const k of keys) expect(await store.get(k)).toHaveLength(8);
    expect(store.recordCount).toBe(400);

    // Racing sequences of one publisher: the highest wins whatever the order.
    const p = publishers[0]!;
    const key = keyAt(200);
    await Promise.all([5, 3, 9, 1, 7].map((s) => store.put([raw(p.publicKey, key, s)], { authenticatedPublisher: p.publicKey })));
    expect((await store.get(key)).map((r) => r.sequence)).toEqual([9]);
    expect(store.publisherSlots(p.publicKey)).toBe(51);
  });
});
