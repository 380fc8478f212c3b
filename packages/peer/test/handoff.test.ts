import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { type DidRecord, ImeError } from '@ime/core';
import {
  Handoff,
  RING_MAX,
  arcIntervals,
  bigIntToPosition,
  gainedIntervals,
  mergeIntervals,
  positionToBigInt,
} from '../src/handoff.js';
import { RingPlacement } from '../src/ring-placement.js';
import type { RingTransport, ViewSnapshot } from '../src/ring-types.js';
import { LiveRingView } from '../src/ring-view.js';
import { type RingFixture, createRingFixture } from './ring-fixture.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const ids = Array.from({ length: 6 }, (_, i) => `peer-${i}`);
const roster = (list: string[]) => list.map((peerId) => ({ peerId, virtualNodes: 3 }));
const key = (i: number) => new Uint8Array(createHash('sha256').update(`k${i}`).digest());

function snap(members: string[], down: string[] = [], n = 3): ViewSnapshot {
  const placement = new RingPlacement(roster(members));
  return { version: 0, placement, live: new Set(members.filter((p) => !down.includes(p))), replicationFactor: n };
}

const inAny = (list: readonly { lo: bigint; hi: bigint }[] | undefined, k: bigint) => (list ?? []).some((i) => i.lo <= k && k <= i.hi);

/** Checks gainedIntervals against a key-by-key comparison of replica sets. */
function checkAgainstKeys(before: ViewSnapshot, after: ViewSnapshot, self: string, alsoDown?: Set<string>): void {
  const gained = gainedIntervals(before, after, self, alsoDown);
  const probes: Uint8Array[] = Array.from({ length: 600 }, (_, i) => key(i));
  // Keys right at, just below and just above every token of both placements: the arc boundaries.
  for (const t of [...before.placement.tokens, ...after.placement.tokens]) {
    const p = positionToBigInt(t.position);
    for (const d of [-1n, 0n, 1n]) probes.push(bigIntToPosition((p + d + RING_MAX + 1n) % (RING_MAX + 1n)));
  }
  probes.push(bigIntToPosition(0n), bigIntToPosition(RING_MAX));
  for (const k of probes) {
    const was = new Set(before.placement.replicasFor(k, before.replicationFactor, (p) => before.live.has(p) && !alsoDown?.has(p)));
    const now = after.placement.replicasFor(k, after.replicationFactor, (p) => after.live.has(p));
    const expected = now.filter((p) => p !== self && !was.has(p)).sort();
    const kb = positionToBigInt(k);
    const got = [...gained.keys()].filter((p) => inAny(gained.get(p), kb)).sort();
    expect(got).toEqual(expected);
  }
}

describe('ring intervals', () => {
  it('turns arcs into inclusive intervals, wrapping arcs into two', () => {
    const p = (n: bigint) => bigIntToPosition(n);
    expect(arcIntervals(p(10n), p(20n))).toEqual([{ lo: 11n, hi: 20n }]);
    expect(arcIntervals(p(20n), p(10n))).toEqual([
      { lo: 21n, hi: RING_MAX },
      { lo: 0n, hi: 10n },
    ]);
    // One token: the arc is the whole ring.
    expect(mergeIntervals(arcIntervals(p(5n), p(5n)))).toEqual([{ lo: 0n, hi: RING_MAX }]);
    expect(arcIntervals(p(RING_MAX), p(3n))).toEqual([{ lo: 0n, hi: 3n }]);
  });

  it('merges overlapping and touching intervals', () => {
    expect(
      mergeIntervals([
        { lo: 10n, hi: 20n },
        { lo: 0n, hi: 4n },
        { lo: 21n, hi: 30n },
        { lo: 5n, hi: 6n },
        { lo: 25n, hi: 27n },
        { lo: 40n, hi: 50n },
      ]),
    ).toEqual([
      { lo: 0n, hi: 6n },
      { lo: 10n, hi: 30n },
      { lo: 40n, hi: 50n },
    ]);
  });

  it('round-trips positions', () => {
    const k = key(1);
    expect(Buffer.from(bigIntToPosition(positionToBigInt(k))).equals(Buffer.from(k))).toBe(true);
    expect(bigIntToPosition(RING_MAX)).toEqual(new Uint8Array(32).fill(0xff));
  });
});

