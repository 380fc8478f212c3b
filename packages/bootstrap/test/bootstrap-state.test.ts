import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { verifyRingCertificate } from '@ime/admission';
import { ImeError } from '@ime/core';
import { type Database, openDatabase, parseConfigText, renderDefaultConfig } from '@ime/runtime';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { bootstrapConfigFrom, bootstrapConfigSchema, checkBootstrapConfig } from '../src/bootstrap-config.js';
import { BootstrapState, type EnrollmentValue, compareStamps, nextConfigurationSequence } from '../src/bootstrap-state.js';
import { removeTempDirs, tempDir } from './bootstrap-fixture.js';
import { rejectionCode as codeOf } from '../../core/test/helpers.js';

const dbs: Database[] = [];
async function openState(now?: () => number): Promise<BootstrapState> {
  const db = await openDatabase(join(tempDir(), 'db'));
  dbs.push(db);
  return BootstrapState.open(db, now ? { now } : {});
}

async function newPeerId(): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
}

function enrollmentFor(state: BootstrapState, peerId: string, domain = 'acme.example', nowMs = Date.now()): EnrollmentValue {
  const der = state.authority.issuePeerCertificate({ peerId, domain, notBeforeMs: nowMs - 1000, notAfterMs: nowMs + 365 * 86_400_000 });
  const info = verifyRingCertificate(der, { certificateDer: state.authority.certificateDer }, { nowMs });
  return {
    domain,
    contact: 'noc@acme.example',
    addresses: ['/ip4/192.0.2.1/tcp/6084'],
    certificate: Buffer.from(der).toString('base64'),
    certificateSerial: info.serialHex,
    certificateExpiresAtMs: info.notAfterMs,
    virtualNodes: 5,
    admitted: true,
    enrolledAtMs: nowMs,
    softwareVersion: '0.1.0',
  };
}

const wire = (id: string, updatedAtMs: number, updatedBy: string, value: unknown) => ({ id, updatedAtMs, updatedBy, valueJson: JSON.stringify(value) });

describe('configuration sequences', () => {
  it('are max(last + 1, now × 8 + ordinal), kept in the ordinal’s residue class', () => {
    expect(nextConfigurationSequence(0, 1000, 0)).toBe(8000);
    expect(nextConfigurationSequence(0, 1000, 3)).toBe(8003);
    expect(nextConfigurationSequence(8003, 1000, 3)).toBe(8011);
    // Another bootstrap's higher floor: still this bootstrap's residue, above the floor.
    expect(nextConfigurationSequence(9000, 1000, 0)).toBe(9008);
    expect(nextConfigurationSequence(9000, 1000, 1)).toBe(9001);
    expect(nextConfigurationSequence(9000, 1000, 7)).toBe(9007);
    expect(() => nextConfigurationSequence(0, 1000, 8)).toThrow(RangeError);
    // Two bootstraps issuing from the same floor in the same millisecond never collide.
    const seen = new Set<number>();
    for (let ordinal = 0; ordinal < 8; ordinal++) seen.add(nextConfigurationSequence(123_456, 10, ordinal));
    expect(seen.size).toBe(8);
  });
});

