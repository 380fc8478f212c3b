import { X509Certificate, createPrivateKey } from 'node:crypto';
import { connect, createServer } from 'node:tls';
import { describe, expect, it } from '@jest/globals';
import { createVapCertificate } from '../src/vap-certificate.js';
import { thrown } from './helpers.js';

describe('createVapCertificate', () => {
  it('makes a self-signed RSA-2048 certificate for the key it returns', () => {
    const { certPem, keyPem } = createVapCertificate({ commonName: 'peer.acme.example', days: 30, altNames: ['peer.acme.example', '127.0.0.1'] });
    const x509 = new X509Certificate(certPem);
    expect(x509.subject).toBe('CN=peer.acme.example');
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.ca).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x509.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.subjectAltName).toBe('DNS:peer.acme.example, IP Address:127.0.0.1');
    expect(x509.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    const days = (Date.parse(x509.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
    expect(Date.parse(x509.validFrom)).toBeLessThanOrEqual(Date.now());
  });

  it('serves as its own trust anchor for mutual TLS with node:tls', async () => {
    const server = createVapCertificate({ commonName: 'server' });
    const client = createVapCertificate({ commonName: 'client' });
    const tlsServer = createServer({ cert: server.certPem, key: server.keyPem, ca: [client.certPem], requestCert: true, rejectUnauthorized: true }, (s) => {
      s.end(String(s.getPeerCertificate().subject.CN));
    });
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (tlsServer.address() as { port: number }).port;
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: [server.certPem], cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined });
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      expect(answer).toBe('client');
    } finally {
      await new Promise<void>((r) => tlsServer.close(() => r()));
    }
  });

  it('refuses bad input', () => {
    expect(thrown(() => createVapCertificate({ commonName: '' })).code).toBe('E_VAP_BAD_CERTIFICATE');
    expect(thrown(() => createVapCertificate({ commonName: 'x', days: 0 })).code).toBe('E_VAP_BAD_CERTIFICATE');
    expect(thrown(() => createVapCertificate({ commonName: 'x', altNames: ['not a host'] })).code).toBe('E_VAP_BAD_CERTIFICATE');
  });
});
