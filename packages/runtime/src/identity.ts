import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { ImeError } from '@ime/core';
import { type Database, keyOf } from './database.js';

const IDENTITY_KEY = keyOf('meta/identity');

/**
 * The component's libp2p identity (Ed25519; its PeerId derives from it). Made once, on first start,
 * and kept in the component's database so restarts and restores keep the same PeerId.
 */
export async function loadOrCreateIdentity(db: Database): Promise<PrivateKey> {
  const stored = await db.get(IDENTITY_KEY);
  if (stored !== undefined) {
    try {
      return privateKeyFromProtobuf(stored);
    } catch {
      throw new ImeError('E_DB_CORRUPT', 'the stored libp2p identity cannot be read');
    }
  }
  const key = await generateKeyPair('Ed25519');
  await db.put(IDENTITY_KEY, privateKeyToProtobuf(key));
  return key;
}

/** The 32-byte Ed25519 seed of a libp2p private key: what DID records are signed with. */
export function ed25519Seed(key: PrivateKey): Uint8Array {
  if (key.type !== 'Ed25519') throw new ImeError('E_IDENTITY_TYPE', `the identity must be Ed25519, not ${key.type}`);
  return key.raw.subarray(0, 32);
}