describe('bootstrap state', () => {
  let a: BootstrapState;
  let b: BootstrapState;
  let clock = Date.now();

  beforeAll(async () => {
    a = await openState(() => clock);
    await a.initialize('intercompanymedianetwork');
    b = await openState(() => clock);
    await b.importState(a.exportState());
  });

  afterAll(async () => {
    for (const db of dbs.splice(0)) await db.close();
    removeTempDirs();
  });

  it('imports an exported state: the same authority and ring, a distinct identity', () => {
    expect(b.authority.fingerprintHex).toBe(a.authority.fingerprintHex);
    expect(Buffer.from(b.ring.salt).equals(Buffer.from(a.ring.salt))).toBe(true);
    expect(b.ring.salt).toHaveLength(32);
    expect(b.peerId).not.toBe(a.peerId);
  });

  it('merges by the later change, ties broken by the bootstrap, idempotently', async () => {
    const peer = await newPeerId();
    const id = `ban/${peer}`;
    const older = wire(id, 1000, a.peerId, { banned: true, reason: 'old', atMs: 1000 });
    const newer = wire(id, 2000, a.peerId, { banned: false, reason: 'old', atMs: 2000 });
    let merged = b.merge([newer]).result;
    expect(merged.changed).toEqual([id]);
    merged = b.merge([older]).result;
    expect(merged.changed).toEqual([]);
    expect(b.ban(peer)?.banned).toBe(false);
    expect(b.merge([newer]).result.changed).toEqual([]);

    const [low, high] = [a.peerId, b.peerId].sort();
    const tieLow = wire(id, 3000, low!, { banned: true, reason: 'low', atMs: 3000 });
    const tieHigh = wire(id, 3000, high!, { banned: true, reason: 'high', atMs: 3000 });
    b.merge([tieHigh]);
    b.merge([tieLow]);
    expect(b.ban(peer)?.reason).toBe('high');
    a.merge([tieLow, tieHigh]);
    expect(a.ban(peer)?.reason).toBe('high');
    expect(compareStamps(tieLow, tieHigh)).toBeLessThan(0);
  });

  it('stamps a local change after the entry it replaces, even one from a clock running ahead', async () => {
    const peer = await newPeerId();
    const id = `ban/${peer}`;
    const future = clock + 3_600_000;
    a.merge([wire(id, future, b.peerId, { banned: true, reason: 'ahead', atMs: future })]);
    await a.change([{ id, value: { banned: false, reason: 'ahead', atMs: clock } }]);
    const entry = a.entry(id)!;
    expect(entry.updatedAtMs).toBe(future + 1);
    expect(entry.updatedBy).toBe(a.peerId);
    // The change wins on the other side too.
    b.merge(a.wireEntries());
    expect(b.ban(peer)?.banned).toBe(false);
  });

  it('refuses malformed entries one by one and keeps the good ones', async () => {
    const peer = await newPeerId();
    const good = wire(`enrollment/${peer}`, 5000, a.peerId, enrollmentFor(a, peer));
    const forged = { ...enrollmentFor(a, await newPeerId()), certificateSerial: '01' };
    const otherPeer = await newPeerId();
    const { result } = b.merge([
      good,
      wire('colour/blue', 5000, a.peerId, {}),
      wire('setting/storageQuota', 5000, a.peerId, -1),
      wire('setting/messageOfTheDay', 5000, a.peerId, '\u001b[2J'),
      wire('setting/unknown', 5000, a.peerId, 1),
      wire(`ban/${otherPeer}`, 5000, a.peerId, { banned: 'yes', reason: '', atMs: 1 }),
      wire(`enrollment/${otherPeer}`, 5000, a.peerId, forged),
      wire('token/abc', 5000, a.peerId, { expiresAtMs: 1, createdAtMs: 1 }),
      { id: 'setting/storageQuota', updatedAtMs: 5000, updatedBy: a.peerId, valueJson: '{not json' },
      { id: 'setting/storageQuota', updatedAtMs: -1, updatedBy: a.peerId, valueJson: '5' },
      { id: 'setting/storageQuota', updatedAtMs: 5000, updatedBy: '', valueJson: '5' },
    ]);
    expect(result.changed).toEqual([`enrollment/${peer}`]);
    expect(result.refused).toHaveLength(10);
    expect(result.refused.every((r) => r.code === 'E_STATE_ENTRY')).toBe(true);
    expect(b.enrollment(peer)?.domain).toBe('acme.example');
    expect(b.enrollment(otherPeer)).toBeUndefined();
    // A certificate from another authority is not accepted either.
    const stranger = await openState();
    await stranger.initialize('intercompanymedianetwork');
    const foreign = await newPeerId();
    expect(b.merge([wire(`enrollment/${foreign}`, 5000, a.peerId, enrollmentFor(stranger, foreign))]).result.refused).toHaveLength(1);
    // Local changes are checked the same way.
    expect(await codeOf(() => b.change([{ id: 'setting/pollIntervalSec', value: 0 }]))).toBe('E_STATE_ENTRY');
  });

  it('converges whatever the order of merges', async () => {
    const peers = await Promise.all([newPeerId(), newPeerId(), newPeerId()]);
    await a.change([{ id: 'setting/messageOfTheDay', value: 'from a' }, { id: `ban/${peers[0]}`, value: { banned: true, reason: 'a', atMs: clock } }]);
    clock += 10;
    await b.change([{ id: 'setting/messageOfTheDay', value: 'from b' }, { id: `enrollment/${peers[1]}`, value: enrollmentFor(b, peers[1]!) }]);
    clock += 10;
    await a.change([{ id: `ban/${peers[2]}`, value: { banned: true, reason: 'a2', atMs: clock } }]);
    const fromA = a.wireEntries();
    const fromB = b.wireEntries();
    a.merge(fromB);
    b.merge(fromA);
    const view = (s: BootstrapState) => s.entries().map((e) => JSON.stringify(e)).sort();
    expect(view(a)).toEqual(view(b));
    expect(a.setting('messageOfTheDay')).toBe('from b');
  });

  it('keeps its state across a reopen of the database', async () => {
    const dir = tempDir();
    const db = await openDatabase(join(dir, 'db'));
    const s = await BootstrapState.open(db);
    await s.importState(a.exportState());
    const sequence = s.nextSequence(Date.now(), 2);
    await s.saveConfiguration(Uint8Array.of(1, 2, 3), sequence);
    const entries = s.entries().length;
    await db.close();
    const db2 = await openDatabase(join(dir, 'db'));
    dbs.push(db2);
    const again = await BootstrapState.open(db2);
    expect(again.peerId).toBe(s.peerId);
    expect(again.authority.fingerprintHex).toBe(a.authority.fingerprintHex);
    expect(again.sequence).toBe(sequence);
    expect(Array.from(again.configuration ?? [])).toEqual([1, 2, 3]);
    expect(again.entries()).toHaveLength(entries);
  });

  it('refuses another format, another version, a malformed document, and another ring’s state', async () => {
    const doc = a.exportState();
    const fresh = await openState();
    expect(await codeOf(() => fresh.importState({ ...doc, format: 'something-else' }))).toBe('E_STATE_FORMAT');
    expect(await codeOf(() => fresh.importState({ ...doc, version: 2 }))).toBe('E_STATE_FORMAT');
    expect(await codeOf(() => fresh.importState('text'))).toBe('E_STATE_FORMAT');
    expect(await codeOf(() => fresh.importState({ ...doc, ring: { name: 'ring', salt: 'AAAA' } }))).toBe('E_STATE_FORMAT');
    expect(await codeOf(() => fresh.importState({ ...doc, authority: { ...doc.authority, privateKeyPem: 'nope' } }))).toBe('E_STATE_FORMAT');
    expect(await codeOf(() => fresh.importState({ ...doc, entries: [...doc.entries, { id: 'setting/storageQuota', updatedAtMs: 1, updatedBy: 'x', value: 'lots' }] }))).toBe('E_STATE_FORMAT');
    // Nothing was taken from the refused documents.
    expect(fresh.hasAuthority).toBe(false);
    expect(fresh.entries()).toHaveLength(0);

    const other = await openState();
    await other.initialize('intercompanymedianetwork');
    expect(await codeOf(() => b.importState(other.exportState()))).toBe('E_STATE_CONFLICT');
    // The same ring's state again is a restore: merged.
    await b.importState(doc);
    expect(b.sequence).toBeGreaterThanOrEqual(doc.sequence);
  });
});

