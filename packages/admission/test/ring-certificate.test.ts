import { describe, expect, it } from '@jest/globals';
import { type KeyObject, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id';
import {
  MAX_CERTIFICATE_BYTES,
  authorityFingerprint,
  daysUntilExpiry,
  verifyRingCertificate,
} from '../src/ring-certificate.js';

// The verifier is tested against certificates built here, field by field, with a small DER writer and
// node:crypto: an implementation independent of the bootstrap's forge-based one, and one that can
// break the profile in every way the verifier must notice. (The bootstrap's own certificates are
// checked against this verifier in packages/bootstrap/test/ring-authority.test.ts.)

// --- DER writer ---------------------------------------------------------------------------------------

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...parts: Uint8Array[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.of(tag), derLength(body.length), body]);
};
const seq = (...parts: Uint8Array[]): Buffer => tlv(0x30, ...parts);
const set = (...parts: Uint8Array[]): Buffer => tlv(0x31, ...parts);
const integer = (bytes: Uint8Array): Buffer => tlv(0x02, bytes);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const octets = (b: Uint8Array): Buffer => tlv(0x04, b);
const bits = (b: Uint8Array, unused = 0): Buffer => tlv(0x03, Buffer.of(unused), b);
const TRUE = tlv(0x01, Buffer.of(0xff));
const NULL = tlv(0x05);
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(ms: number): Buffer {
  const d = new Date(ms);
  const iso = d.toISOString(); // 2026-11-24T15:53:30.000Z
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(digits.slice(2))) : tlv(0x18, Buffer.from(digits));
}
const name = (...attrs: [string, string][]): Buffer => seq(...attrs.map(([o, v]) => set(seq(oid(o), utf8(v)))));
const extension = (id: string, critical: boolean, value: Uint8Array): Buffer =>
  critical ? seq(oid(id), TRUE, octets(value)) : seq(oid(id), octets(value));

const CN = '2.5.4.3';
const O = '2.5.4.10';
const OU = '2.5.4.11';
const SHA256_RSA = seq(oid('1.2.840.113549.1.1.11'), NULL);
const SHA384_RSA = seq(oid('1.2.840.113549.1.1.12'), NULL);
const BASIC_CONSTRAINTS = '2.5.29.19';
const KEY_USAGE = '2.5.29.15';
const EXT_KEY_USAGE = '2.5.29.37';
const SUBJECT_ALT_NAME = '2.5.29.17';
const SUBJECT_KEY_ID = '2.5.29.14';
const AUTHORITY_KEY_ID = '2.5.29.35';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

interface CertSpec {
  version?: number | null;
  serial?: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBeforeMs: number;
  notAfterMs: number;
  spki: Uint8Array;
  extensions: Uint8Array[];
  signKey: KeyObject;
  innerAlgorithm?: Uint8Array;
  outerAlgorithm?: Uint8Array;
  signHash?: string;
}

function buildCertificate(spec: CertSpec): Buffer {
  const version = spec.version === null ? [] : [tlv(0xa0, integer(Buffer.of(spec.version ?? 2)))];
  const extensions = spec.extensions.length > 0 ? [tlv(0xa3, seq(...spec.extensions))] : [];
  const tbs = seq(
    ...version,
    integer(spec.serial ?? Buffer.of(0x01, 0x23)),
    spec.innerAlgorithm ?? SHA256_RSA,
    spec.issuer,
    seq(time(spec.notBeforeMs), time(spec.notAfterMs)),
    spec.subject,
    spec.spki,
    ...extensions,
  );
  const signature = sign(spec.signHash ?? 'sha256', tbs, spec.signKey);
  return seq(tbs, spec.outerAlgorithm ?? SHA256_RSA, bits(signature));
}

// --- fixtures -----------------------------------------------------------------------------------------

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);
const NOT_BEFORE = NOW - DAY;
const NOT_AFTER = NOW + 365 * DAY;

interface TestAuthority {
  readonly key: KeyObject;
  readonly name: Buffer;
  readonly keyId: Buffer;
  readonly certificateDer: Buffer;
}