describe('gainedIntervals: where replica sets gained peers', () => {
  it('nothing when nothing changed', () => {
    expect(gainedIntervals(snap(ids), snap(ids), 'peer-0').size).toBe(0);
  });

  it('a peer going down: the next live peers gain its ranges', () => {
    for (const self of ids) checkAgainstKeys(snap(ids), snap(ids, ['peer-3']), self);
    expect(gainedIntervals(snap(ids), snap(ids, ['peer-3']), 'peer-0').has('peer-3')).toBe(false);
  });

  it('a peer coming back: it regains its ranges', () => {
    const gained = gainedIntervals(snap(ids, ['peer-3']), snap(ids), 'peer-0');
    expect(gained.has('peer-3')).toBe(true);
    for (const self of ids) checkAgainstKeys(snap(ids, ['peer-3']), snap(ids), self);
  });

  it('members joining and leaving (the token sets differ)', () => {
    const more = [...ids, 'peer-6', 'peer-7'];
    const fewer = ids.filter((p) => p !== 'peer-2');
    for (const self of ids) {
      checkAgainstKeys(snap(ids), snap(more), self);
      checkAgainstKeys(snap(ids), snap(fewer), self);
      checkAgainstKeys(snap(fewer, ['peer-4']), snap(more, ['peer-1']), self);
    }
  });

  it('a change of replication factor', () => {
    for (const self of ids) checkAgainstKeys(snap(ids, [], 2), snap(ids, [], 3), self);
  });

  it('a peer that flapped within the burst counts as gained', () => {
    expect(gainedIntervals(snap(ids), snap(ids), 'peer-0', new Set(['peer-3'])).has('peer-3')).toBe(true);
    checkAgainstKeys(snap(ids), snap(ids), 'peer-0', new Set(['peer-3']));
  });

  it('an empty ring or a ring of one', () => {
    expect(gainedIntervals(snap([]), snap([]), 'peer-0').size).toBe(0);
    const one = gainedIntervals(snap(['peer-0']), snap(['peer-0', 'peer-1']), 'peer-0');
    expect(one.get('peer-1')).toEqual([{ lo: 0n, hi: RING_MAX }]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Integration: real libp2p hosts, real LevelDB stores, the real ring service, one process.

interface Ring {
  fixture: RingFixture;
  views: LiveRingView[];
  handoffs: Handoff[];
  /** Peer index by peer id. */
  index: Map<string, number>;
}

async function ring(options: { size: number; members?: number; batchSize?: number; transport?: (i: number, t: RingTransport) => RingTransport; retryMs?: number }): Promise<Ring> {
  const fixture = await createRingFixture({ size: options.size, virtualNodes: 3, timeoutMs: 1000 });
  const roster = fixture.members.slice(0, options.members ?? options.size);
  const views = fixture.peers.map(
    (p) => new LiveRingView({ self: p.peerId, members: roster, parameters: fixture.parameters }),
  );
  const handoffs = fixture.peers.map(
    (p, i) =>
      new Handoff({
        view: views[i]!,
        store: p.store,
        transport: options.transport ? options.transport(i, p.transport) : p.transport,
        self: p.peerId,
        debounceMs: 20,
        retryMs: options.retryMs ?? 60_000,
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      }),
  );
  return { fixture, views, handoffs, index: new Map(fixture.peers.map((p, i) => [p.peerId, i])) };
}

async function close(r: Ring): Promise<void> {
  for (const h of r.handoffs) h.stop();
  for (const v of r.views) v.stop();
  await r.fixture.close();
}

const numberOf = (i: number) => `+1555${String(i).padStart(7, '0')}`;

/** Records from several publishers, written straight into the stores of their replicas (as `view` sees them). */
async function writeToReplicas(r: Ring, view: LiveRingView, records: readonly DidRecord[]): Promise<void> {
  const byPeer = new Map<number, DidRecord[]>();
  for (const rec of records) {
    for (const p of view.replicasFor(rec.key)) {
      const i = r.index.get(p)!;
      byPeer.set(i, [...(byPeer.get(i) ?? []), rec]);
    }
  }
  for (const [i, list] of byPeer) {
    const results = await r.fixture.peers[i]!.store.put(list);
    expect(results.every((x) => x.accepted)).toBe(true);
  }
}

/** Whether peer `i`'s store holds the record (same publisher, at least its sequence). */
async function holds(r: Ring, i: number, rec: DidRecord): Promise<boolean> {
  const held = await r.fixture.peers[i]!.store.get(rec.key);
  return held.some((h) => Buffer.from(h.publisherKey).equals(Buffer.from(rec.publisherKey)) && h.sequence >= rec.sequence);
}

/** The replicas of each record, by `view`, that do not hold it. */
async function missing(r: Ring, view: LiveRingView, records: readonly DidRecord[]): Promise<string[]> {
  const out: string[] = [];
  for (const rec of records) {
    for (const p of view.replicasFor(rec.key)) {
      if (!(await holds(r, r.index.get(p)!, rec))) out.push(`${Buffer.from(rec.key).toString('hex').slice(0, 8)}@${r.index.get(p)}`);
    }
  }
  return out;
}

const idle = (r: Ring) => Promise.all(r.handoffs.map((h) => h.idle()));

describe('Handoff over a real ring (6 peers, 3 virtual nodes, N = 3)', () => {
  let r: Ring;
  afterEach(async () => close(r));

  it('restores N live copies when a replica goes down, and catches it up when it returns', async () => {
    r = await ring({ size: 6, batchSize: 7 });
    const { fixture, views } = r;
    const records = Array.from({ length: 120 }, (_, i) => fixture.seal(i % 6, numberOf(i)));
    await writeToReplicas(r, views[0]!, records);
    expect(await missing(r, views[0]!, records)).toEqual([]);

    const victim = 2;
    const victimId = fixture.peers[victim]!.peerId;
    const held = records.filter((rec) => views[0]!.replicasFor(rec.key).includes(victimId));
    expect(held.length).toBeGreaterThan(0);

    await fixture.stopHost(victim);
    for (const [i, v] of views.entries()) if (i !== victim) v.markDown(victimId, 'test: host stopped');
    await idle(r);

    // Every record again has N live copies, as each surviving peer now sees the ring.
    const survivor = views[0]!;
    expect(survivor.replicasFor(held[0]!.key)).not.toContain(victimId);
    expect(await missing(r, survivor, records)).toEqual([]);
    const sent = r.handoffs.reduce((n, h) => n + h.stats.recordsSent, 0);
    expect(sent).toBeGreaterThanOrEqual(held.length);

    // While it is down: new records, and new versions of records it held.
    const fresh = Array.from({ length: 60 }, (_, i) => fixture.seal(i % 6, numberOf(1000 + i)));
    const updated = held.slice(0, 10);
    const newer = updated.map((rec) => {
      const i = records.indexOf(rec);
      return fixture.seal(i % 6, numberOf(i), { sequence: 2 });
    });
    await writeToReplicas(r, survivor, [...fresh, ...newer]);

    await fixture.startHost(victim);
    for (const [i, v] of views.entries()) if (i !== victim) v.markUp(victimId);
    await idle(r);

    const all = [...records.filter((rec) => !updated.includes(rec)), ...newer, ...fresh];
    expect(await missing(r, survivor, all)).toEqual([]);
    const owedToVictim = all.filter((rec) => survivor.replicasFor(rec.key).includes(victimId));
    expect(owedToVictim.length).toBeGreaterThan(held.length);
    for (const rec of owedToVictim) expect(await holds(r, victim, rec)).toBe(true);
  });

  it('the failure detector drives it: a stopped host is seen down and its records move', async () => {
    r = await ring({ size: 6 });
    const { fixture, views } = r;
    const records = Array.from({ length: 60 }, (_, i) => fixture.seal(i % 6, numberOf(i)));
    await writeToReplicas(r, views[0]!, records);
    for (const [i, v] of views.entries()) {
      const transport = fixture.peers[i]!.transport;
      v.startProbing({
        ping: async (peerId) => {
          await transport.request(peerId, { ping: { configurationSequence: 1 } }, { timeoutMs: 500 });
        },
        intervalMs: 50,
        misses: 3,
      });
    }
    const victim = 4;
    const victimId = fixture.peers[victim]!.peerId;
    await fixture.stopHost(victim);
    // Its neighbours notice; the others learn it when a request to it fails (here: they do not).
    const neighbours = views.filter((v, i) => i !== victim && v.neighbours().includes(victimId));
    expect(neighbours.length).toBeGreaterThan(0);
    await until(() => neighbours.every((v) => !v.isLive(victimId)), 'the neighbours to see the peer down');
    await idle(r);
    expect(r.handoffs.reduce((n, h) => n + h.stats.recordsAccepted, 0)).toBeGreaterThan(0);
    for (const v of neighbours) {
      // Each neighbour's records are on the replicas as it now sees them.
      const i = r.index.get(v.self)!;
      const mine = (await fixture.peers[i]!.store.scan({ gte: new Uint8Array(32), lte: new Uint8Array(32).fill(0xff) }, { limit: 1000 })).entries;
      for (const e of mine) {
        for (const rec of e.records) {
          for (const p of v.replicasFor(e.key)) expect(await holds(r, r.index.get(p)!, rec)).toBe(true);
        }
      }
    }
  });

  it('moves records to a member that joins (the token set changes) and away from one that leaves', async () => {
    r = await ring({ size: 7, members: 6 });
    const { fixture, views } = r;
    const records = Array.from({ length: 120 }, (_, i) => fixture.seal(i % 6, numberOf(i)));
    await writeToReplicas(r, views[0]!, records);
    const newcomer = fixture.peers[6]!.peerId;
    expect(await fixture.peers[6]!.store.recordCount).toBe(0);

    for (const v of views) v.update(fixture.members, fixture.parameters);
    await idle(r);
    const ownedByNewcomer = records.filter((rec) => views[0]!.replicasFor(rec.key).includes(newcomer));
    expect(ownedByNewcomer.length).toBeGreaterThan(0);
    expect(await missing(r, views[0]!, records)).toEqual([]);

    // Peer 1 leaves the roster: its ranges move to the next members.
    const leaver = fixture.peers[1]!.peerId;
    const remaining = fixture.members.filter((m) => m.peerId !== leaver);
    for (const v of views) v.update(remaining, fixture.parameters);
    await idle(r);
    expect(views[0]!.isMember(leaver)).toBe(false);
    expect(await missing(r, views[0]!, records)).toEqual([]);
  });

  it('a peer that could not take everything is retried at the next change', async () => {
    let failing = true;
    let target = '';
    r = await ring({
      size: 6,
      transport: (_i, t) => ({
        request: async (peerId, request, opts) => {
          if (failing && peerId === target && request.handoff) throw new ImeError('E_RPC_TIMEOUT', 'test: no answer');
          return t.request(peerId, request, opts);
        },
      }),
    });
    const { fixture, views } = r;
    const records = Array.from({ length: 90 }, (_, i) => fixture.seal(i % 6, numberOf(i)));
    const victim = 3;
    const victimId = fixture.peers[victim]!.peerId;
    // The victim was down while these were written, so it has none of them.
    for (const v of views) v.markDown(victimId, 'test');
    await writeToReplicas(r, views[0]!, records);
    await idle(r);

    target = victimId;
    for (const [i, v] of views.entries()) if (i !== victim) v.markUp(victimId);
    await idle(r);
    const owed = records.filter((rec) => views[0]!.replicasFor(rec.key).includes(victimId));
    expect(owed.length).toBeGreaterThan(0);
    for (const rec of owed) expect(await holds(r, victim, rec)).toBe(false);
    expect(r.handoffs.reduce((n, h) => n + h.stats.batchesFailed, 0)).toBeGreaterThan(0);
    // A timeout is not a refusal: the victim stays live in everyone's view.
    expect(views[0]!.isLive(victimId)).toBe(true);

    failing = false;
    // Any later change (here an unrelated peer flapping) retries what is owed.
    const other = fixture.peers[5]!.peerId;
    for (const [i, v] of views.entries()) if (i !== 5) v.markDown(other, 'test');
    await idle(r);
    for (const [i, v] of views.entries()) if (i !== 5) v.markUp(other);
    await idle(r);
    for (const rec of owed) expect(await holds(r, victim, rec)).toBe(true);
  });

  it('idle() resolves at once when nothing happens, and stop() ends waiting', async () => {
    r = await ring({ size: 6 });
    await idle(r);
    r.views[0]!.markDown(r.fixture.peers[1]!.peerId, 'test');
    const waiting = r.handoffs[0]!.idle();
    r.handoffs[0]!.stop();
    await waiting;
  });
});
