import {
  type KeyObject,
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
} from 'node:crypto';
import { MAX_CERTIFICATE_BYTES, PEER_URI_PREFIX } from '@ime/admission';
import { ImeError, describeInput, isImeError, parseDomain } from '@ime/core';
import { peerIdFromString } from '@libp2p/peer-id';
import forge from 'node-forge';

/**
 * The ring authority (SPEC §3): the bootstrap's CA. It issues each admitted peer a certificate whose
 * subject key is the peer's own Ed25519 libp2p key, and signs the ring configuration.
 *
 * node-forge builds the certificate structures; node:crypto makes every signature, because forge's
 * RSA signing is about 80× slower (stack-notes). forge also only writes RSA subject keys, so a peer
 * certificate is built with a placeholder key and its subjectPublicKeyInfo replaced by the Ed25519
 * one before the TBSCertificate is signed. The result must satisfy `verifyRingCertificate` of
 * @ime/admission, whose profile this file mirrors.
 */

export type RingAuthorityErrorCode =
  | 'E_AUTHORITY_INVALID'
  | 'E_AUTHORITY_MALFORMED'
  | 'E_AUTHORITY_KEY_MISMATCH'
  | 'E_CERT_REQUEST';

export interface RingAuthorityMaterial {
  /** PKCS#8 PEM. A secret: store it with the bootstrap's state, never log it. */
  readonly privateKeyPem: string;
  readonly certificateDer: Uint8Array;
}

export interface CreateRingAuthorityOptions {
  readonly ringName: string;
  readonly nowMs: number;
  readonly validityYears?: number;
}

export interface PeerCertificateRequest {
  readonly peerId: string;
  readonly domain: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Hex, positive, at most 20 bytes; 16 random bytes when absent. */
  readonly serialHex?: string;
}

/** Structurally `RingConfigurationSigner` of @ime/admission. */
export interface RingAuthoritySigner {
  readonly privateKey: KeyObject;
  readonly authorityCertificateDer: Uint8Array;
}

export interface RingAuthority {
  readonly certificateDer: Uint8Array;
  /** SHA-256 of `certificateDer`, hex. */
  readonly fingerprintHex: string;
  readonly signer: RingAuthoritySigner;
  /** X.509 DER. Times are truncated to whole seconds (X.509 has no finer resolution). */
  issuePeerCertificate(request: PeerCertificateRequest): Uint8Array;
}

const RSA_BITS = 2048;
const MAX_PRIVATE_KEY_PEM_LENGTH = 32 * 1024;
const RING_NAME = /^[a-z0-9.-]{1,64}$/;
const MAX_VALIDITY_YEARS = 100;
// Peers whose clocks lag the bootstrap's must still accept a brand-new authority.
const AUTHORITY_BACKDATE_MS = 60 * 60 * 1000;
const DEFAULT_SERIAL_BYTES = 16;
const MAX_SERIAL_BYTES = 20; // RFC 5280 §4.1.2.2, including a sign byte
const OID_ED25519 = '1.3.101.112';
// Positions in a v3 TBSCertificate: version, serial, signature, issuer, validity, subject, spki, ….
const TBS_ISSUER = 3;
const TBS_SUBJECT = 5;
const TBS_SPKI = 6;

/** Makes a new ring CA: an RSA 2048 key and a self-signed certificate, valid `validityYears`. */
export function createRingAuthority(options: CreateRingAuthorityOptions): RingAuthorityMaterial {
  const { ringName, nowMs, validityYears = 10 } = options ?? ({} as CreateRingAuthorityOptions);
  if (typeof ringName !== 'string' || !RING_NAME.test(ringName)) {
    throw new ImeError(
      'E_AUTHORITY_INVALID',
      `ring name ${describeInput(ringName)} must be 1–64 characters of a-z, 0-9, "." and "-"`,
    );
  }
  checkTime(nowMs, 'nowMs', 'E_AUTHORITY_INVALID');
  if (!Number.isSafeInteger(validityYears) || validityYears < 1 || validityYears > MAX_VALIDITY_YEARS) {
    throw new ImeError('E_AUTHORITY_INVALID', `validityYears must be an integer from 1 to ${MAX_VALIDITY_YEARS}`);
  }

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: RSA_BITS });
  const notBefore = wholeSeconds(nowMs - AUTHORITY_BACKDATE_MS);
  const notAfter = new Date(notBefore.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + validityYears);

  const cert = forge.pki.createCertificate();
  cert.serialNumber = serialContents(undefined).toString('hex');
  cert.publicKey = forgePublicKey(publicKey);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const name = [utf8Attribute('commonName', `${ringName} ring authority`)];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  const certificateDer = signCertificate(cert, tbsOf(cert), privateKey);

  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificateDer,
  };
}