function makeAuthority(commonName = 'test ring authority', opts: { ca?: boolean; notAfterMs?: number } = {}): TestAuthority {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const keyId = createHash('sha1').update(spki).digest();
  const caName = name([CN, commonName]);
  const certificateDer = buildCertificate({
    issuer: caName,
    subject: caName,
    notBeforeMs: NOW - 30 * DAY,
    notAfterMs: opts.notAfterMs ?? NOW + 3650 * DAY,
    spki,
    extensions: [
      extension(BASIC_CONSTRAINTS, true, opts.ca === false ? seq() : seq(TRUE, integer(Buffer.of(0)))),
      extension(KEY_USAGE, true, bits(Buffer.of(0x06), 1)),
      extension(SUBJECT_KEY_ID, false, octets(keyId)),
    ],
    signKey: privateKey,
  });
  return { key: privateKey, name: caName, keyId, certificateDer };
}

interface TestPeer {
  readonly peerId: string;
  readonly raw: Uint8Array;
  readonly spki: Buffer;
}

function makePeer(): TestPeer {
  const { publicKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const raw = new Uint8Array(spki.subarray(spki.length - 32));
  const peerId = peerIdFromPublicKey(publicKeyFromRaw(raw)).toString();
  return { peerId, raw, spki };
}

interface PeerCertOptions {
  domain?: string;
  commonName?: string;
  subject?: Buffer;
  spki?: Uint8Array;
  notBeforeMs?: number;
  notAfterMs?: number;
  extensions?: Buffer[];
  replace?: Partial<Record<'basic' | 'ku' | 'eku' | 'san' | 'aki', Buffer | null>>;
  spec?: Partial<CertSpec>;
}

function peerCertificate(ca: TestAuthority, peer: TestPeer, o: PeerCertOptions = {}): Buffer {
  const domain = o.domain ?? 'acme.example';
  const cn = o.commonName ?? peer.peerId;
  const standard: Record<'basic' | 'ku' | 'eku' | 'san' | 'aki', Buffer> = {
    basic: extension(BASIC_CONSTRAINTS, true, seq()),
    ku: extension(KEY_USAGE, true, bits(Buffer.of(0x80), 7)),
    eku: extension(EXT_KEY_USAGE, false, seq(oid(SERVER_AUTH), oid(CLIENT_AUTH))),
    san: extension(SUBJECT_ALT_NAME, false, seq(tlv(0x82, Buffer.from(domain)), tlv(0x86, Buffer.from(`urn:ime:peer:${cn}`)))),
    aki: extension(AUTHORITY_KEY_ID, false, seq(tlv(0x80, ca.keyId))),
  };
  const extensions: Buffer[] = [];
  for (const k of ['basic', 'ku', 'eku', 'san', 'aki'] as const) {
    const replaced = o.replace?.[k];
    if (replaced === null) continue;
    extensions.push(replaced ?? standard[k]);
  }
  extensions.push(...(o.extensions ?? []));
  return buildCertificate({
    serial: Buffer.from('00e91f8d9d957906fe1ba42c310c12d547', 'hex'),
    issuer: ca.name,
    subject: o.subject ?? name([CN, cn], [O, domain]),
    notBeforeMs: o.notBeforeMs ?? NOT_BEFORE,
    notAfterMs: o.notAfterMs ?? NOT_AFTER,
    spki: o.spki ?? peer.spki,
    extensions,
    signKey: ca.key,
    ...o.spec,
  });
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? 'not-an-ime-error';
  }
  return undefined;
}

// RSA keys take ~100 ms each: a few authorities for the whole file.
const ca = makeAuthority();
const otherCa = makeAuthority(); // same name, different key
const strangerCa = makeAuthority('another ring authority');
const alice = makePeer();
const bob = makePeer();
const trust = { certificateDer: ca.certificateDer };
const good = peerCertificate(ca, alice);

describe('verifyRingCertificate: a profile certificate', () => {
  it('returns what the certificate binds', () => {
    const info = verifyRingCertificate(good, trust, { nowMs: NOW });
    expect(info).toEqual({
      peerId: alice.peerId,
      domain: 'acme.example',
      serialHex: 'e91f8d9d957906fe1ba42c310c12d547',
      notBeforeMs: NOT_BEFORE,
      notAfterMs: NOT_AFTER,
      fingerprintHex: createHash('sha256').update(good).digest('hex'),
    });
  });

  it('accepts the expected PeerId and refuses another', () => {
    expect(verifyRingCertificate(good, trust, { nowMs: NOW, peerId: alice.peerId }).peerId).toBe(alice.peerId);
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: NOW, peerId: bob.peerId }))).toBe('E_CERT_PEER_MISMATCH');
  });

  it('does not depend on the caller keeping its buffer unchanged', () => {
    const copy = Uint8Array.from(good);
    const info = verifyRingCertificate(copy, trust, { nowMs: NOW });
    copy.fill(0);
    expect(info.peerId).toBe(alice.peerId);
  });
});

