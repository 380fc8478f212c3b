import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WIRE_VERSION, verifyRingCertificate } from '@ime/admission';
import { ime } from '@ime/wire';
import type { BootstrapServer } from '../src/bootstrap-server.js';
import { TestPeer, removeTempDirs, rosterIds, startBootstrap, verifyConfiguration, waitFor } from './bootstrap-fixture.js';

const DAY = 86_400_000;

describe('enrollment (/ime/enroll/1.0.0)', () => {
  let bootstrap: BootstrapServer;
  let offset = 0;
  const now = (): number => Date.now() + offset;
  const peers: TestPeer[] = [];
  const peer = async (): Promise<TestPeer> => {
    const p = await TestPeer.start([bootstrap]);
    peers.push(p);
    return p;
  };

  beforeAll(async () => {
    bootstrap = await startBootstrap({}, { now });
  });

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await bootstrap.stop();
    removeTempDirs();
  });

  it('enrolls a peer with a token: a certificate the ring verifies and a configuration that lists it', async () => {
    const alice = await peer();
    const { token } = await bootstrap.createToken({ note: 'alice' });
    const enrolled = await alice.enrolled(bootstrap, { token, domain: 'Acme.Example' });

    expect(Buffer.from(enrolled.authorityCertificate).equals(Buffer.from(bootstrap.authorityCertificateDer))).toBe(true);
    const info = verifyRingCertificate(enrolled.certificate, { certificateDer: enrolled.authorityCertificate }, { peerId: alice.peerId, nowMs: now() });
    expect(info.domain).toBe('acme.example');
    expect(info.notAfterMs - now()).toBeGreaterThan(364 * DAY);
    expect(info.notAfterMs - now()).toBeLessThanOrEqual(365 * DAY);

    const config = verifyConfiguration(enrolled.configuration, bootstrap, now());
    const entry = config.roster.find((e) => e.peerId === alice.peerId);
    expect(entry).toEqual({
      peerId: alice.peerId,
      addresses: alice.addresses,
      domain: 'acme.example',
      certificateSerial: info.serialHex,
      certificateExpiresAtMs: info.notAfterMs,
      virtualNodes: 5,
    });
    expect(config.ringName).toBe('intercompanymedianetwork');
    expect(Buffer.from(config.ringSalt).equals(Buffer.from(bootstrap.ringSalt))).toBe(true);
    expect(config.bootstraps[0]).toEqual({ peerId: bootstrap.peerId, addresses: bootstrap.addresses });
    expect(config.parameters).toEqual({
      replicationFactor: 3,
      writeQuorum: 2,
      readQuorum: 2,
      recordTtlSec: 86_400,
      republishIntervalSec: 43_200,
      storageQuota: 100_000,
      pollIntervalSec: 30,
    });
    expect(config.expiresAtMs - config.issuedAtMs).toBe(7 * DAY);
    expect(bootstrap.currentConfiguration()?.config.sequence).toBe(config.sequence);

    const view = bootstrap.roster().find((r) => r.peerId === alice.peerId);
    expect(view).toMatchObject({ domain: 'acme.example', contact: 'noc@acme.example', admitted: true, banned: false, inRoster: true, softwareVersion: '0.1.0' });
    expect(bootstrap.tokens().find((t) => t.note === 'alice')?.usedBy).toBe(alice.peerId);
    expect(bootstrap.counters.get('EnrollmentsAccepted')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a token another peer used; the same peer retrying with its own token gets its certificate again', async () => {
    const first = await peer();
    const second = await peer();
    const { token } = await bootstrap.createToken();
    const enrolled = await first.enrolled(bootstrap, { token });
    expect(await second.refusal(bootstrap, { token })).toBe('E_ENROLL_TOKEN_USED');
    const again = await first.enrolled(bootstrap, { token });
    expect(Buffer.from(again.certificate).equals(Buffer.from(enrolled.certificate))).toBe(true);
    expect(rosterIds(verifyConfiguration(again.configuration, bootstrap, now()))).toContain(first.peerId);
    // Retrying cannot switch domains.
    expect(await first.refusal(bootstrap, { token, domain: 'globex.example' })).toBe('E_ENROLL_DOMAIN');
  });

  it('refuses with the code that says why', async () => {
    const p = await peer();
    const other = await peer();
    const refusedBefore = bootstrap.counters.get('EnrollmentsRefused');
    const { token } = await bootstrap.createToken();

    expect(await p.refusal(bootstrap, { token: 'not-a-token-we-issued' })).toBe('E_ENROLL_TOKEN_INVALID');
    expect(await p.refusal(bootstrap, { token, peerId: other.peerId })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, domain: 'acme example' })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, contact: 'x'.repeat(257) })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, contact: 'evil\u001b[2J' })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, addresses: Array.from({ length: 9 }, (_, i) => `/ip4/10.0.0.${i}/tcp/6084`) })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, addresses: ['ip4/10.0.0.1/tcp/6084'] })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, addresses: [`/ip4/10.0.0.1/tcp/6084/${'a'.repeat(256)}`] })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, softwareVersion: '1'.repeat(33) })).toBe('E_ENROLL_REQUEST');
    expect(await p.refusal(bootstrap, { token, version: 2 })).toBe('E_WIRE_VERSION');
    const garbage = await p.enrollRaw(bootstrap, Uint8Array.of(0x0a, 0xff, 0xff, 0xff));
    expect(garbage.refused?.code).toBe('E_ENROLL_REQUEST');
    // Without a token: a refresh of an enrollment that does not exist.
    expect(await p.refusal(bootstrap, {})).toBe('E_ENROLL_UNKNOWN_PEER');
    expect(await p.refusal(bootstrap, { renewal: false })).toBe('E_ENROLL_TOKEN_INVALID');

    // None of these used the token up.
    await p.enrolled(bootstrap, { token });
    expect(bootstrap.counters.get('EnrollmentsRefused') - refusedBefore).toBe(13);
  });

  it('refuses a token bound to another domain, and a refresh naming another domain', async () => {
    const p = await peer();
    const { token } = await bootstrap.createToken({ domain: 'globex.example' });
    expect(await p.refusal(bootstrap, { token, domain: 'acme.example' })).toBe('E_ENROLL_DOMAIN');
    await p.enrolled(bootstrap, { token, domain: 'GLOBEX.example.' });
    expect(await p.refusal(bootstrap, { domain: 'acme.example' })).toBe('E_ENROLL_DOMAIN');
    await p.enrolled(bootstrap, { domain: 'globex.example' });
  });

  it('refuses an expired token', async () => {
    const p = await peer();
    const { token, expiresAtMs } = await bootstrap.createToken({ validHours: 1 });
    expect(expiresAtMs - now()).toBeLessThanOrEqual(3_600_000);
    offset += 2 * 3_600_000;
    try {
      expect(await p.refusal(bootstrap, { token })).toBe('E_ENROLL_TOKEN_EXPIRED');
    } finally {
      offset -= 2 * 3_600_000;
    }
    await p.enrolled(bootstrap, { token });
  });

  it('refreshes without a token: new addresses reach the roster in a newer configuration', async () => {
    const p = await peer();
    const { token } = await bootstrap.createToken();
    const first = await p.enrolled(bootstrap, { token, addresses: ['/ip4/192.0.2.1/tcp/6084'] });
    const before = verifyConfiguration(first.configuration, bootstrap, now());

    const same = await p.enrolled(bootstrap, { addresses: ['/ip4/192.0.2.1/tcp/6084'] });
    expect(Buffer.from(same.certificate).equals(Buffer.from(first.certificate))).toBe(true);

    const moved = await p.enrolled(bootstrap, { addresses: ['/ip4/192.0.2.7/tcp/6084', '/ip6/2001:db8::7/tcp/6084'], softwareVersion: '0.2.0' });
    const after = verifyConfiguration(moved.configuration, bootstrap, now());
    expect(after.sequence).toBeGreaterThan(before.sequence);
    expect(after.roster.find((e) => e.peerId === p.peerId)?.addresses).toEqual(['/ip4/192.0.2.7/tcp/6084', '/ip6/2001:db8::7/tcp/6084']);
    expect(Buffer.from(moved.certificate).equals(Buffer.from(first.certificate))).toBe(true);
    expect(bootstrap.roster().find((r) => r.peerId === p.peerId)?.softwareVersion).toBe('0.2.0');
  });

  it('renews the certificate when it expires within renewBeforeDays', async () => {
    const p = await peer();
    const { token } = await bootstrap.createToken();
    const first = await p.enrolled(bootstrap, { token });
    const firstInfo = verifyRingCertificate(first.certificate, { certificateDer: first.authorityCertificate }, { nowMs: now() });

    offset += 300 * DAY; // 65 days left: kept
    try {
      const kept = await p.enrolled(bootstrap, {});
      expect(Buffer.from(kept.certificate).equals(Buffer.from(first.certificate))).toBe(true);

      offset += 40 * DAY; // 25 days left: renewed
      const renewed = await p.enrolled(bootstrap, {});
      const info = verifyRingCertificate(renewed.certificate, { certificateDer: renewed.authorityCertificate }, { peerId: p.peerId, nowMs: now() });
      expect(info.serialHex).not.toBe(firstInfo.serialHex);
      expect(info.notAfterMs).toBeGreaterThan(firstInfo.notAfterMs);
      const config = verifyConfiguration(renewed.configuration, bootstrap, now());
      expect(config.roster.find((e) => e.peerId === p.peerId)).toMatchObject({ certificateSerial: info.serialHex, certificateExpiresAtMs: info.notAfterMs });
      // Peers whose certificates expired meanwhile are no longer on the roster.
      expect(rosterIds(config).every((id) => bootstrap.roster().find((r) => r.peerId === id)!.certificateExpires > new Date(now()).toISOString())).toBe(true);
    } finally {
      offset = 0;
    }
  });

  it('answers a burst of enrollments each with a configuration that already lists the peer', async () => {
    const burst = await Promise.all(Array.from({ length: 6 }, () => peer()));
    const tokens = await Promise.all(burst.map(() => bootstrap.createToken()));
    const answers = await Promise.all(burst.map((p, i) => p.enrolled(bootstrap, { token: tokens[i]!.token })));
    answers.forEach((a, i) => expect(rosterIds(verifyConfiguration(a.configuration, bootstrap, now()))).toContain(burst[i]!.peerId));
    const final = bootstrap.currentConfiguration()!.config;
    for (const p of burst) expect(rosterIds(final)).toContain(p.peerId);
  });

  it('gives one configuration for changes made together', async () => {
    const issuedBefore = bootstrap.counters.get('ConfigurationsIssued');
    const results = await Promise.all([
      bootstrap.setMessageOfTheDay('maintenance on Sunday'),
      bootstrap.setStorageQuota(250_000),
      bootstrap.setMinSoftwareVersion('0.1.0'),
    ]);
    expect(new Set(results.map((r) => r.sequence)).size).toBe(1);
    expect(bootstrap.counters.get('ConfigurationsIssued') - issuedBefore).toBe(1);
    const config = bootstrap.currentConfiguration()!.config;
    expect(config).toMatchObject({ messageOfTheDay: 'maintenance on Sunday', minSoftwareVersion: '0.1.0' });
    expect(config.parameters.storageQuota).toBe(250_000);
  });
});

