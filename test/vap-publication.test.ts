import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync } from 'node:fs';
import { expandPatterns, parseEnrolledPattern } from '@ime/core';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { VapClient, createVapCertificate } from '@ime/vap';
import { counters, lookup, refusal } from './ring-test-helpers.js';

// SPEC §5 on a real ring of peer processes: a call manager registers over VAP (digest over TCP, and
// over mutual TLS), publishes its Vservice and +14085551XXX minus two exclusions; exactly 998 DIDs
// become readable from another peer, and withdrawing the Vservice removes them.
const PATTERN = '+14085551XXX';
const EXCLUDED = ['+14085551000', '+14085551999'];
const PASSWORD = 'vap-password-for-tests';
const TICKET_PASSWORD = 'ticket-password-0123456789';

describe('VAP publication into the ring', () => {
  let ring: RingHarness;
  let peer: Member;
  let reader: Member;
  let tcpPort: number;
  let tlsPort: number;
  const clients: VapClient[] = [];

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 4, mode: 'process', keep: true });
    await ring.converge();
    peer = ring.peers[0]!;
    reader = ring.peers[2]!;
    const admin = await peer.admin();
    const tcp = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'cucm-tcp', host: '127.0.0.1', port: 0 });
    const tls = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'cucm-tls', host: '127.0.0.1', port: 0, authenticationMode: 'encrypted' });
    tcpPort = tcp.boundPort;
    tlsPort = tls.boundPort;
    for (const server of ['cucm-tcp', 'cucm-tls']) {
      await admin.post('/v1/vap/credentials', { server, username: 'imeuser', password: PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
    }
  }, 180_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await ring?.stop();
    if (ring) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  it('publishes patterns minus exclusions: exactly 998 DIDs readable from another peer, gone after withdrawal', async () => {
    const client = await VapClient.connect({ host: '127.0.0.1', port: tcpPort, mode: 'authenticated', username: 'imeuser', password: PASSWORD });
    clients.push(client);
    expect(client.registered.peerId).toBe(peer.peerId);
    await client.publishVservice({ profileName: 'acme-ime', id: 'acme-vs-1', domain: 'enterprise-1.example', sipUri: 'sip:ime@cucm.acme.example:5060', maxDidCount: 2000 });
    const ack = await client.publishEnrollment({ vserviceId: 'acme-vs-1', groups: [{ name: 'hq', patterns: [PATTERN] }], exclusions: EXCLUDED, trustGroups: [] });
    expect(ack).toEqual({ accepted: 998, refused: [] });

    const all = expandPatterns([parseEnrolledPattern(PATTERN)]);
    const seen = await lookup(reader, all);
    expect(seen.found).toBe(998);
    expect([...seen.missing].sort()).toEqual(EXCLUDED);
    expect((await counters(peer)).IMEDistributedCacheQuotaUsed).toBe(998);
    expect((await counters(peer)).ClientsRegistered).toBe(1);

    const vservices = await (await peer.admin()).get<{ vservices: { vservice: { id: string }; didCount: number }[] }>('/v1/vservices');
    expect(vservices.vservices).toEqual([expect.objectContaining({ vservice: expect.objectContaining({ id: 'acme-vs-1' }), didCount: 998 })]);

    await client.withdrawVservice('acme-vs-1');
    const after = await lookup(reader, all);
    expect(after.found).toBe(0);
    expect((await counters(peer)).IMEDistributedCacheQuotaUsed).toBe(0);
  }, 120_000);

  it("passes the ring's over-quota refusal to the call manager, with a notice, and publishes nothing", async () => {
    const bootstrap = await ring.bootstraps[0]!.admin();
    await bootstrap.put('/v1/dht/global/storagequota', { quota: 500 });
    await waitFor('the peer to see the lower quota', async () => (await counters(peer)).IMEDistributedCacheQuota === 500, 30_000, 200);
    const client = await VapClient.connect({ host: '127.0.0.1', port: tcpPort, mode: 'authenticated', username: 'imeuser', password: PASSWORD });
    clients.push(client);
    const notices: { kind: string; detail: string }[] = [];
    client.onNotice((n) => notices.push(n));
    await client.publishVservice({ profileName: 'acme-ime', id: 'acme-vs-2', domain: 'enterprise-1.example', sipUri: 'sip:ime@cucm.acme.example:5060', maxDidCount: 2000 });
    expect(
      await refusal(client.publishEnrollment({ vserviceId: 'acme-vs-2', groups: [{ name: 'hq', patterns: [PATTERN] }], exclusions: EXCLUDED, trustGroups: [] })),
    ).toBe('E_OVER_QUOTA');
    await waitFor('the over-quota notice', () => notices.some((n) => n.kind === 'over-quota'), 5_000, 50);
    expect((await counters(peer)).IMEDistributedCacheQuotaUsed).toBe(0);
    await bootstrap.put('/v1/dht/global/storagequota', { quota: 100_000 });
    await client.withdrawVservice('acme-vs-2');
  }, 60_000);

  it('refuses a Vservice of another domain than the peer certificate binds', async () => {
    const client = await VapClient.connect({ host: '127.0.0.1', port: tcpPort, mode: 'authenticated', username: 'imeuser', password: PASSWORD });
    clients.push(client);
    expect(await refusal(client.publishVservice({ profileName: 'x', id: 'x-1', domain: 'globex.example', sipUri: 'sip:x@globex.example', maxDidCount: 10 }))).toBe(
      'E_VSERVICE_DOMAIN',
    );
  }, 30_000);

  it('registers over mutual TLS with a trusted call-manager certificate, and refuses an untrusted one', async () => {
    const admin = await peer.admin();
    const peerCert = (await admin.get<{ certPem: string }>('/v1/vap/certificate')).certPem;
    const trusted = createVapCertificate({ commonName: 'cucm.acme.example' });
    const stranger = createVapCertificate({ commonName: 'cucm.stranger.example' });
    await admin.post('/v1/vap/trust', { certPem: trusted.certPem });
    const connect = (own: { certPem: string; keyPem: string }) =>
      VapClient.connect({
        host: '127.0.0.1',
        port: tlsPort,
        mode: 'encrypted',
        username: 'imeuser',
        password: PASSWORD,
        tls: { caPem: [peerCert], certPem: own.certPem, keyPem: own.keyPem },
      });
    // Trusting a certificate restarts the encrypted listener: wait until it accepts again.
    let client: VapClient | undefined;
    await waitFor('the encrypted VAP instance to accept the trusted call manager', async () => {
      client = await connect(trusted).catch(() => undefined);
      return client !== undefined;
    }, 15_000, 200);
    clients.push(client!);
    expect(client!.registered.peerId).toBe(peer.peerId);
    expect(await refusal(connect(stranger))).toBe('E_VAP_TLS');
  }, 60_000);

  it('closes a wrong password with E_VAP_AUTH and raises InvalidCredentials with the user and address, never the password', async () => {
    expect(await refusal(VapClient.connect({ host: '127.0.0.1', port: tcpPort, mode: 'authenticated', username: 'imeuser', password: 'not-the-password' }))).toBe(
      'E_VAP_AUTH',
    );
    const alerts = await (await peer.admin()).get<{ alerts: { name: string; details: Record<string, unknown> }[] }>('/v1/alerts');
    const raised = alerts.alerts.filter((a) => a.name === 'InvalidCredentials');
    expect(raised.length).toBeGreaterThan(0);
    expect(raised[0]!.details).toEqual(expect.objectContaining({ user: 'imeuser', clientAddress: expect.stringContaining('127.0.0.1') }));
    expect(JSON.stringify(alerts)).not.toContain('not-the-password');
  }, 30_000);
});
