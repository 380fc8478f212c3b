import {
  type KeyObject,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { ime } from '@ime/wire';
import { type E164, parseE164 } from './e164.js';
import { ImeError } from './errors.js';
import { decodeWire } from './wire-codec.js';

/**
 * DID records (SPEC §4, guide L340–L345). The ring stores, for each published number:
 *
 * - key: HMAC-SHA256(ring salt, number). One-way and ring-specific; a fast keyed hash because a peer
 *   publishes up to 100 000 numbers and every lookup computes one. (Anyone admitted to the ring knows
 *   the salt, so this hides numbers from outsiders and from casual inspection of a peer's store, not
 *   from a determined ring member enumerating a numbering plan.)
 * - claim: AES-256-GCM under HKDF-SHA256(number, salt = ring salt). Only a party that already knows
 *   the number can read who claims it; the storing peer cannot. The AAD binds the record key and the
 *   publisher, so a sealed claim cannot be moved to another key or re-signed by another publisher.
 * - signature: Ed25519 by the publisher over every other field, checkable by the storing peer without
 *   the number, so it can enforce "only the publisher replaces or withdraws its own value".
 */

export const DID_KEY_BYTES = 32;
export const PUBLISHER_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const MIN_RING_SALT_BYTES = 16;
/** Upper bound for an encoded record; checked before decoding anything from the network. */
export const MAX_DID_RECORD_BYTES = 1024;
const MAX_SEALED_CLAIM_BYTES = 512;
export const VSERVICE_ID_MAX_LENGTH = 64;

const KEY_LABEL = Buffer.from('ime-did-key-v1\0');
const CLAIM_KEY_INFO = Buffer.from('ime-did-claim-v1');
const AAD_LABEL = Buffer.from('ime-did-claim-aad-v1\0');
const SIGN_LABEL = Buffer.from('ime-did-record-v1\0');

export type DidRecordErrorCode =
  | 'E_RING_SALT'
  | 'E_DID_RECORD_MALFORMED'
  | 'E_DID_RECORD_SIGNATURE'
  | 'E_DID_RECORD_KEY_MISMATCH'
  | 'E_DID_RECORD_TOMBSTONE'
  | 'E_DID_RECORD_DECRYPT'
  | 'E_DID_CLAIM_INVALID'
  | 'E_PUBLISHER_KEY';

/** A DID record as it travels and is stored; field for field the `ime.v1.DidRecord` message. */
export interface DidRecord {
  readonly key: Uint8Array;
  readonly publisherKey: Uint8Array;
  readonly sequence: number;
  readonly expiresAtMs: number;
  readonly tombstone: boolean;
  readonly nonce: Uint8Array;
  readonly sealedClaim: Uint8Array;
  readonly signature: Uint8Array;
}

/** What a record says, readable only with the number. */
export interface DidClaim {
  readonly vserviceId: string;
  readonly publishedAtMs: number;
}

export interface OpenedDidRecord extends DidClaim {
  readonly publisherKey: Uint8Array;
  readonly sequence: number;
  readonly expiresAtMs: number;
}

/** The publishing peer's Ed25519 identity: a raw 32-byte public key and a signing function. */
export interface Publisher {
  readonly publicKey: Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

// DER wrappers for raw Ed25519 keys (RFC 8410), so raw libp2p keys load without a JWK round trip.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function publisherFromKeyObject(privateKey: KeyObject): Publisher {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length));
  return { publicKey, sign: (data) => new Uint8Array(sign(null, data, privateKey)) };
}

/** A publisher from a 32-byte Ed25519 seed (the first half of a libp2p Ed25519 private key). */
export function publisherFromSeed(seed: Uint8Array): Publisher {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new ImeError('E_PUBLISHER_KEY', 'an Ed25519 seed must be 32 bytes');
  }
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  return publisherFromKeyObject(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

export function generatePublisher(): Publisher {
  return publisherFromKeyObject(generateKeyPairSync('ed25519').privateKey);
}

// Verifying keys are parsed once per publisher: the store checks every record it is sent.
const verifyKeyCache = new Map<string, KeyObject>();
const VERIFY_KEY_CACHE_MAX = 4096;

/** The publisher's verifying key, or undefined when the bytes are not a usable Ed25519 key. */
function verifyingKey(raw: Uint8Array): KeyObject | undefined {
  const id = Buffer.from(raw).toString('hex');
  let key = verifyKeyCache.get(id);
  if (!key) {
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    } catch {
      return undefined;
    }
    if (verifyKeyCache.size >= VERIFY_KEY_CACHE_MAX) verifyKeyCache.clear();
    verifyKeyCache.set(id, key);
  }
  return key;
}

function checkSalt(ringSalt: Uint8Array): void {
  if (!(ringSalt instanceof Uint8Array) || ringSalt.length < MIN_RING_SALT_BYTES) {
    throw new ImeError('E_RING_SALT', `the ring salt must be at least ${MIN_RING_SALT_BYTES} bytes`);
  }
}

/** The ring key of a number: HMAC-SHA256(ring salt, "ime-did-key-v1\0" || number). */
export function didRecordKey(ringSalt: Uint8Array, number: E164): Uint8Array {
  checkSalt(ringSalt);
  parseE164(number);
  return new Uint8Array(createHmac('sha256', ringSalt).update(KEY_LABEL).update(number).digest());
}

/**
 * HKDF-SHA256 (RFC 5869) of the number with the ring salt, for 32 bytes: one extract and one expand
 * block. Written as two HMACs because node's hkdfSync costs twice as much per call, and a peer seals
 * up to its whole quota (100 000 records) at every republish.
 */
function claimKey(ringSalt: Uint8Array, number: E164): Buffer {
  const prk = createHmac('sha256', ringSalt).update(number).digest();
  return createHmac('sha256', prk).update(CLAIM_KEY_INFO).update(ONE).digest();
}
const ONE = Buffer.from([1]);

function u64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(value));
  return b;
}

