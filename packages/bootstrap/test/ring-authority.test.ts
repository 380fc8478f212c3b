import { describe, expect, it } from '@jest/globals';
import { type KeyObject, X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id';
import forge from 'node-forge';
// The verifier every peer runs; the authority's certificates must pass it.
import { DEFAULT_RING_PARAMETERS, signRingConfiguration, verifyRingCertificate, verifySignedRingConfiguration } from '@ime/admission';
import { createRingAuthority, loadRingAuthority } from '../src/ring-authority.js';

const DAY = 86_400_000;
const YEAR = 365 * DAY;
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? 'not-an-ime-error';
  }
  return undefined;
}

interface Peer {
  readonly peerId: string;
  readonly raw: Uint8Array;
  readonly privateKey: KeyObject;
}

function newPeer(): Peer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const raw = new Uint8Array(spki.subarray(spki.length - 32));
  return { peerId: peerIdFromPublicKey(publicKeyFromRaw(raw)).toString(), raw, privateKey };
}

const RSA_SPKI = forge.asn1.fromDer(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('binary'));

/**
 * Parses a certificate with forge to read its extensions. forge reads only RSA keys, so an Ed25519
 * subject key is swapped for an RSA one first (only the key field changes; the signature is not checked).
 */
function forgeCertificate(der: Uint8Array): forge.pki.Certificate {
  const asn1 = forge.asn1.fromDer(Buffer.from(der).toString('binary'));
  const tbs = (asn1.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[];
  const spki = tbs[6]!;
  const algorithm = forge.asn1.derToOid((((spki.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[])[0]!.value as string));
  if (algorithm === '1.3.101.112') tbs[6] = RSA_SPKI;
  return forge.pki.certificateFromAsn1(asn1);
}

// RSA key generation dominates: three authorities for the whole file.
const material = createRingAuthority({ ringName: 'intercompanymedianetwork', nowMs: NOW });
const authority = loadRingAuthority(material);
const twinMaterial = createRingAuthority({ ringName: 'intercompanymedianetwork', nowMs: NOW }); // same name, other key
const twin = loadRingAuthority(twinMaterial);
const shortMaterial = createRingAuthority({ ringName: 'short.ring', nowMs: NOW, validityYears: 1 });
const caX509 = new X509Certificate(material.certificateDer);
const alice = newPeer();
const bob = newPeer();

const issue = (peer: Peer, extra: Partial<Parameters<typeof authority.issuePeerCertificate>[0]> = {}): Uint8Array =>
  authority.issuePeerCertificate({ peerId: peer.peerId, domain: 'acme.example', notBeforeMs: NOW, notAfterMs: NOW + YEAR, ...extra });

describe('createRingAuthority', () => {
  it('makes a self-signed RSA 2048 CA certificate named after the ring', () => {
    expect(caX509.ca).toBe(true);
    expect(caX509.subject).toBe('CN=intercompanymedianetwork ring authority');
    expect(caX509.issuer).toBe(caX509.subject);
    expect(caX509.publicKey.asymmetricKeyType).toBe('rsa');
    expect(caX509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(caX509.verify(caX509.publicKey)).toBe(true);
    expect(caX509.checkIssued(caX509)).toBe(true);
  });

  it('sets the CA extensions: basicConstraints cA pathLen 0, keyUsage keyCertSign + cRLSign, both critical; a key identifier', () => {
    const cert = forgeCertificate(material.certificateDer);
    const basic = cert.getExtension('basicConstraints') as { cA: boolean; pathLenConstraint: number; critical: boolean };
    expect(basic).toMatchObject({ cA: true, pathLenConstraint: 0, critical: true });
    const usage = cert.getExtension('keyUsage') as Record<string, boolean>;
    expect(usage).toMatchObject({ keyCertSign: true, cRLSign: true, critical: true, digitalSignature: false });
    const ski = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string };
    expect(ski.subjectKeyIdentifier).toMatch(/^[0-9a-f]{40}$/);
    expect(cert.siginfo.algorithmOid).toBe(forge.pki.oids.sha256WithRSAEncryption);
  });

  it('uses a positive serial and a validity of validityYears from (shortly before) now', () => {
    const cert = forgeCertificate(material.certificateDer);
    expect(Number.parseInt(cert.serialNumber.slice(0, 2), 16) & 0x80).toBe(0);
    const notBefore = Date.parse(caX509.validFrom);
    const notAfter = Date.parse(caX509.validTo);
    expect(notBefore).toBeLessThanOrEqual(NOW);
    expect(NOW - notBefore).toBeLessThanOrEqual(2 * 3_600_000);
    expect(new Date(notAfter).getUTCFullYear()).toBe(new Date(notBefore).getUTCFullYear() + 10);
    const short = new X509Certificate(shortMaterial.certificateDer);
    expect(new Date(Date.parse(short.validTo)).getUTCFullYear()).toBe(new Date(Date.parse(short.validFrom)).getUTCFullYear() + 1);
  });

  it('returns the key as PKCS#8 PEM', () => {
    expect(material.privateKeyPem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
  });

  it.each([
    ['an empty ring name', { ringName: '', nowMs: NOW }],
    ['an upper-case ring name', { ringName: 'Ring', nowMs: NOW }],
    ['no time', { ringName: 'ring', nowMs: Number.NaN }],
    ['0 years', { ringName: 'ring', nowMs: NOW, validityYears: 0 }],
    ['fractional years', { ringName: 'ring', nowMs: NOW, validityYears: 1.5 }],
  ])('refuses %s', (_what, options) => {
    expect(codeOf(() => createRingAuthority(options))).toBe('E_AUTHORITY_INVALID');
  });
});

describe('loadRingAuthority', () => {
  it('exposes the certificate, its fingerprint and a signer', () => {
    expect(Buffer.from(authority.certificateDer).equals(Buffer.from(material.certificateDer))).toBe(true);
    expect(authority.fingerprintHex).toBe(createHash('sha256').update(material.certificateDer).digest('hex'));
    expect(authority.signer.privateKey.asymmetricKeyType).toBe('rsa');
    expect(Buffer.from(authority.signer.authorityCertificateDer).equals(Buffer.from(material.certificateDer))).toBe(true);
  });

  it('refuses a key that does not belong to the certificate', () => {
    const mixed = { privateKeyPem: twinMaterial.privateKeyPem, certificateDer: material.certificateDer };
    expect(codeOf(() => loadRingAuthority(mixed))).toBe('E_AUTHORITY_KEY_MISMATCH');
  });

  it('refuses an unreadable key without quoting it', () => {
    const broken = material.privateKeyPem.replace(/[A-Za-z]{8}/, 'AAAAAAAA');
    try {
      loadRingAuthority({ privateKeyPem: broken, certificateDer: material.certificateDer });
      throw new Error('accepted');
    } catch (err) {
      expect((err as { code?: string }).code).toMatch(/^E_AUTHORITY_(MALFORMED|KEY_MISMATCH)$/);
      const body = material.privateKeyPem.split('\n')[3]!;
      expect((err as Error).message).not.toContain(body);
      expect(JSON.stringify(err)).not.toContain(body);
    }
    expect(codeOf(() => loadRingAuthority({ privateKeyPem: 'not a key', certificateDer: material.certificateDer }))).toBe(
      'E_AUTHORITY_MALFORMED',
    );
  });

  it('refuses an RSA key under 2048 bits', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const cert = forge.pki.createCertificate();
    cert.serialNumber = '01';
    cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
    cert.validity.notAfter = new Date(Date.now() + YEAR);
    cert.setSubject([{ name: 'commonName', value: 'weak ring authority' }]);
    cert.setIssuer([{ name: 'commonName', value: 'weak ring authority' }]);
    cert.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, critical: true }]);
    cert.sign(forge.pki.privateKeyFromPem(pem), forge.md.sha256.create());
    const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
    expect(new X509Certificate(der).ca).toBe(true);
    expect(codeOf(() => loadRingAuthority({ privateKeyPem: pem, certificateDer: der }))).toBe('E_AUTHORITY_MALFORMED');
  });

  it('refuses a certificate that is not a CA, is malformed or is too large', () => {
    const peerCert = issue(alice);
    expect(codeOf(() => loadRingAuthority({ privateKeyPem: material.privateKeyPem, certificateDer: peerCert }))).toBe(
      'E_AUTHORITY_MALFORMED',
    );
    expect(codeOf(() => loadRingAuthority({ privateKeyPem: material.privateKeyPem, certificateDer: Buffer.from('nope') }))).toBe(
      'E_AUTHORITY_MALFORMED',
    );
    expect(codeOf(() => loadRingAuthority({ privateKeyPem: material.privateKeyPem, certificateDer: new Uint8Array(16 * 1024 + 1) }))).toBe(
      'E_AUTHORITY_MALFORMED',
    );
  });
});

