import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { expandPatterns, parseEnrolledPattern } from '@ime/core';
import { RingHarness } from '@ime/harness';
import { Level } from 'level';

// The first ring test: 8 peers as separate processes, 1 000 DIDs published from one peer and
// read from another; the other peers' databases hold neither a number nor a readable claim.
const VSERVICE = 'acme-vservice-5f2c9e';
const PATTERN = '+14085551XXX';
const numbers = expandPatterns([parseEnrolledPattern(PATTERN)]);

describe('an 8-peer ring of processes', () => {
  let ring: RingHarness;

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 8, mode: 'process', keep: true });
    await ring.converge();
  }, 180_000);

  afterAll(async () => {
    await ring?.stop();
    if (ring) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  it('publishes 1 000 DIDs from one peer and reads every one from another', async () => {
    const publisher = ring.peers[0]!;
    const report = await (await publisher.admin()).post<{ requested: number; published: number; failed: unknown[] }>('/v1/dids', {
      vserviceId: VSERVICE,
      patterns: [PATTERN],
    });
    expect(report).toEqual({ requested: 1000, published: 1000, failed: [] });

    const reader = await ring.peers[5]!.admin();
    const lookup = await reader.post<{ total: number; found: number; missing: string[]; failed: unknown[] }>('/v1/dids/lookup', { numbers });
    expect(lookup).toEqual({ total: 1000, found: 1000, missing: [], failed: [] });

    // Each answer names the publisher and its Vservice; a number nobody published is absent.
    const one = await reader.get<{ found: boolean; claims: { peerId: string; vserviceId: string }[]; replicas: string[] }>(
      `/v1/dids/${encodeURIComponent(numbers[417]!)}`,
    );
    expect(one.found).toBe(true);
    expect(one.claims).toEqual([expect.objectContaining({ peerId: publisher.peerId, vserviceId: VSERVICE })]);
    expect(one.replicas).toHaveLength(3);
    expect((await reader.get<{ found: boolean }>(`/v1/dids/${encodeURIComponent('+14085552000')}`)).found).toBe(false);

    const counters = await Promise.all(ring.peers.map(async (p) => (await p.admin()).get<{ counters: Record<string, number> }>('/v1/counters')));
    const stored = counters.reduce((s, c) => s + (c.counters.IMEDistributedCacheStoredData ?? 0), 0);
    expect(stored).toBe(3000); // N = 3 copies of each record across the ring
    expect(counters[0]!.counters.IMEDistributedCacheQuotaUsed).toBe(1000);
  }, 120_000);

  it("leaves no number and no readable claim in the storing peers' LevelDB", async () => {
    await Promise.all(ring.peers.map((p) => p.stop()));
    const needles = [VSERVICE, ...numbers, ...numbers.map((n) => n.slice(1))].map((s) => Buffer.from(s));
    let scanned = 0;
    const leaks: string[] = [];
    for (const peer of ring.peers.slice(1)) {
      const db = new Level<Uint8Array, Uint8Array>(join(peer.dir, 'data', 'db'), { keyEncoding: 'view', valueEncoding: 'view' });
      await db.open();
      try {
        for await (const [key, value] of db.iterator()) {
          scanned++;
          const entry = Buffer.concat([key, value]);
          for (const needle of needles) if (entry.includes(needle)) leaks.push(`${peer.name}: ${needle.toString()}`);
        }
      } finally {
        await db.close();
      }
    }
    expect(leaks).toEqual([]);
    // The records are there (3 000 copies, less the publisher's share), just unreadable.
    expect(scanned).toBeGreaterThan(2000);
  }, 120_000);
});

describe('a ring of one peer', () => {
  it('takes writes and reads (the quorums are capped by the membership, as N is)', async () => {
    const ring = await RingHarness.start({ peers: 1, mode: 'in-process' });
    try {
      await ring.converge();
      const node = ring.peers[0]!.node!;
      const report = await node.publish('solo', ['+3531234567', '+3531234568']);
      expect(report).toEqual({ requested: 2, published: 2, failed: [] });
      expect((await node.fetchDid('+3531234567')).claims).toEqual([expect.objectContaining({ vserviceId: 'solo' })]);
      expect(node.summary().health).toBe('GREEN');
    } finally {
      await ring.stop();
    }
  }, 60_000);
});
