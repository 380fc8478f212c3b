import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { ImeError } from '@ime/core';
import { type Database, keyOf } from './database.js';

const IDENTITY_KEY = keyOf('meta/identity');

/**
 * The component's libp2p identity (Ed25519; its PeerId derives from it). Made once, on first start,
 * and kept in the component's database so restarts and restores keep the same PeerId.
 */
export async function loadOrCreateIdentity(db: Database, preset?: PrivateKey): Promise<PrivateKey> {
  const stored = await db.get(IDENTITY_KEY);
  if (stored !== undefined) {
    let key: PrivateKey;
    try {
      key = privateKeyFromProtobuf(stored);
    } catch {
      throw new ImeError('E_DB_CORRUPT', 'the stored libp2p identity cannot be read');
    }
    // The ring knows this component by its PeerId: silently taking another key would orphan it.
    if (preset !== undefined && !preset.equals(key)) {
      throw new ImeError(
        'E_IDENTITY_MISMATCH',
        `the data directory belongs to ${peerIdOfKey(key)}, but the identity key file holds ${peerIdOfKey(preset)}; use the key this component started with, or a new data directory`,
      );
    }
    return key;
  }
  const key = preset ?? (await generateKeyPair('Ed25519'));
  await db.put(IDENTITY_KEY, privateKeyToProtobuf(key));
  return key;
}

/** The 32-byte Ed25519 seed of a libp2p private key: what DID records are signed with. */
export function ed25519Seed(key: PrivateKey): Uint8Array {
  if (key.type !== 'Ed25519') throw new ImeError('E_IDENTITY_TYPE', `the identity must be Ed25519, not ${key.type}`);
  return key.raw.subarray(0, 32);
}

/** The PeerId (text) a key gives a component. */
export function peerIdOfKey(key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString();
}

const MAX_KEY_FILE_BYTES = 16 * 1024;

/**
 * Reads an identity key file: an Ed25519 private key in PEM (PKCS#8), as `ime bootstrap identity
 * --create` or `openssl genpkey -algorithm ed25519` writes it. With one, a component's PeerId is
 * known before its first start, so other components' configuration files can name it.
 * E_IDENTITY_KEY_FILE when the file is unreadable or holds anything else (its content is never quoted).
 */
export async function readIdentityKeyFile(path: string): Promise<PrivateKey> {
  const fail = (why: string): ImeError => new ImeError('E_IDENTITY_KEY_FILE', `${path}: ${why}`, { file: path });
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
      const { bytesRead } = await file.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_KEY_FILE_BYTES) throw fail(`larger than ${MAX_KEY_FILE_BYTES} bytes: not a key file`);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof ImeError) throw err;
    throw fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let jwk: { d?: string; x?: string };
  try {
    const key = createPrivateKey({ key: text, format: 'pem' });
    if (key.asymmetricKeyType !== 'ed25519') throw fail(`holds an ${String(key.asymmetricKeyType)} key; an Ed25519 key is needed`);
    jwk = key.export({ format: 'jwk' });
  } catch (err) {
    if (err instanceof ImeError) throw err;
    throw fail('is not a PEM private key (PKCS#8)');
  }
  const seed = Buffer.from(jwk.d ?? '', 'base64url');
  if (seed.length !== 32) throw fail('holds a malformed Ed25519 key');
  const key = await generateKeyPairFromSeed('Ed25519', seed);
  if (jwk.x !== undefined && Buffer.compare(Buffer.from(key.publicKey.raw), Buffer.from(jwk.x, 'base64url')) !== 0) {
    throw fail('holds an Ed25519 key whose public half does not match its private half');
  }
  return key;
}

/** Makes a new identity key file (mode 0600); refuses to replace one (E_IDENTITY_KEY_EXISTS). */
export async function createIdentityKeyFile(path: string): Promise<PrivateKey> {
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  try {
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ImeError('E_IDENTITY_KEY_EXISTS', `${path} exists already; it is not replaced (the PeerId depends on it)`, { file: path });
    throw new ImeError('E_IDENTITY_KEY_FILE', `${path}: cannot be written (${code ?? 'error'})`, { file: path });
  }
  return readIdentityKeyFile(path);
}
