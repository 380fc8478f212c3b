import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DidRecord, generatePublisher, openDidRecord, parseE164 } from '@ime/core';
import { type Database, openDatabase } from '@ime/runtime';
import { DidPublisher, type PublisherContext, type RingWriter, type WriteOutcome } from '../src/did-publisher.js';

// A unit test of the publisher alone: a real database, and a ring that records what it is given
// (refusing the numbers a test names).
class RecordingRing implements RingWriter {
  stored: DidRecord[] = [];
  withdrawn: DidRecord[] = [];
  refuse = new Set<string>();
  keyOf = new Map<string, string>();
  async store(records: readonly DidRecord[]): Promise<WriteOutcome[]> {
    this.stored.push(...records);
    return records.map((r) => (this.refuse.has(Buffer.from(r.key).toString('hex')) ? { accepted: false, acks: 1, code: 'E_RING_WRITE_QUORUM' } : { accepted: true, acks: 2 }));
  }
  async withdraw(tombstones: readonly DidRecord[]): Promise<WriteOutcome[]> {
    this.withdrawn.push(...tombstones);
    return tombstones.map(() => ({ accepted: true, acks: 2 }));
  }
}

const dirs: string[] = [];
const dbs: Database[] = [];
afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ringSalt = new Uint8Array(32).fill(7);
const publisherKey = generatePublisher();

async function setup(context: Partial<PublisherContext> | null = {}, dir?: string) {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'ime-publisher-'));
  if (!dir) dirs.push(d);
  const db = await openDatabase(d);
  dbs.push(db);
  const ring = new RecordingRing();
  let now = 1_800_000_000_000;
  const ctx = context === null ? undefined : { ringSalt, recordTtlSec: 86_400, republishIntervalSec: 43_200, storageQuota: 100, ...context };
  const publisher = await DidPublisher.open({ db, ring, publisher: publisherKey, context: () => ctx, now: () => now });
  return { d, db, ring, publisher, tick: (ms: number) => (now += ms), now: () => now };
}

const numbers = (n: number, base = 0) => Array.from({ length: n }, (_, i) => `+3360000${String(base + i).padStart(4, '0')}`);

describe('the DID publisher', () => {
  it('publishes sealed, signed records the number opens, and counts them', async () => {
    const { ring, publisher } = await setup();
    const report = await publisher.publish('vs-1', [...numbers(3), numbers(3)[0]!]);
    expect(report).toEqual({ requested: 3, published: 3, failed: [] });
    expect(publisher.used).toBe(3);
    const opened = openDidRecord(ring.stored[0]!, { ringSalt, number: parseE164(numbers(1)[0]!) });
    expect(opened.vserviceId).toBe('vs-1');
    expect(await publisher.owns(numbers(1)[0]!)).toBe(true);
    expect((await publisher.numbers('vs-1')).sort()).toEqual(numbers(3));
    expect(await publisher.numbers('other')).toEqual([]);
  });

  it('refuses a publication over the quota whole, with E_OVER_QUOTA', async () => {
    const { ring, publisher } = await setup({ storageQuota: 5 });
    await publisher.publish('vs', numbers(3));
    await expect(publisher.publish('vs', numbers(3, 3))).rejects.toMatchObject({ code: 'E_OVER_QUOTA', details: { quota: 5, used: 3, requested: 3 } });
    expect(publisher.used).toBe(3);
    expect(ring.stored).toHaveLength(3);
    // Numbers it already publishes do not count again.
    expect((await publisher.publish('vs', [...numbers(3), ...numbers(2, 3)])).published).toBe(5);
  });

  it('gives every new record of a number a higher sequence, even when the clock stands still', async () => {
    const { ring, publisher } = await setup();
    await publisher.publish('vs', numbers(1));
    await publisher.publish('vs', numbers(1));
    await publisher.publish('vs', numbers(1));
    const seqs = ring.stored.map((r) => r.sequence);
    expect(seqs[1]).toBeGreaterThan(seqs[0]!);
    expect(seqs[2]).toBeGreaterThan(seqs[1]!);
  });

  it('does not count numbers the ring refused, and reports them', async () => {
    const { ring, publisher } = await setup();
    const probe = await setup();
    await probe.publisher.publish('vs', [numbers(2)[1]!]);
    ring.refuse.add(Buffer.from(probe.ring.stored[0]!.key).toString('hex'));
    const report = await publisher.publish('vs', numbers(2));
    expect(report.published).toBe(1);
    expect(report.failed).toEqual([expect.objectContaining({ number: numbers(2)[1], code: 'E_RING_WRITE_QUORUM' })]);
    expect(publisher.used).toBe(1);
  });

  it('withdraws its own numbers with tombstones, and refuses others with E_NOT_PUBLISHED', async () => {
    const { ring, publisher } = await setup();
    await publisher.publish('vs', numbers(2));
    const report = await publisher.withdraw([numbers(2)[0]!, '+3361111111']);
    expect(report.published).toBe(1);
    expect(report.failed).toEqual([expect.objectContaining({ number: '+3361111111', code: 'E_NOT_PUBLISHED' })]);
    expect(ring.withdrawn).toHaveLength(1);
    expect(ring.withdrawn[0]!.tombstone).toBe(true);
    expect(ring.withdrawn[0]!.sequence).toBeGreaterThan(ring.stored[0]!.sequence);
    expect(publisher.used).toBe(1);
  });

  it('keeps its numbers, count and schedule across a restart', async () => {
    const first = await setup();
    await first.publisher.publish('vs', numbers(4));
    await first.db.close();
    dbs.splice(dbs.indexOf(first.db), 1);
    const again = await setup({}, first.d);
    expect(again.publisher.used).toBe(4);
    expect((await again.publisher.numbers()).sort()).toEqual(numbers(4));
  });

  it('republishes everything, with new sequences and expiry, once the interval has passed', async () => {
    const { ring, publisher, tick } = await setup({ republishIntervalSec: 100 });
    await publisher.publish('vs', numbers(12));
    const first = new Map(ring.stored.map((r) => [Buffer.from(r.key).toString('hex'), r]));
    ring.stored = [];
    publisher.start(() => undefined);
    publisher.stop();
    expect(ring.stored).toHaveLength(0); // not due yet
    tick(100_000);
    const report = await publisher.republish();
    expect(report).toEqual({ requested: 12, published: 12, failed: [] });
    for (const r of ring.stored) {
      const before = first.get(Buffer.from(r.key).toString('hex'))!;
      expect(r.sequence).toBeGreaterThan(before.sequence);
      expect(r.expiresAtMs).toBeGreaterThan(before.expiresAtMs);
    }
    expect(publisher.used).toBe(12);
  });

  it('refuses to publish before the peer has a ring configuration', async () => {
    const { publisher } = await setup(null);
    await expect(publisher.publish('vs', numbers(1))).rejects.toMatchObject({ code: 'E_RING_INACTIVE' });
  });

  it('handles more numbers than one chunk, sealing while the previous chunk is stored', async () => {
    const { ring, publisher } = await setup({ storageQuota: 20_000 });
    const many = Array.from({ length: 12_001 }, (_, i) => `+3362${String(i).padStart(6, '0')}`);
    expect((await publisher.publish('vs', many)).published).toBe(12_001);
    expect(new Set(ring.stored.map((r) => Buffer.from(r.key).toString('hex'))).size).toBe(12_001);
    expect(publisher.used).toBe(12_001);
  }, 60_000);
});
