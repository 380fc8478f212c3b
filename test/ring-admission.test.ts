import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { RING_PROTOCOL } from '@ime/admission';
import { RingHarness, waitFor } from '@ime/harness';
import { RpcClient } from '@ime/runtime';
import { ime } from '@ime/wire';
import { counters, lookup, refusal, summary } from './ring-test-helpers.js';

// Admission (SPEC §3): a peer that is enrolled but not admitted, a peer certified by another ring's
// authority, and a banned peer can neither connect to ring peers nor store, fetch or validate.

describe('admission to the ring', () => {
  let ring: RingHarness;
  let other: RingHarness;

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 4, mode: 'process', admission: 'manual' });
    const bootstrap = await ring.bootstraps[0]!.admin();
    for (const p of ring.peers) await bootstrap.post(`/v1/peers/${p.peerId}/admit`, {});
    await ring.converge();
    await (await ring.peers[0]!.admin()).post('/v1/dids', { vserviceId: 'ring-a', patterns: ['+3314455XX'] });
  }, 180_000);

  afterAll(async () => {
    await other?.stop();
    await ring?.stop();
  }, 60_000);

  it('keeps an enrolled but not yet admitted peer out until the bootstrap admits it', async () => {
    const pending = await ring.createPeer();
    const s = await summary(pending);
    expect(s.health).toBe('RED');
    expect(s.healthReasons.join(' ')).toMatch(/not admitted/);
    // It cannot read: every member refuses its connections.
    expect(await refusal((await pending.admin()).get(`/v1/dids/${encodeURIComponent('+331445501')}`))).toBe('E_RING_UNAVAILABLE');
    // …nor write: no replica takes its records.
    const write = await (await pending.admin()).post<{ published: number; failed: { code: string }[] }>('/v1/dids', { vserviceId: 'x', numbers: ['+4930123456'] });
    expect(write.published).toBe(0);
    expect(write.failed[0]!.code).toBe('E_RING_WRITE_QUORUM');
    for (const p of ring.peers.slice(0, 4)) {
      expect((await (await p.admin()).get<{ connections: string[] }>('/v1/connections')).connections).not.toContain(pending.peerId);
    }

    await (await ring.bootstraps[0]!.admin()).post(`/v1/peers/${pending.peerId}/admit`, {});
    await ring.converge({ members: 5 });
    expect((await lookup(pending, ['+331445501', '+331445599'])).found).toBe(2);
  }, 120_000);

  it("refuses a peer certified by another ring's authority", async () => {
    other = await RingHarness.start({ peers: 1, mode: 'in-process' });
    await other.converge();
    const stranger = other.peers[0]!.node!;
    const target = ring.peers[1]!;
    await stranger.libp2p.peerStore.merge(peerIdFromString(target.peerId), { multiaddrs: [multiaddr(target.ready.listen[0]!)] });
    const client = new RpcClient(stranger.libp2p, RING_PROTOCOL, { timeoutMs: 3000, connectTimeoutMs: 3000 });
    try {
      const fetch = ime.v1.RingRequest.encode({ version: 1, fetch: { keys: [new Uint8Array(32)] } }).finish();
      expect(await refusal(client.request(peerIdFromString(target.peerId), fetch))).toBe('E_RPC_UNREACHABLE');
    } finally {
      client.stop();
    }
    expect((await (await target.admin()).get<{ connections: string[] }>('/v1/connections')).connections).not.toContain(stranger.peerId);
  }, 60_000);

  it('disconnects a banned peer everywhere within one propagation interval and shuts it out', async () => {
    const banned = ring.peers[2]!;
    const others = ring.peers.filter((p) => p !== banned);
    await (await ring.bootstraps[0]!.admin()).post('/v1/bans', { peerId: banned.peerId, reason: 'test ban' });
    // The poll interval is 1 s; the bootstrap also pushes at once. Allow for a loaded machine.
    await waitFor(
      'every peer to drop the banned peer',
      async () => {
        for (const p of others) {
          const members = (await (await p.admin()).get<{ members: { peerId: string }[] }>('/v1/ring/members')).members.map((m) => m.peerId);
          const connections = (await (await p.admin()).get<{ connections: string[] }>('/v1/connections')).connections;
          if (members.includes(banned.peerId) || connections.includes(banned.peerId)) return false;
        }
        return true;
      },
      5000,
      100,
    );
    // The banned peer is told too (pushed to at once, else at its next poll).
    await waitFor('the banned peer to learn of its ban', async () => (await summary(banned)).healthReasons.join(' ').includes('banned'), 5000, 100);
    expect((await summary(banned)).health).toBe('RED');
    const alerts = (await (await banned.admin()).get<{ alerts: { name: string }[] }>('/v1/alerts')).alerts.map((a) => a.name);
    expect(alerts).toContain('BannedFromNetwork');
    expect(await refusal((await banned.admin()).get(`/v1/dids/${encodeURIComponent('+331445501')}`))).toBe('E_RING_UNAVAILABLE');
    // The ring itself keeps working without it.
    expect((await lookup(others[0]!, ['+331445501', '+331445542'])).found).toBe(2);
    expect((await counters(others[0]!)).IMEDistributedCacheHealth).toBe(2);
  }, 60_000);
});
