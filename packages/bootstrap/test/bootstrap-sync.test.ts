import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BOOTSTRAP_SYNC_PROTOCOL, WIRE_VERSION } from '@ime/admission';
import { ImeError } from '@ime/core';
import { silentLogger } from '@ime/runtime';
import { ime } from '@ime/wire';
import { peerIdFromString } from '@libp2p/peer-id';
import { BootstrapServer, prepareBootstrap } from '../src/bootstrap-server.js';
import { TestPeer, freePort, removeTempDirs, rosterIds, startBootstrap, tempDir, testConfig, verifyConfiguration, waitFor } from './bootstrap-fixture.js';
import { rejectionCode as refusalCode } from '../../core/test/helpers.js';

describe('two bootstraps of one ring', () => {
  let a: BootstrapServer;
  let b: BootstrapServer | undefined;
  let exportedSequence = 0;
  let configA: ReturnType<typeof testConfig>;
  let configB: ReturnType<typeof testConfig>;
  const peers: TestPeer[] = [];
  /** Every sequence each bootstrap served, in the order seen. */
  const seen = { a: [] as number[], b: [] as number[] };
  const note = (): void => {
    const sa = a.currentConfiguration()?.config.sequence;
    const sb = b?.currentConfiguration()?.config.sequence;
    if (sa !== undefined && seen.a.at(-1) !== sa) seen.a.push(sa);
    if (sb !== undefined && seen.b.at(-1) !== sb) seen.b.push(sb);
  };
  const B = (): BootstrapServer => {
    if (b === undefined) throw new Error('bootstrap B is not running');
    return b;
  };

  beforeAll(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const dirA = tempDir();
    const dirB = tempDir();
    const listenA = `/ip4/127.0.0.1/tcp/${portA}`;
    const listenB = `/ip4/127.0.0.1/tcp/${portB}`;

    // The first bootstrap runs alone, then its state is exported for the second.
    const first = await BootstrapServer.start(testConfig(dirA, { name: 'bootstrap-a', listen: [listenA] }), { log: silentLogger() });
    await first.setMessageOfTheDay('from the first bootstrap');
    const state = first.exportState();
    exportedSequence = state.sequence;
    const stateFile = join(tempDir(), 'state.json');
    writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });
    const idA = first.peerId;
    await first.stop();

    configB = testConfig(dirB, { name: 'bootstrap-b', listen: [listenB], ordinal: 1, importState: stateFile, peerBootstraps: [`${listenA}/p2p/${idA}`], syncIntervalSec: 1 });
    const { peerId: idB } = await prepareBootstrap(configB);
    configA = testConfig(dirA, { name: 'bootstrap-a', listen: [listenA], ordinal: 0, peerBootstraps: [`${listenB}/p2p/${idB}`], syncIntervalSec: 1 });
    a = await BootstrapServer.start(configA, { log: silentLogger() });
    b = await BootstrapServer.start(configB, { log: silentLogger() });
    note();
  });

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.stop()));
    await a.stop();
    await b?.stop();
    removeTempDirs();
  });

  it('share the authority, the ring salt and the state; sequences continue past the exported one', async () => {
    expect(B().authorityFingerprint).toBe(a.authorityFingerprint);
    expect(Buffer.from(B().ringSalt).equals(Buffer.from(a.ringSalt))).toBe(true);
    expect(B().peerId).not.toBe(a.peerId);
    const configB0 = B().currentConfiguration()!.config;
    expect(configB0.sequence).toBeGreaterThan(exportedSequence);
    expect(configB0.messageOfTheDay).toBe('from the first bootstrap');
    expect(configB0.bootstraps.map((x) => x.peerId)).toEqual([B().peerId, a.peerId]);
    expect(a.currentConfiguration()!.config.bootstraps.map((x) => x.peerId)).toEqual([a.peerId, B().peerId]);
    await waitFor('a first sync both ways', () => a.counters.get('BootstrapSyncs') > 0 && B().counters.get('BootstrapSyncs') > 0);
  });

  it('a token made on one enrolls at the other; the peer reaches both rosters; the used token is refused at both', async () => {
    const p = await TestPeer.start([a, B()]);
    const thief = await TestPeer.start([a, B()]);
    peers.push(p, thief);
    const { token } = await a.createToken({ note: 'made on A' });
    await waitFor('the token on B', () => B().tokens().some((t) => t.note === 'made on A'));
    const enrolled = await p.enrolled(B(), { token });
    expect(rosterIds(verifyConfiguration(enrolled.configuration, B()))).toContain(p.peerId);
    note();
    await waitFor('the peer on A’s roster', () => rosterIds(a.currentConfiguration()?.config).includes(p.peerId));
    note();
    await waitFor('the token used on A', () => a.tokens().find((t) => t.note === 'made on A')?.usedBy === p.peerId);
    expect(await thief.refusal(a, { token })).toBe('E_ENROLL_TOKEN_USED');
    expect(await thief.refusal(B(), { token })).toBe('E_ENROLL_TOKEN_USED');
    // The enrollment made at B refreshes at A: A holds its certificate.
    const refreshed = await p.enrolled(a);
    expect(Buffer.from(refreshed.certificate).equals(Buffer.from(enrolled.certificate))).toBe(true);
  });

  it('a change on either reaches the other, which serves the same document', async () => {
    const victim = await TestPeer.start([a, B()]);
    peers.push(victim);
    await victim.enrolled(a, { token: (await a.createToken()).token });
    await waitFor('the peer on B', () => rosterIds(B().currentConfiguration()?.config).includes(victim.peerId));
    note();

    const banned = await B().ban(victim.peerId, 'banned on B');
    note();
    const onA = await waitFor('the ban on A', () => {
      const c = a.currentConfiguration()?.config;
      return c?.bans.some((x) => x.peerId === victim.peerId) ? c : undefined;
    });
    note();
    // A's merged state says what B's document says, so A serves that document, not a copy of its own.
    expect(onA.sequence).toBe(banned.sequence);
    expect(rosterIds(onA)).not.toContain(victim.peerId);
    expect(await victim.refusal(a)).toBe('E_ENROLL_BANNED');

    const motd = await a.setMessageOfTheDay('set on A');
    note();
    const onB = await waitFor('the message on B', () => {
      const c = B().currentConfiguration()?.config;
      return c?.messageOfTheDay === 'set on A' ? c : undefined;
    });
    note();
    expect(onB.sequence).toBe(motd.sequence);
    expect(Buffer.from(B().currentConfiguration()!.encoded).equals(Buffer.from(a.currentConfiguration()!.encoded))).toBe(true);
  });

  it('converge after being apart: the later change wins', async () => {
    await B().stop();
    b = undefined;
    await a.setMessageOfTheDay('made while B was down');
    await a.setStorageQuota(1234);
    note();
    b = await BootstrapServer.start(configB, { log: silentLogger() });
    note();
    await waitFor('B catching up', () => {
      const c = B().currentConfiguration()?.config;
      return c?.messageOfTheDay === 'made while B was down' && c.parameters.storageQuota === 1234;
    });
    note();
    await B().setMessageOfTheDay('later, on B');
    note();
    await waitFor('A taking the later change', () => a.currentConfiguration()?.config.messageOfTheDay === 'later, on B');
    note();
    expect(a.currentConfiguration()!.config.parameters.storageQuota).toBe(1234);
  });

  it('serve increasing sequences, each issued by one of the two (ordinal mod 8)', () => {
    note();
    for (const list of [seen.a, seen.b]) {
      expect(list.length).toBeGreaterThan(1);
      for (let i = 1; i < list.length; i++) expect(list[i]!).toBeGreaterThan(list[i - 1]!);
      // Every sequence comes from A (≡ 0) or B (≡ 1): they never sign two documents under one number.
      expect(list.every((s) => s % 8 === 0 || s % 8 === 1)).toBe(true);
    }
    // Each serves its own issues and, after a sync, the other's: the same numbers appear on both.
    expect(seen.a.some((s) => s % 8 === 1)).toBe(true);
    expect(seen.b.some((s) => s % 8 === 0)).toBe(true);
  });

  it('refuses a sync from anyone but its peer bootstraps', async () => {
    const stranger = await TestPeer.start([a]);
    peers.push(stranger);
    const rpc = stranger.client(BOOTSTRAP_SYNC_PROTOCOL);
    const request = ime.v1.BootstrapSyncRequest.encode({ version: WIRE_VERSION, entries: [], configurationSequence: 0 }).finish();
    expect(await refusalCode(rpc.request(peerIdFromString(a.peerId), request))).toBe('E_NOT_BOOTSTRAP');
  });
});

