import {
  type KeyObject,
  X509Certificate,
  constants,
  createHash,
  createPublicKey,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
import { ImeError, decodeWire, describeInput, isImeError, parseDomain } from '@ime/core';
import { ime } from '@ime/wire';
import { peerIdFromString } from '@libp2p/peer-id';
import { MAX_CERTIFICATE_BYTES } from './ring-certificate.js';

/**
 * The signed ring configuration (SPEC §3): the one document every peer obeys — who is admitted
 * (roster), the ring's parameters, who is banned. The bootstrap's ring authority signs it; peers
 * accept a copy from anyone (bootstrap or neighbour) as long as the authority signed it and its
 * sequence is higher than the one they hold, which is what lets a change spread while the bootstrap
 * is down without letting a neighbour forge or roll back anything.
 *
 * The signature covers the encoded configuration bytes exactly as they travel, so verifying never
 * depends on re-encoding (protobuf encodings are not canonical).
 */

export const DEFAULT_RING_NAME = 'intercompanymedianetwork';
export const DEFAULT_VIRTUAL_NODES = 5;
/** Upper bound for a signed configuration from outside, checked before anything is parsed. */
export const MAX_SIGNED_CONFIGURATION_BYTES = 4 * 1024 * 1024;
export const RING_SALT_BYTES = 32;

export type RingConfigurationErrorCode =
  | 'E_RINGCONF_MALFORMED'
  | 'E_RINGCONF_AUTHORITY'
  | 'E_RINGCONF_SIGNATURE'
  | 'E_RINGCONF_EXPIRED'
  | 'E_RINGCONF_STALE'
  | 'E_RINGCONF_SIGNER'
  | 'E_RINGCONF_ARGUMENT'
  | 'E_AUTHORITY_KEY_MISMATCH';

export interface RosterEntry {
  /** Canonical base58 Ed25519 PeerId (`12D3KooW…`). */
  readonly peerId: string;
  /** Multiaddrs the peer listens on (at most 8). */
  readonly addresses: readonly string[];
  /** Lower case, no trailing dot. */
  readonly domain: string;
  /** Lower-case hex serial of the peer's ring certificate (as `RingCertificateInfo.serialHex`). */
  readonly certificateSerial: string;
  readonly certificateExpiresAtMs: number;
  readonly virtualNodes: number;
}

export interface RingParameters {
  readonly replicationFactor: number;
  readonly writeQuorum: number;
  readonly readQuorum: number;
  readonly recordTtlSec: number;
  readonly republishIntervalSec: number;
  readonly storageQuota: number;
  readonly pollIntervalSec: number;
}

export interface BanEntry {
  readonly peerId: string;
  readonly reason: string;
  readonly bannedAtMs: number;
}

export interface BootstrapEntry {
  readonly peerId: string;
  readonly addresses: readonly string[];
}

/** A decoded, validated `ime.v1.RingConfiguration`. */
export interface RingConfiguration {
  readonly sequence: number;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly ringName: string;
  readonly ringSalt: Uint8Array;
  readonly roster: readonly RosterEntry[];
  readonly parameters: RingParameters;
  readonly bans: readonly BanEntry[];
  /** `major.minor.patch`, or empty for no minimum. */
  readonly minSoftwareVersion: string;
  readonly messageOfTheDay: string;
  readonly bootstraps: readonly BootstrapEntry[];
}

export const DEFAULT_RING_PARAMETERS: RingParameters = Object.freeze({
  replicationFactor: 3,
  writeQuorum: 2,
  readQuorum: 2,
  recordTtlSec: 86_400,
  republishIntervalSec: 43_200,
  storageQuota: 100_000,
  pollIntervalSec: 30,
});

/** What signs configurations: the ring CA's RSA private key and its certificate. */
export interface RingConfigurationSigner {
  readonly privateKey: KeyObject;
  readonly authorityCertificateDer: Uint8Array;
}

export interface RingConfigurationTrust {
  readonly authorityCertificateDer: Uint8Array;
}

export interface VerifyRingConfigurationOptions {
  /** The sequence of the configuration already held; only a strictly higher one is accepted. */
  readonly knownSequence?: number;
  readonly nowMs: number;
}

/** The signed form as plain fields; `ime.v1.SignedRingConfiguration` instances fit it. */
export interface SignedRingConfigurationFields {
  readonly configuration: Uint8Array;
  readonly signature: Uint8Array;
  readonly authorityFingerprint: Uint8Array;
}

// Limits. Generous for operator-scale data, tight enough that a hostile document cannot make a peer
// do unbounded work or print unbounded text.
const RING_NAME = /^[a-z0-9.-]{1,64}$/;
const VERSION = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/;
// A multiaddr in text form: "/proto/value/proto/value…", printable ASCII, no empty component. The
// full protocol table lives in @multiformats/multiaddr; the ring only needs a sane, bounded string
// here and parses it where it dials.
const MULTIADDR = /^\/[a-z][a-z0-9-]*(\/[\x21-\x2e\x30-\x7e]+)*$/;
const SERIAL = /^(?:[0-9a-f]{2}){1,20}$/;
// Controls (including ANSI escapes) would let a configuration rewrite an operator's terminal.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const MAX_ADDRESS_LENGTH = 256;
const MAX_ADDRESSES = 8;
const MAX_VIRTUAL_NODES = 64;
const MAX_REPLICATION = 7;
const MIN_TTL_SEC = 60;
const MAX_TTL_SEC = 7 * 86_400;
const MAX_QUOTA = 1_000_000_000;
const MAX_POLL_SEC = 3600;
const MAX_MOTD_LENGTH = 512;
const MAX_BAN_REASON_LENGTH = 512;
const MAX_BOOTSTRAPS = 16;
const MAX_SIGNATURE_BYTES = 1024; // RSA 8192
const FINGERPRINT_BYTES = 32;

const SIGN_LABEL = Buffer.from('ime-ring-config-v1\0');

/**
 * Checks every field of a configuration; throws E_RINGCONF_MALFORMED naming the first bad field
 * (`details.field`, e.g. `roster[2].domain`).
 */
export function validateRingConfiguration(c: unknown): asserts c is RingConfiguration {
  if (!isObject(c)) throw malformed('configuration', 'must be an object');
  positiveSafeInteger(c.sequence, 'sequence');
  safeInteger(c.issuedAtMs, 'issuedAtMs', 0, Number.MAX_SAFE_INTEGER);
  safeInteger(c.expiresAtMs, 'expiresAtMs', 0, Number.MAX_SAFE_INTEGER);
  if ((c.expiresAtMs as number) <= (c.issuedAtMs as number)) throw malformed('expiresAtMs', 'must be after issuedAtMs');
  if (typeof c.ringName !== 'string' || !RING_NAME.test(c.ringName)) {
    throw malformed('ringName', 'must be 1–64 characters of a-z, 0-9, "." and "-"');
  }
  if (!(c.ringSalt instanceof Uint8Array) || c.ringSalt.length !== RING_SALT_BYTES) {
    throw malformed('ringSalt', `must be ${RING_SALT_BYTES} bytes`);
  }

  const roster = array(c.roster, 'roster');
  const seen = new Set<string>();
  roster.forEach((e, i) => {
    const at = `roster[${i}]`;
    if (!isObject(e)) throw malformed(at, 'must be an object');
    peerIdField(e.peerId, `${at}.peerId`);
    if (seen.has(e.peerId as string)) throw malformed(`${at}.peerId`, 'appears twice in the roster');
    seen.add(e.peerId as string);
    addressesField(e.addresses, `${at}.addresses`);
    domainField(e.domain, `${at}.domain`);
    if (typeof e.certificateSerial !== 'string' || !SERIAL.test(e.certificateSerial)) {
      throw malformed(`${at}.certificateSerial`, 'must be lower-case hex of 1–20 bytes');
    }
    positiveSafeInteger(e.certificateExpiresAtMs, `${at}.certificateExpiresAtMs`);
    safeInteger(e.virtualNodes, `${at}.virtualNodes`, 1, MAX_VIRTUAL_NODES);
  });

  const p = c.parameters;
  if (!isObject(p)) throw malformed('parameters', 'are missing');
  safeInteger(p.replicationFactor, 'parameters.replicationFactor', 1, MAX_REPLICATION);
  const n = p.replicationFactor as number;
  safeInteger(p.writeQuorum, 'parameters.writeQuorum', 1, n);
  safeInteger(p.readQuorum, 'parameters.readQuorum', 1, n);
  safeInteger(p.recordTtlSec, 'parameters.recordTtlSec', MIN_TTL_SEC, MAX_TTL_SEC);
  safeInteger(p.republishIntervalSec, 'parameters.republishIntervalSec', 1, (p.recordTtlSec as number) - 1);
  safeInteger(p.storageQuota, 'parameters.storageQuota', 0, MAX_QUOTA);
  safeInteger(p.pollIntervalSec, 'parameters.pollIntervalSec', 1, MAX_POLL_SEC);

  const bans = array(c.bans, 'bans');
  const banned = new Set<string>();
  bans.forEach((b, i) => {
    const at = `bans[${i}]`;
    if (!isObject(b)) throw malformed(at, 'must be an object');
    peerIdField(b.peerId, `${at}.peerId`);
    if (banned.has(b.peerId as string)) throw malformed(`${at}.peerId`, 'is banned twice');
    banned.add(b.peerId as string);
    textField(b.reason, `${at}.reason`, MAX_BAN_REASON_LENGTH);
    safeInteger(b.bannedAtMs, `${at}.bannedAtMs`, 0, Number.MAX_SAFE_INTEGER);
  });

  if (typeof c.minSoftwareVersion !== 'string' || (c.minSoftwareVersion !== '' && !VERSION.test(c.minSoftwareVersion))) {
    throw malformed('minSoftwareVersion', 'must be empty or like 1.2.3');
  }
  textField(c.messageOfTheDay, 'messageOfTheDay', MAX_MOTD_LENGTH);

  const bootstraps = array(c.bootstraps, 'bootstraps');
  if (bootstraps.length > MAX_BOOTSTRAPS) throw malformed('bootstraps', `must list at most ${MAX_BOOTSTRAPS}`);
  const boots = new Set<string>();
  bootstraps.forEach((b, i) => {
    const at = `bootstraps[${i}]`;
    if (!isObject(b)) throw malformed(at, 'must be an object');
    peerIdField(b.peerId, `${at}.peerId`);
    if (boots.has(b.peerId as string)) throw malformed(`${at}.peerId`, 'appears twice');
    boots.add(b.peerId as string);
    addressesField(b.addresses, `${at}.addresses`);
  });
}

/** Encodes a configuration exactly as it will be signed. Validates first. */
export function encodeRingConfiguration(config: RingConfiguration): Uint8Array {
  validateRingConfiguration(config);
  return ime.v1.RingConfiguration.encode(toWire(config)).finish();
}

/**
 * Signs a configuration with the ring authority's key: RSASSA-PKCS1-v1_5 / SHA-256 over
 * "ime-ring-config-v1\0" ‖ encoded configuration.
 */
export function signRingConfiguration(
  config: RingConfiguration,
  signer: RingConfigurationSigner,
): ime.v1.SignedRingConfiguration {
  const configuration = encodeRingConfiguration(config);
  const key = signer?.privateKey;
  if (!isKeyObject(key) || key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
    throw new ImeError('E_RINGCONF_SIGNER', 'the ring authority signs with an RSA private key');
  }
  const authority = authorityPublicKey(signer.authorityCertificateDer, 'E_RINGCONF_SIGNER');
  // A configuration signed by a key that does not match the pinned certificate would be refused by
  // every peer; better to fail here, where the operator sees it.
  const mine = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const theirs = authority.key.export({ type: 'spki', format: 'der' });
  if (!mine.equals(theirs)) {
    throw new ImeError('E_AUTHORITY_KEY_MISMATCH', 'the signing key does not belong to the authority certificate');
  }
  const signature = sign('sha256', Buffer.concat([SIGN_LABEL, configuration]), {
    key,
    padding: constants.RSA_PKCS1_PADDING,
  });
  const signed = ime.v1.SignedRingConfiguration.create({
    configuration,
    signature: new Uint8Array(signature),
    authorityFingerprint: authority.fingerprint,
  });
  const size = ime.v1.SignedRingConfiguration.encode(signed).len;
  if (size > MAX_SIGNED_CONFIGURATION_BYTES) {
    throw malformed(
      'configuration',
      `is ${size} bytes signed, over the ${MAX_SIGNED_CONFIGURATION_BYTES}-byte limit peers accept`,
    );
  }
  return signed;
}

/**
 * Verifies a signed configuration (an object or its encoded bytes) and returns the configuration.
 * In order: shape and size (E_RINGCONF_MALFORMED); signed by the trusted authority
 * (E_RINGCONF_AUTHORITY), with a valid signature (E_RINGCONF_SIGNATURE); the configuration decodes
 * and is valid (E_RINGCONF_MALFORMED); not expired (E_RINGCONF_EXPIRED); newer than `knownSequence`
 * (E_RINGCONF_STALE).
 */
export function verifySignedRingConfiguration(
  signed: unknown,
  trust: RingConfigurationTrust,
  options: VerifyRingConfigurationOptions,
): RingConfiguration {
  const nowMs = options?.nowMs;
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) {
    throw new ImeError('E_RINGCONF_ARGUMENT', 'verifying a configuration needs the current time (nowMs)');
  }
  const known = options.knownSequence;
  if (known !== undefined && (!Number.isSafeInteger(known) || known < 0)) {
    throw new ImeError('E_RINGCONF_ARGUMENT', 'knownSequence must be a non-negative integer');
  }

  const fields = signed instanceof Uint8Array ? decodeSignedRingConfiguration(signed) : checkSignedShape(signed);

  const authority = authorityPublicKey(trust?.authorityCertificateDer, 'E_RINGCONF_AUTHORITY');
  if (
    fields.authorityFingerprint.length !== FINGERPRINT_BYTES ||
    !timingSafeEqual(fields.authorityFingerprint, authority.fingerprint)
  ) {
    throw new ImeError('E_RINGCONF_AUTHORITY', 'configuration was signed by another authority');
  }

  let valid = false;
  try {
    valid = verify(
      'sha256',
      Buffer.concat([SIGN_LABEL, fields.configuration]),
      { key: authority.key, padding: constants.RSA_PKCS1_PADDING },
      fields.signature,
    );
  } catch {
    valid = false;
  }
  if (!valid) throw new ImeError('E_RINGCONF_SIGNATURE', 'configuration signature is not valid');

  const config = decodeConfiguration(fields.configuration);

  if (nowMs >= config.expiresAtMs) {
    const when = new Date(config.expiresAtMs).toISOString();
    throw new ImeError('E_RINGCONF_EXPIRED', `configuration ${config.sequence} expired at ${when}`, {
      sequence: config.sequence,
      expiresAtMs: config.expiresAtMs,
    });
  }
  if (known !== undefined && config.sequence <= known) {
    throw new ImeError('E_RINGCONF_STALE', `configuration ${config.sequence} is not newer than ${known}`, {
      sequence: config.sequence,
      knownSequence: known,
    });
  }
  return config;
}

