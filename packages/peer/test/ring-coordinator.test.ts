import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { DidRecord } from '@ime/core';
import type { RingTransport } from '../src/ring-types.js';
import { type RingFixture, TEST_PARAMETERS, TestRingView, createRingFixture } from './ring-fixture.js';

let counter = 0;
const nextNumber = () => `+1408777${String(1000 + counter++).padStart(4, '0')}`;

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Which fixture peers hold a record of `key` from `publisher` with at least `sequence`. */
async function holders(ring: RingFixture, record: DidRecord): Promise<string[]> {
  const out: string[] = [];
  for (const p of ring.peers) {
    const held = await p.store.get(record.key);
    if (held.some((r) => hexOf(r.publisherKey) === hexOf(record.publisherKey) && r.sequence >= record.sequence)) out.push(p.peerId);
  }
  return out;
}

const indexOf = (ring: RingFixture, peerId: string) => ring.peers.findIndex((p) => p.peerId === peerId);

describe('RingCoordinator: writes on a 5-peer ring (N = 3, W = 2)', () => {
  let ring: RingFixture;

  beforeAll(async () => {
    ring = await createRingFixture({ size: 5 });
  });

  afterAll(async () => {
    await ring.close();
  });

  it('writes each record to its N replicas and nowhere else', async () => {
    const coordinator = ring.coordinator(0);
    const view = ring.view(0);
    const records = Array.from({ length: 40 }, () => ring.seal(0, nextNumber()));
    const outcomes = await coordinator.store(records);
    expect(outcomes.every((o) => o.accepted && o.acks === 3)).toBe(true);
    for (const [i, r] of records.entries()) {
      const replicas = view.replicasFor(r.key);
      expect(replicas).toHaveLength(3);
      expect([...outcomes[i]!.replicas].sort()).toEqual([...replicas].sort());
      expect((await holders(ring, r)).sort()).toEqual([...replicas].sort());
    }
  });

  it('sends more than 1 000 records in several batches per replica', async () => {
    const coordinator = ring.coordinator(1);
    const records = Array.from({ length: 2500 }, () => ring.seal(1, nextNumber()));
    const before = ring.peers.map((p) => p.store.recordCount);
    const outcomes = await coordinator.store(records);
    expect(outcomes.filter((o) => !o.accepted)).toEqual([]);
    const added = ring.peers.reduce((sum, p, i) => sum + p.store.recordCount - before[i]!, 0);
    expect(added).toBe(2500 * 3);
  });

  it('refuses definitively (no fallback) what a replica refuses for the record itself', async () => {
    const coordinator = ring.coordinator(2);
    const number = nextNumber();
    expect((await coordinator.store([ring.seal(2, number, { sequence: 10 })]))[0]).toMatchObject({ accepted: true, acks: 3 });
    const [stale] = await coordinator.store([ring.seal(2, number, { sequence: 9 })]);
    expect(stale).toMatchObject({ accepted: false, acks: 0, code: 'E_STALE_SEQUENCE' });
    // Another publisher's forgery is refused at every replica and goes nowhere else.
    const forged = { ...ring.seal(3, number, { sequence: 11 }), publisherKey: ring.peers[2]!.publisher.publicKey };
    const [res] = await ring.coordinator(3).store([forged]);
    expect(res).toMatchObject({ accepted: false, code: 'E_DID_RECORD_SIGNATURE' });
    expect(await holders(ring, forged)).toEqual([]);
    // Tombstones go through withdraw only.
    const [wrongKind] = await coordinator.store([ring.tombstone(2, number, { sequence: 12 })]);
    expect(wrongKind).toMatchObject({ accepted: false, code: 'E_RING_REQUEST' });
  });

  it('withdraws with tombstones: a later read finds the tombstone and no live record', async () => {
    const coordinator = ring.coordinator(4);
    const number = nextNumber();
    await coordinator.store([ring.seal(4, number, { sequence: 1 })]);
    const [w] = await coordinator.withdraw([ring.tombstone(4, number, { sequence: 2 })]);
    expect(w).toMatchObject({ accepted: true, acks: 3 });
    const read = await ring.coordinator(0).fetch(ring.keyOf(number));
    expect(read.found).toBe(false);
    expect(read.records.map((r) => [r.sequence, r.tombstone])).toEqual([[2, true]]);
    const [notTomb] = await coordinator.withdraw([ring.seal(4, number, { sequence: 3 })]);
    expect(notTomb).toMatchObject({ accepted: false, code: 'E_RING_REQUEST' });
  });
});

