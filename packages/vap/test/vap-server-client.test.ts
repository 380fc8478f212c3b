import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { VapClient, type VapClientOptions } from '../src/vap-client.js';
import { createVapCertificate, type VapCertificate } from '../src/vap-certificate.js';
import type { VapInstanceServer } from '../src/vap-server.js';
import type { LearnedRoute, VapNotice, Vcr, Vservice } from '../src/vap-types.js';
import { PASSWORD, PEER_ID, USER, startInstance } from './fixture.js';
import { rejected, sleep, waitFor } from './helpers.js';
import { RawVap } from './raw.js';

const servers: VapInstanceServer[] = [];
const clients: VapClient[] = [];
const raws: RawVap[] = [];

afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function instance(...args: Parameters<typeof startInstance>) {
  const started = await startInstance(...args);
  servers.push(started.server);
  return started;
}

async function client(port: number, extra: Partial<VapClientOptions> = {}): Promise<VapClient> {
  const c = await VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: USER, password: PASSWORD, ...extra });
  clients.push(c);
  return c;
}

async function raw(port: number): Promise<RawVap> {
  const r = await RawVap.open(port);
  raws.push(r);
  return r;
}

const VSERVICE: Vservice = {
  profileName: 'acme-ime',
  id: 'vs-1',
  domain: 'acme.example',
  sipUri: 'sip:1234@acme.example:5060;transport=tcp',
  maxDidCount: 1000,
};

const vcr = (callId: string, extra: Partial<Vcr> = {}): Vcr => ({
  calling: '+14085550100',
  called: '+12125550100',
  startMs: 1_700_000_000_000,
  stopMs: 1_700_000_060_000,
  direction: 'originating',
  callId,
  ...extra,
});

const route = (n: number, ticket = 'dGlja2V0'): LearnedRoute => ({
  number: `+1212555${String(n).padStart(4, '0')}`,
  domain: 'globex.example',
  sipUri: 'sip:abc@globex.example:5060;transport=tcp',
  ticket,
  learnedOnMs: 1_700_000_000_000,
  expiresOnMs: 1_731_536_000_000,
});