/** Encodes a signed configuration for the wire or for storage; refuses one without all three fields. */
export function encodeSignedRingConfiguration(signed: ime.v1.SignedRingConfiguration.$Properties): Uint8Array {
  const fields = checkSignedShape(signed);
  return ime.v1.SignedRingConfiguration.encode({
    configuration: fields.configuration,
    signature: fields.signature,
    authorityFingerprint: fields.authorityFingerprint,
  }).finish();
}

/** Decodes (length-checked) and shape-checks a signed configuration; does not verify it. */
export function decodeSignedRingConfiguration(bytes: unknown): ime.v1.SignedRingConfiguration {
  let decoded: ime.v1.SignedRingConfiguration;
  try {
    decoded = decodeWire(ime.v1.SignedRingConfiguration, bytes, MAX_SIGNED_CONFIGURATION_BYTES, 'signed ring configuration');
  } catch (err) {
    throw asMalformed(err);
  }
  checkSignedShape(decoded);
  return decoded;
}

// ---------------------------------------------------------------------------------------------------

function checkSignedShape(signed: unknown): SignedRingConfigurationFields {
  if (!isObject(signed)) throw malformed('signed configuration', `must be an object or bytes, got ${describeInput(signed)}`);
  const { configuration, signature, authorityFingerprint } = signed;
  if (!(configuration instanceof Uint8Array) || configuration.length === 0) {
    throw malformed('signed configuration', 'has no configuration bytes');
  }
  if (configuration.length > MAX_SIGNED_CONFIGURATION_BYTES) {
    throw malformed('signed configuration', `is over the ${MAX_SIGNED_CONFIGURATION_BYTES}-byte limit`);
  }
  if (!(signature instanceof Uint8Array) || signature.length === 0 || signature.length > MAX_SIGNATURE_BYTES) {
    throw malformed('signed configuration', 'has no valid signature field');
  }
  if (!(authorityFingerprint instanceof Uint8Array) || authorityFingerprint.length !== FINGERPRINT_BYTES) {
    throw malformed('signed configuration', `must name its authority by a ${FINGERPRINT_BYTES}-byte fingerprint`);
  }
  return { configuration, signature, authorityFingerprint };
}

