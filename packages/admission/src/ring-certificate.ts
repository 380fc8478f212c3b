import { X509Certificate, createHash } from 'node:crypto';
import { ImeError, describeInput, parseDomain } from '@ime/core';
import { peerIdFromString } from '@libp2p/peer-id';

/**
 * Ring certificates (SPEC §3): the bootstrap's CA binds a peer's libp2p PeerId and its enterprise
 * domain in an X.509 certificate whose subject key *is* the peer's Ed25519 libp2p key. A peer that
 * presents such a certificate over a Noise-authenticated connection therefore proves both that the
 * authority admitted it and that the certificate is its own, with no second key pair to manage.
 *
 * Node's X509Certificate checks the signature and the issuer; the profile details it does not expose
 * on Node 20 (version, key usage bits, criticality, the signature algorithm, exact validity times)
 * are read from the DER with the small reader below, so this module needs no ASN.1 library.
 */

/** Upper bound for a certificate from outside; ours are well under 2 KiB. */
export const MAX_CERTIFICATE_BYTES = 16 * 1024;
/** The subjectAltName URI that names the peer, followed by its PeerId. */
export const PEER_URI_PREFIX = 'urn:ime:peer:';

export type RingCertificateErrorCode =
  | 'E_CERT_MALFORMED'
  | 'E_CERT_AUTHORITY'
  | 'E_CERT_NOT_YET_VALID'
  | 'E_CERT_EXPIRED'
  | 'E_CERT_PROFILE'
  | 'E_CERT_PEER_MISMATCH'
  | 'E_CERT_ARGUMENT';

export interface RingCertificateInfo {
  readonly peerId: string;
  /** Lower case, no trailing dot. */
  readonly domain: string;
  /** Lower-case hex of the serial's magnitude (no sign byte); the form roster entries carry. */
  readonly serialHex: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** SHA-256 of the certificate's DER, hex. */
  readonly fingerprintHex: string;
}

export interface RingAuthorityTrust {
  readonly certificateDer: Uint8Array;
}

export interface ExpectedRingPeer {
  /** When given, the certificate must name exactly this PeerId (e.g. the Noise-authenticated remote). */
  readonly peerId?: string;
  readonly nowMs: number;
  /**
   * Accept a certificate past its notAfter (everything else is still checked): for a peer reloading
   * its own enrollment, where expiry is something to report and renew, not a reason to forget it.
   */
  readonly allowExpired?: boolean;
}

const DAY_MS = 86_400_000;

// Encoded OID contents (the bytes after tag and length), compared as hex.
const OID_SHA256_WITH_RSA = '2a864886f70d01010b';
const OID_KEY_USAGE = '551d0f';
const OID_SUBJECT_ALT_NAME = '551d11';
const OID_BASIC_CONSTRAINTS = '551d13';
const OID_AUTHORITY_KEY_ID = '551d23';
const OID_EXT_KEY_USAGE = '551d25';
const OID_SUBJECT_KEY_ID = '551d0e';
const OID_SERVER_AUTH = '2b06010505070301';
const OID_CLIENT_AUTH = '2b06010505070302';
/** Extensions this profile understands; any other extension marked critical is refused. */
const KNOWN_EXTENSIONS = new Set([
  OID_KEY_USAGE,
  OID_SUBJECT_ALT_NAME,
  OID_BASIC_CONSTRAINTS,
  OID_AUTHORITY_KEY_ID,
  OID_EXT_KEY_USAGE,
  OID_SUBJECT_KEY_ID,
]);

// KeyUsage bit string, first content byte: digitalSignature is bit 0, keyCertSign bit 5, cRLSign bit 6.
const KU_DIGITAL_SIGNATURE = 0x80;
const KU_CERT_SIGN = 0x04;
const KU_CRL_SIGN = 0x02;

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Verifies a peer's ring certificate against the ring authority and returns what it binds.
 * Checks, in order: it parses (E_CERT_MALFORMED); the authority issued and signed it
 * (E_CERT_AUTHORITY); `nowMs` is inside its validity (E_CERT_NOT_YET_VALID, E_CERT_EXPIRED); it
 * follows the ring profile (E_CERT_PROFILE); its key is the Ed25519 key of the PeerId in its subject,
 * and that PeerId is the expected one (E_CERT_PEER_MISMATCH).
 */
