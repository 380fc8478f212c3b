import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { type Database, openDatabase } from '@ime/runtime';
import { createVapCertificate, type VapCertificate } from '../src/vap-certificate.js';
import { VapClient, type VapClientOptions } from '../src/vap-client.js';
import { VapServers, type VapServersOptions } from '../src/vap-servers.js';
import { TestBackend, recordEvents } from './fixture.js';
import { rejected, waitFor } from './helpers.js';

const CREDS = { username: 'cucm-app', password: 'Pa55word-that-must-not-leak', ticketPassword: 'ticket-secret-123', epoch: 7 };

let dir: string;
let db: Database;
let servers: VapServers | undefined;
const clients: VapClient[] = [];
let peerCert: VapCertificate;
let cmCert: VapCertificate;

beforeAll(() => {
  peerCert = createVapCertificate({ commonName: 'peer.acme.example' });
  cmCert = createVapCertificate({ commonName: 'cucm.acme.example' });
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vap-servers-'));
  db = await openDatabase(dir);
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await servers?.stop();
  servers = undefined;
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

async function open(extra: Partial<VapServersOptions> = {}): Promise<VapServers> {
  servers = await VapServers.open({
    db,
    backend: new TestBackend(),
    events: recordEvents(),
    tls: () => ({ certPem: peerCert.certPem, keyPem: peerCert.keyPem }),
    peerId: () => '12D3KooWPeer',
    ringHealth: () => 2,
    defaultHost: '127.0.0.1',
    iterations: 1_000,
    ...extra,
  });
  return servers;
}

async function connect(port: number, extra: Partial<VapClientOptions> = {}): Promise<VapClient> {
  const c = await VapClient.connect({
    host: '127.0.0.1',
    port,
    mode: 'authenticated',
    username: CREDS.username,
    password: CREDS.password,
    ...extra,
  });
  clients.push(c);
  return c;
}

const encrypted = { mode: 'encrypted' as const, tls: () => ({ caPem: [peerCert.certPem], certPem: cmCert.certPem, keyPem: cmCert.keyPem }) };

function closeCode(c: VapClient): Promise<string> {
  return new Promise((resolve) => c.onClose((code) => resolve(code)));
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

async function allStoredText(): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const [k, v] of db.iterator()) text += `${decoder.decode(k)}=${decoder.decode(v)}\n`;
  return text;
}

describe('instances', () => {
  it('adds an instance with the defaults and lists it', async () => {
    const s = await open();
    const status = await s.add({ name: 'cucm1', port: 0 });
    expect(status.settings).toEqual({
      name: 'cucm1',
      host: '127.0.0.1',
      port: 0,
      authenticationMode: 'authenticated',
      enabled: true,
      keepaliveIntervalSec: 30,
      maxConnectionsAllowed: 16,
    });
    expect(status.listening).toBe(true);
    expect(status.boundPort).toBeGreaterThan(0);
    expect(s.list()).toEqual([{ ...status, connections: 0, registered: 0, hasCredentials: false }]);
  });

  it('defaults the port to 5620 and the host to 0.0.0.0 without a default host', async () => {
    const s = await open({ defaultHost: undefined });
    // disabled, so the test does not need port 5620 to be free
    const status = await s.add({ name: 'x', enabled: false });
    expect(status.settings.port).toBe(5620);
    expect(status.settings.host).toBe('0.0.0.0');
    expect(status.listening).toBe(false);
  });

  it('refuses duplicates, bad names, bad values and a port another instance has', async () => {
    const s = await open();
    const port = await freePort();
    await s.add({ name: 'a', port });
    expect((await rejected(s.add({ name: 'a', port: 0 }))).code).toBe('E_VAP_SERVER_CONFLICT');
    expect((await rejected(s.add({ name: 'b', port }))).code).toBe('E_VAP_PORT_CONFLICT');
    expect((await rejected(s.add({ name: 'has space' }))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.add({ name: 'x'.repeat(33) }))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.add({ name: 'c', port: 70_000 }))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.add({ name: 'c', keepaliveIntervalSec: 0 }))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.add({ name: 'c', maxConnectionsAllowed: 10_001 }))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.add({ name: 'c', authenticationMode: 'none' as 'encrypted' }))).code).toBe('E_VAP_BAD_SETTING');
    // port 0 never clashes
    await s.add({ name: 'z1', port: 0 });
    await s.add({ name: 'z2', port: 0 });
    expect(s.list().map((i) => i.settings.name)).toEqual(['a', 'z1', 'z2']);
  });

  it('does not keep an instance whose port is taken by another program', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const s = await open();
      const err = await rejected(s.add({ name: 'a', port }));
      expect(err.code).toBe('E_VAP_LISTEN');
      expect(err.message).toContain('in use');
      expect(s.list()).toEqual([]);
      expect(await allStoredText()).not.toContain('vap/instance/a');
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('parses set values like the CLI types them and refuses bad ones', async () => {
    const s = await open();
    await s.add({ name: 'a', port: 0 });
    expect((await s.set('a', 'keepaliveinterval', '10')).settings.keepaliveIntervalSec).toBe(10);
    expect((await s.set('a', 'MaxConnectionsAllowed', ' 40 ')).settings.maxConnectionsAllowed).toBe(40);
    expect((await rejected(s.set('a', 'keepaliveinterval', '0'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('a', 'keepaliveinterval', '1e3'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('a', 'maxconnectionsallowed', 'many'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('a', 'port', '-1'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('a', 'enabled', 'maybe'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('a', 'authenticationmode', 'plain'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('a', 'colour', 'red'))).code).toBe('E_VAP_BAD_SETTING');
    expect((await rejected(s.set('nope', 'port', '1'))).code).toBe('E_VAP_SERVER_NOT_FOUND');
  });

  it('keeps sessions when keepalive or maximum connections change, and applies them to new ones', async () => {
    const s = await open();
    const { boundPort } = await s.add({ name: 'a', port: 0 });
    await s.setCredentials('a', CREDS);
    const first = await connect(boundPort as number);
    await s.set('a', 'keepaliveinterval', '5');
    await s.set('a', 'maxconnectionsallowed', '1');
    expect(first.closed).toBe(false);
    expect((await rejected(connect(boundPort as number))).code).toBe('E_VAP_TOO_MANY_CONNECTIONS');
    await s.set('a', 'maxconnectionsallowed', '2');
    const second = await connect(boundPort as number);
    expect(first.registered.keepaliveIntervalSec).toBe(30);
    expect(second.registered.keepaliveIntervalSec).toBe(5);
  });

  it('closes connections when the mode changes, then serves the new mode', async () => {
    const s = await open();
    const { boundPort } = await s.add({ name: 'a', port: 0 });
    await s.setCredentials('a', CREDS);
    await s.trustCertificate(cmCert.certPem);
    const c = await connect(boundPort as number);
    const closed = closeCode(c);
    const status = await s.set('a', 'authenticationmode', 'Encrypted');
    expect(await closed).toBe('E_VAP_RECONFIGURED');
    expect(status.settings.authenticationMode).toBe('encrypted');
    const tls = await connect(status.boundPort as number, { mode: 'encrypted', tls: encrypted.tls() });
    expect(tls.registered.peerId).toBe('12D3KooWPeer');
  });

  it('closes connections when the port changes and listens on the new one', async () => {
    const s = await open();
    const { boundPort: oldPort } = await s.add({ name: 'a', port: 0 });
    await s.setCredentials('a', CREDS);
    const c = await connect(oldPort as number);
    const closed = closeCode(c);
    const newPort = await freePort();
    const status = await s.set('a', 'port', String(newPort));
    expect(await closed).toBe('E_VAP_RECONFIGURED');
    expect(status.boundPort).toBe(newPort);
    expect((await rejected(connect(oldPort as number))).code).toBe('E_VAP_CONNECT');
    await connect(newPort);
  });

  it('refuses a port change onto another instance, and keeps the old listener when the new port is taken', async () => {
    const s = await open();
    const taken = await freePort();
    await s.add({ name: 'a', port: taken });
    await s.add({ name: 'b', port: 0 });
    expect((await rejected(s.set('b', 'port', String(taken)))).code).toBe('E_VAP_PORT_CONFLICT');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    try {
      const blocked = (blocker.address() as { port: number }).port;
      expect((await rejected(s.set('b', 'port', String(blocked)))).code).toBe('E_VAP_LISTEN');
      const status = s.status('b');
      expect(status.settings.port).toBe(0);
      expect(status.listening).toBe(true);
      expect(status.boundPort).toBeGreaterThan(0);
      expect(status.boundPort).not.toBe(blocked);
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('stops listening and closes connections when disabled, and listens again when enabled', async () => {
    const s = await open();
    const port = await freePort();
    await s.add({ name: 'a', port });
    await s.setCredentials('a', CREDS);
    const c = await connect(port);
    const closed = closeCode(c);
    const off = await s.set('a', 'enabled', 'false');
    expect(await closed).toBe('E_VAP_DISABLED');
    expect(off.listening).toBe(false);
    expect(off.boundPort).toBeUndefined();
    expect((await rejected(connect(port))).code).toBe('E_VAP_CONNECT');
    expect((await s.set('a', 'enabled', 'true')).listening).toBe(true);
    await connect(port);
  });

  it('removes an instance with its credentials', async () => {
    const s = await open();
    await s.add({ name: 'a', port: 0 });
    await s.setCredentials('a', CREDS);
    await s.remove('a');
    expect(s.list()).toEqual([]);
    expect(s.credentials()).toEqual([]);
    expect(await allStoredText()).not.toMatch(/vap\/(instance|credentials)\/a/);
    expect((await rejected(s.remove('a'))).code).toBe('E_VAP_SERVER_NOT_FOUND');
  });
});

describe('persistence', () => {
  it('restores instances, credentials and trusted certificates from the same database', async () => {
    let s = await open();
    const port = await freePort();
    await s.add({ name: 'plain', port });
    await s.add({ name: 'tls', port: 0, authenticationMode: 'encrypted', keepaliveIntervalSec: 15 });
    await s.add({ name: 'off', port: 0, enabled: false });
    await s.setCredentials('plain', CREDS);
    await s.setCredentials('tls', { ...CREDS, epoch: 9 });
    await s.trustCertificate(cmCert.certPem);
    const before = s.list().map((i) => i.settings);
    await s.stop();
    servers = undefined;
    await db.close();

    db = await openDatabase(dir);
    s = await open();
    expect(s.list().map((i) => i.settings)).toEqual(before);
    expect(s.list().map((i) => [i.settings.name, i.listening])).toEqual([
      ['off', false],
      ['plain', true],
      ['tls', true],
    ]);
    expect(s.credentials()).toEqual([
      { instance: 'plain', username: CREDS.username, epoch: 7 },
      { instance: 'tls', username: CREDS.username, epoch: 9 },
    ]);
    expect(s.ticketSecret('tls')).toEqual({ ticketPassword: CREDS.ticketPassword, epoch: 9 });
    expect(s.trustedCertificates().map((t) => t.subject)).toEqual(['CN=cucm.acme.example']);
    // the stored key still matches the password, and the instance secret is unchanged
    const plain = await connect(port);
    expect(plain.registered.keepaliveIntervalSec).toBe(30);
    const tlsPort = s.status('tls').boundPort as number;
    const tls = await connect(tlsPort, { mode: 'encrypted', tls: encrypted.tls() });
    expect(tls.registered.keepaliveIntervalSec).toBe(15);
    expect(s.sessions().map((i) => [i.instance, i.registrationStatus])).toEqual([
      ['plain', 'Registered'],
      ['tls', 'Registered'],
    ]);
    expect(s.sessionsOf('tls')).toHaveLength(1);
  });
});

describe('start-up', () => {
  it('keeps an instance whose port is taken at start-up, not listening, with the reason', async () => {
    let s = await open();
    const port = await freePort();
    await s.add({ name: 'a', port });
    await s.stop();
    servers = undefined;
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    try {
      s = await open();
      const [status] = s.list();
      expect(status?.listening).toBe(false);
      expect(status?.lastError?.code).toBe('E_VAP_LISTEN');
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
    // once the port is free, touching the instance starts it again
    expect((await s.set('a', 'keepaliveinterval', '20')).listening).toBe(true);
    expect(s.status('a').lastError).toBeUndefined();
  });
});

describe('credentials', () => {
  it('stores a derived key, never the password', async () => {
    const s = await open();
    await s.add({ name: 'a', port: 0 });
    expect(await s.setCredentials('a', CREDS)).toEqual({ instance: 'a', username: CREDS.username, epoch: 7 });
    const stored = await allStoredText();
    expect(stored).toContain('vap/credentials/a');
    expect(stored).toContain(CREDS.username);
    expect(stored).not.toContain(CREDS.password);
    expect(stored).not.toContain(Buffer.from(CREDS.password).toString('base64'));
    expect(JSON.stringify(s.credentials())).not.toContain(CREDS.ticketPassword);
    expect(s.status('a').hasCredentials).toBe(true);
  });

  it('lets the right password in and keeps others out, reporting the attempt', async () => {
    const events = recordEvents();
    const s = await open({ events });
    const { boundPort } = await s.add({ name: 'a', port: 0 });
    await s.setCredentials('a', CREDS);
    await connect(boundPort as number);
    expect((await rejected(connect(boundPort as number, { password: 'guess' }))).code).toBe('E_VAP_AUTH');
    await waitFor(() => events.invalid.length === 1);
    expect(events.invalid[0]).toMatchObject({ instance: 'a', username: CREDS.username, clientAddress: '127.0.0.1' });
    // new credentials replace the old ones for new registrations
    await s.setCredentials('a', { ...CREDS, password: 'a-new-password' });
    expect((await rejected(connect(boundPort as number))).code).toBe('E_VAP_AUTH');
    await connect(boundPort as number, { password: 'a-new-password' });
  });

  it('refuses bad credentials without echoing secrets, and credentials for a missing instance', async () => {
    const s = await open();
    await s.add({ name: 'a', port: 0 });
    const bad = async (change: Partial<typeof CREDS>) => {
      const err = await rejected(s.setCredentials('a', { ...CREDS, ...change }));
      for (const secret of [change.password ?? CREDS.password, change.ticketPassword ?? CREDS.ticketPassword]) {
        if (secret.length > 2) expect(err.message).not.toContain(secret);
      }
      return err.code;
    };
    expect(await bad({ username: '' })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ username: 'u'.repeat(65) })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ username: ' padded' })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ password: '' })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ password: 'p'.repeat(129) })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ ticketPassword: 'short-tp' })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ ticketPassword: 'has a space in it' })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ ticketPassword: 't'.repeat(65) })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ epoch: 0 })).toBe('E_VAP_BAD_CREDENTIALS');
    expect(await bad({ epoch: 256 })).toBe('E_VAP_BAD_CREDENTIALS');
    expect((await rejected(s.setCredentials('missing', CREDS))).code).toBe('E_VAP_SERVER_NOT_FOUND');
    expect(s.ticketSecret('a')).toBeUndefined();
  });
});