describe('RingCoordinator: failures', () => {
  let ring: RingFixture;

  beforeAll(async () => {
    ring = await createRingFixture({ size: 5, timeoutMs: 2000 });
  });

  afterAll(async () => {
    await ring.close();
  });

  it('succeeds with W when a replica is stopped, and reports it; falls back to the next peers for missing acks', async () => {
    // A key whose replicas exclude peers 0 and 1 (the coordinators), so the stopped ones are remote.
    const view = ring.view(0);
    let number = nextNumber();
    while (view.replicasFor(ring.keyOf(number)).some((p) => p === ring.peers[0]!.peerId || p === ring.peers[1]!.peerId)) number = nextNumber();
    const key = ring.keyOf(number);
    const [first, second, third] = view.replicasFor(key) as [string, string, string];
    await ring.stopHost(indexOf(ring, first));

    const coordinator = ring.coordinator(0, view);
    const [one] = await coordinator.store([ring.seal(0, number)]);
    expect(one).toMatchObject({ accepted: true, acks: 2 });
    expect([...one!.replicas].sort()).toEqual([second, third].sort());
    expect(view.reports.map((r) => r.peerId)).toContain(first);

    // Two replicas stopped: the third acknowledges, the next live peer of the preference list makes W.
    await ring.stopHost(indexOf(ring, second));
    const view1 = ring.view(1);
    const record = ring.seal(1, number);
    const [two] = await ring.coordinator(1, view1).store([record]);
    expect(two).toMatchObject({ accepted: true, acks: 2 });
    const fallback = view1.preferenceList(key)[3]!;
    expect([...two!.replicas].sort()).toEqual([third, fallback].sort());
    expect(await ring.peers[indexOf(ring, fallback)]!.store.get(key)).toHaveLength(1);
    expect(view1.reports.map((r) => r.peerId).sort()).toEqual([first, second].sort());

    await ring.startHost(indexOf(ring, first));
    await ring.startHost(indexOf(ring, second));
  });

  it('reads a record held only off its replicas when a replica that may hold it does not answer', async () => {
    // Copies on c and on peers past the replicas (as after hinted writes while a and b were away);
    // then c dies. a and b answer "not here", c does not answer: the next peers are asked.
    const view = ring.view(0);
    let number = nextNumber();
    const clear = (n: string) => !view.preferenceList(ring.keyOf(n)).slice(0, 4).includes(ring.peers[0]!.peerId);
    while (!clear(number)) number = nextNumber();
    const key = ring.keyOf(number);
    const [a, b, c, next] = view.preferenceList(key) as [string, string, string, string];
    const [written] = await ring.coordinator(0, ring.view(0, { down: [a, b] })).store([ring.seal(0, number)]);
    expect(written!.replicas).toContain(c);
    expect(written!.replicas).toContain(next);
    expect(written!.replicas).not.toContain(a);
    expect(written!.replicas).not.toContain(b);
    await ring.stopHost(indexOf(ring, c));
    try {
      const read = await ring.coordinator(0, ring.view(0)).fetch(key);
      expect(read).toMatchObject({ found: true });
      expect(read.replicasAsked).toContain(next);
      // Every replica answering "not here" is final: nobody else is asked.
      const missing = await ring.coordinator(0, ring.view(0, { down: [c] })).fetch(ring.keyOf(nextNumber()));
      expect(missing.found).toBe(false);
    } finally {
      await ring.startHost(indexOf(ring, c));
    }
  });

  it('fails with E_RING_WRITE_QUORUM when W peers cannot be reached', async () => {
    const small = await createRingFixture({ size: 3, timeoutMs: 2000 });
    try {
      await small.stopHost(1);
      await small.stopHost(2);
      const [res] = await small.coordinator(0).store([small.seal(0, nextNumber())]);
      expect(res).toMatchObject({ accepted: false, acks: 1, code: 'E_RING_WRITE_QUORUM' });
      expect(res!.message).toMatch(/1 of the 2/);
      expect(res!.replicas).toEqual([small.peers[0]!.peerId]);
    } finally {
      await small.close();
    }
  });

  it('refuses over quota at the replicas', async () => {
    const capped = await createRingFixture({ size: 3, capFor: () => () => 2 });
    try {
      const coordinator = capped.coordinator(0);
      const outcomes = await coordinator.store([capped.seal(0, nextNumber()), capped.seal(0, nextNumber()), capped.seal(0, nextNumber())]);
      expect(outcomes.map((o) => (o.accepted ? 'ok' : o.code))).toEqual(['ok', 'ok', 'E_OVER_QUOTA']);
    } finally {
      await capped.close();
    }
  });
});

