import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { admissionOf } from '@ime/admission';
import { ImeError } from '@ime/core';
import type { BootstrapServer } from '../src/bootstrap-server.js';
import { TestPeer, removeTempDirs, rosterIds, startBootstrap, verifyConfiguration } from './bootstrap-fixture.js';
import { rejectionCode as codeOf } from '../../core/test/helpers.js';

describe('manual admission', () => {
  let bootstrap: BootstrapServer;
  const peers: TestPeer[] = [];

  beforeAll(async () => {
    bootstrap = await startBootstrap({ admission: 'manual' });
  });

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await bootstrap.stop();
    removeTempDirs();
  });

  it('keeps an enrolled peer off the roster until the operator admits it', async () => {
    const p = await TestPeer.start([bootstrap]);
    peers.push(p);
    const { token } = await bootstrap.createToken();
    const enrolled = await p.enrolled(bootstrap, { token });
    // The certificate is issued at once; membership waits.
    expect(enrolled.certificate.length).toBeGreaterThan(0);
    expect(rosterIds(verifyConfiguration(enrolled.configuration, bootstrap))).not.toContain(p.peerId);
    expect(bootstrap.roster().find((r) => r.peerId === p.peerId)).toMatchObject({ admitted: false, inRoster: false });
    expect(bootstrap.summary().pendingAdmission).toBe(1);
    expect(bootstrap.counters.get('PendingAdmission')).toBe(1);

    // A refresh does not admit it either.
    expect(rosterIds(verifyConfiguration((await p.enrolled(bootstrap)).configuration, bootstrap))).not.toContain(p.peerId);

    const before = bootstrap.currentConfiguration()!.config.sequence;
    const { sequence } = await bootstrap.admit(p.peerId);
    expect(sequence).toBeGreaterThan(before);
    const config = bootstrap.currentConfiguration()!.config;
    expect(rosterIds(config)).toContain(p.peerId);
    expect(admissionOf(config, p.peerId, Date.now()).admitted).toBe(true);
    expect(bootstrap.summary().pendingAdmission).toBe(0);
    // Admitting again changes nothing.
    expect((await bootstrap.admit(p.peerId)).sequence).toBe(sequence);
    // A later refresh keeps it admitted.
    expect(rosterIds(verifyConfiguration((await p.enrolled(bootstrap)).configuration, bootstrap))).toContain(p.peerId);
  });

  it('refuses to admit a peer that never enrolled, or a malformed PeerId', async () => {
    const stranger = await TestPeer.start();
    peers.push(stranger);
    expect(await codeOf(bootstrap.admit(stranger.peerId))).toBe('E_PEER_NOT_FOUND');
    expect(await codeOf(bootstrap.admit('12D3KooWnot-a-peer'))).toBe('E_PEER_ID');
  });
});

