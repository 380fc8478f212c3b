import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type DidRecord, ImeError } from '@ime/core';
import type { RpcContext } from '@ime/runtime';
import { ime } from '@ime/wire';
import { peerIdFromString } from '@libp2p/peer-id';
import { RING_END, RING_START } from '../src/ring-placement.js';
import { MAX_RING_REQUEST_BYTES, createRingHandler, keyRangeToWireRange, wireRangeToKeyRange } from '../src/ring-service.js';
import { type RingFixture, createRingFixture } from './ring-fixture.js';

let ring: RingFixture;

beforeAll(async () => {
  ring = await createRingFixture({ size: 3 });
});

afterAll(async () => {
  await ring.close();
});

function send(from: number, to: number, request: ime.v1.IRingRequest): Promise<ime.v1.RingResponse> {
  return ring.peers[from]!.transport.request(ring.peers[to]!.peerId, request);
}

async function sendRaw(from: number, to: number, bytes: Uint8Array): Promise<ime.v1.RingResponse> {
  const answer = await ring.peers[from]!.client.request(peerIdFromString(ring.peers[to]!.peerId), bytes);
  return ime.v1.RingResponse.decode(answer);
}

const codes = (response: ime.v1.IStoreResponse | null | undefined) =>
  (response?.results ?? []).map((r) => (r.accepted ? 'ok' : r.error?.code));

let counter = 0;
const nextNumber = () => `+1650555${String(1000 + counter++).padStart(4, '0')}`;

describe('ring service: store, withdraw, fetch', () => {
  it('stores a peer’s own records without checking their signature (Noise proved the sender)', async () => {
    const number = nextNumber();
    const unsigned: DidRecord = { ...ring.seal(0, number), signature: new Uint8Array(64).fill(9) };
    const res = await send(0, 1, { store: { records: [unsigned] } });
    expect(codes(res.store)).toEqual(['ok']);
    // The same bytes handed over by another peer are checked, and refused.
    const other = { ...ring.seal(0, nextNumber()), signature: new Uint8Array(64).fill(9) };
    expect(codes((await send(2, 1, { handoff: { records: [other], done: true } })).handoff)).toEqual(['E_DID_RECORD_SIGNATURE']);
    // A genuine record of peer 0 handed over by peer 2 is accepted.
    expect(codes((await send(2, 1, { handoff: { records: [ring.seal(0, nextNumber())] } })).handoff)).toEqual(['ok']);
  });

  it('answers fetch with every publisher’s records of each key, in request order', async () => {
    const n1 = nextNumber();
    const n2 = nextNumber();
    await send(0, 1, { store: { records: [ring.seal(0, n1), ring.seal(0, n2)] } });
    await send(2, 1, { store: { records: [ring.seal(2, n1)] } });
    const empty = randomBytes(32);
    const res = await send(0, 1, { fetch: { keys: [ring.keyOf(n1), empty, ring.keyOf(n2)] } });
    const entries = res.fetch!.entries;
    expect(entries.map((e) => e.records.length)).toEqual([2, 0, 1]);
    expect(Buffer.from(entries[1]!.key).equals(empty)).toBe(true);
  });

  it('refuses a tombstone in a store and a record in a withdraw, per record', async () => {
    const number = nextNumber();
    const record = ring.seal(1, number, { sequence: 1 });
    const tomb = ring.tombstone(1, number, { sequence: 2 });
    const stored = await send(1, 0, { store: { records: [tomb, record] } });
    expect(codes(stored.store)).toEqual(['E_RING_REQUEST', 'ok']);
    expect(stored.store!.results.map((r) => r.index)).toEqual([0, 1]);
    const withdrawn = await send(1, 0, { withdraw: { tombstones: [record, tomb] } });
    expect(codes(withdrawn.withdraw)).toEqual(['E_RING_REQUEST', 'ok']);
    const held = await ring.peers[0]!.store.get(record.key);
    expect(held.map((r) => [r.sequence, r.tombstone])).toEqual([[2, true]]);
  });

  it('lets only the publisher replace or withdraw its record', async () => {
    const number = nextNumber();
    const original = ring.seal(0, number, { sequence: 5 });
    expect(codes((await send(0, 1, { store: { records: [original] } })).store)).toEqual(['ok']);

    // Peer 2 signs a tombstone and a replacement but claims peer 0's publisher key: not its signature.
    const publisher0 = ring.peers[0]!.publisher.publicKey;
    const forgedTomb = { ...ring.tombstone(2, number, { sequence: 9 }), publisherKey: publisher0 };
    const forgedRecord = { ...ring.seal(2, number, { sequence: 9 }), publisherKey: publisher0 };
    expect(codes((await send(2, 1, { withdraw: { tombstones: [forgedTomb] } })).withdraw)).toEqual(['E_DID_RECORD_SIGNATURE']);
    expect(codes((await send(2, 1, { store: { records: [forgedRecord] } })).store)).toEqual(['E_DID_RECORD_SIGNATURE']);
    // Replaying peer 0's own older record (genuinely signed) does not roll it back.
    const older = ring.seal(0, number, { sequence: 4 });
    expect(codes((await send(2, 1, { handoff: { records: [older] } })).handoff)).toEqual(['E_STALE_SEQUENCE']);
    // Peer 2's own tombstone only withdraws peer 2's claim (of which there is none): peer 0's stays.
    expect(codes((await send(2, 1, { withdraw: { tombstones: [ring.tombstone(2, number, { sequence: 9 })] } })).withdraw)).toEqual(['ok']);
    const held = await ring.peers[1]!.store.get(original.key);
    const mine = held.find((r) => Buffer.from(r.publisherKey).equals(publisher0));
    expect(mine).toMatchObject({ sequence: 5, tombstone: false });
    // The publisher itself can withdraw it.
    expect(codes((await send(0, 1, { withdraw: { tombstones: [ring.tombstone(0, number, { sequence: 6 })] } })).withdraw)).toEqual(['ok']);
  });
});