describe('verifyRingCertificate: authority', () => {
  it('refuses a certificate from another CA with the same name', () => {
    const forged = peerCertificate(otherCa, alice);
    expect(codeOf(() => verifyRingCertificate(forged, trust, { nowMs: NOW }))).toBe('E_CERT_AUTHORITY');
  });

  it('refuses a certificate from a differently named CA', () => {
    const forged = peerCertificate(strangerCa, alice);
    expect(codeOf(() => verifyRingCertificate(forged, trust, { nowMs: NOW }))).toBe('E_CERT_AUTHORITY');
  });

  it('refuses a certificate naming our CA as issuer but signed by another key', () => {
    const forged = peerCertificate({ ...ca, key: otherCa.key }, alice);
    expect(codeOf(() => verifyRingCertificate(forged, trust, { nowMs: NOW }))).toBe('E_CERT_AUTHORITY');
  });

  it('refuses a trust anchor that is not a CA, expired, malformed or missing', () => {
    const notCa = makeAuthority('not a ca', { ca: false });
    expect(codeOf(() => verifyRingCertificate(peerCertificate(notCa, alice), { certificateDer: notCa.certificateDer }, { nowMs: NOW }))).toBe(
      'E_CERT_AUTHORITY',
    );
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: NOW + 3651 * DAY }))).toBe('E_CERT_AUTHORITY');
    expect(codeOf(() => verifyRingCertificate(good, { certificateDer: Buffer.from('nope') }, { nowMs: NOW }))).toBe('E_CERT_AUTHORITY');
    expect(codeOf(() => verifyRingCertificate(good, { certificateDer: new Uint8Array(MAX_CERTIFICATE_BYTES + 1) }, { nowMs: NOW }))).toBe(
      'E_CERT_AUTHORITY',
    );
    expect(codeOf(() => verifyRingCertificate(good, {} as { certificateDer: Uint8Array }, { nowMs: NOW }))).toBe('E_CERT_AUTHORITY');
  });

  it('refuses its own CA certificate presented as a peer certificate', () => {
    expect(codeOf(() => verifyRingCertificate(ca.certificateDer, trust, { nowMs: NOW }))).not.toBeUndefined();
  });
});

describe('verifyRingCertificate: validity', () => {
  it('is valid from notBefore through notAfter, inclusive', () => {
    expect(verifyRingCertificate(good, trust, { nowMs: NOT_BEFORE }).peerId).toBe(alice.peerId);
    expect(verifyRingCertificate(good, trust, { nowMs: NOT_AFTER }).peerId).toBe(alice.peerId);
  });

  it('refuses a certificate not yet valid', () => {
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: NOT_BEFORE - 1 }))).toBe('E_CERT_NOT_YET_VALID');
  });

  it('refuses an expired certificate', () => {
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: NOT_AFTER + 1 }))).toBe('E_CERT_EXPIRED');
  });

  it('accepts an expired certificate when asked to, checking everything else', () => {
    expect(verifyRingCertificate(good, trust, { nowMs: NOT_AFTER + DAY, allowExpired: true }).notAfterMs).toBe(NOT_AFTER);
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: NOT_BEFORE - 1, allowExpired: true }))).toBe('E_CERT_NOT_YET_VALID');
    expect(codeOf(() => verifyRingCertificate(peerCertificate(otherCa, alice), trust, { nowMs: NOT_AFTER + DAY, allowExpired: true }))).toBe(
      'E_CERT_AUTHORITY',
    );
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: NOT_AFTER + DAY, allowExpired: true, peerId: bob.peerId }))).toBe(
      'E_CERT_PEER_MISMATCH',
    );
  });

  it('reads GeneralizedTime (years from 2050) as well as UTCTime', () => {
    const late = Date.UTC(2051, 0, 2, 3, 4, 5);
    const longCa = makeAuthority('long ring authority', { notAfterMs: Date.UTC(2060, 0, 1) });
    const der = peerCertificate(longCa, alice, { notAfterMs: late });
    expect(verifyRingCertificate(der, { certificateDer: longCa.certificateDer }, { nowMs: NOW }).notAfterMs).toBe(late);
  });

  it('needs a current time', () => {
    expect(codeOf(() => verifyRingCertificate(good, trust, { nowMs: Number.NaN }))).toBe('E_CERT_ARGUMENT');
    expect(codeOf(() => verifyRingCertificate(good, trust, {} as { nowMs: number }))).toBe('E_CERT_ARGUMENT');
  });
});

