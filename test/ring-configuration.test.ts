import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { peerIdFromString } from '@libp2p/peer-id';
import { RING_PROTOCOL, signRingConfiguration } from '@ime/admission';
import { createRingAuthority, loadRingAuthority } from '@ime/bootstrap';
import { decodeWire } from '@ime/core';
import { RingHarness, waitFor } from '@ime/harness';
import { RpcClient } from '@ime/runtime';
import { ime } from '@ime/wire';
import { counters, summary } from './ring-test-helpers.js';

// The signed ring configuration (SPEC §3): a forged or an older configuration is refused and counted;
// a change reaches every peer even while the bootstrap that made it is stopped.

describe('ring configuration propagation', () => {
  let ring: RingHarness;
  let client: RpcClient;

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 5, bootstraps: 2, mode: 'in-process' });
    await ring.converge();
    // Pushes come from a real member of the ring, over its own admitted connection.
    client = new RpcClient(ring.peers[0]!.node!.libp2p, RING_PROTOCOL, { timeoutMs: 3000 });
  }, 120_000);

  afterAll(async () => {
    client?.stop();
    await ring?.stop();
  }, 60_000);

  async function push(target: number, signed: ime.v1.ISignedRingConfiguration): Promise<boolean> {
    const bytes = await client.request(
      peerIdFromString(ring.peers[target]!.peerId),
      ime.v1.RingRequest.encode({ version: 1, configuration: { configuration: signed, hops: 2 } }).finish(),
    );
    return decodeWire(ime.v1.RingResponse, bytes, 65_536, 'ring response').configuration?.accepted ?? false;
  }

  it('refuses forged configurations and counts them', async () => {
    const target = ring.peers[1]!;
    const before = await summary(target);
    const issued = ring.bootstraps[0]!.server!.currentConfiguration()!;
    const newer = { ...issued.config, sequence: issued.config.sequence + 1_000_000, messageOfTheDay: 'forged' };

    // Signed by another authority (another ring's CA), claiming the real one's fingerprint or its own.
    const rogue = loadRingAuthority(createRingAuthority({ ringName: issued.config.ringName, nowMs: Date.now() }));
    const byRogue = signRingConfiguration(newer, rogue.signer);
    expect(await push(1, byRogue)).toBe(false);
    expect(await push(1, { ...byRogue, authorityFingerprint: issued.signed.authorityFingerprint })).toBe(false);
    // The real document with one byte changed.
    const tampered = Uint8Array.from(issued.signed.configuration);
    tampered[tampered.length - 3] = (tampered[tampered.length - 3]! + 1) & 0xff;
    expect(await push(1, { ...issued.signed, configuration: tampered })).toBe(false);

    const after = await summary(target);
    expect(after.sequence).toBe(before.sequence);
    expect(after.messageOfTheDay).not.toBe('forged');
    expect(after.configsRefused).toBe(before.configsRefused + 3);
    expect((await counters(target)).ConfigurationsRefused).toBe(before.configsRefused + 3);
  }, 60_000);

  it('refuses a replayed older configuration', async () => {
    const old = ring.bootstraps[0]!.server!.currentConfiguration()!;
    await (await ring.bootstraps[0]!.admin()).put('/v1/motd', { text: 'maintenance window on Sunday' });
    await ring.converge();
    const target = ring.peers[2]!;
    const before = await summary(target);
    expect(before.sequence).toBeGreaterThan(old.config.sequence);
    expect(await push(2, old.signed)).toBe(false);
    const after = await summary(target);
    expect(after.sequence).toBe(before.sequence);
    expect(after.messageOfTheDay).toBe('maintenance window on Sunday');
    // Both bootstraps serve the one document that carries the change (no second issue of it).
    const served = async () => Promise.all(ring.bootstraps.map(async (b) => (await (await b.admin()).get<{ issuedSequence: number }>('/v1/summary')).issuedSequence));
    await waitFor('the second bootstrap to serve the same document', async () => new Set(await served()).size === 1, 10_000);
    expect(await served()).toEqual([before.sequence, before.sequence]);
    expect((await summary(target)).sequence).toBe(before.sequence);
    expect(after.configsRefused).toBe(before.configsRefused + 1);
  }, 60_000);

  it('carries a new message of the day to every peer while the bootstrap that issued it is stopped', async () => {
    const issuer = ring.bootstraps[0]!;
    await (await issuer.admin()).put('/v1/motd', { text: 'new peering policy from December' });
    await issuer.stop();
    await waitFor(
      'every peer to show the new message of the day',
      async () => (await Promise.all(ring.peers.map((p) => summary(p)))).every((s) => s.messageOfTheDay === 'new peering policy from December'),
      20_000,
      100,
    );
    expect(issuer.running).toBe(false);
    for (const p of ring.peers) {
      const alerts = (await (await p.admin()).get<{ alerts: { name: string; details: { message?: string } }[] }>('/v1/alerts')).alerts;
      expect(alerts.find((a) => a.name === 'MessageOfTheDay')?.details.message).toBe('new peering policy from December');
    }
    // The second bootstrap keeps enrolling while the first is down.
    const late = await ring.createPeer();
    expect(late.peerId).toMatch(/^12D3KooW/);
    await waitFor('the new peer to be admitted', async () => (await summary(late)).health === 'GREEN', 20_000, 100);
  }, 90_000);
});
