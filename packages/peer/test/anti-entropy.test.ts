import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DidRecord, type E164, generatePublisher, parseE164, sealDidRecord } from '@ime/core';
import { type Database, openDatabase } from '@ime/runtime';
import { AntiEntropy, type AntiEntropySummary, bucketInterval, wireRange } from '../src/anti-entropy.js';
import { RING_MAX, bigIntToPosition, intervalToKeyRange, positionToBigInt } from '../src/handoff.js';
import { RecordStore } from '../src/record-store.js';
import { arcRanges } from '../src/ring-placement.js';
import { wireRangeToKeyRange } from '../src/ring-service.js';
import type { RingTransport } from '../src/ring-types.js';
import { LiveRingView } from '../src/ring-view.js';
import { type RingFixture, createRingFixture } from './ring-fixture.js';

const salt = new Uint8Array(32).fill(7);
const publisher = generatePublisher();
const number = (i: number) => parseE164(`+1555${String(i).padStart(7, '0')}`) as E164;
function record(i: number, sequence = 1): DidRecord {
  const now = Date.now();
  return sealDidRecord({
    ringSalt: salt,
    number: number(i),
    publisher,
    claim: { vserviceId: 'vs-1', publishedAtMs: now },
    sequence,
    expiresAtMs: now + 3_600_000,
  });
}