describe('ring service: ranges', () => {
  it('answers range digests and range fetches like the local store', async () => {
    const numbers = Array.from({ length: 30 }, nextNumber);
    const res = await send(2, 0, { store: { records: numbers.map((n) => ring.seal(2, n)) } });
    expect(codes(res.store).every((c) => c === 'ok')).toBe(true);
    const store = ring.peers[0]!.store;

    const arc = { gt: RING_START, lte: RING_END };
    const local = await store.digest(arc, 16);
    const remote = await send(1, 0, { rangeDigest: { ...keyRangeToWireRange(arc), buckets: 16 } });
    expect(remote.rangeDigest!.counts).toEqual(local.counts);
    expect(remote.rangeDigest!.digests.map((d) => Buffer.from(d).toString('hex'))).toEqual(local.digests.map((d) => Buffer.from(d).toString('hex')));

    // A wrapping arc: the same buckets through the wire as locally.
    const wrapping = { gt: new Uint8Array(32).fill(0xc0), lte: new Uint8Array(32).fill(0x40) };
    const localWrap = await store.digest(wrapping, 8);
    const remoteWrap = await send(1, 0, { rangeDigest: { ...keyRangeToWireRange(wrapping), buckets: 8 } });
    expect(remoteWrap.rangeDigest!.counts).toEqual(localWrap.counts);

    // Range fetch, a page at a time, returns every key in order.
    const whole = keyRangeToWireRange({ gte: RING_START, lte: RING_END });
    const keys: string[] = [];
    let after: Uint8Array = new Uint8Array(0);
    for (let page = 0; page < 100; page++) {
      const r = await send(1, 0, { rangeFetch: { ...whole, after, limit: 7 } });
      const entries = r.rangeFetch!.entries;
      keys.push(...entries.map((e) => Buffer.from(e.key).toString('hex')));
      if (!r.rangeFetch!.more) break;
      after = entries[entries.length - 1]!.key;
    }
    const expected = (await store.scan({ lte: RING_END }, { limit: 1000 })).entries.map((e) => Buffer.from(e.key).toString('hex'));
    expect(keys).toEqual(expected);
    expect(keys.length).toBeGreaterThanOrEqual(30);
  });

  it('maps wire ranges [start, end) to key ranges and back', () => {
    const a = new Uint8Array(32).fill(0x10);
    const b = new Uint8Array(32).fill(0x20);
    const r = wireRangeToKeyRange(a, b);
    expect(Buffer.from(r.gte!).equals(a)).toBe(true);
    expect(Buffer.from(r.lte).toString('hex')).toBe('20'.repeat(31) + '1f');
    const back = keyRangeToWireRange({ gt: a, lte: b });
    expect(Buffer.from(back.start).toString('hex')).toBe('10'.repeat(31) + '11');
    expect(Buffer.from(back.end).toString('hex')).toBe('20'.repeat(31) + '21');
    // The top of the ring: end wraps to 0, which reads back as the top again.
    const top = keyRangeToWireRange({ gt: a, lte: RING_END });
    expect(Buffer.from(top.end).equals(RING_START)).toBe(true);
    expect(Buffer.from(wireRangeToKeyRange(top.start, top.end).lte).equals(RING_END)).toBe(true);
  });
});