describe('a bootstrap restarted on its data directory', () => {
  afterAll(() => removeTempDirs());

  it('keeps its identity, the authority, the salt, the enrollments and the sequence floor', async () => {
    const dataDir = tempDir();
    const first = await startBootstrap({}, { dataDir });
    const p = await TestPeer.start([first]);
    const { token } = await first.createToken();
    await p.enrolled(first, { token });
    const gone = await TestPeer.start();
    await first.ban(gone.peerId, 'gone');
    await gone.stop();
    const before = {
      peerId: first.peerId,
      fingerprint: first.authorityFingerprint,
      salt: Buffer.from(first.ringSalt).toString('hex'),
      sequence: first.currentConfiguration()!.config.sequence,
      tokenFile: first.tokenFile,
    };
    await first.stop();

    const second = await startBootstrap({}, { dataDir });
    const other = await TestPeer.start([second]);
    try {
      expect(second.peerId).toBe(before.peerId);
      expect(second.authorityFingerprint).toBe(before.fingerprint);
      expect(Buffer.from(second.ringSalt).toString('hex')).toBe(before.salt);
      expect(second.tokenFile).toBe(before.tokenFile);
      const config = second.currentConfiguration()!.config;
      expect(config.sequence).toBeGreaterThanOrEqual(before.sequence);
      expect(rosterIds(config)).toContain(p.peerId);
      expect(config.bans).toHaveLength(1);
      expect((await second.setMessageOfTheDay('after restart')).sequence).toBeGreaterThan(before.sequence);
      expect(await other.refusal(second, { token })).toBe('E_ENROLL_TOKEN_USED');
      await p.know(second);
      await p.enrolled(second);
    } finally {
      await Promise.all([p.stop(), other.stop()]);
      await second.stop();
    }

    // The ring's name is fixed with its authority.
    expect(await refusalCode(startBootstrap({ ringName: 'another.ring' }, { dataDir }))).toBe('E_STATE_RING_NAME');
  });

  it('refuses to start from a state file of another format', async () => {
    const dir = tempDir();
    const file = join(dir, 'state.json');
    writeFileSync(file, JSON.stringify({ format: 'ime-bootstrap-state', version: 2 }));
    expect(await refusalCode(startBootstrap({ importState: file }, { dataDir: join(dir, 'data') }))).toBe('E_STATE_FORMAT');
    writeFileSync(file, 'not json');
    expect(await refusalCode(startBootstrap({ importState: file }, { dataDir: join(dir, 'data') }))).toBe('E_STATE_FORMAT');
    expect(await refusalCode(startBootstrap({ importState: join(dir, 'missing.json') }, { dataDir: join(dir, 'data') }))).toBe('E_STATE_FILE');
  });
});