describe('RingCoordinator: reads on a 3-peer ring (every peer a replica)', () => {
  let ring: RingFixture;

  beforeAll(async () => {
    ring = await createRingFixture({ size: 3, timeoutMs: 2000 });
  });

  afterEach(async () => {
    for (let i = 0; i < ring.peers.length; i++) await ring.startHost(i);
  });

  afterAll(async () => {
    await ring.close();
  });

  it('returns when R replicas agree, with verified records of every publisher', async () => {
    const number = nextNumber();
    await ring.coordinator(0).store([ring.seal(0, number)]);
    await ring.coordinator(1).store([ring.seal(1, number, { sequence: 3 })]);
    const reader = ring.coordinator(2);
    const read = await reader.fetch(ring.keyOf(number));
    expect(read.agreed).toBe(true);
    expect(read.found).toBe(true);
    expect(read.answered).toBeGreaterThanOrEqual(2);
    expect(read.replicasAsked).toHaveLength(3);
    expect(read.records.map((r) => r.sequence).sort()).toEqual([1, 3]);
    await reader.settled();

    const nothing = await reader.fetch(ring.keyOf(nextNumber()));
    expect(nothing).toMatchObject({ found: false, agreed: true, records: [] });
  });

  it('asks R replicas, its own store first, and the others only when those disagree', async () => {
    const fetchesTo = (from: number) => {
      const asked: string[] = [];
      const base = ring.peers[from]!.transport;
      const transport: RingTransport = {
        request: (peer, request, options) => {
          if (request.fetch) asked.push(peer);
          return base.request(peer, request, options);
        },
      };
      return { asked, coordinator: ring.coordinator(from, undefined, { transport }) };
    };
    // On all three replicas: the reader's own store and one other agree, the third is not asked.
    const everywhere = ring.seal(0, nextNumber());
    for (const p of ring.peers) await p.store.put([everywhere]);
    const plain = fetchesTo(1);
    const read = await plain.coordinator.fetch(everywhere.key);
    await plain.coordinator.settled();
    expect(read).toMatchObject({ found: true, agreed: true, answered: 2 });
    expect(plain.asked).toHaveLength(1);
    expect(plain.asked).not.toContain(ring.peers[1]!.peerId);

    // Missing from the reader's own store only: the two asked disagree, the third settles it, and the
    // reader's store is repaired.
    const partly = ring.seal(0, nextNumber());
    await ring.peers[0]!.store.put([partly]);
    await ring.peers[2]!.store.put([partly]);
    const split = fetchesTo(1);
    const second = await split.coordinator.fetch(partly.key);
    await split.coordinator.settled();
    expect(second).toMatchObject({ found: true, agreed: true });
    expect(new Set(split.asked)).toEqual(new Set([ring.peers[0]!.peerId, ring.peers[2]!.peerId]));
    expect(await ring.peers[1]!.store.get(partly.key)).toHaveLength(1);
  });

  it('leaves out the records of a publisher that is no longer admitted, in its own store and in every answer', async () => {
    const number = nextNumber();
    await ring.coordinator(0).store([ring.seal(0, number)]);
    await ring.coordinator(1).store([ring.seal(1, number)]);
    const banned = hexOf(ring.seal(1, number).publisherKey);
    const admitsPublisher = (key: Uint8Array) => hexOf(key) !== banned;
    // Every peer is a replica, so peer 0 reads its own store and two others; peer 1's record is on all.
    const read = await ring.coordinator(0, undefined, { admitsPublisher }).fetch(ring.keyOf(number));
    expect(read).toMatchObject({ found: true, agreed: true });
    expect(read.records.map((r) => hexOf(r.publisherKey))).toEqual([hexOf(ring.seal(0, number).publisherKey)]);
    const everyone = await ring.coordinator(2).fetch(ring.keyOf(number));
    expect(everyone.records).toHaveLength(2);
    // Only the excluded publisher's claim: the number reads as not found.
    const only = nextNumber();
    await ring.coordinator(1).store([ring.seal(1, only)]);
    expect(await ring.coordinator(2, undefined, { admitsPublisher }).fetch(ring.keyOf(only))).toMatchObject({ found: false, records: [] });
  });

  it('falls back to a single answer when two replicas are down', async () => {
    const number = nextNumber();
    await ring.coordinator(0).store([ring.seal(0, number)]);
    await ring.stopHost(1);
    await ring.stopHost(2);
    // The view does not know yet: two requests fail, the one answer is the result.
    const view = ring.view(0);
    const read = await ring.coordinator(0, view).fetch(ring.keyOf(number));
    expect(read).toMatchObject({ found: true, agreed: false, answered: 1 });
    expect(read.records).toHaveLength(1);
    expect(view.reports.map((r) => r.peerId).sort()).toEqual([ring.peers[1]!.peerId, ring.peers[2]!.peerId].sort());
    // The view knows: only the live replica is asked.
    const knowing = ring.view(0, { down: [ring.peers[1]!.peerId, ring.peers[2]!.peerId] });
    const again = await ring.coordinator(0, knowing).fetch(ring.keyOf(number));
    expect(again).toMatchObject({ found: true, agreed: false, answered: 1, replicasAsked: [ring.peers[0]!.peerId] });
  });

  it('asks the next peers when no replica answers, and throws E_RING_UNAVAILABLE when nobody does', async () => {
    const number = nextNumber();
    await ring.coordinator(0).store([ring.seal(0, number)]);
    // A reader whose view places the key on peers 1 and 2 only (N = 2, peer 0 not a replica)…
    const members = ring.members;
    const onlyTwo = new TestRingView({
      self: ring.peers[0]!.peerId,
      members: members,
      parameters: { ...TEST_PARAMETERS, replicationFactor: 2, readQuorum: 2 },
    });
    const key = ring.keyOf(number);
    const replicas = onlyTwo.replicasFor(key);
    const outside = ring.peers.findIndex((p) => !replicas.includes(p.peerId));
    for (const id of replicas) await ring.stopHost(indexOf(ring, id));
    const viaFallback = await ring.coordinator(outside, new TestRingView({ ...onlyTwoOptions(outside), members })).fetch(key);
    expect(viaFallback).toMatchObject({ found: true, answered: 1 });
    expect(viaFallback.replicasAsked).toHaveLength(3);
    // With the remaining peer out of the view as well, nobody answers.
    const lonely = new TestRingView({ ...onlyTwoOptions(outside), members: members.filter((m) => replicas.includes(m.peerId)) });
    await expect(ring.coordinator(outside, lonely).fetch(key)).rejects.toMatchObject({ code: 'E_RING_UNAVAILABLE' });

    function onlyTwoOptions(self: number) {
      return { self: ring.peers[self]!.peerId, parameters: { ...TEST_PARAMETERS, replicationFactor: 2, readQuorum: 2 } };
    }
  });

  it('repairs a stale replica and a replica missing the record, in the background', async () => {
    const number = nextNumber();
    const key = ring.keyOf(number);
    const [p0, p1, p2] = ring.peers.map((p) => p.peerId) as [string, string, string];
    const v1 = ring.seal(0, number, { sequence: 1 });
    expect((await ring.coordinator(0).store([v1]))[0]!.acks).toBe(3);
    // Peer 2 is down while sequence 2 is written: it keeps sequence 1.
    const v2 = ring.seal(0, number, { sequence: 2 });
    const [written] = await ring.coordinator(0, ring.view(0, { down: [p2] })).store([v2]);
    expect(written).toMatchObject({ accepted: true, acks: 2 });
    expect([...written!.replicas].sort()).toEqual([p0, p1].sort());
    // Peer 1 missed another publisher's record entirely (relayed by peer 0, so verified on the way).
    const other = ring.seal(1, number, { sequence: 7 });
    const [relayed] = await ring.coordinator(0, ring.view(0, { down: [p1] })).store([other]);
    expect(relayed).toMatchObject({ accepted: true, acks: 2 });
    expect([...relayed!.replicas].sort()).toEqual([p0, p2].sort());
    expect((await ring.peers[2]!.store.get(key)).map((r) => r.sequence).sort()).toEqual([1, 7]);

    const reader = ring.coordinator(2);
    const read = await reader.fetch(key);
    expect(read.records.map((r) => r.sequence).sort()).toEqual([2, 7]);
    await reader.settled();
    for (const p of ring.peers) {
      expect((await p.store.get(key)).map((r) => r.sequence).sort()).toEqual([2, 7]);
    }
    expect(await holders(ring, v2)).toHaveLength(3);
    expect(await holders(ring, other)).toHaveLength(3);
  });

  it('drops records that do not verify, whoever returns them', async () => {
    const number = nextNumber();
    // Peer 1 stores, as itself (so without a signature check), a record with a broken signature at
    // peers 1 and 2: every remote answer the reader gets carries it.
    const broken: DidRecord = { ...ring.seal(1, number), signature: new Uint8Array(64).fill(5) };
    const res = await ring.peers[1]!.transport.request(ring.peers[2]!.peerId, { store: { records: [broken] } });
    expect(res.store!.results[0]!.accepted).toBe(true);
    const own = await ring.peers[1]!.store.put([broken], { authenticatedPublisher: ring.peers[1]!.publisher.publicKey });
    expect(own[0]!.accepted).toBe(true);
    const read = await ring.coordinator(0).fetch(ring.keyOf(number));
    expect(read).toMatchObject({ records: [], found: false, agreed: true });
    expect(read.answered).toBeGreaterThanOrEqual(2);
  });
});