describe('registration', () => {
  it('registers in authenticated mode and shows the session', async () => {
    const { server, backend, port } = await instance();
    const c = await client(port);
    expect(c.registered).toEqual({ peerId: PEER_ID, keepaliveIntervalSec: 30, ringHealth: 2 });
    expect(backend.registered).toHaveLength(1);
    const [info] = server.sessions();
    expect(info).toMatchObject({
      instance: 'test',
      username: USER,
      clientAddress: '127.0.0.1',
      registrationStatus: 'Registered',
      missedKeepalives: 0,
      vserviceIds: [],
    });
    expect(info?.handle).toBeGreaterThanOrEqual(1);
    expect(info?.packetsReceived).toBe(2); // Hello, Register
    expect(info?.packetsSent).toBe(2); // Challenge, Registered
    expect(server.registeredCount).toBe(1);
  });

  it('gives every connection its own handle', async () => {
    const { server, port } = await instance();
    await client(port);
    await client(port);
    const handles = server.sessions().map((s) => s.handle);
    expect(new Set(handles).size).toBe(2);
  });

  /** An encrypted instance presenting `peer` and trusting `trusted`, and a call manager presenting `own` and trusting `peerCa`. */
  async function tlsPair(peer: VapCertificate, trusted: VapCertificate, own: VapCertificate, peerCa: VapCertificate) {
    const started = await instance(
      { authenticationMode: 'encrypted' },
      { tls: () => ({ certPem: peer.certPem, keyPem: peer.keyPem, trustedPems: [trusted.certPem] }) },
    );
    const connecting = client(started.port, { mode: 'encrypted', tls: { caPem: [peerCa.certPem], certPem: own.certPem, keyPem: own.keyPem } });
    return { ...started, connecting };
  }

  it('registers over mutual TLS in encrypted mode', async () => {
    const peer = createVapCertificate({ commonName: 'peer.acme.example' });
    const cm = createVapCertificate({ commonName: 'cucm.acme.example' });
    const { server, connecting } = await tlsPair(peer, cm, cm, peer);
    const c = await connecting;
    expect(c.registered.peerId).toBe(PEER_ID);
    expect(server.registeredCount).toBe(1);
    expect((await c.publishVservice(VSERVICE)).accepted).toBe(1);
  });

  it('refuses a call manager whose certificate the peer does not trust, with E_VAP_TLS at the client', async () => {
    const peer = createVapCertificate({ commonName: 'peer' });
    const trusted = createVapCertificate({ commonName: 'trusted-cm' });
    const stranger = createVapCertificate({ commonName: 'stranger-cm' });
    const { events, connecting } = await tlsPair(peer, trusted, stranger, peer);
    expect((await rejected(connecting)).code).toBe('E_VAP_TLS');
    await waitFor(() => events.protocol.some((e) => e.code === 'E_VAP_TLS'), 2000, 'the TLS refusal event');
    const event = events.protocol.find((e) => e.code === 'E_VAP_TLS');
    expect(event?.clientAddress).toBe('127.0.0.1');
    expect(event?.message).toContain('SELF_SIGNED');
  });

  it('refuses a peer whose certificate the call manager does not trust, with E_VAP_TLS', async () => {
    const peer = createVapCertificate({ commonName: 'peer' });
    const other = createVapCertificate({ commonName: 'other-peer' });
    const cm = createVapCertificate({ commonName: 'cm' });
    const { connecting } = await tlsPair(peer, cm, cm, other);
    expect((await rejected(connecting)).code).toBe('E_VAP_TLS');
  });

  it('refuses a wrong password with E_VAP_AUTH and reports user and address, never the password', async () => {
    const { server, events, port } = await instance();
    const err = await rejected(client(port, { password: 'wrong-password-123' }));
    expect(err.code).toBe('E_VAP_AUTH');
    await waitFor(() => events.invalid.length === 1);
    expect(events.invalid[0]).toEqual({ instance: 'test', username: USER, clientAddress: '127.0.0.1', reason: 'wrong password' });
    expect(JSON.stringify(events.invalid)).not.toContain('wrong-password-123');
    await waitFor(() => server.connectionCount === 0, 3000, 'the refused connection to close');
  });

  it('refuses an unknown username with the same answer as a wrong password', async () => {
    const { events, port } = await instance();
    const unknown = await rejected(client(port, { username: 'nobody' }));
    const wrong = await rejected(client(port, { password: 'nope' }));
    expect(unknown.code).toBe('E_VAP_AUTH');
    expect(unknown.message).toBe(wrong.message);
    await waitFor(() => events.invalid.length === 2);
    expect(events.invalid[0]?.reason).toBe('unknown username');
  });

  it('refuses a Register digest replayed on a new connection', async () => {
    const { events, port } = await instance();
    const first = await raw(port);
    const nonce = new Uint8Array(32).fill(4);
    const { digest, frame } = await first.register(USER, PASSWORD, nonce);
    expect(frame.body).toBe('registered');
    const second = await raw(port);
    second.send({ hello: { username: USER, clientNonce: nonce } });
    expect((await second.next()).body).toBe('challenge');
    second.send({ register: { digest } });
    const answer = await second.next();
    expect(answer.error?.code).toBe('E_VAP_REPLAY');
    await second.closed;
    expect(events.invalid.map((e) => e.reason)).toEqual(['replayed digest']);
  });

  it('refuses a second Register on a registered connection', async () => {
    const { events, port } = await instance();
    const r = await raw(port);
    await r.register(USER, PASSWORD);
    r.send({ register: { digest: new Uint8Array(32) } });
    expect((await r.next()).error?.code).toBe('E_VAP_UNEXPECTED');
    await r.closed;
    expect(events.protocol.map((e) => e.code)).toEqual(['E_VAP_UNEXPECTED']);
  });

  it('refuses requests before registration', async () => {
    const { backend, port } = await instance();
    const r = await raw(port);
    r.send({ publishVservice: { vservice: { id: 'x' } } });
    expect((await r.next()).error?.code).toBe('E_VAP_UNEXPECTED');
    await r.closed;
    expect(backend.log).toEqual([]);
  });

  it('closes a silent connection after the handshake timeout', async () => {
    const { events, port } = await instance({}, { handshakeTimeoutMs: 300 });
    const r = await raw(port);
    const started = Date.now();
    expect((await r.next(3000)).error?.code).toBe('E_VAP_HANDSHAKE_TIMEOUT');
    await r.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(events.protocol.map((e) => e.code)).toEqual(['E_VAP_HANDSHAKE_TIMEOUT']);
  });

  it('refuses the connection above maxConnectionsAllowed with E_VAP_TOO_MANY_CONNECTIONS', async () => {
    const { events, port } = await instance({ maxConnectionsAllowed: 2 });
    await client(port);
    await client(port);
    const err = await rejected(client(port));
    expect(err.code).toBe('E_VAP_TOO_MANY_CONNECTIONS');
    expect(events.refused).toHaveLength(1);
    expect(events.refused[0]?.clientAddress).toBe('127.0.0.1');
    // a slot frees up when a call manager leaves
    await (clients.shift() as VapClient).close();
    await sleep(50);
    await client(port);
  });

  it('a full instance gives the slot of its oldest unregistered connection to a new one, never a registered session', async () => {
    const { events, port } = await instance({ maxConnectionsAllowed: 3 });
    const registered = await client(port);
    const idle = [await RawVap.open(port), await RawVap.open(port)];
    await sleep(50);
    // A call manager that connects now still gets in: the oldest socket that never registered makes room.
    await client(port);
    await idle[0]?.closed;
    expect(idle[0]?.frames.map((f) => f.error?.code)).toContain('E_VAP_TOO_MANY_CONNECTIONS');
    expect(idle[1]?.isClosed).toBe(false);
    expect(events.refused.map((e) => e.reason)).toEqual([expect.stringContaining('had not registered')]);
    // Only registered sessions left to displace: the next one is refused, and the first call manager kept its session.
    idle[1]?.socket.destroy();
    await sleep(50);
    await client(port);
    expect((await rejected(client(port))).code).toBe('E_VAP_TOO_MANY_CONNECTIONS');
    expect(registered.closed).toBe(false);
  });

  it('rejects with E_VAP_CONNECT when nothing listens', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    expect((await rejected(client(port))).code).toBe('E_VAP_CONNECT');
  });
});