describe('verifyRingCertificate: malformed input', () => {
  it.each([
    ['empty', new Uint8Array(0)],
    ['garbage', Buffer.from('not a certificate at all')],
    ['PEM text', Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')],
    ['truncated', good.subarray(0, good.length - 1)],
    ['a trailing byte', Buffer.concat([good, Buffer.of(0)])],
    ['a bare sequence', Buffer.from('3000', 'hex')],
    ['over 16 KiB', Buffer.concat([good, Buffer.alloc(MAX_CERTIFICATE_BYTES)])],
  ])('refuses %s', (_what, der) => {
    expect(codeOf(() => verifyRingCertificate(der, trust, { nowMs: NOW }))).toBe('E_CERT_MALFORMED');
  });

  it('refuses a certificate with a duplicated extension (RFC 5280 §4.2)', () => {
    const der = peerCertificate(ca, alice, { extensions: [extension(EXT_KEY_USAGE, false, seq(oid(SERVER_AUTH), oid(CLIENT_AUTH)))] });
    expect(codeOf(() => verifyRingCertificate(der, trust, { nowMs: NOW }))).toBe('E_CERT_MALFORMED');
  });

  it.each([null, undefined, 'MIIB', 42, [0x30, 0x00]])('refuses %j instead of bytes', (value) => {
    expect(codeOf(() => verifyRingCertificate(value as unknown as Uint8Array, trust, { nowMs: NOW }))).toBe('E_CERT_MALFORMED');
  });

  it('refuses every certificate with one byte changed', () => {
    const accepted: number[] = [];
    for (let i = 0; i < good.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const bad = Buffer.from(good);
        bad[i]! ^= mask;
        const code = codeOf(() => verifyRingCertificate(bad, trust, { nowMs: NOW }));
        if (code === undefined || code === 'not-an-ime-error') accepted.push(i);
      }
    }
    expect(accepted).toEqual([]);
  });
});

