import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ImeError } from '@ime/core';
import { AdminClient, readAdminTokenFile } from '@ime/runtime';
import type { BootstrapServer } from '../src/bootstrap-server.js';
import { STATE_FORMAT } from '../src/bootstrap-state.js';
import { TestPeer, removeTempDirs, rosterIds, startBootstrap, tempDir } from './bootstrap-fixture.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ImeError);
    return (err as ImeError).code;
  }
  throw new Error('expected a refusal');
}

interface AuditLine {
  action: string;
  outcome: string;
  params: Record<string, unknown>;
  error?: { code: string };
}

describe('the bootstrap admin API over HTTP', () => {
  let bootstrap: BootstrapServer;
  let admin: AdminClient;
  let dataDir: string;
  const peers: TestPeer[] = [];
  const secrets: string[] = [];
  const audit = (): AuditLine[] =>
    readFileSync(join(dataDir, 'audit.log'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as AuditLine);

  beforeAll(async () => {
    dataDir = tempDir();
    bootstrap = await startBootstrap({ admission: 'manual' }, { dataDir });
    admin = await AdminClient.fromTokenFile(bootstrap.adminUrl, bootstrap.tokenFile);
    secrets.push(await readAdminTokenFile(bootstrap.tokenFile));
  });

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await bootstrap.stop();
    removeTempDirs();
  });

  it('refuses a request without the token, or with a wrong one', async () => {
    expect(bootstrap.tokenFile).toBe(join(dataDir, 'admin.token'));
    for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token' }] as Record<string, string>[]) {
      const res = await fetch(`${bootstrap.adminUrl}/v1/summary`, { headers });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_ADMIN_AUTH');
    }
    const res = await fetch(`${bootstrap.adminUrl}/v1/motd`, { method: 'PUT', body: JSON.stringify({ text: 'sneaky' }) });
    expect(res.status).toBe(401);
    expect(bootstrap.currentConfiguration()!.config.messageOfTheDay).toBe('');
  });

  it('shows the summary, identity, addressing, counters, alerts and metrics', async () => {
    const summary = await admin.get<Record<string, unknown>>('/v1/summary');
    expect(summary).toMatchObject({
      role: 'bootstrap',
      name: 'bootstrap-test',
      peerId: bootstrap.peerId,
      ringName: 'intercompanymedianetwork',
      sequence: bootstrap.currentConfiguration()!.config.sequence,
      rosterSize: 0,
      pendingAdmission: 0,
      bans: 0,
      messageOfTheDay: '',
      minSoftwareVersion: '',
      storageQuota: 100_000,
      authorityFingerprint: bootstrap.authorityFingerprint,
      addresses: bootstrap.addresses,
      admission: 'manual',
    });
    expect(await admin.get('/v1/peerid')).toEqual({ peerId: bootstrap.peerId });
    const addressing = await admin.get<{ bootstrapAddresses: string[] }>('/v1/addressing');
    expect(addressing.bootstrapAddresses).toEqual(bootstrap.addresses.map((a) => `${a}/p2p/${bootstrap.peerId}`));
    const { counters } = await admin.get<{ counters: Record<string, number> }>('/v1/counters');
    for (const name of ['EnrollmentsAccepted', 'EnrollmentsRefused', 'ConfigurationsIssued', 'ConfigurationPolls', 'RosterSize', 'RingConfigurationSequence']) {
      expect(counters).toHaveProperty(name);
    }
    expect(counters.RingConfigurationSequence).toBe(bootstrap.currentConfiguration()!.config.sequence);
    expect(await admin.get('/v1/alerts')).toEqual({ alerts: [], active: [] });
    const metrics = await admin.getText('/metrics');
    expect(metrics).toContain('# TYPE EnrollmentsAccepted counter');
    expect(metrics).toContain(`RingConfigurationSequence ${bootstrap.currentConfiguration()!.config.sequence}`);
    const configuration = await admin.get<{ sequence: number; roster: unknown[] }>('/v1/configuration');
    expect(configuration.sequence).toBe(bootstrap.currentConfiguration()!.config.sequence);
  });

  it('issues a token a peer enrolls with, admits the peer, bans and unbans it', async () => {
    const created = await admin.post<{ token: string; expires: string; domain: string | null }>('/v1/tokens', { domain: 'Acme.example', validHours: 2, note: 'for acme' });
    secrets.push(created.token);
    expect(created.domain).toBe('acme.example');
    expect(Date.parse(created.expires) - Date.now()).toBeLessThanOrEqual(2 * 3_600_000);
    const { tokens } = await admin.get<{ tokens: { note: string | null; usedBy: string | null }[] }>('/v1/tokens');
    expect(tokens).toEqual([expect.objectContaining({ note: 'for acme', usedBy: null })]);
    expect(JSON.stringify(tokens)).not.toContain(created.token);

    const p = await TestPeer.start([bootstrap]);
    peers.push(p);
    await p.enrolled(bootstrap, { token: created.token });
    let roster = await admin.get<{ peers: { peerId: string; admitted: boolean; inRoster: boolean }[] }>('/v1/roster');
    expect(roster.peers).toEqual([expect.objectContaining({ peerId: p.peerId, admitted: false, inRoster: false })]);
    expect((await admin.get<{ pendingAdmission: number }>('/v1/summary')).pendingAdmission).toBe(1);

    const admitted = await admin.post<{ admitted: boolean; sequence: number }>(`/v1/peers/${p.peerId}/admit`);
    expect(admitted.admitted).toBe(true);
    expect(rosterIds(bootstrap.currentConfiguration()!.config)).toContain(p.peerId);
    roster = await admin.get('/v1/roster');
    expect(roster.peers[0]).toMatchObject({ admitted: true, inRoster: true });

    const banned = await admin.post<{ banned: boolean; sequence: number }>('/v1/bans', { peerId: p.peerId, reason: 'testing bans' });
    expect(banned).toMatchObject({ peerId: p.peerId, banned: true });
    expect(banned.sequence).toBeGreaterThan(admitted.sequence);
    expect(await admin.get('/v1/bans')).toEqual({ bans: [expect.objectContaining({ peerId: p.peerId, reason: 'testing bans' })] });
    expect(rosterIds(bootstrap.currentConfiguration()!.config)).not.toContain(p.peerId);
    const unbanned = await admin.delete<{ banned: boolean }>(`/v1/bans/${p.peerId}`);
    expect(unbanned.banned).toBe(false);
    expect(rosterIds(bootstrap.currentConfiguration()!.config)).toContain(p.peerId);

    expect(await codeOf(admin.delete(`/v1/bans/${p.peerId}`))).toBe('E_BAN_NOT_FOUND');
    const stranger = await TestPeer.start();
    peers.push(stranger);
    expect(await codeOf(admin.post(`/v1/peers/${stranger.peerId}/admit`))).toBe('E_PEER_NOT_FOUND');
    expect(await codeOf(admin.post('/v1/peers/not-a-peer/admit'))).toBe('E_PEER_ID');
  });

  it('changes the message of the day, the storage quota, the minimum version and the parameters', async () => {
    let sequence = bootstrap.currentConfiguration()!.config.sequence;
    const higher = (r: { sequence: number }): void => {
      expect(r.sequence).toBeGreaterThan(sequence);
      sequence = r.sequence;
    };
    higher(await admin.put('/v1/motd', { text: 'welcome to the ring' }));
    higher(await admin.put('/v1/dht/global/storagequota', { quota: 42_000 }));
    higher(await admin.put('/v1/min-version', { version: '0.1.0' }));
    higher(await admin.put('/v1/parameters', { replicationFactor: 4, readQuorum: 3, recordTtlSec: 3600, republishIntervalSec: 1800 }));
    const config = bootstrap.currentConfiguration()!.config;
    expect(config).toMatchObject({ messageOfTheDay: 'welcome to the ring', minSoftwareVersion: '0.1.0' });
    expect(config.parameters).toEqual({
      replicationFactor: 4,
      writeQuorum: 2,
      readQuorum: 3,
      recordTtlSec: 3600,
      republishIntervalSec: 1800,
      storageQuota: 42_000,
      pollIntervalSec: 30,
    });
    expect(await admin.get('/v1/summary')).toMatchObject({ messageOfTheDay: 'welcome to the ring', storageQuota: 42_000, minSoftwareVersion: '0.1.0', sequence });
  });

  it('validates every body', async () => {
    const cases: [Promise<unknown>, string][] = [
      [admin.post('/v1/tokens', ['not', 'an', 'object']), 'E_ADMIN_BAD_REQUEST'],
      [admin.post('/v1/tokens', { validHours: '2' }), 'E_ADMIN_BAD_REQUEST'],
      [admin.post('/v1/tokens', { validHours: 0 }), 'E_TOKEN_REQUEST'],
      [admin.post('/v1/tokens', { validHours: 100_000 }), 'E_TOKEN_REQUEST'],
      [admin.post('/v1/tokens', { domain: 'bad domain' }), 'E_TOKEN_REQUEST'],
      [admin.post('/v1/tokens', { note: 'n'.repeat(257) }), 'E_TOKEN_REQUEST'],
      [admin.post('/v1/tokens', { token: 'chosen-secret-value' }), 'E_ADMIN_BAD_REQUEST'],
      [admin.post('/v1/bans', {}), 'E_ADMIN_BAD_REQUEST'],
      [admin.post('/v1/bans', { peerId: 42 }), 'E_ADMIN_BAD_REQUEST'],
      [admin.post('/v1/bans', { peerId: 'someone' }), 'E_PEER_ID'],
      [admin.put('/v1/motd', {}), 'E_ADMIN_BAD_REQUEST'],
      [admin.put('/v1/motd', { text: 7 }), 'E_ADMIN_BAD_REQUEST'],
      [admin.put('/v1/motd', { text: 'x'.repeat(600) }), 'E_MOTD_INVALID'],
      [admin.put('/v1/dht/global/storagequota', { quota: 'lots' }), 'E_ADMIN_BAD_REQUEST'],
      [admin.put('/v1/dht/global/storagequota', { quota: -5 }), 'E_QUOTA_INVALID'],
      [admin.put('/v1/min-version', { version: 'latest' }), 'E_VERSION_INVALID'],
      [admin.put('/v1/parameters', { writeQuorum: 9 }), 'E_PARAMETERS_INVALID'],
      [admin.put('/v1/parameters', { writeQuorum: 1.5 }), 'E_ADMIN_BAD_REQUEST'],
      [admin.put('/v1/parameters', { colour: 3 }), 'E_ADMIN_BAD_REQUEST'],
      [admin.put('/v1/parameters', { readQuorum: 5 }), 'E_PARAMETERS_INVALID'],
    ];
    const before = bootstrap.currentConfiguration()!.config.sequence;
    for (const [request, code] of cases) expect(await codeOf(request)).toBe(code);
    expect(bootstrap.currentConfiguration()!.config.sequence).toBe(before);
  });

  it('exports the state', async () => {
    const doc = await admin.get<{ format: string; version: number; authority: { privateKeyPem: string; certificateDer: string }; ring: { name: string; salt: string }; entries: { id: string }[]; sequence: number }>(
      '/v1/state/export',
    );
    expect(doc.format).toBe(STATE_FORMAT);
    expect(doc.version).toBe(1);
    expect(doc.authority.privateKeyPem).toContain('BEGIN PRIVATE KEY');
    expect(Buffer.from(doc.authority.certificateDer, 'base64').equals(Buffer.from(bootstrap.authorityCertificateDer))).toBe(true);
    expect(doc.ring).toEqual({ name: 'intercompanymedianetwork', salt: Buffer.from(bootstrap.ringSalt).toString('base64') });
    expect(doc.sequence).toBeGreaterThanOrEqual(bootstrap.currentConfiguration()!.config.sequence);
    const kinds = new Set(doc.entries.map((e) => e.id.split('/')[0]));
    expect([...kinds].sort()).toEqual(['ban', 'enrollment', 'setting', 'token']);
    secrets.push(doc.authority.privateKeyPem.split('\n')[2]!);
  });

  it('audits every change with its outcome, secrets masked', async () => {
    const lines = audit();
    const actions = new Set(lines.filter((l) => l.outcome === 'success').map((l) => l.action));
    for (const action of ['create-enrollment-token', 'admit-peer', 'ban-peer', 'unban-peer', 'set-motd', 'set-storage-quota', 'set-min-version', 'set-parameters', 'export-state']) {
      expect(actions).toContain(action);
    }
    expect(lines.find((l) => l.action === 'create-enrollment-token' && l.outcome === 'success')?.params).toMatchObject({ domain: 'Acme.example', note: 'for acme' });
    expect(lines.find((l) => l.action === 'ban-peer' && l.outcome === 'success')?.params).toMatchObject({ reason: 'testing bans' });
    const refused = lines.find((l) => l.action === 'unban-peer' && l.outcome === 'failure');
    expect(refused?.error?.code).toBe('E_BAN_NOT_FOUND');
    const chosen = lines.find((l) => l.action === 'create-enrollment-token' && l.params.token !== undefined);
    expect(chosen).toMatchObject({ outcome: 'failure', params: { token: '***' } });
    // Reads are not audited (except the export of the CA key).
    expect(lines.some((l) => l.action.startsWith('get') || l.action === 'summary')).toBe(false);
    const text = readFileSync(join(dataDir, 'audit.log'), 'utf8');
    expect(text).not.toContain('chosen-secret-value');
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