describe('keepalive', () => {
  it('closes a call manager that stops sending keepalives, and keeps one that sends them', async () => {
    const { server, backend, port } = await instance({ keepaliveIntervalSec: 1 });
    const silent = await client(port, { sendKeepalives: false });
    const alive = await client(port);
    const closed = new Promise<[string, number]>((resolve) => silent.onClose((code) => resolve([code, Date.now()])));
    const started = Date.now();
    await waitFor(() => server.sessions().some((s) => s.missedKeepalives >= 1), 2500, 'a missed keepalive to be counted');
    const [code, at] = await closed;
    expect(code).toBe('E_VAP_KEEPALIVE');
    expect(at - started).toBeGreaterThanOrEqual(2500);
    expect(at - started).toBeLessThan(4500);
    expect(alive.closed).toBe(false);
    expect((await alive.publishVservice(VSERVICE)).accepted).toBe(1);
    await waitFor(() => backend.closed.length === 1);
    expect(backend.closed[0]?.reason).toContain('E_VAP_KEEPALIVE');
  }, 10_000);
});

describe('requests', () => {
  it('delivers requests to the backend and answers with Acks', async () => {
    const { server, backend, port } = await instance();
    const c = await client(port);
    expect(await c.publishVservice(VSERVICE)).toEqual({ accepted: 1, refused: [] });
    expect(backend.vservices).toEqual([VSERVICE]);
    expect(server.sessions()[0]?.vserviceIds).toEqual(['vs-1']);
    const enrolled = await c.publishEnrollment({ vserviceId: 'vs-1', groups: [{ name: 'hq', patterns: ['+14085550XXX', '+14085551000'] }], exclusions: [], trustGroups: [] });
    expect(enrolled).toEqual({ accepted: 2, refused: [] });
    expect(await c.withdrawVservice('vs-1')).toEqual({ accepted: 1, refused: [] });
    expect(server.sessions()[0]?.vserviceIds).toEqual([]);
  });

  it('refuses VCRs one by one and the backend sees only the good ones', async () => {
    const { backend, port } = await instance();
    const c = await client(port);
    const ack = await c.uploadVcrs([vcr('a'), vcr('b', { called: '2125550100' }), vcr('dup'), vcr('c', { direction: 'terminating' })]);
    expect(ack.accepted).toBe(2);
    expect(ack.refused.map((r) => [r.index, r.code])).toEqual([
      [1, 'E_VCR_NOT_E164'],
      [2, 'E_VCR_DUPLICATE'],
    ]);
    expect(backend.vcrs.map((v) => v.callId)).toEqual(['a', 'c']);
  });

  it('answers a bad request with its code and keeps the connection', async () => {
    const { port } = await instance();
    const c = await client(port);
    expect((await rejected(c.publishVservice({ ...VSERVICE, domain: 'not a domain' }))).code).toBe('E_VAP_BAD_VSERVICE');
    expect((await rejected(c.publishEnrollment({ vserviceId: 'vs-1', groups: [{ name: 'g', patterns: ['+1XXXX'] }], exclusions: [], trustGroups: [] }))).code).toBe(
      'E_VAP_BAD_ENROLLMENT',
    );
    expect((await c.publishVservice(VSERVICE)).accepted).toBe(1);
  });

  it("passes the backend's ImeError code through, and hides anything else as E_INTERNAL", async () => {
    const { port } = await instance();
    const c = await client(port);
    const quota = await rejected(c.publishVservice({ ...VSERVICE, id: 'over-quota' }));
    expect(quota.code).toBe('E_RING_OVER_QUOTA');
    expect(quota.message).toBe('the ring refused: quota used up');
    const bug = await rejected(c.publishVservice({ ...VSERVICE, id: 'bug' }));
    expect(bug.code).toBe('E_INTERNAL');
    expect(bug.message).not.toMatch(/Cannot read|\bat\b.*:\d+/);
    expect(c.closed).toBe(false);
    expect((await c.publishVservice(VSERVICE)).accepted).toBe(1);
  });

  it("serves a session's requests one after another", async () => {
    const { backend, port } = await instance();
    backend.delayMs = 100;
    const c = await client(port);
    await Promise.all([c.publishVservice(VSERVICE), c.withdrawVservice('vs-1')]);
    expect(backend.log).toEqual(['publish:start:vs-1', 'publish:end:vs-1', 'withdraw:vs-1']);
  });

  it('rejects pending and later requests with E_VAP_CLOSED when the connection ends', async () => {
    const { server, backend, port } = await instance();
    backend.delayMs = 500;
    const c = await client(port);
    const pending = c.publishVservice(VSERVICE);
    await sleep(50);
    const closing = server.stop('E_VAP_SHUTDOWN', 'maintenance');
    const codes: string[] = [];
    c.onClose((code) => codes.push(code));
    expect((await rejected(pending)).code).toBe('E_VAP_CLOSED');
    await closing;
    servers.pop();
    expect(codes).toEqual(['E_VAP_SHUTDOWN']);
    expect((await rejected(c.publishVservice(VSERVICE))).code).toBe('E_VAP_CLOSED');
  });

  it('times a request out when the peer does not answer', async () => {
    const { backend, port } = await instance();
    backend.delayMs = 1000;
    const c = await client(port, { requestTimeoutMs: 100 });
    expect((await rejected(c.publishVservice(VSERVICE))).code).toBe('E_VAP_TIMEOUT');
  });
});