function claimAad(key: Uint8Array, publisherKey: Uint8Array): Buffer {
  return Buffer.concat([AAD_LABEL, key, publisherKey]);
}

/** The bytes the publisher signs: fixed-size fields first, so the concatenation is unambiguous. */
function signedBytes(r: Omit<DidRecord, 'signature'>): Buffer {
  return Buffer.concat([
    SIGN_LABEL,
    r.key,
    r.publisherKey,
    u64(r.sequence),
    u64(r.expiresAtMs),
    Buffer.from([r.tombstone ? 1 : 0, r.nonce.length]),
    r.nonce,
    r.sealedClaim,
  ]);
}

function isTimestamp(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Why a record is structurally unacceptable, or undefined. Checks sizes only, not the signature. */
export function didRecordProblem(r: DidRecord): ImeError<DidRecordErrorCode> | undefined {
  const bad = (why: string) => new ImeError<DidRecordErrorCode>('E_DID_RECORD_MALFORMED', `DID record: ${why}`);
  if (!(r.key instanceof Uint8Array) || r.key.length !== DID_KEY_BYTES) return bad(`key must be ${DID_KEY_BYTES} bytes`);
  if (!(r.publisherKey instanceof Uint8Array) || r.publisherKey.length !== PUBLISHER_KEY_BYTES) {
    return bad(`publisher key must be ${PUBLISHER_KEY_BYTES} bytes`);
  }
  if (!isTimestamp(r.sequence) || r.sequence < 1) return bad('sequence must be a positive integer');
  if (!isTimestamp(r.expiresAtMs)) return bad('expiry must be a time in milliseconds');
  if (!(r.nonce instanceof Uint8Array) || !(r.sealedClaim instanceof Uint8Array)) return bad('missing nonce or claim');
  if (r.tombstone) {
    if (r.nonce.length !== 0 || r.sealedClaim.length !== 0) return bad('a tombstone carries no claim');
  } else {
    if (r.nonce.length !== NONCE_BYTES) return bad(`nonce must be ${NONCE_BYTES} bytes`);
    if (r.sealedClaim.length <= TAG_BYTES || r.sealedClaim.length > MAX_SEALED_CLAIM_BYTES) {
      return bad(`sealed claim must be ${TAG_BYTES + 1}–${MAX_SEALED_CLAIM_BYTES} bytes`);
    }
  }
  if (!(r.signature instanceof Uint8Array) || r.signature.length !== SIGNATURE_BYTES) {
    return bad(`signature must be ${SIGNATURE_BYTES} bytes`);
  }
  return undefined;
}

/**
 * What a storing peer checks before accepting a record: its shape and the publisher's signature. It
 * needs neither the number nor the claim key.
 */
export function verifyDidRecord(record: DidRecord): void {
  const problem = didRecordProblem(record);
  if (problem) throw problem;
  const key = verifyingKey(record.publisherKey);
  let valid = false;
  try {
    valid = key !== undefined && verify(null, signedBytes(record), key, record.signature);
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new ImeError('E_DID_RECORD_SIGNATURE', 'DID record: the publisher signature does not verify');
  }
}

export interface SealDidRecordInput {
  readonly ringSalt: Uint8Array;
  readonly number: E164;
  readonly publisher: Publisher;
  readonly claim: DidClaim;
  readonly sequence: number;
  readonly expiresAtMs: number;
}

function checkClaim(claim: DidClaim): void {
  const id = claim.vserviceId;
  if (typeof id !== 'string' || id.length === 0 || id.length > VSERVICE_ID_MAX_LENGTH || !/^[\x21-\x7e]+$/.test(id)) {
    throw new ImeError(
      'E_DID_CLAIM_INVALID',
      `a Vservice id must be 1–${VSERVICE_ID_MAX_LENGTH} printable characters without spaces`,
    );
  }
  if (!isTimestamp(claim.publishedAtMs)) {
    throw new ImeError('E_DID_CLAIM_INVALID', 'the publication time must be a time in milliseconds');
  }
}

function finish(unsigned: Omit<DidRecord, 'signature'>, publisher: Publisher): DidRecord {
  // Shape first: signedBytes cannot encode a negative, fractional or unsafe sequence or expiry (it
  // would throw a RangeError), and a record we would refuse should not be signed at all.
  const shape = didRecordProblem({ ...unsigned, signature: new Uint8Array(SIGNATURE_BYTES) });
  if (shape) throw shape;
  const signature = publisher.sign(signedBytes(unsigned));
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) {
    throw new ImeError('E_DID_RECORD_MALFORMED', `DID record: signature must be ${SIGNATURE_BYTES} bytes`);
  }
  return { ...unsigned, signature };
}