function decodeConfiguration(bytes: Uint8Array): RingConfiguration {
  let wire: ime.v1.RingConfiguration;
  try {
    wire = decodeWire(ime.v1.RingConfiguration, bytes, MAX_SIGNED_CONFIGURATION_BYTES, 'ring configuration');
  } catch (err) {
    throw asMalformed(err);
  }
  const config = fromWire(wire);
  validateRingConfiguration(config);
  return config;
}

function fromWire(w: ime.v1.RingConfiguration): unknown {
  const p = w.parameters;
  return {
    sequence: w.sequence,
    issuedAtMs: w.issuedAtMs,
    expiresAtMs: w.expiresAtMs,
    ringName: w.ringName,
    // Copies: decoded bytes may be views into a buffer the caller reuses.
    ringSalt: Uint8Array.from(w.ringSalt),
    roster: w.roster.map((e) => ({
      peerId: e.peerId,
      addresses: [...e.addresses],
      domain: e.domain,
      certificateSerial: e.certificateSerial,
      certificateExpiresAtMs: e.certificateExpiresAtMs,
      virtualNodes: e.virtualNodes,
    })),
    parameters:
      p == null
        ? undefined
        : {
            replicationFactor: p.replicationFactor,
            writeQuorum: p.writeQuorum,
            readQuorum: p.readQuorum,
            recordTtlSec: p.recordTtlSec,
            republishIntervalSec: p.republishIntervalSec,
            storageQuota: p.storageQuota,
            pollIntervalSec: p.pollIntervalSec,
          },
    bans: w.bans.map((b) => ({ peerId: b.peerId, reason: b.reason, bannedAtMs: b.bannedAtMs })),
    minSoftwareVersion: w.minSoftwareVersion,
    messageOfTheDay: w.messageOfTheDay,
    bootstraps: w.bootstraps.map((b) => ({ peerId: b.peerId, addresses: [...b.addresses] })),
  };
}