export function verifyRingCertificate(
  certificateDer: Uint8Array,
  authority: RingAuthorityTrust,
  expected: ExpectedRingPeer,
): RingCertificateInfo {
  const nowMs = expected?.nowMs;
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) {
    throw new ImeError('E_CERT_ARGUMENT', 'verifying a certificate needs the current time (nowMs)');
  }
  if (expected.peerId !== undefined && typeof expected.peerId !== 'string') {
    throw new ImeError('E_CERT_ARGUMENT', 'the expected PeerId must be a string');
  }

  const parsed = parseCertificate(certificateDer, 'E_CERT_MALFORMED', 'certificate');
  const ca = parseCertificate(authority?.certificateDer, 'E_CERT_AUTHORITY', 'authority certificate');

  checkAuthority(parsed, ca, nowMs);

  if (nowMs < parsed.notBeforeMs) {
    throw new ImeError(
      'E_CERT_NOT_YET_VALID',
      `certificate is not valid before ${new Date(parsed.notBeforeMs).toISOString()}`,
      { notBeforeMs: parsed.notBeforeMs },
    );
  }
  if (nowMs > parsed.notAfterMs && expected.allowExpired !== true) {
    throw new ImeError('E_CERT_EXPIRED', `certificate expired at ${new Date(parsed.notAfterMs).toISOString()}`, {
      notAfterMs: parsed.notAfterMs,
    });
  }

  const { peerId, domain } = checkProfile(parsed);
  checkPeer(parsed, peerId, expected.peerId);

  return {
    peerId,
    domain,
    serialHex: parsed.serialHex,
    notBeforeMs: parsed.notBeforeMs,
    notAfterMs: parsed.notAfterMs,
    fingerprintHex: sha256Hex(parsed.der),
  };
}

/** Whole days left before the certificate expires; negative once it has. */
export function daysUntilExpiry(info: Pick<RingCertificateInfo, 'notAfterMs'>, nowMs: number): number {
  return Math.floor((info.notAfterMs - nowMs) / DAY_MS);
}

/** SHA-256 of the authority certificate's DER, hex: how a signed configuration names its signer. */
export function authorityFingerprint(certificateDer: Uint8Array): string {
  if (!(certificateDer instanceof Uint8Array) || certificateDer.length === 0) {
    throw new ImeError('E_CERT_MALFORMED', 'authority certificate: expected DER bytes');
  }
  if (certificateDer.length > MAX_CERTIFICATE_BYTES) {
    throw new ImeError(
      'E_CERT_MALFORMED',
      `authority certificate: ${certificateDer.length} bytes is over the ${MAX_CERTIFICATE_BYTES}-byte limit`,
    );
  }
  return sha256Hex(certificateDer);
}

// ---------------------------------------------------------------------------------------------------

interface ParsedCertificate {
  readonly der: Uint8Array;
  readonly x509: X509Certificate;
  /** TBSCertificate version field: 0 (v1) when absent. */
  readonly version: number;
  readonly serialHex: string;
  readonly serialPositive: boolean;
  readonly innerAlgorithmHex: string;
  readonly outerAlgorithmHex: string;
  readonly signatureAlgorithmOid: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Anything between subjectPublicKeyInfo and the extensions (unique identifiers). */
  readonly hasUniqueIds: boolean;
  readonly extensions: ReadonlyMap<string, Extension>;
}

interface Extension {
  readonly critical: boolean;
  readonly value: Uint8Array;
}

function parseCertificate(der: unknown, code: 'E_CERT_MALFORMED' | 'E_CERT_AUTHORITY', what: string): ParsedCertificate {
  if (!(der instanceof Uint8Array)) {
    throw new ImeError(code, `${what}: expected DER bytes, got ${describeInput(der)}`);
  }
  if (der.length > MAX_CERTIFICATE_BYTES) {
    throw new ImeError(code, `${what}: ${der.length} bytes is over the ${MAX_CERTIFICATE_BYTES}-byte limit`, {
      bytes: der.length,
      limit: MAX_CERTIFICATE_BYTES,
    });
  }
  // X509Certificate also accepts PEM; only DER is a certificate on this wire.
  if (der.length === 0 || der[0] !== 0x30) throw new ImeError(code, `${what}: not a DER certificate`);
  const bytes = Uint8Array.from(der); // a private copy: the caller's buffer may change after we check it
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(bytes);
  } catch {
    throw new ImeError(code, `${what}: not a valid X.509 certificate`);
  }
  try {
    return { der: bytes, x509, ...readCertificateFields(bytes) };
  } catch (err) {
    const why = err instanceof DerError ? err.message : 'unreadable structure';
    throw new ImeError(code, `${what}: not a valid X.509 certificate (${why})`);
  }
}

