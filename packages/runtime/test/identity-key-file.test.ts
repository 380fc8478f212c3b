import { afterAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rejected } from '../../core/test/helpers.js';
import { openDatabase } from '../src/database.js';
import { createIdentityKeyFile, loadOrCreateIdentity, peerIdOfKey, readIdentityKeyFile } from '../src/identity.js';

// Identity key files: a component's libp2p key made ahead of its first start, so that its PeerId can
// be written into other components' configuration files (docker/compose.yaml's bootstraps).

const dir = mkdtempSync(join(tmpdir(), 'ime-identity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pem = (type: 'ed25519' | 'x25519' | 'ec') =>
  (type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync(type as 'ed25519')).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

describe('identity key files', () => {
  it('creates a key file once (mode 0600) and reads back the same PeerId, as openssl-made files too', async () => {
    const file = join(dir, 'bootstrap.key');
    const made = await createIdentityKeyFile(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(peerIdOfKey(await readIdentityKeyFile(file))).toBe(peerIdOfKey(made));
    expect(peerIdOfKey(made)).toMatch(/^12D3KooW/);
    expect((await rejected(createIdentityKeyFile(file))).code).toBe('E_IDENTITY_KEY_EXISTS');
    // `openssl genpkey -algorithm ed25519` writes the same PKCS#8 PEM as node:crypto.
    const other = join(dir, 'openssl.key');
    writeFileSync(other, pem('ed25519'));
    expect(peerIdOfKey(await readIdentityKeyFile(other))).not.toBe(peerIdOfKey(made));
  });

  it('refuses what is not an Ed25519 private key, without quoting it', async () => {
    const cases: Record<string, string> = { x25519: pem('x25519'), ec: pem('ec'), garbage: 'not a key at all\n', public: generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString() };
    for (const [name, text] of Object.entries(cases)) {
      const file = join(dir, `${name}.key`);
      writeFileSync(file, text);
      const err = await rejected(readIdentityKeyFile(file));
      expect(err.code).toBe('E_IDENTITY_KEY_FILE');
      expect(err.message).not.toContain(text.slice(0, 20));
    }
    expect((await rejected(readIdentityKeyFile(join(dir, 'missing.key')))).code).toBe('E_IDENTITY_KEY_FILE');
    writeFileSync(join(dir, 'huge.key'), 'x'.repeat(20_000));
    expect((await rejected(readIdentityKeyFile(join(dir, 'huge.key')))).code).toBe('E_IDENTITY_KEY_FILE');
  });

  it('is adopted by an empty database, kept by later starts, and refused by a database of another identity', async () => {
    const key = await readIdentityKeyFile(join(dir, 'bootstrap.key'));
    const db = await openDatabase(join(dir, 'db'));
    try {
      expect(peerIdOfKey(await loadOrCreateIdentity(db, key))).toBe(peerIdOfKey(key));
      // Without the file the database still gives the same identity.
      expect(peerIdOfKey(await loadOrCreateIdentity(db))).toBe(peerIdOfKey(key));
      const other = await readIdentityKeyFile(join(dir, 'openssl.key'));
      const err = await rejected(loadOrCreateIdentity(db, other));
      expect(err.code).toBe('E_IDENTITY_MISMATCH');
      expect(err.message).toContain(peerIdOfKey(key));
    } finally {
      await db.close();
    }
  });
});