function toWire(c: RingConfiguration): ime.v1.RingConfiguration.$Properties {
  return {
    sequence: c.sequence,
    issuedAtMs: c.issuedAtMs,
    expiresAtMs: c.expiresAtMs,
    ringName: c.ringName,
    ringSalt: c.ringSalt,
    roster: c.roster.map((e) => ({
      peerId: e.peerId,
      addresses: [...e.addresses],
      domain: e.domain,
      certificateSerial: e.certificateSerial,
      certificateExpiresAtMs: e.certificateExpiresAtMs,
      virtualNodes: e.virtualNodes,
    })),
    parameters: { ...c.parameters },
    bans: c.bans.map((b) => ({ peerId: b.peerId, reason: b.reason, bannedAtMs: b.bannedAtMs })),
    minSoftwareVersion: c.minSoftwareVersion,
    messageOfTheDay: c.messageOfTheDay,
    bootstraps: c.bootstraps.map((b) => ({ peerId: b.peerId, addresses: [...b.addresses] })),
  };
}

function authorityPublicKey(
  der: unknown,
  code: 'E_RINGCONF_AUTHORITY' | 'E_RINGCONF_SIGNER',
): { key: KeyObject; fingerprint: Buffer } {
  if (!(der instanceof Uint8Array) || der.length === 0 || der.length > MAX_CERTIFICATE_BYTES || der[0] !== 0x30) {
    throw new ImeError(code, 'the authority certificate must be DER bytes of at most 16 KiB');
  }
  let key: KeyObject;
  try {
    key = new X509Certificate(der).publicKey;
  } catch {
    throw new ImeError(code, 'the authority certificate is not a valid X.509 certificate');
  }
  if (key.asymmetricKeyType !== 'rsa') throw new ImeError(code, 'the authority certificate does not hold an RSA key');
  return { key, fingerprint: createHash('sha256').update(der).digest() };
}