describe('ring service: admission', () => {
  it('refuses a remote that is not an admitted member', async () => {
    const outsider = await ring.outsider();
    const target = ring.peers[0]!.peerId;
    await expect(outsider.transport.request(target, { fetch: { keys: [randomBytes(32)] } })).rejects.toMatchObject({ code: 'E_NOT_ADMITTED' });
    await expect(outsider.transport.request(target, { ping: { configurationSequence: 1 } })).rejects.toMatchObject({ code: 'E_NOT_ADMITTED' });
  });

  it('lets a bootstrap push configurations and ping, nothing else', async () => {
    const bootstrap = await ring.outsider();
    const peer = ring.peers[1]!;
    peer.bootstraps.add(bootstrap.peerId);
    peer.configurationSequence = 42;
    try {
      const pong = await bootstrap.transport.request(peer.peerId, { ping: { configurationSequence: 7 } });
      expect(pong.pong!.configurationSequence).toBe(42);
      const push = { configuration: { configuration: new Uint8Array([1, 2, 3]), signature: new Uint8Array([4]) }, hops: 1 };
      const ack = await bootstrap.transport.request(peer.peerId, { configuration: push as ime.v1.IConfigurationPush });
      expect(ack.configuration).toMatchObject({ sequence: 42, accepted: false });
      expect(peer.configurationPushes.at(-1)).toMatchObject({ from: bootstrap.peerId, push: { hops: 1 } });
      const record = ring.seal(0, nextNumber());
      await expect(bootstrap.transport.request(peer.peerId, { handoff: { records: [record] } })).rejects.toMatchObject({ code: 'E_NOT_ADMITTED' });
      await expect(bootstrap.transport.request(peer.peerId, { fetch: { keys: [record.key] } })).rejects.toMatchObject({ code: 'E_NOT_ADMITTED' });
    } finally {
      peer.bootstraps.delete(bootstrap.peerId);
    }
  });

  it('stops serving a peer as soon as it is no longer admitted', async () => {
    const peer = ring.peers[2]!;
    peer.admitted.delete(ring.peers[0]!.peerId);
    try {
      await expect(send(0, 2, { fetch: { keys: [randomBytes(32)] } })).rejects.toMatchObject({ code: 'E_NOT_ADMITTED' });
    } finally {
      peer.admitted.add(ring.peers[0]!.peerId);
    }
    expect((await send(0, 2, { fetch: { keys: [randomBytes(32)] } })).fetch!.entries).toHaveLength(1);
  });
});