/**
 * Fresh random nonces, drawn from a pooled block: one call into the CSPRNG per 4 KiB instead of one
 * per record (≈ 6 µs each, a tenth of sealing). Every nonce is a slice of the pool no other record
 * gets, so nonces stay unique and unpredictable.
 */
const NONCE_POOL_BYTES = 4096 - (4096 % NONCE_BYTES);
let noncePool = Buffer.alloc(0);
let noncePoolAt = 0;
function freshNonce(): Buffer {
  if (noncePoolAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_POOL_BYTES);
    noncePoolAt = 0;
  }
  const nonce = noncePool.subarray(noncePoolAt, noncePoolAt + NONCE_BYTES);
  noncePoolAt += NONCE_BYTES;
  return nonce;
}

/** Seals a claim on a number: what a publishing peer stores into the ring. */
export function sealDidRecord(input: SealDidRecordInput): DidRecord {
  const { ringSalt, number, publisher, claim, sequence, expiresAtMs } = input;
  checkClaim(claim);
  const key = didRecordKey(ringSalt, number);
  const nonce = freshNonce();
  const cipher = createCipheriv('aes-256-gcm', claimKey(ringSalt, number), nonce);
  cipher.setAAD(claimAad(key, publisher.publicKey));
  const plaintext = ime.v1.DidClaim.encode({ vserviceId: claim.vserviceId, publishedAtMs: claim.publishedAtMs }).finish();
  const sealedClaim = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return finish(
    { key, publisherKey: publisher.publicKey, sequence, expiresAtMs, tombstone: false, nonce, sealedClaim },
    publisher,
  );
}