describe('issuePeerCertificate', () => {
  const der = issue(alice, { domain: 'Acme.Example' });
  const cert = new X509Certificate(der);

  it('makes a certificate node:crypto parses, signed by and issued from the authority', () => {
    expect(cert.verify(caX509.publicKey)).toBe(true);
    expect(cert.checkIssued(caX509)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.issuer).toBe(caX509.subject);
  });

  it('binds the PeerId and the domain', () => {
    expect(cert.subject).toBe(`CN=${alice.peerId}\nO=acme.example`);
    expect(cert.subjectAltName).toBe(`DNS:acme.example, URI:urn:ime:peer:${alice.peerId}`);
  });

  it('carries the peer’s own Ed25519 libp2p key', () => {
    expect(cert.publicKey.asymmetricKeyType).toBe('ed25519');
    const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
    expect(spki.subarray(0, 12).toString('hex')).toBe('302a300506032b6570032100');
    expect(Buffer.from(spki.subarray(12)).equals(Buffer.from(alice.raw))).toBe(true);
  });

  it('follows the leaf profile', () => {
    const f = forgeCertificate(der);
    expect(f.getExtension('basicConstraints')).toMatchObject({ cA: false });
    expect(f.getExtension('keyUsage')).toMatchObject({ digitalSignature: true, keyCertSign: false, critical: true });
    expect(f.getExtension('extKeyUsage')).toMatchObject({ serverAuth: true, clientAuth: true });
    const aki = f.getExtension('authorityKeyIdentifier') as { value: string } | undefined;
    expect(aki).toBeDefined();
    const caSki = (forgeCertificate(material.certificateDer).getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string })
      .subjectKeyIdentifier;
    expect(Buffer.from(aki!.value, 'binary').toString('hex')).toContain(caSki);
    expect(f.siginfo.algorithmOid).toBe(forge.pki.oids.sha256WithRSAEncryption);
  });

  it('passes the ring’s certificate verifier', () => {
    const info = verifyRingCertificate(der, { certificateDer: authority.certificateDer }, { nowMs: NOW + DAY, peerId: alice.peerId });
    expect(info).toMatchObject({ peerId: alice.peerId, domain: 'acme.example', notBeforeMs: NOW, notAfterMs: NOW + YEAR });
    expect(info.serialHex).toBe(cert.serialNumber.toLowerCase().replace(/^(00)+/, ''));
  });

  it('is refused under another authority of the same name', () => {
    const fromTwin = twin.issuePeerCertificate({ peerId: alice.peerId, domain: 'acme.example', notBeforeMs: NOW, notAfterMs: NOW + YEAR });
    expect(codeOf(() => verifyRingCertificate(fromTwin, { certificateDer: authority.certificateDer }, { nowMs: NOW + DAY }))).toBe(
      'E_CERT_AUTHORITY',
    );
    expect(new X509Certificate(fromTwin).checkIssued(caX509)).toBe(false);
  });

  it('uses 16 random bytes as a positive serial by default', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const s = new X509Certificate(issue(alice)).serialNumber.toLowerCase();
      const magnitude = s.replace(/^00/, '');
      expect(magnitude.length).toBeLessThanOrEqual(32);
      serials.add(magnitude);
    }
    expect(serials.size).toBe(20);
  });

  it('writes a given serial as a positive integer, with a 00 byte when the high bit is set', () => {
    const high = issue(alice, { serialHex: 'ff01' });
    expect(forgeCertificate(high).serialNumber).toBe('00ff01');
    expect(verifyRingCertificate(high, { certificateDer: authority.certificateDer }, { nowMs: NOW }).serialHex).toBe('ff01');
    const low = issue(alice, { serialHex: '0001' });
    expect(forgeCertificate(low).serialNumber).toBe('01');
    expect(verifyRingCertificate(low, { certificateDer: authority.certificateDer }, { nowMs: NOW }).serialHex).toBe('01');
  });

  it('truncates times to whole seconds', () => {
    const info = verifyRingCertificate(
      issue(alice, { notBeforeMs: NOW + 999, notAfterMs: NOW + YEAR + 999 }),
      { certificateDer: authority.certificateDer },
      { nowMs: NOW + DAY },
    );
    expect(info.notBeforeMs).toBe(NOW);
    expect(info.notAfterMs).toBe(NOW + YEAR);
  });

  it('writes times from 2050 on as GeneralizedTime', () => {
    const late = Date.UTC(2051, 5, 1);
    const f = forgeCertificate(issue(alice, { notAfterMs: late }));
    expect(f.validity.notAfter.getTime()).toBe(late);
  });

  it('works for mutual TLS 1.3 between two peers', async () => {
    const caPem = caX509.toString();
    const alicePem = new X509Certificate(issue(alice)).toString();
    const bobPem = new X509Certificate(issue(bob, { domain: 'globex.example' })).toString();
    const server = tls.createServer({
      key: alice.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      cert: alicePem,
      ca: caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    const serverSaw = new Promise<string>((resolve) => {
      server.on('secureConnection', (socket) => {
        resolve(socket.getPeerX509Certificate()?.subject ?? '');
        socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const clientSaw = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect(
          { host: '127.0.0.1', port, servername: 'acme.example', key: bob.privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: bobPem, ca: caPem, minVersion: 'TLSv1.3' },
          () => {
            resolve(socket.getPeerX509Certificate()?.subject ?? '');
            socket.end();
          },
        );
        socket.on('error', reject);
      });
      expect(clientSaw).toBe(`CN=${alice.peerId}\nO=acme.example`);
      expect(await serverSaw).toBe(`CN=${bob.peerId}\nO=globex.example`);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('issuePeerCertificate input checks', () => {
  it('refuses a PeerId that is not Ed25519', async () => {
    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString();
    expect(codeOf(() => issue(alice, { peerId: secp }))).toBe('E_CERT_REQUEST');
  });

  it.each([
    ['garbage PeerId', { peerId: 'alice' }],
    ['an empty PeerId', { peerId: '' }],
    ['a domain with a space', { domain: 'acme example' }],
    ['an empty domain', { domain: '' }],
    ['notAfter before notBefore', { notAfterMs: NOW - 1 }],
    ['notAfter in the same second', { notAfterMs: NOW + 999 }],
    ['a NaN time', { notBeforeMs: Number.NaN }],
    ['a time after 9999', { notAfterMs: Date.UTC(10_000, 0, 1) }],
    ['a zero serial', { serialHex: '00' }],
    ['a serial that is not hex', { serialHex: 'xyz' }],
    ['a serial over 20 bytes', { serialHex: 'ff'.repeat(20) }],
  ])('refuses %s', (_what, extra) => {
    expect(codeOf(() => issue(alice, extra))).toBe('E_CERT_REQUEST');
  });
});

describe('the authority signs ring configurations', () => {
  it('produces configurations the ring verifies', () => {
    const config = {
      sequence: 1,
      issuedAtMs: NOW,
      expiresAtMs: NOW + 7 * DAY,
      ringName: 'intercompanymedianetwork',
      ringSalt: new Uint8Array(32).fill(7),
      roster: [
        {
          peerId: alice.peerId,
          addresses: ['/ip4/127.0.0.1/tcp/4001'],
          domain: 'acme.example',
          certificateSerial: '01',
          certificateExpiresAtMs: NOW + YEAR,
          virtualNodes: 5,
        },
      ],
      parameters: DEFAULT_RING_PARAMETERS,
      bans: [],
      minSoftwareVersion: '',
      messageOfTheDay: '',
      bootstraps: [],
    };
    const signed = signRingConfiguration(config, authority.signer);
    expect(verifySignedRingConfiguration(signed, { authorityCertificateDer: authority.certificateDer }, { nowMs: NOW })).toEqual(config);
    expect(codeOf(() => verifySignedRingConfiguration(signed, { authorityCertificateDer: twin.certificateDer }, { nowMs: NOW }))).toBe(
      'E_RINGCONF_AUTHORITY',
    );
  });
});