describe('configuration polls and pushes', () => {
  let bootstrap: BootstrapServer;
  const peers: TestPeer[] = [];

  beforeAll(async () => {
    bootstrap = await startBootstrap();
  });

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await bootstrap.stop();
    removeTempDirs();
  });

  it('answers a poll with the configuration only when it is newer', async () => {
    const stranger = await TestPeer.start([bootstrap]);
    peers.push(stranger);
    const polls = bootstrap.counters.get('ConfigurationPolls');
    const current = bootstrap.currentConfiguration()!.config.sequence;
    const fresh = await stranger.poll(bootstrap, 0);
    expect(verifyConfiguration(fresh.configuration, bootstrap).sequence).toBe(current);
    expect((await stranger.poll(bootstrap, current - 1)).configuration).toBeTruthy();
    expect((await stranger.poll(bootstrap, current)).configuration).toBeFalsy();
    expect((await stranger.poll(bootstrap, current + 100)).configuration).toBeFalsy();
    expect(bootstrap.counters.get('ConfigurationPolls') - polls).toBe(4);

    const { sequence } = await bootstrap.setMessageOfTheDay('hello ring');
    expect(sequence).toBeGreaterThan(current);
    const newer = await stranger.poll(bootstrap, current);
    expect(verifyConfiguration(newer.configuration, bootstrap)).toMatchObject({ sequence, messageOfTheDay: 'hello ring' });
  });

  it('answers a poll of another version with an error', async () => {
    const p = await TestPeer.start([bootstrap]);
    peers.push(p);
    const rpc = p.client('/ime/config/1.0.0');
    const { peerIdFromString } = await import('@libp2p/peer-id');
    const bytes = await rpc.request(peerIdFromString(bootstrap.peerId), ime.v1.ConfigurationRequest.encode({ version: 9, knownSequence: 0 }).finish());
    const response = ime.v1.ConfigurationResponse.decode(bytes);
    expect(response.error?.code).toBe('E_WIRE_VERSION');
    expect(response.configuration).toBeFalsy();
  });

  it('pushes a new configuration to the roster peers connected to it', async () => {
    const p = await TestPeer.start([bootstrap]);
    peers.push(p);
    await p.acceptPushes();
    const outsider = await TestPeer.start([bootstrap]);
    peers.push(outsider);
    await outsider.acceptPushes();
    await outsider.poll(bootstrap, 0); // connected, but not on the roster

    const { token } = await bootstrap.createToken();
    await p.enrolled(bootstrap, { token });
    const { sequence } = await bootstrap.setMessageOfTheDay('pushed to you');
    const push = await waitFor('the push', () => p.pushes.find((x) => verifyConfiguration(x.configuration, bootstrap).sequence === sequence));
    expect(push.hops).toBe(1);
    expect(verifyConfiguration(push.configuration, bootstrap).messageOfTheDay).toBe('pushed to you');
    expect(outsider.pushes).toHaveLength(0);
    expect(bootstrap.counters.get('ConfigurationPushes')).toBeGreaterThanOrEqual(1);
    expect(WIRE_VERSION).toBe(1);
  });
});