describe('trusted certificates', () => {
  it('refuses what is not one certificate', async () => {
    const s = await open();
    expect((await rejected(s.trustCertificate('not a pem'))).code).toBe('E_VAP_BAD_CERTIFICATE');
    expect((await rejected(s.trustCertificate(cmCert.certPem + cmCert.certPem))).code).toBe('E_VAP_BAD_CERTIFICATE');
    const broken = cmCert.certPem.replace(/[A-Za-z]{20}/, 'A'.repeat(20));
    expect((await rejected(s.trustCertificate(broken))).code).toBe('E_VAP_BAD_CERTIFICATE');
    expect((await rejected(s.untrustCertificate('AB:CD'))).code).toBe('E_VAP_BAD_CERTIFICATE');
    expect((await rejected(s.untrustCertificate('00'.repeat(32)))).code).toBe('E_VAP_CERTIFICATE_NOT_FOUND');
  });

  it('admits a call manager once its certificate is trusted, and drops it when no longer trusted', async () => {
    const s = await open();
    const { boundPort } = await s.add({ name: 't', port: 0, authenticationMode: 'encrypted' });
    await s.setCredentials('t', CREDS);
    const port = boundPort as number;
    expect((await rejected(connect(port, { mode: 'encrypted', tls: encrypted.tls() }))).code).toBe('E_VAP_TLS');
    const trusted = await s.trustCertificate(cmCert.certPem);
    expect(trusted.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const c = await connect(port, { mode: 'encrypted', tls: encrypted.tls() });
    const closed = closeCode(c);
    await s.untrustCertificate(trusted.fingerprint.replace(/:/g, '').toLowerCase());
    expect(await closed).toBe('E_VAP_RECONFIGURED');
    expect(s.trustedCertificates()).toEqual([]);
    expect((await rejected(connect(s.status('t').boundPort as number, { mode: 'encrypted', tls: encrypted.tls() }))).code).toBe('E_VAP_TLS');
  });
});

describe('sessions and pushes', () => {
  it('pushes routes and notices to the sessions a filter picks', async () => {
    const s = await open();
    const a = (await s.add({ name: 'a', port: 0 })).boundPort as number;
    const b = (await s.add({ name: 'b', port: 0 })).boundPort as number;
    await s.setCredentials('a', CREDS);
    await s.setCredentials('b', CREDS);
    const ca = await connect(a);
    const cb = await connect(b);
    const got: string[] = [];
    ca.onRoutes((r) => got.push(`a:${r.length}`));
    cb.onRoutes((r) => got.push(`b:${r.length}`));
    cb.onNotice((n) => got.push(`b:${n.kind}`));
    const route = { number: '+12125550100', domain: 'globex.example', sipUri: 'sip:x@globex.example', ticket: 'dGlj', learnedOnMs: 1, expiresOnMs: 2 };
    expect(s.pushRoutes((i) => i.instance === 'b', [route])).toBe(1);
    expect(s.notice(() => true, { kind: 'over-quota', detail: '100/100' })).toBe(2);
    await waitFor(() => got.includes('b:1') && got.includes('b:over-quota'));
    expect(got).not.toContain('a:1');
  });

  it('refuses to work after stop', async () => {
    const s = await open();
    await s.stop();
    expect((await rejected(s.add({ name: 'a' }))).code).toBe('E_VAP_SHUTDOWN');
  });
});
