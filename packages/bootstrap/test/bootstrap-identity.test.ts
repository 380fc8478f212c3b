import { afterAll, describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { AdminClient, createIdentityKeyFile, peerIdOfKey, silentLogger } from '@ime/runtime';
import { BootstrapServer, prepareBootstrap } from '../src/bootstrap-server.js';
import { freePort, removeTempDirs, tempDir, testConfig, waitFor } from './bootstrap-fixture.js';
import { rejectionCode as refusal } from '../../core/test/helpers.js';

// Bootstraps whose identity is a key file made ahead of time (identityKeyFile), as docker/compose.yaml
// runs them: their PeerIds are known before either starts, so each names the other in its
// configuration from the outset; and an admin API that other containers may call (admin.allowRemote).

afterAll(() => removeTempDirs());

describe('a bootstrap with an identity key file', () => {
  it('has the PeerId of its key from the first start, and refuses another key for the same data', async () => {
    const keys = tempDir();
    const key = await createIdentityKeyFile(join(keys, 'bootstrap.key'));
    const dataDir = tempDir();
    const config = testConfig(dataDir, { identityKeyFile: join(keys, 'bootstrap.key') });
    expect((await prepareBootstrap(config)).peerId).toBe(peerIdOfKey(key));
    const server = await BootstrapServer.start(config, { log: silentLogger() });
    expect(server.peerId).toBe(peerIdOfKey(key));
    await server.stop();
    // Without the file the data directory keeps the identity it adopted.
    expect((await prepareBootstrap(testConfig(dataDir))).peerId).toBe(peerIdOfKey(key));
    await createIdentityKeyFile(join(keys, 'other.key'));
    expect(await refusal(BootstrapServer.start(testConfig(dataDir, { identityKeyFile: join(keys, 'other.key') }), { log: silentLogger() }))).toBe('E_IDENTITY_MISMATCH');
    expect(await refusal(prepareBootstrap(testConfig(tempDir(), { identityKeyFile: join(keys, 'missing.key') })))).toBe('E_IDENTITY_KEY_FILE');
  });

  it('lets two bootstraps name each other before either has started, and they sync', async () => {
    const keys = tempDir();
    const [keyA, keyB] = [await createIdentityKeyFile(join(keys, 'a.key')), await createIdentityKeyFile(join(keys, 'b.key'))];
    const [portA, portB] = [await freePort(), await freePort()];
    const dial = (port: number, key: typeof keyA) => `/ip4/127.0.0.1/tcp/${port}/p2p/${peerIdOfKey(key)}`;
    const a = await BootstrapServer.start(
      testConfig(tempDir(), { name: 'bootstrap-a', identityKeyFile: join(keys, 'a.key'), listen: [`/ip4/127.0.0.1/tcp/${portA}`], peerBootstraps: [dial(portB, keyB)], syncIntervalSec: 1 }),
      { log: silentLogger() },
    );
    const stateFile = join(tempDir(), 'state.json');
    writeFileSync(stateFile, JSON.stringify(a.exportState()), { mode: 0o600 });
    const b = await BootstrapServer.start(
      testConfig(tempDir(), {
        name: 'bootstrap-b',
        identityKeyFile: join(keys, 'b.key'),
        listen: [`/ip4/127.0.0.1/tcp/${portB}`],
        ordinal: 1,
        importState: stateFile,
        peerBootstraps: [dial(portA, keyA)],
        syncIntervalSec: 1,
      }),
      { log: silentLogger() },
    );
    try {
      expect(b.authorityFingerprint).toBe(a.authorityFingerprint);
      await waitFor('a sync both ways', () => a.counters.get('BootstrapSyncs') > 0 && b.counters.get('BootstrapSyncs') > 0);
      const token = await a.createToken({ domain: 'acme.example' });
      expect(token.token).toEqual(expect.any(String));
      await waitFor('the token to reach the other bootstrap', () => b.tokens().length === a.tokens().length);
    } finally {
      await b.stop();
      await a.stop();
    }
  });
});

describe('admin.allowRemote', () => {
  it('is needed for an admin API beyond loopback, which still wants the token', async () => {
    expect(await refusal(BootstrapServer.start(testConfig(tempDir(), { admin: { listen: '0.0.0.0:0' } }), { log: silentLogger() }))).toBe('E_ADMIN_LISTEN');
    const server = await BootstrapServer.start(testConfig(tempDir(), { admin: { listen: '0.0.0.0:0', allowRemote: true } }), { log: silentLogger() });
    try {
      const port = new URL(server.adminUrl).port;
      const admin = await AdminClient.fromTokenFile(`http://127.0.0.1:${port}`, server.tokenFile);
      expect(await admin.get('/v1/summary')).toMatchObject({ role: 'bootstrap', peerId: server.peerId });
      expect(await refusal(new AdminClient({ url: `http://127.0.0.1:${port}`, token: 'A'.repeat(43) }).get('/v1/summary'))).toBe('E_ADMIN_AUTH');
    } finally {
      await server.stop();
    }
  });
});