describe('bans', () => {
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

  it('drops a banned peer from the roster, lists the ban, refuses its enrollment, and still answers its polls', async () => {
    const mallory = await TestPeer.start([bootstrap]);
    const honest = await TestPeer.start([bootstrap]);
    peers.push(mallory, honest);
    for (const p of [mallory, honest]) await p.enrolled(bootstrap, { token: (await bootstrap.createToken()).token });
    const before = bootstrap.currentConfiguration()!.config;
    expect(rosterIds(before)).toEqual(expect.arrayContaining([mallory.peerId, honest.peerId]));

    const { sequence } = await bootstrap.ban(mallory.peerId, 'spoofed numbers');
    expect(sequence).toBeGreaterThan(before.sequence);
    const config = bootstrap.currentConfiguration()!.config;
    expect(rosterIds(config)).not.toContain(mallory.peerId);
    expect(rosterIds(config)).toContain(honest.peerId);
    expect(config.bans).toEqual([{ peerId: mallory.peerId, reason: 'spoofed numbers', bannedAtMs: expect.any(Number) }]);
    expect(admissionOf(config, mallory.peerId, Date.now())).toEqual({ admitted: false, reason: 'banned' });

    expect(await mallory.refusal(bootstrap)).toBe('E_ENROLL_BANNED');
    expect(await mallory.refusal(bootstrap, { token: (await bootstrap.createToken()).token })).toBe('E_ENROLL_BANNED');
    // The poll is how the banned peer learns it (BannedFromNetwork).
    const polled = verifyConfiguration((await mallory.poll(bootstrap, before.sequence)).configuration, bootstrap);
    expect(polled.bans.map((b) => b.peerId)).toContain(mallory.peerId);
    expect(bootstrap.roster().find((r) => r.peerId === mallory.peerId)).toMatchObject({ banned: true, inRoster: false });
    expect(bootstrap.summary().bans).toBe(1);

    const lifted = await bootstrap.unban(mallory.peerId);
    expect(lifted.sequence).toBeGreaterThan(sequence);
    const after = bootstrap.currentConfiguration()!.config;
    expect(after.bans).toEqual([]);
    expect(rosterIds(after)).toContain(mallory.peerId);
    await mallory.enrolled(bootstrap);
  });

  it('bans a peer that never enrolled, and refuses bad input', async () => {
    const stranger = await TestPeer.start([bootstrap]);
    peers.push(stranger);
    await bootstrap.ban(stranger.peerId, '');
    expect(bootstrap.currentConfiguration()!.config.bans.map((b) => b.peerId)).toContain(stranger.peerId);
    expect(await stranger.refusal(bootstrap, { token: (await bootstrap.createToken()).token })).toBe('E_ENROLL_BANNED');
    expect(await codeOf(bootstrap.ban('nope', 'x'))).toBe('E_PEER_ID');
    expect(await codeOf(bootstrap.ban(stranger.peerId, 'r'.repeat(513)))).toBe('E_BAN_REASON');
    expect(await codeOf(bootstrap.ban(stranger.peerId, 'bell\u0007'))).toBe('E_BAN_REASON');
    const honest = await TestPeer.start();
    peers.push(honest);
    expect(await codeOf(bootstrap.unban(honest.peerId))).toBe('E_BAN_NOT_FOUND');
  });

  it('publishes settings in a higher sequence, and refuses invalid ones', async () => {
    let last = bootstrap.currentConfiguration()!.config.sequence;
    const step = async (change: Promise<{ sequence: number }>): Promise<void> => {
      const { sequence } = await change;
      expect(sequence).toBeGreaterThan(last);
      last = sequence;
    };
    await step(bootstrap.setMessageOfTheDay('welcome'));
    expect(bootstrap.currentConfiguration()!.config.messageOfTheDay).toBe('welcome');
    await step(bootstrap.setStorageQuota(5000));
    expect(bootstrap.currentConfiguration()!.config.parameters.storageQuota).toBe(5000);
    await step(bootstrap.setMinSoftwareVersion('1.2.3'));
    expect(bootstrap.currentConfiguration()!.config.minSoftwareVersion).toBe('1.2.3');
    await step(bootstrap.setParameters({ replicationFactor: 5, writeQuorum: 3, pollIntervalSec: 10 }));
    expect(bootstrap.currentConfiguration()!.config.parameters).toMatchObject({ replicationFactor: 5, writeQuorum: 3, readQuorum: 2, pollIntervalSec: 10 });
    await step(bootstrap.setParameters({ virtualNodes: 8, replicationFactor: null, writeQuorum: null }));
    expect(bootstrap.currentConfiguration()!.config.parameters).toMatchObject({ replicationFactor: 3, writeQuorum: 2, pollIntervalSec: 10 });
    expect(bootstrap.summary().parameters.virtualNodes).toBe(8);
    // The same value again issues nothing new.
    expect((await bootstrap.setMessageOfTheDay('welcome')).sequence).toBe(last);

    expect(await codeOf(bootstrap.setMessageOfTheDay('x'.repeat(513)))).toBe('E_MOTD_INVALID');
    expect(await codeOf(bootstrap.setMessageOfTheDay('\u001b[31mred'))).toBe('E_MOTD_INVALID');
    expect(await codeOf(bootstrap.setStorageQuota(-1))).toBe('E_QUOTA_INVALID');
    expect(await codeOf(bootstrap.setStorageQuota(1.5))).toBe('E_QUOTA_INVALID');
    expect(await codeOf(bootstrap.setMinSoftwareVersion('v1'))).toBe('E_VERSION_INVALID');
    expect(await codeOf(bootstrap.setParameters({ writeQuorum: 4 }))).toBe('E_PARAMETERS_INVALID');
    expect(await codeOf(bootstrap.setParameters({ republishIntervalSec: 86_400 }))).toBe('E_PARAMETERS_INVALID');
    expect(await codeOf(bootstrap.setParameters({ replicationFactor: 8 }))).toBe('E_PARAMETERS_INVALID');
    expect(await codeOf(bootstrap.setParameters({ colour: 1 } as never))).toBe('E_PARAMETERS_INVALID');
    expect(await codeOf(bootstrap.setParameters({}))).toBe('E_PARAMETERS_INVALID');
    expect(bootstrap.currentConfiguration()!.config.sequence).toBe(last);

    // New enrollments get the virtual nodes in force.
    const p = await TestPeer.start([bootstrap]);
    peers.push(p);
    await p.enrolled(bootstrap, { token: (await bootstrap.createToken()).token });
    expect(bootstrap.currentConfiguration()!.config.roster.find((e) => e.peerId === p.peerId)?.virtualNodes).toBe(8);
  });
});