describe('pushes', () => {
  it('delivers learned routes and notices to the call manager', async () => {
    const { backend, port } = await instance();
    const c = await client(port);
    const routes: LearnedRoute[] = [];
    const notices: VapNotice[] = [];
    c.onRoutes((r) => routes.push(...r));
    c.onNotice((n) => notices.push(n));
    const session = backend.registered[0];
    expect(session?.pushRoutes([route(1), route(2)])).toBe(true);
    expect(session?.notice({ kind: 'ring-inactive', detail: 'the ring is unreachable' })).toBe(true);
    await waitFor(() => routes.length === 2 && notices.length === 1);
    expect(routes).toEqual([route(1), route(2)]);
    expect(notices).toEqual([{ kind: 'ring-inactive', detail: 'the ring is unreachable' }]);
  });

  it('splits a push larger than a frame', async () => {
    const { backend, port } = await instance();
    const c = await client(port);
    const batches: number[] = [];
    c.onRoutes((r) => batches.push(r.length));
    const many = Array.from({ length: 1500 }, (_, i) => route(i, 'T'.repeat(1000)));
    expect(backend.registered[0]?.pushRoutes(many)).toBe(true);
    await waitFor(() => batches.reduce((a, b) => a + b, 0) === 1500);
    expect(batches.length).toBeGreaterThan(1);
  });

  it('reports a push to a closed session as not delivered, and the backend hears of the close', async () => {
    const { backend, port } = await instance();
    const c = await client(port);
    const session = backend.registered[0];
    await c.close();
    await waitFor(() => backend.closed.length === 1);
    expect(session?.pushRoutes([route(1)])).toBe(false);
    expect(session?.notice({ kind: 'ring-active', detail: '' })).toBe(false);
    expect(backend.closed[0]?.reason).toMatch(/^E_VAP_CLOSED/);
  });

  it('lets the backend close a session with a code the call manager sees', async () => {
    const { backend, port } = await instance();
    const c = await client(port);
    const closed = new Promise<string>((resolve) => c.onClose((code) => resolve(code)));
    backend.registered[0]?.close('E_PEER_BANNED', 'this peer was banned from the ring');
    expect(await closed).toBe('E_PEER_BANNED');
  });
});
