import { type KeyObject, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIP } from 'node:net';
import { ImeError, describeInput } from '@ime/core';
import forge from 'node-forge';

/**
 * Self-signed certificates for VAP in encrypted mode: the peer's and each call manager's, as CUCM
 * makes its own (guide L2342–L2348). Each side imports the other's certificate as a trust anchor.
 *
 * OpenSSL refuses a self-signed certificate as its own anchor unless it may sign certificates, so
 * these carry basicConstraints cA=true (pathLen 0) with keyCertSign next to the TLS usages. forge
 * lays out the certificate; node:crypto makes the signature (forge's RSA is ~80× slower).
 */

export interface CreateVapCertificateOptions {
  readonly commonName: string;
  /** Validity in days from now (default 825, the longest TLS clients commonly accept). */
  readonly days?: number;
  /** Host names and IP addresses for subjectAltName (default: the common name when it is one). */
  readonly altNames?: readonly string[];
}

export interface VapCertificate {
  readonly certPem: string;
  /** PKCS#8. A secret. */
  readonly keyPem: string;
}

const RSA_BITS = 2048;
const MAX_DAYS = 3650;
// Clocks of the two sides may differ by a little; a certificate made now must work at once.
const BACKDATE_MS = 60 * 60 * 1000;

export function createVapCertificate(options: CreateVapCertificateOptions): VapCertificate {
  const { commonName, days = 825 } = options ?? ({} as CreateVapCertificateOptions);
  if (typeof commonName !== 'string' || commonName.length < 1 || commonName.length > 64 || !/^[\x20-\x7e]+$/.test(commonName)) {
    throw new ImeError('E_VAP_BAD_CERTIFICATE', `the common name ${describeInput(commonName)} must be 1–64 printable ASCII characters`);
  }
  if (!Number.isSafeInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new ImeError('E_VAP_BAD_CERTIFICATE', `days must be an integer from 1 to ${MAX_DAYS}`);
  }
  const altNames = options.altNames ?? (isHostName(commonName) || isIP(commonName) ? [commonName] : []);
  for (const n of altNames) {
    if (typeof n !== 'string' || (isIP(n) === 0 && !isHostName(n))) {
      throw new ImeError('E_VAP_BAD_CERTIFICATE', `subject alternative name ${describeInput(n)} is neither a host name nor an IP address`);
    }
  }

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: RSA_BITS });
  const now = Date.now();
  const cert = forge.pki.createCertificate();
  // Positive 16-byte serial: a leading 0x00..0x7f byte keeps the DER INTEGER positive.
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
  cert.validity.notBefore = new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000);
  cert.validity.notAfter = new Date(Math.floor((now + days * 86_400_000) / 1000) * 1000);
  const name = [{ name: 'commonName', value: commonName, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectKeyIdentifier' },
    ...(altNames.length > 0
      ? [{ name: 'subjectAltName', altNames: altNames.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) }]
      : []),
  ]);
  const der = signCertificate(cert, privateKey);
  const certPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function isHostName(value: string): boolean {
  return value.length <= 253 && /^(?=.*[A-Za-z])[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(value);
}

/** Signs the TBSCertificate with node:crypto and assembles Certificate ::= { tbs, algorithm, signature }. */
function signCertificate(cert: forge.pki.Certificate, key: KeyObject): Uint8Array {
  cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption as string;
  cert.siginfo.algorithmOid = forge.pki.oids.sha256WithRSAEncryption as string;
  // getTBSCertificate exists in node-forge (lib/x509.js) but is missing from @types/node-forge.
  const pki = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  const tbs = pki.getTBSCertificate(cert);
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  cert.tbsCertificate = tbs;
  cert.signature = sign('sha256', tbsDer, key).toString('binary');
  return new Uint8Array(Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary'));
}
