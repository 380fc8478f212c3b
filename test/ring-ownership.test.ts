import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { peerIdFromString } from '@libp2p/peer-id';
import { RING_PROTOCOL } from '@ime/admission';
import { type DidRecord, type Publisher, decodeWire, didRecordKey, generatePublisher, parseE164, sealDidRecord, sealDidTombstone } from '@ime/core';
import { RingHarness } from '@ime/harness';
import { RpcClient } from '@ime/runtime';
import { ime } from '@ime/wire';

// Ownership (SPEC §4): only the publisher can replace or withdraw its value; another peer — even an
// admitted one speaking the ring protocol directly — cannot.
const NUMBER = parseE164('+33123456789');

describe('ownership of DID records', () => {
  let ring: RingHarness;
  let attacker: RpcClient;

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 4, mode: 'in-process' });
    await ring.converge();
    attacker = new RpcClient(ring.peers[1]!.node!.libp2p, RING_PROTOCOL, { timeoutMs: 3000 });
  }, 120_000);

  afterAll(async () => {
    attacker?.stop();
    await ring?.stop();
  }, 60_000);

  async function send(peer: string, request: ime.v1.IRingRequest): Promise<ime.v1.RingResponse> {
    const bytes = await attacker.request(peerIdFromString(peer), ime.v1.RingRequest.encode({ version: 1, ...request }).finish());
    return decodeWire(ime.v1.RingResponse, bytes, 4 << 20, 'ring response');
  }

  function codes(response: ime.v1.RingResponse, kind: 'store' | 'withdraw'): string[] {
    return (response[kind]?.results ?? []).map((r) => (r.accepted ? 'accepted' : r.error?.code ?? '?'));
  }

  it('refuses replacement, withdrawal and replay by anyone but the publisher', async () => {
    const owner = ring.peers[0]!.node!;
    const thief = ring.peers[1]!.node!;
    const reader = ring.peers[3]!.node!;
    const ringSalt = ring.bootstraps[0]!.server!.ringSalt;

    await owner.publish('owner-vs', [NUMBER]);
    const { replicas } = await reader.fetchDid(NUMBER);
    const key = didRecordKey(ringSalt, NUMBER);
    const others = replicas.filter((r) => r !== thief.peerId);
    const held = (await send(others[0]!, { fetch: { keys: [key] } })).fetch!.entries[0]!.records[0]! as unknown as DidRecord;
    await owner.publish('owner-vs', [NUMBER]); // a newer sequence: `held` is now the older record

    // Records that claim to be the owner's, signed by another key.
    const ownerKey = peerIdFromString(owner.peerId).publicKey!.raw;
    const rogue = generatePublisher();
    const impostor: Publisher = { publicKey: ownerKey, sign: (d) => rogue.sign(d) };
    const later = Date.now() + 10_000_000;
    const replacement = sealDidRecord({ ringSalt, number: NUMBER, publisher: impostor, claim: { vserviceId: 'stolen', publishedAtMs: Date.now() }, sequence: later, expiresAtMs: Date.now() + 3600_000 });
    const withdrawal = sealDidTombstone({ ringSalt, number: NUMBER, publisher: impostor, sequence: later, expiresAtMs: Date.now() + 3600_000 });
    expect(others.length).toBeGreaterThanOrEqual(2);
    for (const replica of others) {
      expect(codes(await send(replica, { store: { records: [replacement] } }), 'store')).toEqual(['E_DID_RECORD_SIGNATURE']);
      expect(codes(await send(replica, { withdraw: { tombstones: [withdrawal] } }), 'withdraw')).toEqual(['E_DID_RECORD_SIGNATURE']);
      // The owner's own older record, replayed by someone else.
      expect(codes(await send(replica, { store: { records: [held] } }), 'store')).toEqual(['E_STALE_SEQUENCE']);
    }

    // Through its own API the thief cannot withdraw a number it does not publish…
    const report = await thief.withdraw([NUMBER]);
    expect(report.failed).toEqual([expect.objectContaining({ code: 'E_NOT_PUBLISHED' })]);
    // …and a claim of its own on the same number sits beside the owner's, never over it.
    await thief.publish('thief-vs', [NUMBER]);
    expect((await reader.fetchDid(NUMBER)).claims.map((c) => c.vserviceId).sort()).toEqual(['owner-vs', 'thief-vs']);
    await thief.withdraw([NUMBER]);
    const after = await reader.fetchDid(NUMBER);
    expect(after.claims).toEqual([expect.objectContaining({ peerId: owner.peerId, vserviceId: 'owner-vs' })]);
  }, 60_000);
});