/** Loads a ring CA from its stored key and certificate, checking that they belong together. */
export function loadRingAuthority(material: RingAuthorityMaterial): RingAuthority {
  const { privateKeyPem, certificateDer } = material ?? ({} as RingAuthorityMaterial);
  if (!(certificateDer instanceof Uint8Array) || certificateDer.length === 0 || certificateDer.length > MAX_CERTIFICATE_BYTES) {
    throw new ImeError('E_AUTHORITY_MALFORMED', `the authority certificate must be DER of at most ${MAX_CERTIFICATE_BYTES} bytes`);
  }
  if (typeof privateKeyPem !== 'string' || privateKeyPem.length === 0 || privateKeyPem.length > MAX_PRIVATE_KEY_PEM_LENGTH) {
    throw new ImeError('E_AUTHORITY_MALFORMED', 'the authority private key must be a PEM text');
  }
  const der = Uint8Array.from(certificateDer);

  let x509: X509Certificate;
  try {
    if (der[0] !== 0x30) throw new Error('not DER');
    x509 = new X509Certificate(der);
  } catch {
    throw new ImeError('E_AUTHORITY_MALFORMED', 'the authority certificate is not a DER X.509 certificate');
  }
  if (!x509.ca || x509.publicKey.asymmetricKeyType !== 'rsa') {
    throw new ImeError('E_AUTHORITY_MALFORMED', 'the authority certificate is not an RSA CA certificate');
  }
  if ((x509.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < RSA_BITS) {
    throw new ImeError('E_AUTHORITY_MALFORMED', `the authority key must be RSA ${RSA_BITS} bits or more (SPEC §3)`);
  }

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(privateKeyPem);
  } catch {
    // The parser's message could quote the input; the input is a secret.
    throw new ImeError('E_AUTHORITY_MALFORMED', 'the authority private key could not be read');
  }
  if (privateKey.asymmetricKeyType !== 'rsa') {
    throw new ImeError('E_AUTHORITY_MALFORMED', 'the authority private key is not an RSA key');
  }
  const keySpki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const certSpki = x509.publicKey.export({ type: 'spki', format: 'der' });
  if (!keySpki.equals(certSpki)) {
    throw new ImeError('E_AUTHORITY_KEY_MISMATCH', 'the authority private key does not belong to the authority certificate');
  }

  // The issuer of every peer certificate is the CA's subject copied byte for byte, so name matching
  // never depends on forge re-encoding the name the same way.
  const caAsn1 = forge.asn1.fromDer(binary(der));
  const caFields = tbsFields((caAsn1.value as forge.asn1.Asn1[])[0]);
  const caSubject = caFields[TBS_SUBJECT];
  if (caFields[0]?.tagClass !== forge.asn1.Class.CONTEXT_SPECIFIC || !caSubject) {
    throw new ImeError('E_AUTHORITY_MALFORMED', 'the authority certificate is not an X.509 v3 certificate');
  }
  const caKeyId = authorityKeyId(der);
  const caPublicKey = forgePublicKey(x509.publicKey);
  const fingerprintHex = createHash('sha256').update(der).digest('hex');

  return {
    certificateDer: Uint8Array.from(der),
    fingerprintHex,
    signer: { privateKey, authorityCertificateDer: Uint8Array.from(der) },
    issuePeerCertificate(request: PeerCertificateRequest): Uint8Array {
      const { peerId, domain, notBefore, notAfter, serial, ed25519Key } = checkRequest(request);

      const cert = forge.pki.createCertificate();
      cert.serialNumber = serial.toString('hex');
      // Placeholder so forge can lay out the TBSCertificate; replaced by the peer's key below.
      cert.publicKey = caPublicKey;
      cert.validity.notBefore = notBefore;
      cert.validity.notAfter = notAfter;
      cert.setSubject([utf8Attribute('commonName', peerId), utf8Attribute('organizationName', domain)]);
      cert.setExtensions([
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: domain },
            { type: 6, value: `${PEER_URI_PREFIX}${peerId}` },
          ],
        },
        { name: 'authorityKeyIdentifier', keyIdentifier: binary(caKeyId) },
      ]);

      const tbs = tbsOf(cert);
      const fields = tbsFields(tbs);
      fields[TBS_ISSUER] = caSubject;
      fields[TBS_SPKI] = ed25519Spki(ed25519Key);
      return signCertificate(cert, tbs, privateKey);
    },
  };
}

// ---------------------------------------------------------------------------------------------------

interface CheckedRequest {
  readonly peerId: string;
  readonly domain: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serial: Buffer;
  readonly ed25519Key: Uint8Array;
}