describe('ring service: hostile and oversize requests', () => {
  const key = () => randomBytes(32);

  it('refuses each limit with E_RING_REQUEST and says which', async () => {
    const record = ring.seal(0, nextNumber());
    const cases: [ime.v1.IRingRequest, RegExp][] = [
      [{ store: { records: Array.from({ length: 1001 }, () => record) } }, /at most 1000 records/],
      [{ withdraw: { tombstones: Array.from({ length: 1001 }, () => record) } }, /at most 1000 records/],
      [{ handoff: { records: Array.from({ length: 1001 }, () => record) } }, /at most 1000 records/],
      [{ fetch: { keys: Array.from({ length: 1001 }, key) } }, /at most 1000 keys/],
      [{ fetch: { keys: [key(), new Uint8Array(31)] } }, /fetch key must be exactly 32 bytes/],
      [{ rangeDigest: { start: key(), end: key(), buckets: 257 } }, /at most 256 buckets/],
      [{ rangeDigest: { start: new Uint8Array(33), end: key(), buckets: 1 } }, /range start must be exactly 32 bytes/],
      [{ rangeDigest: { start: key(), buckets: 1 } }, /range end must be exactly 32 bytes/],
      [{ rangeFetch: { start: key(), end: key(), limit: 1001 } }, /at most 1000 keys/],
      [{ rangeFetch: { start: key(), end: key(), after: new Uint8Array(5) } }, /range fetch position must be exactly 32 bytes/],
      [{ configuration: { hops: 1 } }, /signed configuration/],
    ];
    for (const [request, message] of cases) {
      const err = await send(0, 1, request).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImeError);
      expect(err).toMatchObject({ code: 'E_RING_REQUEST' });
      expect((err as Error).message).toMatch(message);
    }
  });

  it('refuses unknown versions, empty bodies and garbage, and keeps serving', async () => {
    const v2 = ime.v1.RingRequest.encode({ version: 2, ping: {} }).finish();
    expect((await sendRaw(0, 1, v2)).error).toMatchObject({ code: 'E_WIRE_VERSION' });
    const v0 = ime.v1.RingRequest.encode({ ping: {} }).finish();
    expect((await sendRaw(0, 1, v0)).error).toMatchObject({ code: 'E_WIRE_VERSION' });
    const empty = ime.v1.RingRequest.encode({ version: 1 }).finish();
    expect((await sendRaw(0, 1, empty)).error).toMatchObject({ code: 'E_RING_REQUEST' });
    const garbage = Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
    expect((await sendRaw(0, 1, garbage)).error).toMatchObject({ code: 'E_WIRE_MALFORMED' });
    // Records that do not even have the shape of a record, inside a well-formed request.
    const junk = { key: new Uint8Array(3), publisherKey: new Uint8Array(0), sequence: 0 } as ime.v1.IDidRecord;
    const res = await send(0, 1, { handoff: { records: [junk, ring.seal(0, nextNumber())] } });
    expect(codes(res.handoff)).toEqual(['E_DID_RECORD_MALFORMED', 'ok']);
    // Still serving.
    expect((await send(0, 1, { ping: { configurationSequence: 1 } })).pong).toBeTruthy();
  });

  it('refuses a payload over 4 MiB before decoding it', async () => {
    const handler = createRingHandler({
      store: ring.peers[0]!.store,
      isAdmitted: () => true,
      isBootstrap: () => false,
      onConfigurationPush: async () => ({ sequence: 0, accepted: false }),
    });
    const context = { remotePeer: peerIdFromString(ring.peers[1]!.peerId) } as unknown as RpcContext;
    const answer = ime.v1.RingResponse.decode(await handler(new Uint8Array(MAX_RING_REQUEST_BYTES + 1), context));
    expect(answer.version).toBe(1);
    expect(answer.error).toMatchObject({ code: 'E_WIRE_TOO_LARGE' });
  });
});