function checkAuthority(cert: ParsedCertificate, ca: ParsedCertificate, nowMs: number): void {
  if (!ca.x509.ca) throw new ImeError('E_CERT_AUTHORITY', 'authority certificate is not a CA certificate');
  if (nowMs < ca.notBeforeMs || nowMs > ca.notAfterMs) {
    throw new ImeError('E_CERT_AUTHORITY', 'authority certificate is outside its validity period', {
      notBeforeMs: ca.notBeforeMs,
      notAfterMs: ca.notAfterMs,
    });
  }
  let ok: boolean;
  try {
    ok = cert.x509.checkIssued(ca.x509) && cert.x509.verify(ca.x509.publicKey);
  } catch {
    ok = false;
  }
  if (!ok) throw new ImeError('E_CERT_AUTHORITY', 'certificate was not issued by the ring authority');
}

function checkProfile(cert: ParsedCertificate): { peerId: string; domain: string } {
  const bad = (why: string): ImeError => new ImeError('E_CERT_PROFILE', `certificate does not follow the ring profile: ${why}`);

  if (cert.version !== 2) throw bad('not an X.509 v3 certificate');
  if (!cert.serialPositive) throw bad('serial number is not positive');
  if (cert.signatureAlgorithmOid !== OID_SHA256_WITH_RSA || cert.innerAlgorithmHex !== cert.outerAlgorithmHex) {
    throw bad('signature algorithm is not sha256WithRSAEncryption');
  }
  if (cert.hasUniqueIds) throw bad('unique identifiers are not allowed');
  for (const [oid, ext] of cert.extensions) {
    if (ext.critical && !KNOWN_EXTENSIONS.has(oid)) throw bad(`unknown critical extension ${oid}`);
  }

  const subject = readSubject(cert.x509.subject);
  if (!subject) throw bad('subject must be exactly CN=<PeerId> and O=<domain>');
  let domain: string;
  try {
    domain = parseDomain(subject.o);
  } catch {
    throw bad(`organization ${describeInput(subject.o)} is not a domain`);
  }
  if (domain !== subject.o) throw bad('organization must be a lower-case domain without a trailing dot');
  const peerId = subject.cn;
  if (!isCanonicalEd25519PeerId(peerId)) throw bad(`common name ${describeInput(peerId)} is not an Ed25519 PeerId`);

  // Node's `ca` also looks at keyUsage, so a cA TRUE certificate without keyCertSign reads as not a
  // CA there; the profile wants the flag itself false. DER omits a FALSE default: an empty SEQUENCE.
  const basic = cert.extensions.get(OID_BASIC_CONSTRAINTS);
  if (!basic || basic.value.length !== 2 || basic.value[0] !== 0x30 || basic.value[1] !== 0x00 || cert.x509.ca) {
    throw bad('basicConstraints must be present with cA false');
  }

  const keyUsage = cert.extensions.get(OID_KEY_USAGE);
  if (!keyUsage?.critical) throw bad('keyUsage must be present and critical');
  const usage = readKeyUsage(keyUsage.value);
  if (usage === undefined || (usage & KU_DIGITAL_SIGNATURE) === 0 || (usage & (KU_CERT_SIGN | KU_CRL_SIGN)) !== 0) {
    throw bad('keyUsage must allow digitalSignature and not certificate or CRL signing');
  }

  const eku = cert.extensions.get(OID_EXT_KEY_USAGE);
  const purposes = eku ? readOidList(eku.value) : undefined;
  if (!purposes?.includes(OID_SERVER_AUTH) || !purposes.includes(OID_CLIENT_AUTH)) {
    throw bad('extKeyUsage must include serverAuth and clientAuth');
  }

  if (!cert.extensions.has(OID_AUTHORITY_KEY_ID)) throw bad('authorityKeyIdentifier is missing');

  const san = cert.extensions.get(OID_SUBJECT_ALT_NAME);
  const names = san ? readGeneralNames(san.value) : undefined;
  const expectedNames = [`dns:${domain}`, `uri:${PEER_URI_PREFIX}${peerId}`];
  if (!names || names.length !== 2 || !expectedNames.every((n) => names.includes(n))) {
    throw bad('subjectAltName must be exactly DNS:<domain> and URI:urn:ime:peer:<PeerId>');
  }

  if (cert.x509.publicKey.asymmetricKeyType !== 'ed25519') throw bad('subject key is not an Ed25519 key');
  return { peerId, domain };
}

