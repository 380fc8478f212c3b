import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { RING_END, RING_START, RingPlacement, arcContains, arcFraction, arcRanges, comparePositions, tokenPosition } from '../src/ring-placement.js';

const peers = (n: number, vnodes = 5) => Array.from({ length: n }, (_, i) => ({ peerId: `peer-${String(i).padStart(2, '0')}`, virtualNodes: vnodes }));
const key = (i: number) => new Uint8Array(createHash('sha256').update(`k${i}`).digest());

describe('ring placement', () => {
  const ring = new RingPlacement(peers(8));

  it('places every virtual node of every member, in ring order', () => {
    expect(ring.tokens).toHaveLength(40);
    expect(ring.size).toBe(8);
    for (let i = 1; i < ring.tokens.length; i++) {
      expect(comparePositions(ring.tokens[i - 1]!.position, ring.tokens[i]!.position)).toBeLessThanOrEqual(0);
    }
    expect(Buffer.from(tokenPosition('peer-00', 0)).equals(Buffer.from(tokenPosition('peer-00', 0)))).toBe(true);
  });

  it('gives every key N distinct replicas, the same on every peer whatever the roster order', () => {
    const shuffled = new RingPlacement([...peers(8)].reverse());
    for (let i = 0; i < 200; i++) {
      const r = ring.replicasFor(key(i), 3);
      expect(new Set(r).size).toBe(3);
      expect(shuffled.replicasFor(key(i), 3)).toEqual(r);
    }
  });

  it('starts with the owner of the first token at or after the key', () => {
    const k = key(1);
    const first = ring.tokens.find((t) => comparePositions(t.position, k) >= 0) ?? ring.tokens[0]!;
    expect(ring.replicasFor(k, 3)[0]).toBe(first.peerId);
  });

  it('skips peers that are down, replacing them with the next live peer', () => {
    const k = key(7);
    const [a, b, c, d] = ring.preferenceList(k);
    expect(ring.replicasFor(k, 3, (p) => p !== b)).toEqual([a, c, d]);
  });

  it('gives fewer replicas when fewer peers exist', () => {
    expect(new RingPlacement(peers(2)).replicasFor(key(3), 3)).toHaveLength(2);
    expect(new RingPlacement([]).replicasFor(key(3), 3)).toEqual([]);
  });

  it('moves only the keys of a removed peer (consistent hashing)', () => {
    const without = new RingPlacement(peers(8).filter((p) => p.peerId !== 'peer-03'));
    let moved = 0;
    for (let i = 0; i < 500; i++) {
      const before = ring.replicasFor(key(i), 1)[0];
      const after = without.replicasFor(key(i), 1)[0];
      if (before !== after) {
        moved++;
        expect(before).toBe('peer-03');
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('splits the ring into arcs that cover it exactly once', () => {
    const arcs = ring.arcs();
    expect(arcs).toHaveLength(ring.tokens.length);
    expect(arcs.reduce((s, a) => s + arcFraction(a), 0)).toBeCloseTo(1, 6);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => {
        const holding = arcs.filter((a) => arcContains(a, k));
        expect(holding).toHaveLength(1);
        // every key of an arc has the replicas of the arc's end token …
        expect(ring.replicasFor(k, 3)).toEqual(ring.walk(holding[0]!.token, 3));
        // … and lies in exactly one of the arc's plain key ranges
        const inRange = arcRanges(holding[0]!).filter(
          (r) => (r.gt ? comparePositions(k, r.gt) > 0 : comparePositions(k, r.gte ?? RING_START) >= 0) && comparePositions(k, r.lte) <= 0,
        );
        expect(inRange).toHaveLength(1);
      }),
      { numRuns: 300 },
    );
  });

  it('splits the wrapping arc into two ranges reaching both ends of the ring', () => {
    const ranges = arcRanges(ring.arcs()[0]!);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]!.lte).toEqual(RING_END);
    expect(ranges[1]!.gte).toEqual(RING_START);
  });

  it('lists neighbours within N tokens on both sides, never itself', () => {
    const n = ring.neighbours('peer-00', 3);
    expect(n).not.toContain('peer-00');
    expect(n.length).toBeGreaterThan(0);
    expect(new RingPlacement(peers(3)).neighbours('peer-00', 3)).toEqual(['peer-01', 'peer-02']);
  });

  it('computes replica shares that add up to N, live or not', () => {
    const total = [...ring.members.keys()].reduce((s, p) => s + ring.replicaShare(p, 3), 0);
    expect(total).toBeCloseTo(3, 6);
    const live = (p: string) => p !== 'peer-01';
    const liveTotal = [...ring.members.keys()].filter(live).reduce((s, p) => s + ring.replicaShare(p, 3, live), 0);
    expect(liveTotal).toBeCloseTo(3, 6);
  });
});