describe('bootstrap configuration file', () => {
  it('has the documented defaults', () => {
    const config = bootstrapConfigFrom({ name: 'b1' }, { baseDir: '/srv/ime' });
    expect(config).toMatchObject({
      name: 'b1',
      dataDir: '/srv/ime/data',
      listen: ['/ip4/0.0.0.0/tcp/6080'],
      announce: [],
      admin: { listen: '127.0.0.1:9621' },
      log: { level: 'info', modules: {} },
      ringName: 'intercompanymedianetwork',
      admission: 'auto',
      ordinal: 0,
      peerBootstraps: [],
      parameters: {
        replicationFactor: 3,
        writeQuorum: 2,
        readQuorum: 2,
        recordTtlSec: 86_400,
        republishIntervalSec: 43_200,
        storageQuota: 100_000,
        pollIntervalSec: 30,
        virtualNodes: 5,
      },
      configurationLifetimeSec: 604_800,
      certificateValidityDays: 365,
      renewBeforeDays: 30,
      syncIntervalSec: 5,
    });
    expect(config.admin.tokenFile).toBeUndefined();
    expect(config.importState).toBeUndefined();
    expect(checkBootstrapConfig(config).peerBootstraps).toEqual([]);
  });

  it('prints a default file that loads as it is', () => {
    for (const format of ['yaml', 'json'] as const) {
      const text = renderDefaultConfig(bootstrapConfigSchema, format);
      expect(parseConfigText(text, format, bootstrapConfigSchema).name).toBe('bootstrap-1');
    }
  });

  it('refuses values out of range and keys that do not fit together', async () => {
    expect(await codeOf(() => bootstrapConfigFrom({}))).toBe('E_CONFIG_MISSING');
    expect(await codeOf(() => bootstrapConfigFrom({ name: 'b', ordinal: 8 }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(() => bootstrapConfigFrom({ name: 'b', admission: 'sometimes' }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(() => bootstrapConfigFrom({ name: 'b', ringName: 'Upper' }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(() => bootstrapConfigFrom({ name: 'b', admisson: 'auto' }))).toBe('E_CONFIG_UNKNOWN_KEY');
    const check = (v: Record<string, unknown>) => () => checkBootstrapConfig(bootstrapConfigFrom({ name: 'b', ...v }));
    expect(await codeOf(check({ parameters: { writeQuorum: 4 } }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(check({ parameters: { recordTtlSec: 3600, republishIntervalSec: 3600 } }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(check({ renewBeforeDays: 400 }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(check({ peerBootstraps: ['/ip4/127.0.0.1/tcp/6080/p2p/QmNotAPeerIdAtAll'] }))).toBe('E_CONFIG_RANGE');
    const id = await newPeerId();
    expect(checkBootstrapConfig(bootstrapConfigFrom({ name: 'b', peerBootstraps: [`/ip4/10.0.0.2/tcp/6080/p2p/${id}`] })).peerBootstraps).toEqual([
      { peerId: id, address: '/ip4/10.0.0.2/tcp/6080' },
    ]);
    expect(await codeOf(check({ peerBootstraps: [`/ip4/10.0.0.2/tcp/6080/p2p/${id}`, `/ip4/10.0.0.3/tcp/6080/p2p/${id}`] }))).toBe('E_CONFIG_RANGE');
  });
});