function asMalformed(err: unknown): ImeError {
  if (isImeError(err)) {
    return new ImeError('E_RINGCONF_MALFORMED', err.message, { field: 'configuration', cause: err.code });
  }
  return new ImeError('E_RINGCONF_MALFORMED', 'configuration could not be decoded', { field: 'configuration' });
}

function malformed(field: string, why: string): ImeError<'E_RINGCONF_MALFORMED'> {
  return new ImeError('E_RINGCONF_MALFORMED', `ring configuration: ${field} ${why}`, { field });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isKeyObject(v: unknown): v is KeyObject {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as KeyObject).asymmetricKeyType !== 'undefined' &&
    typeof (v as KeyObject).export === 'function'
  );
}

function array(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw malformed(field, 'must be a list');
  return v;
}

function safeInteger(v: unknown, field: string, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw malformed(field, `must be an integer from ${min} to ${max}`);
  }
}

function positiveSafeInteger(v: unknown, field: string): void {
  safeInteger(v, field, 1, Number.MAX_SAFE_INTEGER);
}

function peerIdField(v: unknown, field: string): void {
  let ok = false;
  if (typeof v === 'string' && v.length <= 128) {
    try {
      const id = peerIdFromString(v);
      // Admission compares PeerIds as strings, so only the canonical text form may appear.
      ok = id.type === 'Ed25519' && id.toString() === v;
    } catch {
      ok = false;
    }
  }
  if (!ok) throw malformed(field, `${describeInput(v)} is not an Ed25519 PeerId`);
}

function domainField(v: unknown, field: string): void {
  let normal: string;
  try {
    normal = parseDomain(v);
  } catch (err) {
    throw malformed(field, isImeError(err) ? `is not a valid domain (${err.code})` : 'is not a valid domain');
  }
  if (normal !== v) throw malformed(field, 'must be lower case without a trailing dot');
}

function addressesField(v: unknown, field: string): void {
  const list = array(v, field);
  if (list.length > MAX_ADDRESSES) throw malformed(field, `must list at most ${MAX_ADDRESSES} addresses`);
  list.forEach((a, i) => {
    if (typeof a !== 'string' || a.length > MAX_ADDRESS_LENGTH || !MULTIADDR.test(a)) {
      throw malformed(`${field}[${i}]`, `${describeInput(a)} is not a multiaddr of at most ${MAX_ADDRESS_LENGTH} characters`);
    }
  });
}

function textField(v: unknown, field: string, max: number): void {
  if (typeof v !== 'string' || v.length > max) throw malformed(field, `must be text of at most ${max} characters`);
  if (CONTROL.test(v)) throw malformed(field, 'must not contain control characters');
}