function checkRequest(request: PeerCertificateRequest): CheckedRequest {
  const bad = (why: string): ImeError => new ImeError('E_CERT_REQUEST', `certificate request: ${why}`);
  if (typeof request !== 'object' || request === null) throw bad('missing');
  const { peerId, domain, notBeforeMs, notAfterMs, serialHex } = request;

  let ed25519Key: Uint8Array | undefined;
  if (typeof peerId === 'string' && peerId.length <= 128) {
    try {
      const id = peerIdFromString(peerId);
      // The certificate names the canonical text form, the one every peer compares against.
      if (id.type === 'Ed25519' && id.toString() === peerId) ed25519Key = id.publicKey.raw;
    } catch {
      ed25519Key = undefined;
    }
  }
  if (!ed25519Key) throw bad(`${describeInput(peerId)} is not an Ed25519 PeerId`);

  let normalDomain: string;
  try {
    normalDomain = parseDomain(domain);
  } catch (err) {
    throw new ImeError('E_CERT_REQUEST', `certificate request: ${isImeError(err) ? err.message : 'invalid domain'}`, {
      reason: isImeError(err) ? err.code : undefined,
    });
  }

  checkTime(notBeforeMs, 'notBeforeMs', 'E_CERT_REQUEST');
  checkTime(notAfterMs, 'notAfterMs', 'E_CERT_REQUEST');
  const notBefore = wholeSeconds(notBeforeMs);
  const notAfter = wholeSeconds(notAfterMs);
  if (notAfter.getTime() <= notBefore.getTime()) throw bad('notAfterMs must be at least a second after notBeforeMs');

  return { peerId, domain: normalDomain, notBefore, notAfter, serial: serialContents(serialHex), ed25519Key };
}

/** DER INTEGER contents of a positive serial: minimal, with a 00 byte when the high bit is set. */
function serialContents(serialHex: string | undefined): Buffer {
  let magnitude: Buffer;
  if (serialHex === undefined) {
    do {
      magnitude = stripZeros(randomBytes(DEFAULT_SERIAL_BYTES));
    } while (magnitude.length === 0);
  } else {
    if (typeof serialHex !== 'string' || !/^[0-9a-fA-F]{1,42}$/.test(serialHex)) {
      throw new ImeError('E_CERT_REQUEST', 'certificate request: serialHex must be hex');
    }
    magnitude = stripZeros(Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex'));
    if (magnitude.length === 0) throw new ImeError('E_CERT_REQUEST', 'certificate request: the serial must be positive');
  }
  const contents = magnitude[0]! & 0x80 ? Buffer.concat([Buffer.of(0), magnitude]) : magnitude;
  if (contents.length > MAX_SERIAL_BYTES) {
    throw new ImeError('E_CERT_REQUEST', `certificate request: the serial must fit in ${MAX_SERIAL_BYTES} bytes`);
  }
  return contents;
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

function checkTime(v: unknown, field: string, code: 'E_AUTHORITY_INVALID' | 'E_CERT_REQUEST'): asserts v is number {
  // X.509 GeneralizedTime stops at year 9999.
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= Date.UTC(9999, 0, 1)) {
    throw new ImeError(code, `${field} must be a time in milliseconds between 1970 and 9999`);
  }
}

function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function tbsOf(cert: forge.pki.Certificate): forge.asn1.Asn1 {
  cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption!;
  cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption!;
  // getTBSCertificate exists in node-forge (lib/x509.js) but is missing from @types/node-forge.
  const pki = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  return pki.getTBSCertificate(cert);
}

function tbsFields(tbs: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  if (!tbs || !Array.isArray(tbs.value)) throw new ImeError('E_AUTHORITY_MALFORMED', 'unexpected TBSCertificate structure');
  return tbs.value;
}

/** Signs the TBSCertificate with node:crypto and assembles Certificate ::= { tbs, algorithm, signature }. */
function signCertificate(cert: forge.pki.Certificate, tbs: forge.asn1.Asn1, key: KeyObject): Uint8Array {
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  cert.tbsCertificate = tbs;
  cert.signature = sign('sha256', tbsDer, key).toString('binary');
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  return new Uint8Array(Buffer.from(der, 'binary'));
}

/** RFC 5280 prefers UTF8String for names; forge writes PrintableString unless told otherwise. */
function utf8Attribute(name: string, value: string): forge.pki.CertificateField {
  // @types/node-forge types valueTagClass as a tag class; forge reads it as the value's ASN.1 type.
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

/** SubjectPublicKeyInfo { algorithm id-Ed25519 (no parameters), BIT STRING raw key } (RFC 8410). */
function ed25519Spki(raw: Uint8Array): forge.asn1.Asn1 {
  const { asn1 } = forge;
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(OID_ED25519).getBytes()),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\0${binary(raw)}`),
  ]);
}

function forgePublicKey(key: KeyObject): forge.pki.PublicKey {
  return forge.pki.publicKeyFromPem(key.export({ type: 'spki', format: 'pem' }) as string);
}

/**
 * The key identifier peer certificates name as their authority: the CA's subjectKeyIdentifier when
 * it has one (OpenSSL matches the two exactly), else the RFC 5280 method-1 hash of its key.
 */
function authorityKeyId(caDer: Uint8Array): Buffer {
  const ca = forge.pki.certificateFromAsn1(forge.asn1.fromDer(binary(caDer)));
  const ski = ca.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ski?.subjectKeyIdentifier) return Buffer.from(ski.subjectKeyIdentifier, 'hex');
  const hash = forge.pki.getPublicKeyFingerprint(ca.publicKey as forge.pki.rsa.PublicKey, { type: 'RSAPublicKey' });
  return Buffer.from((hash as forge.util.ByteStringBuffer).getBytes(), 'binary');
}

function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('binary');
}