describe('verifyRingCertificate: the ring profile', () => {
  const unknownCritical = extension('1.3.6.1.4.1.99999.1', true, seq());
  const profileCases: [string, () => Buffer][] = [
    ['a v1 certificate', () => peerCertificate(ca, alice, { spec: { version: null, extensions: [] } })],
    ['a v2 certificate', () => peerCertificate(ca, alice, { spec: { version: 1 } })],
    ['a negative serial', () => peerCertificate(ca, alice, { spec: { serial: Buffer.of(0x80, 0x01) } })],
    ['a zero serial', () => peerCertificate(ca, alice, { spec: { serial: Buffer.of(0x00) } })],
    [
      'sha384WithRSAEncryption',
      () => peerCertificate(ca, alice, { spec: { innerAlgorithm: SHA384_RSA, outerAlgorithm: SHA384_RSA, signHash: 'sha384' } }),
    ],
    ['a CA certificate', () => peerCertificate(ca, alice, { replace: { basic: extension(BASIC_CONSTRAINTS, true, seq(TRUE)) } })],
    ['no basicConstraints', () => peerCertificate(ca, alice, { replace: { basic: null } })],
    ['no keyUsage', () => peerCertificate(ca, alice, { replace: { ku: null } })],
    ['a non-critical keyUsage', () => peerCertificate(ca, alice, { replace: { ku: extension(KEY_USAGE, false, bits(Buffer.of(0x80), 7)) } })],
    ['keyUsage without digitalSignature', () => peerCertificate(ca, alice, { replace: { ku: extension(KEY_USAGE, true, bits(Buffer.of(0x20), 5)) } })],
    ['keyUsage with keyCertSign', () => peerCertificate(ca, alice, { replace: { ku: extension(KEY_USAGE, true, bits(Buffer.of(0x84), 2)) } })],
    ['no extKeyUsage', () => peerCertificate(ca, alice, { replace: { eku: null } })],
    ['serverAuth only', () => peerCertificate(ca, alice, { replace: { eku: extension(EXT_KEY_USAGE, false, seq(oid(SERVER_AUTH))) } })],
    ['no subjectAltName', () => peerCertificate(ca, alice, { replace: { san: null } })],
    [
      'a subjectAltName without the peer URI',
      () => peerCertificate(ca, alice, { replace: { san: extension(SUBJECT_ALT_NAME, false, seq(tlv(0x82, Buffer.from('acme.example')))) } }),
    ],
    [
      'a subjectAltName naming another domain',
      () =>
        peerCertificate(ca, alice, {
          replace: {
            san: extension(
              SUBJECT_ALT_NAME,
              false,
              seq(tlv(0x82, Buffer.from('globex.example')), tlv(0x86, Buffer.from(`urn:ime:peer:${alice.peerId}`))),
            ),
          },
        }),
    ],
    [
      'a subjectAltName naming another peer',
      () =>
        peerCertificate(ca, alice, {
          replace: {
            san: extension(SUBJECT_ALT_NAME, false, seq(tlv(0x82, Buffer.from('acme.example')), tlv(0x86, Buffer.from(`urn:ime:peer:${bob.peerId}`)))),
          },
        }),
    ],
    [
      'an extra subjectAltName',
      () =>
        peerCertificate(ca, alice, {
          replace: {
            san: extension(
              SUBJECT_ALT_NAME,
              false,
              seq(
                tlv(0x82, Buffer.from('acme.example')),
                tlv(0x86, Buffer.from(`urn:ime:peer:${alice.peerId}`)),
                tlv(0x82, Buffer.from('evil.example')),
              ),
            ),
          },
        }),
    ],
    ['no authorityKeyIdentifier', () => peerCertificate(ca, alice, { replace: { aki: null } })],
    ['an unknown critical extension', () => peerCertificate(ca, alice, { extensions: [unknownCritical] })],
    ['an RSA subject key', () => peerCertificate(ca, alice, { spki: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }) })],
    ['an organization that is not a domain', () => peerCertificate(ca, alice, { domain: 'acme example' })],
    ['an upper-case organization', () => peerCertificate(ca, alice, { domain: 'Acme.example' })],
    ['no organization', () => peerCertificate(ca, alice, { subject: name([CN, alice.peerId]) })],
    ['an extra subject attribute', () => peerCertificate(ca, alice, { subject: name([CN, alice.peerId], [O, 'acme.example'], [OU, 'ring']) })],
    ['two common names', () => peerCertificate(ca, alice, { subject: name([CN, alice.peerId], [CN, alice.peerId], [O, 'acme.example']) })],
    ['a common name that is not a PeerId', () => peerCertificate(ca, alice, { commonName: 'alice' })],
  ];

  it.each(profileCases)('refuses %s', (_what, make) => {
    expect(codeOf(() => verifyRingCertificate(make(), trust, { nowMs: NOW }))).toBe('E_CERT_PROFILE');
  });

  it('refuses a secp256k1 PeerId as common name', async () => {
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString();
    const der = peerCertificate(ca, alice, { commonName: secp });
    expect(codeOf(() => verifyRingCertificate(der, trust, { nowMs: NOW }))).toBe('E_CERT_PROFILE');
  });
});

describe('verifyRingCertificate: the key is the PeerId', () => {
  it('refuses a certificate naming one peer with another peer’s key', () => {
    const der = peerCertificate(ca, alice, { spki: bob.spki });
    expect(codeOf(() => verifyRingCertificate(der, trust, { nowMs: NOW }))).toBe('E_CERT_PEER_MISMATCH');
  });

  it('refuses it even when the caller expects the named peer', () => {
    const der = peerCertificate(ca, alice, { spki: bob.spki });
    expect(codeOf(() => verifyRingCertificate(der, trust, { nowMs: NOW, peerId: alice.peerId }))).toBe('E_CERT_PEER_MISMATCH');
  });
});

describe('helpers', () => {
  it('counts whole days until expiry, negative after', () => {
    expect(daysUntilExpiry({ notAfterMs: NOW + 14 * DAY }, NOW)).toBe(14);
    expect(daysUntilExpiry({ notAfterMs: NOW + 14 * DAY - 1 }, NOW)).toBe(13);
    expect(daysUntilExpiry({ notAfterMs: NOW }, NOW)).toBe(0);
    expect(daysUntilExpiry({ notAfterMs: NOW - 1 }, NOW)).toBe(-1);
  });

  it('fingerprints the authority certificate as SHA-256 of its DER', () => {
    expect(authorityFingerprint(ca.certificateDer)).toBe(createHash('sha256').update(ca.certificateDer).digest('hex'));
    expect(authorityFingerprint(ca.certificateDer)).not.toBe(authorityFingerprint(otherCa.certificateDer));
    expect(codeOf(() => authorityFingerprint(new Uint8Array(MAX_CERTIFICATE_BYTES + 1)))).toBe('E_CERT_MALFORMED');
  });
});