describe('anti-entropy ranges', () => {
  let dir: string;
  let db: Database;
  let store: RecordStore;
  const records = Array.from({ length: 400 }, (_, i) => record(i));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ime-ae-unit-'));
    db = await openDatabase(dir);
    store = await RecordStore.open({ db, maxTtlMs: 86_400_000 });
    const results = await store.put(records);
    expect(results.every((r) => r.accepted)).toBe(true);
  });

  afterAll(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends an interval on the wire as the same KeyRange the replica will read', () => {
    for (const i of [
      { lo: 0n, hi: RING_MAX },
      { lo: 5n, hi: 9n },
      { lo: 12345n, hi: RING_MAX },
      { lo: 0n, hi: 0n },
    ]) {
      const { start, end } = wireRange(i);
      expect(wireRangeToKeyRange(start, end)).toEqual(intervalToKeyRange(i));
    }
  });

  it('splits an interval into buckets exactly as RecordStore.digest does', async () => {
    const keys = records.map((r) => positionToBigInt(r.key));
    // Odd widths, so bucket edges fall between integers; and the whole ring.
    const intervals = [
      { lo: 0n, hi: RING_MAX },
      { lo: 3n, hi: RING_MAX / 3n + 7n },
      { lo: RING_MAX / 5n, hi: RING_MAX - 11n },
    ];
    for (const interval of intervals) {
      for (const buckets of [1, 7, 16]) {
        const { counts } = await store.digest(intervalToKeyRange(interval), buckets);
        const expected = Array.from({ length: buckets }, (_, b) => {
          const bi = bucketInterval(interval, b, buckets);
          return keys.filter((k) => bi.lo <= k && k <= bi.hi).length;
        });
        expect(counts).toEqual(expected);
        // The buckets tile the interval.
        expect(bucketInterval(interval, 0, buckets).lo).toBe(interval.lo);
        expect(bucketInterval(interval, buckets - 1, buckets).hi).toBe(interval.hi);
        for (let b = 1; b < buckets; b++) {
          expect(bucketInterval(interval, b, buckets).lo).toBe(bucketInterval(interval, b - 1, buckets).hi + 1n);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Integration: real libp2p hosts, real LevelDB stores, the real ring service, one process.

interface Ring {
  fixture: RingFixture;
  views: LiveRingView[];
  aes: AntiEntropy[];
  index: Map<string, number>;
}

async function ring(options: { batchSize?: number; transport?: (i: number, t: RingTransport) => RingTransport } = {}): Promise<Ring> {
  const fixture = await createRingFixture({ size: 6, virtualNodes: 3, timeoutMs: 1000 });
  const views = fixture.peers.map((p) => new LiveRingView({ self: p.peerId, members: fixture.members, parameters: fixture.parameters }));
  const aes = fixture.peers.map(
    (p, i) =>
      new AntiEntropy({
        view: views[i]!,
        store: p.store,
        transport: options.transport ? options.transport(i, p.transport) : p.transport,
        self: p.peerId,
        intervalMs: 60_000,
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      }),
  );
  return { fixture, views, aes, index: new Map(fixture.peers.map((p, i) => [p.peerId, i])) };
}

const numberOf = (i: number) => `+1555${String(i).padStart(7, '0')}`;
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function put(r: Ring, peerId: string, records: DidRecord[]): Promise<void> {
  const results = await r.fixture.peers[r.index.get(peerId)!]!.store.put(records);
  expect(results.every((x) => x.accepted)).toBe(true);
}

/** Every (replica, record) where the replica lacks the record at the expected sequence. */
async function missing(r: Ring, expected: readonly DidRecord[], view: LiveRingView = r.views[0]!): Promise<string[]> {
  const out: string[] = [];
  for (const rec of expected) {
    for (const p of view.replicasFor(rec.key)) {
      const held = await r.fixture.peers[r.index.get(p)!]!.store.get(rec.key);
      const mine = held.find((h) => hexOf(h.publisherKey) === hexOf(rec.publisherKey));
      if (mine?.sequence !== rec.sequence) out.push(`${hexOf(rec.key).slice(0, 8)}@${r.index.get(p)}:${mine?.sequence ?? '-'}≠${rec.sequence}`);
    }
  }
  return out;
}

/** Arcs (as plain ranges) whose replicas' stores do not digest alike. */
async function digestMismatches(r: Ring): Promise<number> {
  const placement = r.views[0]!.placement;
  let bad = 0;
  for (const arc of placement.arcs()) {
    const replicas = placement.walk(arc.token, 3);
    for (const range of arcRanges(arc)) {
      const digests = await Promise.all(
        replicas.map(async (p) => {
          const d = await r.fixture.peers[r.index.get(p)!]!.store.digest(range, 4);
          return d.digests.map(hexOf).join() + d.counts.join();
        }),
      );
      if (new Set(digests).size !== 1) bad++;
    }
  }
  return bad;
}

async function round(r: Ring): Promise<AntiEntropySummary> {
  const all = await Promise.all(r.aes.map((a) => a.runOnce()));
  return all.reduce((a, s) => ({
    arcsChecked: a.arcsChecked + s.arcsChecked,
    bucketsDiffering: a.bucketsDiffering + s.bucketsDiffering,
    recordsPulled: a.recordsPulled + s.recordsPulled,
    recordsPushed: a.recordsPushed + s.recordsPushed,
    peersFailed: [...a.peersFailed, ...s.peersFailed],
  }));
}

/** Counts the rounds `ae` starts from now on (its timer's included). */
function countRounds(ae: AntiEntropy): () => number {
  let rounds = 0;
  const original = ae.runOnce.bind(ae);
  ae.runOnce = () => {
    rounds++;
    return original();
  };
  return () => rounds;
}

describe('AntiEntropy over a real ring (6 peers, 3 virtual nodes, N = 3)', () => {
  let r: Ring;
  afterEach(async () => {
    for (const a of r.aes) a.stop();
    await r.fixture.close();
  });

  it('repairs missed writes and stale versions, both ways, until the replicas digest alike', async () => {
    r = await ring({ batchSize: 5 });
    const { fixture, views } = r;
    const expected: DidRecord[] = [];
    for (let i = 0; i < 150; i++) {
      const rec = fixture.seal(i % 6, numberOf(i));
      const replicas = views[0]!.replicasFor(rec.key);
      if (i % 5 === 0) {
        // A missed write: one replica (a different position each time) never got it.
        for (const p of replicas.filter((_, j) => j !== i % 3)) await put(r, p, [rec]);
        expected.push(rec);
      } else if (i % 7 === 0) {
        // A newer version reached only one replica; the others hold the old one.
        const v2 = fixture.seal(i % 6, numberOf(i), { sequence: 2 });
        for (const p of replicas) await put(r, p, [rec]);
        await put(r, replicas[i % 3]!, [v2]);
        expected.push(v2);
      } else {
        for (const p of replicas) await put(r, p, [rec]);
        expected.push(rec);
      }
    }
    const broken = (await missing(r, expected)).length;
    expect(broken).toBeGreaterThan(0);
    expect(await digestMismatches(r)).toBeGreaterThan(0);

    const first = await round(r);
    expect(first.peersFailed).toEqual([]);
    expect(first.bucketsDiffering).toBeGreaterThan(0);
    // Repairs went both ways: some records were pulled by the starting peer, some pushed by it.
    expect(first.recordsPulled).toBeGreaterThan(0);
    expect(first.recordsPushed).toBeGreaterThan(0);
    expect(first.recordsPulled + first.recordsPushed).toBeGreaterThanOrEqual(broken);
    expect(await missing(r, expected)).toEqual([]);
    expect(await digestMismatches(r)).toBe(0);

    const second = await round(r);
    expect(second).toMatchObject({ bucketsDiffering: 0, recordsPulled: 0, recordsPushed: 0, peersFailed: [] });
    expect(second.arcsChecked).toBe(first.arcsChecked);
  });

  it('rebuilds a replica whose store was wiped', async () => {
    r = await ring();
    const { fixture, views } = r;
    const records = Array.from({ length: 120 }, (_, i) => fixture.seal(i % 6, numberOf(i)));
    for (const rec of records) for (const p of views[0]!.replicasFor(rec.key)) await put(r, p, [rec]);
    expect(await missing(r, records)).toEqual([]);

    const victim = fixture.peers[2]!;
    // Wipe the victim's records (prefix 0x01 of its database), as after losing its disk.
    await victim.db.clear({ gte: Uint8Array.of(0x01), lt: Uint8Array.of(0x02) });
    expect((await victim.store.scan({ gte: new Uint8Array(32), lte: new Uint8Array(32).fill(0xff) })).entries).toEqual([]);
    const lost = (await missing(r, records)).length;
    expect(lost).toBeGreaterThan(0);

    const summary = await round(r);
    // At least what was lost: two partners may send the victim the same record in one round (a
    // replica accepts the same record again), so the count may be higher.
    expect(summary.recordsPulled + summary.recordsPushed).toBeGreaterThanOrEqual(lost);
    expect(await missing(r, records)).toEqual([]);
    expect(await digestMismatches(r)).toBe(0);
  });

  it('each pair is compared once: the lower peer id starts', async () => {
    r = await ring();
    const ids = r.fixture.peers.map((p) => p.peerId).sort();
    const highest = r.aes[r.index.get(ids[ids.length - 1]!)!]!;
    const lowest = r.aes[r.index.get(ids[0]!)!]!;
    expect((await highest.runOnce()).arcsChecked).toBe(0);
    expect((await lowest.runOnce()).arcsChecked).toBeGreaterThan(0);
    // Concurrent calls join the round in progress.
    const a = lowest.runOnce();
    expect(lowest.runOnce()).toBe(a);
    await a;
  });

  it('reports an unreachable replica, marks it down, and still repairs with the others', async () => {
    r = await ring();
    const { fixture, views } = r;
    const records = Array.from({ length: 60 }, (_, i) => fixture.seal(i % 6, numberOf(i)));
    // The highest peer id: every replica it shares an arc with starts the comparison with it.
    const deadId = fixture.peers.map((p) => p.peerId).sort().at(-1)!;
    const dead = r.index.get(deadId)!;
    // Written while the dead peer was already gone (but not yet seen down): one copy of each record.
    for (const rec of records) {
      const [first] = views[(dead + 1) % 6]!.replicasFor(rec.key).filter((p) => p !== deadId);
      await put(r, first!, [rec]);
    }
    await fixture.stopHost(dead);
    const others = [...views.keys()].filter((i) => i !== dead);
    const started = await Promise.all(others.map((i) => r.aes[i]!.runOnce()));
    expect([...new Set(started.flatMap((s) => s.peersFailed))]).toEqual([deadId]);
    // The peers that shared an arc with it found it unreachable, and now see it down.
    const partners = others.filter((_, j) => started[j]!.peersFailed.includes(deadId));
    expect(partners.length).toBeGreaterThan(0);
    for (const i of partners) expect(views[i]!.isLive(deadId)).toBe(false);
    // With the dead peer down in every view, the next round completes the live replicas.
    for (const [i, v] of views.entries()) if (i !== dead) v.markDown(deadId, 'test');
    const next = await Promise.all(r.aes.filter((_, i) => i !== dead).map((a) => a.runOnce()));
    expect(next.flatMap((s) => s.peersFailed)).toEqual([]);
    // As a survivor sees the ring (the dead peer's own view still counts itself).
    expect(await missing(r, records, views[others[0]!]!)).toEqual([]);
  });

  it('start() runs rounds on a timer until stop()', async () => {
    r = await ring();
    const ae = new AntiEntropy({
      view: r.views[0]!,
      store: r.fixture.peers[0]!.store,
      transport: r.fixture.peers[0]!.transport,
      self: r.fixture.peers[0]!.peerId,
      intervalMs: 10,
    });
    r.aes.push(ae);
    const rounds = countRounds(ae);
    ae.start();
    for (let i = 0; i < 200 && rounds() < 2; i++) await new Promise((res) => setTimeout(res, 10));
    ae.stop();
    expect(rounds()).toBeGreaterThanOrEqual(2);
  });
});

describe('AntiEntropy: stray records (held outside the arcs this peer replicates)', () => {
  let r: Ring;
  /** Handoff requests sent, by fixture index of sender and replica, with how many records each carried. */
  let handoffs: { from: number; to: number; records: number }[];

  beforeEach(async () => {
    handoffs = [];
    r = await ring({
      transport: (i, t) => ({
        request: (peerId, request, opts) => {
          if (request.handoff) handoffs.push({ from: i, to: r.index.get(peerId)!, records: request.handoff.records?.length ?? 0 });
          return t.request(peerId, request, opts);
        },
      }),
    });
  });
  afterEach(async () => {
    for (const a of r.aes) a.stop();
    await r.fixture.close();
  });

  /** A record, a peer that is not one of its replicas (as every peer sees the ring), and its replicas. */
  function strayAt(i: number): { rec: DidRecord; stray: number; replicas: number[] } {
    const rec = r.fixture.seal(i % 6, numberOf(i));
    const replicas = r.views[0]!.replicasFor(rec.key).map((p) => r.index.get(p)!);
    const stray = [...r.index.values()].find((j) => !replicas.includes(j))!;
    return { rec, stray, replicas };
  }

  const sentBy = (from: number) => handoffs.filter((h) => h.from === from);

  it('a round hands a record held only by a non-replica to every replica; unchanged, it is not sent again; changed, it is', async () => {
    const { rec, stray, replicas } = strayAt(7);
    await put(r, r.fixture.peers[stray]!.peerId, [rec]);
    expect(await missing(r, [rec])).toHaveLength(3);

    const first = await r.aes[stray]!.runOnce();
    expect(first.peersFailed).toEqual([]);
    expect(await missing(r, [rec])).toEqual([]);
    expect(sentBy(stray).map((h) => h.to).sort()).toEqual([...replicas].sort());
    expect(sentBy(stray).every((h) => h.records === 1)).toBe(true);

    handoffs = [];
    await r.aes[stray]!.runOnce();
    expect(sentBy(stray)).toEqual([]);

    // A newer version of the same record changes the bucket's content: it goes out again.
    const v2 = r.fixture.seal(7 % 6, numberOf(7), { sequence: 2 });
    await put(r, r.fixture.peers[stray]!.peerId, [v2]);
    await r.aes[stray]!.runOnce();
    expect(sentBy(stray).map((h) => h.to).sort()).toEqual([...replicas].sort());
    expect(await missing(r, [v2])).toEqual([]);
  });

  it('a replica that cannot be reached is reported and gets the record in the next round; the others are not sent it twice', async () => {
    const { rec, stray, replicas } = strayAt(11);
    await put(r, r.fixture.peers[stray]!.peerId, [rec]);
    const [deadIndex, ...reached] = replicas as [number, ...number[]];
    const deadId = r.fixture.peers[deadIndex]!.peerId;
    await r.fixture.stopHost(deadIndex);

    const first = await r.aes[stray]!.runOnce();
    expect(first.peersFailed).toContain(deadId);
    expect(r.views[stray]!.isLive(deadId)).toBe(false);
    for (const j of reached) expect((await r.fixture.peers[j]!.store.get(rec.key)).map((h) => h.sequence)).toEqual([1]);
    expect(await r.fixture.peers[deadIndex]!.store.get(rec.key)).toEqual([]);

    // Back, and seen live again (as a probe's answer does), the replica gets the record in the next round.
    await r.fixture.startHost(deadIndex);
    r.views[stray]!.markUp(deadId);
    handoffs = [];
    const second = await r.aes[stray]!.runOnce();
    expect(second.peersFailed).toEqual([]);
    expect(await missing(r, [rec])).toEqual([]);
    expect(sentBy(stray).map((h) => h.to)).toEqual([deadIndex]);
  });

  it('a stray record every replica refuses as older than its own is dropped here; while a replica cannot be asked it is kept', async () => {
    const { rec: v1, stray, replicas } = strayAt(31);
    const v2 = r.fixture.seal(31 % 6, numberOf(31), { sequence: 2 });
    for (const j of replicas) await put(r, r.fixture.peers[j]!.peerId, [v2]);
    // An older version replayed to a peer that is not its replica.
    await put(r, r.fixture.peers[stray]!.peerId, [v1]);
    const [deadIndex] = replicas as [number];
    await r.fixture.stopHost(deadIndex);
    await r.aes[stray]!.runOnce();
    expect((await r.fixture.peers[stray]!.store.get(v1.key)).map((x) => x.sequence)).toEqual([1]);

    await r.fixture.startHost(deadIndex);
    r.views[stray]!.markUp(r.fixture.peers[deadIndex]!.peerId);
    await r.aes[stray]!.runOnce();
    expect(await r.fixture.peers[stray]!.store.get(v1.key)).toEqual([]);
    for (const j of replicas) expect((await r.fixture.peers[j]!.store.get(v2.key)).map((x) => x.sequence)).toEqual([2]);
  });

  it('handOverStraysSoon hands a stored stray over without waiting for a round', async () => {
    const { rec, stray } = strayAt(23);
    const ae = r.aes[stray]!;
    const rounds = countRounds(ae);
    ae.start();
    await put(r, r.fixture.peers[stray]!.peerId, [rec]);
    ae.handOverStraysSoon();
    let left = await missing(r, [rec]);
    for (let i = 0; i < 300 && left.length > 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      left = await missing(r, [rec]);
    }
    expect(left).toEqual([]);
    // The round timer (60 s) has not fired: the handover alone moved the record.
    expect(rounds()).toBe(0);
  });
});