function checkPeer(cert: ParsedCertificate, peerId: string, expectedPeerId: string | undefined): void {
  if (expectedPeerId !== undefined && expectedPeerId !== peerId) {
    throw new ImeError(
      'E_CERT_PEER_MISMATCH',
      `certificate names peer ${describeInput(peerId)}, expected ${describeInput(expectedPeerId)}`,
    );
  }
  const spki = cert.x509.publicKey.export({ type: 'spki', format: 'der' });
  const raw = spki.subarray(ED25519_SPKI_PREFIX.length);
  const peerKey = ed25519KeyOf(peerId);
  if (
    spki.length !== ED25519_SPKI_PREFIX.length + 32 ||
    !spki.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX) ||
    peerKey === undefined ||
    !Buffer.from(peerKey).equals(raw)
  ) {
    throw new ImeError('E_CERT_PEER_MISMATCH', `certificate key is not the key of peer ${describeInput(peerId)}`);
  }
}

/** Node prints the subject one attribute per line, with special characters escaped. */
function readSubject(subject: string): { cn: string; o: string } | undefined {
  const lines = subject.split('\n');
  if (lines.length !== 2) return undefined;
  let cn: string | undefined;
  let o: string | undefined;
  for (const line of lines) {
    if (line.startsWith('CN=') && cn === undefined) cn = line.slice(3);
    else if (line.startsWith('O=') && o === undefined) o = line.slice(2);
    else return undefined;
  }
  return cn !== undefined && o !== undefined ? { cn, o } : undefined;
}

function isCanonicalEd25519PeerId(s: string): boolean {
  try {
    const id = peerIdFromString(s);
    return id.type === 'Ed25519' && id.toString() === s;
  } catch {
    return false;
  }
}

function ed25519KeyOf(peerId: string): Uint8Array | undefined {
  try {
    const id = peerIdFromString(peerId);
    return id.type === 'Ed25519' ? id.publicKey.raw : undefined;
  } catch {
    return undefined;
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// --- a minimal DER reader, enough for the certificate fields above -------------------------------------

class DerError extends Error {}

interface Tlv {
  readonly tag: number;
  /** The whole element: tag, length and contents. */
  readonly der: Uint8Array;
  readonly contents: Uint8Array;
}

const MAX_LENGTH_BYTES = 3; // lengths up to 16 MiB; certificates are far smaller

/** Reads the elements that exactly fill `bytes`; DER rules only (definite, minimal lengths). */
function readAll(bytes: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const start = offset;
    const tag = bytes[offset++]!;
    if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not used in certificates');
    if (offset >= bytes.length) throw new DerError('truncated element');
    let length = bytes[offset++]!;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n === 0) throw new DerError('indefinite length');
      if (n > MAX_LENGTH_BYTES || offset + n > bytes.length) throw new DerError('bad length');
      if (bytes[offset] === 0) throw new DerError('non-minimal length');
      length = 0;
      for (let i = 0; i < n; i++) length = length * 256 + bytes[offset++]!;
      if (length < 0x80) throw new DerError('non-minimal length');
    }
    if (offset + length > bytes.length) throw new DerError('truncated element');
    out.push({ tag, der: bytes.subarray(start, offset + length), contents: bytes.subarray(offset, offset + length) });
    offset += length;
  }
  return out;
}

function readOne(bytes: Uint8Array, tag: number, what: string): Tlv {
  const all = readAll(bytes);
  const first = all[0];
  if (all.length !== 1 || !first || first.tag !== tag) throw new DerError(`${what} is not a single element`);
  return first;
}

function expectTag(node: Tlv | undefined, tag: number, what: string): Tlv {
  if (!node || node.tag !== tag) throw new DerError(`${what} missing`);
  return node;
}