/** A signed withdrawal of the publisher's claim on a number; it must carry a higher sequence. */
export function sealDidTombstone(input: Omit<SealDidRecordInput, 'claim'>): DidRecord {
  const { ringSalt, number, publisher, sequence, expiresAtMs } = input;
  const key = didRecordKey(ringSalt, number);
  const empty = new Uint8Array(0);
  return finish(
    { key, publisherKey: publisher.publicKey, sequence, expiresAtMs, tombstone: true, nonce: empty, sealedClaim: empty },
    publisher,
  );
}

export interface OpenDidRecordInput {
  readonly ringSalt: Uint8Array;
  readonly number: E164;
  /**
   * The caller already ran verifyDidRecord on this very record (the ring coordinator verifies every
   * answer): skip the second Ed25519 verification, a tenth of a fetch. The shape is still checked.
   */
  readonly signatureVerified?: boolean;
}

/** Reads a record with the number it is for: checks signature and key, then decrypts the claim. */
export function openDidRecord(record: DidRecord, input: OpenDidRecordInput): OpenedDidRecord {
  if (input.signatureVerified === true) {
    const problem = didRecordProblem(record);
    if (problem) throw problem;
  } else {
    verifyDidRecord(record);
  }
  const expectedKey = didRecordKey(input.ringSalt, input.number);
  if (!Buffer.from(expectedKey).equals(record.key)) {
    throw new ImeError('E_DID_RECORD_KEY_MISMATCH', 'DID record: the record is not stored under this number');
  }
  if (record.tombstone) {
    throw new ImeError('E_DID_RECORD_TOMBSTONE', 'DID record: the publisher withdrew this number');
  }
  const body = record.sealedClaim.subarray(0, record.sealedClaim.length - TAG_BYTES);
  const tag = record.sealedClaim.subarray(record.sealedClaim.length - TAG_BYTES);
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', claimKey(input.ringSalt, input.number), record.nonce);
    decipher.setAAD(claimAad(record.key, record.publisherKey));
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new ImeError('E_DID_RECORD_DECRYPT', 'DID record: the claim does not decrypt under this number');
  }
  const claim = decodeWire(ime.v1.DidClaim, plaintext, MAX_SEALED_CLAIM_BYTES, 'DID claim');
  return {
    vserviceId: claim.vserviceId,
    publishedAtMs: claim.publishedAtMs,
    publisherKey: record.publisherKey,
    sequence: record.sequence,
    expiresAtMs: record.expiresAtMs,
  };
}

export function encodeDidRecord(record: DidRecord): Uint8Array {
  return ime.v1.DidRecord.encode(record).finish();
}

/** Decodes a record from untrusted bytes: length limit first, then shape. The signature is not checked. */
export function decodeDidRecord(bytes: unknown): DidRecord {
  const m = decodeWire(ime.v1.DidRecord, bytes, MAX_DID_RECORD_BYTES, 'DID record');
  const record: DidRecord = {
    key: m.key,
    publisherKey: m.publisherKey,
    sequence: m.sequence,
    expiresAtMs: m.expiresAtMs,
    tombstone: m.tombstone,
    nonce: m.nonce,
    sealedClaim: m.sealedClaim,
    signature: m.signature,
  };
  const problem = didRecordProblem(record);
  if (problem) throw problem;
  return record;
}