function readCertificateFields(der: Uint8Array): Omit<ParsedCertificate, 'der' | 'x509'> {
  const certificate = readOne(der, 0x30, 'certificate');
  const [tbs, outerAlgorithm, signature, ...extra] = readAll(certificate.contents);
  if (extra.length > 0) throw new DerError('trailing fields after the signature');
  expectTag(tbs, 0x30, 'TBSCertificate');
  expectTag(outerAlgorithm, 0x30, 'signature algorithm');
  const sig = expectTag(signature, 0x03, 'signature');
  if (sig.contents[0] !== 0) throw new DerError('signature has unused bits');

  const fields = readAll(tbs!.contents);
  let i = 0;
  let version = 0;
  if (fields[0]?.tag === 0xa0) {
    const v = readOne(fields[0].contents, 0x02, 'version');
    if (v.contents.length !== 1) throw new DerError('bad version');
    version = v.contents[0]!;
    i = 1;
  }
  const serial = expectTag(fields[i++], 0x02, 'serial number').contents;
  const innerAlgorithm = expectTag(fields[i++], 0x30, 'TBS signature algorithm');
  expectTag(fields[i++], 0x30, 'issuer');
  const validity = expectTag(fields[i++], 0x30, 'validity');
  expectTag(fields[i++], 0x30, 'subject');
  expectTag(fields[i++], 0x30, 'subjectPublicKeyInfo');
  let hasUniqueIds = false;
  const extensions = new Map<string, Extension>();
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.tag === 0xa3 && i === fields.length - 1) {
      readExtensions(f.contents, extensions);
    } else if (f.tag === 0x81 || f.tag === 0x82 || f.tag === 0xa1 || f.tag === 0xa2) {
      hasUniqueIds = true;
    } else {
      throw new DerError('unexpected field in TBSCertificate');
    }
  }

  if (serial.length === 0 || serial.length > 21) throw new DerError('bad serial number length');
  if (serial.length > 1 && serial[0] === 0 && (serial[1]! & 0x80) === 0) throw new DerError('non-minimal serial number');
  const serialPositive = (serial[0]! & 0x80) === 0 && serial.some((b) => b !== 0);
  const magnitude = serial[0] === 0 ? serial.subarray(1) : serial;

  const [notBefore, notAfter, ...more] = readAll(validity.contents);
  if (!notBefore || !notAfter || more.length > 0) throw new DerError('bad validity');

  const algorithmOid = readAll(innerAlgorithm.contents)[0];
  return {
    version,
    serialHex: Buffer.from(magnitude).toString('hex'),
    serialPositive,
    innerAlgorithmHex: Buffer.from(innerAlgorithm.der).toString('hex'),
    outerAlgorithmHex: Buffer.from(outerAlgorithm!.der).toString('hex'),
    signatureAlgorithmOid: algorithmOid?.tag === 0x06 ? Buffer.from(algorithmOid.contents).toString('hex') : '',
    notBeforeMs: readTime(notBefore),
    notAfterMs: readTime(notAfter),
    hasUniqueIds,
    extensions,
  };
}

function readExtensions(explicit: Uint8Array, into: Map<string, Extension>): void {
  const list = readOne(explicit, 0x30, 'extensions');
  for (const ext of readAll(list.contents)) {
    if (ext.tag !== 0x30) throw new DerError('bad extension');
    const parts = readAll(ext.contents);
    const oid = expectTag(parts[0], 0x06, 'extension id');
    let critical = false;
    let valueIndex = 1;
    if (parts[1]?.tag === 0x01) {
      if (parts[1].contents.length !== 1) throw new DerError('bad critical flag');
      // DER encodes TRUE as ff and omits a FALSE default.
      if (parts[1].contents[0] !== 0xff) throw new DerError('non-DER critical flag');
      critical = true;
      valueIndex = 2;
    }
    const value = expectTag(parts[valueIndex], 0x04, 'extension value');
    if (parts.length !== valueIndex + 1) throw new DerError('bad extension');
    const id = Buffer.from(oid.contents).toString('hex');
    if (into.has(id)) throw new DerError('duplicate extension');
    into.set(id, { critical, value: value.contents });
  }
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), the only forms RFC 5280 allows. */
function readTime(node: Tlv): number {
  const text = Buffer.from(node.contents).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    year = Number(m[1]);
  } else {
    throw new DerError('bad time');
  }
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  if (back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw new DerError('bad time');
  }
  return ms;
}

/** The first byte of a KeyUsage BIT STRING (bits 0–7), or undefined when it is not one. */
function readKeyUsage(value: Uint8Array): number | undefined {
  try {
    const bits = readOne(value, 0x03, 'keyUsage');
    if (bits.contents.length < 2) return undefined;
    return bits.contents[1];
  } catch {
    return undefined;
  }
}

function readOidList(value: Uint8Array): string[] | undefined {
  try {
    const seq = readOne(value, 0x30, 'oid list');
    return readAll(seq.contents).map((o) => {
      if (o.tag !== 0x06) throw new DerError('not an oid');
      return Buffer.from(o.contents).toString('hex');
    });
  } catch {
    return undefined;
  }
}

/** GeneralNames as "dns:…" / "uri:…" / "other:<tag>"; undefined when unreadable. */
function readGeneralNames(value: Uint8Array): string[] | undefined {
  try {
    const seq = readOne(value, 0x30, 'general names');
    return readAll(seq.contents).map((n) => {
      const text = Buffer.from(n.contents).toString('latin1');
      if (n.tag === 0x82) return `dns:${text}`;
      if (n.tag === 0x86) return `uri:${text}`;
      return `other:${n.tag}`;
    });
  } catch {
    return undefined;
  }
}
