import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { type DidRecord, didRecordKey, generatePublisher, openDidRecord, parseE164, publisherFromSeed, sealDidRecord } from '@ime/core';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { ed25519Seed } from '@ime/runtime';
import { TicketIssuer, TicketVerifier, type TicketRefusalReason, ticketRefusalCode } from '@ime/ticket';
import { type CallDetails, PVP_SUITE, type PvpResponseBody, type PvpSend, cellWidthMs, runValidation } from '@ime/validator';
import {
  type LearnedRoute,
  VapClient,
  type Vcr,
  computeVapDigest,
  deriveVapKey,
  encodeVapFrame,
  readAck,
  readChallenge,
  writeEnrollment,
  writeVcr,
  writeVservice,
} from '@ime/vap';
import { prng } from '../../packages/vap/test/helpers.js';
import { RawVap } from '../../packages/vap/test/raw.js';
import { lastJson, runIme } from '../cli-helpers.js';
import { counters, lookup, refusal, summary } from '../ring-test-helpers.js';
import {
  FLOOD_KINDS,
  type FloodOutcome,
  type PrivateKey,
  RingWire,
  floodConnection,
  inProcessPeer,
  outcomeOf,
  progress,
  recordCodes,
  ringSaltOf,
} from './attack-helpers.js';

/*
 * Attacks on a real ring (issue 8): each case below is one attacker against real components — a
 * bootstrap and three enterprise peers as processes (acme calls, globex is called and issues
 * tickets, initech publishes a record and hosts the VAP instance that is flooded), and attackers
 * that are real peers running in this process so the test holds their keys and their libp2p hosts:
 *   mallory  admitted, malicious: replays records, guesses call details;
 *   rogue    admitted, then banned;
 *   pending  enrolled with a valid token, never admitted;
 *   stranger a peer certified by another ring's authority.
 * Every attack is checked for its refusal (the code an operator sees), for what must not have
 * changed, and against a control showing the same step succeeds for whoever is entitled to it.
 */

const VAP_USER = 'imeuser';
const VAP_PASSWORD = 'attack-suite-vap-password';
const ACME_TICKET = { password: 'acme-ticket-password-01', epoch: 1 };
/** globex rotated its ticket password once: epoch 2 is current, epoch 1 was retired a month ago. */
const GLOBEX_TICKET = { password: 'globex-ticket-password-02', epoch: 2 };
const GLOBEX_RETIRED_TICKET = { password: 'globex-ticket-password-01', epoch: 1 };
const TOLERANCE_SEC = 5;
/** globex takes 60 validation steps (a start or an attempt) in a burst from one peer, then one a minute. */
const TERMINATING_BURST = 60;
const TERMINATING_PER_MINUTE = 1;
const MINUTE = 60_000;
const DAY = 24 * 3600 * 1000;
const ACME_PATTERN = '+140855510XX';
const ACME_CALLER = '+14085551001';
const GLOBEX_PATTERN = '+121255500XX';

interface ValidationView {
  called: string;
  domain: string;
  outcome: string;
  value?: number;
  code?: string;
  bucketTotal?: number;
  released?: number;
}

function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  return Buffer.from(x).equals(Buffer.from(y));
}

describe('attacks on the ring, the validation exchange, tickets and VAP', () => {
  let ring: RingHarness;
  let other: RingHarness | undefined;
  let acme: Member;
  let globex: Member;
  let initech: Member;
  let mallory: Member;
  let malloryKey: PrivateKey;
  let rogue: Member;
  let rogueKey: PrivateKey;
  let pending: Member;
  let pendingKey: PrivateKey;
  let salt: Uint8Array;
  let acmeCm: VapClient;
  let globexCm: VapClient;
  const acmeRoutes: LearnedRoute[] = [];
  const vapPorts = new Map<Member, number>();
  const wires: RingWire[] = [];
  const clients: VapClient[] = [];

  function wireOf(m: Member, timeoutMs?: number): RingWire {
    const w = new RingWire(m.node!.libp2p, timeoutMs);
    wires.push(w);
    return w;
  }

  const admittedMembers = () => [acme, globex, initech, mallory];

  /** The first request of a validation (SPEC §6) for a call to `called` in the last five minutes. */
  const validationStart = (called = '+12125550042') => ({
    kind: 'start' as const,
    called,
    windowStartMs: Math.floor((Date.now() - 300_000) / 300_000) * 300_000,
    windowMs: 300_000,
    cellMs: cellWidthMs(TOLERANCE_SEC * 1000),
    suite: PVP_SUITE,
  });

  /** Waits until every member is GREEN with the bootstrap's latest configuration and `count` members. */
  async function converged(members: readonly Member[], count: number): Promise<void> {
    const bootstrap = await ring.bootstraps[0]!.admin();
    await waitFor(
      `${members.length} peers GREEN with ${count} members`,
      async () => {
        const { sequence } = await bootstrap.get<{ sequence: number }>('/v1/summary');
        const all = await Promise.all(members.map((m) => summary(m)));
        return all.every((s) => s.health === 'GREEN' && s.sequence === sequence && s.peerCount === count);
      },
      90_000,
      200,
    );
  }

  /** An enterprise's call manager: its own VAP instance and credentials on its peer, its Vservice and 100 numbers. */
  async function enterprise(peer: Member, name: string, ticket: { password: string; epoch: number }, pattern: string): Promise<VapClient> {
    const admin = await peer.admin();
    const { boundPort } = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port: 0 });
    vapPorts.set(peer, boundPort);
    await admin.post('/v1/vap/credentials', { server: 'cucm', username: VAP_USER, password: VAP_PASSWORD, ticketPassword: ticket.password, epoch: ticket.epoch });
    const client = await VapClient.connect({ host: '127.0.0.1', port: boundPort, mode: 'authenticated', username: VAP_USER, password: VAP_PASSWORD });
    clients.push(client);
    const domain = `${name}.example`;
    await client.publishVservice({ profileName: name, id: `${name}-vs`, domain, sipUri: `sip:ime@cucm.${domain}:5060`, maxDidCount: 1000 });
    const ack = await client.publishEnrollment({ vserviceId: `${name}-vs`, groups: [{ name: 'main', patterns: [pattern] }], exclusions: [], trustGroups: [] });
    expect(ack).toEqual({ accepted: 100, refused: [] });
    return client;
  }

  async function validationsOf(peer: Member): Promise<ValidationView[]> {
    return (await (await peer.admin()).get<{ validations: ValidationView[] }>('/v1/validator/validations')).validations;
  }

  /** One PSTN call acme → globex as both call managers report it (the callee's VCR first). */
  async function provenCall(called: string, callId: string, startMs = Date.now() - 3 * MINUTE): Promise<ValidationView> {
    const stopMs = startMs + 61_000;
    const before = (await validationsOf(acme)).filter((v) => v.called === called).length;
    expect((await globexCm.uploadVcrs([{ calling: ACME_CALLER, called, startMs, stopMs, direction: 'terminating', callId }])).refused).toEqual([]);
    expect((await acmeCm.uploadVcrs([{ calling: ACME_CALLER, called, startMs, stopMs, direction: 'originating', callId }])).refused).toEqual([]);
    let seen: ValidationView | undefined;
    await waitFor(`acme's validation of ${called}`, async () => {
      seen = (await validationsOf(acme)).filter((v) => v.called === called)[before];
      return seen !== undefined;
    }, 60_000, 200);
    return seen!;
  }

  /** A route (and its ticket) acme learned by validating globex's numbers; proves calls until one is released. */
  async function routeFromGlobex(): Promise<LearnedRoute> {
    const numbers = ['+12125550044', '+12125550045', '+12125550046'];
    for (const called of numbers) {
      if (acmeRoutes.some((r) => r.domain === 'globex.example')) break;
      expect(await provenCall(called, `route-call-${called}`)).toEqual(expect.objectContaining({ outcome: 'success' }));
    }
    await waitFor("a globex route at acme's call manager", () => acmeRoutes.some((r) => r.domain === 'globex.example'), 30_000);
    return acmeRoutes.find((r) => r.domain === 'globex.example')!;
  }

  beforeAll(async () => {
    progress('starting a bootstrap and three enterprise peers as processes, and three attacker peers in this process');
    ring = await RingHarness.start({
      peers: 0,
      mode: 'process',
      admission: 'manual',
      validator: { delaySec: 0, toleranceSec: TOLERANCE_SEC, terminatingPerMinute: TERMINATING_PER_MINUTE, burst: TERMINATING_BURST, retryAfterErrorSec: 1, retryAfterErrorMaxSec: 2 },
    });
    const planned = [];
    for (const domain of ['acme.example', 'globex.example', 'initech.example']) planned.push(await ring.createPeer({ domain, start: false }));
    await Promise.all(planned.map((m) => m.start()));
    [acme, globex, initech] = planned as [Member, Member, Member];
    ({ member: mallory, identity: malloryKey } = await inProcessPeer(ring, 'mallory.example'));
    ({ member: rogue, identity: rogueKey } = await inProcessPeer(ring, 'rogue.example'));
    ({ member: pending, identity: pendingKey } = await inProcessPeer(ring, 'pending.example'));
    const bootstrap = await ring.bootstraps[0]!.admin();
    for (const m of [acme, globex, initech, mallory, rogue]) await bootstrap.post(`/v1/peers/${m.peerId}/admit`, {});
    await converged([acme, globex, initech, mallory, rogue], 5);
    salt = await ringSaltOf(ring.bootstraps[0]!);

    progress('acme and globex register their call managers and publish 100 numbers each');
    acmeCm = await enterprise(acme, 'acme', ACME_TICKET, ACME_PATTERN);
    acmeCm.onRoutes((r) => acmeRoutes.push(...r));
    globexCm = await enterprise(globex, 'globex', GLOBEX_TICKET, GLOBEX_PATTERN);
    expect((await lookup(initech, [ACME_CALLER, '+12125550042'])).found).toBe(2);
    progress('ring ready');
  }, 240_000);

  afterAll(async () => {
    for (const w of wires) w.stop();
    for (const c of clients) await c.close().catch(() => undefined);
    for (const m of [mallory, rogue, pending]) await m?.stop().catch(() => undefined);
    await other?.stop().catch(() => undefined);
    await ring?.stop();
  }, 120_000);

  it('a peer not on the roster (enrolled but never admitted, or certified by another ring) cannot connect, store, fetch or validate', async () => {
    const admitted = [acme, globex, initech];
    const bootstrapCounters = await counters(ring.bootstraps[0]!);
    expect(bootstrapCounters.PendingAdmission).toBe(1);
    expect(bootstrapCounters.RosterSize).toBe(5);

    // The enrolled peer knows it is not admitted.
    const own = await summary(pending);
    expect(own.health).toBe('RED');
    expect(own.healthReasons.join(' ')).toMatch(/not admitted/);

    progress('starting a one-peer ring under another authority (the stranger)');
    other = await RingHarness.start({ peers: 1, mode: 'in-process' });
    await other.converge();
    const stranger = other.peers[0]!;

    const before = await Promise.all(admitted.map((m) => counters(m)));
    const number = parseE164('+4930555000101');
    const outsiders = [
      { name: 'enrolled, not admitted', member: pending, publisher: publisherFromSeed(ed25519Seed(pendingKey)) },
      // Any key will do for the stranger's record: its requests never get as far as a record check.
      { name: 'other authority', member: stranger, publisher: generatePublisher() },
    ];
    for (const o of outsiders) {
      const record = sealDidRecord({ ringSalt: salt, number, publisher: o.publisher, claim: { vserviceId: 'outsider-vs', publishedAtMs: Date.now() }, sequence: Date.now(), expiresAtMs: Date.now() + 3600_000 });
      const wire = wireOf(o.member, 3000);
      for (const target of admitted) {
        await wire.know(target.peerId, target.ready.listen[0]!);
        const attempts = {
          store: await outcomeOf(wire.ring(target.peerId, { store: { records: [record] } })),
          fetch: await outcomeOf(wire.ring(target.peerId, { fetch: { keys: [didRecordKey(salt, parseE164('+12125550042'))] } })),
          validate: await outcomeOf(wire.validation(target.peerId, randomBytes(16), validationStart())),
        };
        expect({ outsider: o.name, target: target.name, ...attempts }).toEqual({ outsider: o.name, target: target.name, store: 'E_RPC_UNREACHABLE', fetch: 'E_RPC_UNREACHABLE', validate: 'E_RPC_UNREACHABLE' });
      }
    }

    // Through the enrolled peer's own API (the product's path): it can neither read nor write.
    const pendingAdmin = await pending.admin();
    expect(await refusal(pendingAdmin.get(`/v1/dids/${encodeURIComponent('+12125550042')}`))).toBe('E_RING_UNAVAILABLE');
    const write = await pendingAdmin.post<{ published: number; failed: { code: string }[] }>('/v1/dids', { vserviceId: 'pending-vs', numbers: [number] });
    expect(write.published).toBe(0);
    expect(write.failed.map((f) => f.code)).toEqual(['E_RING_WRITE_QUORUM']);

    // No member holds a connection with either, nothing was stored, read or validated for them.
    for (const m of admitted) {
      const { connections } = await (await m.admin()).get<{ connections: string[] }>('/v1/connections');
      expect(connections).not.toContain(pending.peerId);
      expect(connections).not.toContain(stranger.peerId);
    }
    const after = await Promise.all(admitted.map((m) => counters(m)));
    const watched = (c: Record<string, number>) => [c.IMEDistributedCacheStores ?? 0, c.IMEDistributedCacheReads ?? 0, c.ValidationsGranted ?? 0, c.BlockedValidationTermTLSLimit ?? 0];
    expect(after.map(watched)).toEqual(before.map(watched));
    expect((await lookup(acme, [number])).found).toBe(0);
    expect((await counters(ring.bootstraps[0]!)).PendingAdmission).toBe(1);

    // Control: an admitted member's same requests are answered.
    const control = wireOf(mallory);
    for (const target of admitted) {
      await control.know(target.peerId, target.ready.listen[0]!);
      const answer = await control.ring(target.peerId, { fetch: { keys: [didRecordKey(salt, parseE164('+12125550042'))] } });
      expect([answer.error, answer.fetch?.entries.length]).toEqual([null, 1]);
    }
    const offer = await control.validation(globex.peerId, randomBytes(16), validationStart());
    expect(offer.response.body.kind).toBe('offer');

    // An admitted accomplice cannot bring the outsider's signed record in either.
    const relayed = sealDidRecord({ ringSalt: salt, number, publisher: outsiders[0]!.publisher, claim: { vserviceId: 'relayed-vs', publishedAtMs: Date.now() }, sequence: Date.now(), expiresAtMs: Date.now() + 3600_000 });
    for (const target of admitted) {
      expect(recordCodes(await control.ring(target.peerId, { store: { records: [relayed] } }), 'store')).toEqual(['E_PUBLISHER_NOT_ADMITTED']);
      expect(recordCodes(await control.ring(target.peerId, { handoff: { records: [relayed], done: true } }), 'handoff')).toEqual(['E_PUBLISHER_NOT_ADMITTED']);
    }
    expect((await lookup(acme, [number])).found).toBe(0);
    await pending.stop();
  }, 120_000);

  it('a banned peer is disconnected by every member within one propagation interval; its stores, fetches and validations are refused afterwards', async () => {
    const members = admittedMembers();
    const key = didRecordKey(salt, parseE164('+12125550042'));

    // While admitted it is served, and every member is connected with it.
    const admittedWire = wireOf(rogue);
    for (const m of members) {
      await admittedWire.know(m.peerId, m.ready.listen[0]!);
      expect((await admittedWire.ring(m.peerId, { fetch: { keys: [key] } })).error).toBeNull();
    }
    const rogueRecord = (n: string) =>
      sealDidRecord({ ringSalt: salt, number: parseE164(n), publisher: publisherFromSeed(ed25519Seed(rogueKey)), claim: { vserviceId: 'rogue-vs', publishedAtMs: Date.now() }, sequence: Date.now(), expiresAtMs: Date.now() + 3600_000 });
    expect(recordCodes(await admittedWire.ring(acme.peerId, { store: { records: [rogueRecord('+4930555000201')] } }), 'store')).toEqual(['accepted']);
    expect((await (await acme.admin()).get<{ held: boolean }>(`/v1/store/dids/${encodeURIComponent('+4930555000201')}`)).held).toBe(true);
    for (const m of members) {
      expect((await (await m.admin()).get<{ connections: string[] }>('/v1/connections')).connections).toContain(rogue.peerId);
    }

    const bootstrap = await ring.bootstraps[0]!.admin();
    const bannedAt = Date.now();
    await bootstrap.post('/v1/bans', { peerId: rogue.peerId, reason: 'attack suite: a rogue operator' });
    const { sequence } = await bootstrap.get<{ sequence: number }>('/v1/summary');
    const pollSec = (await bootstrap.get<{ parameters: { pollIntervalSec: number } }>('/v1/configuration')).parameters.pollIntervalSec;
    // The bootstrap pushes the ban at once and peers poll every interval; a loaded machine gets slack.
    await waitFor(
      'every member to hold the ban and drop the banned peer',
      async () => {
        for (const m of members) {
          const admin = await m.admin();
          const s = await summary(m);
          const ids = (await admin.get<{ members: { peerId: string }[] }>('/v1/ring/members')).members.map((x) => x.peerId);
          const { connections } = await admin.get<{ connections: string[] }>('/v1/connections');
          if (s.sequence < sequence || ids.includes(rogue.peerId) || connections.includes(rogue.peerId)) return false;
        }
        return true;
      },
      pollSec * 1000 + 4000,
      50,
    );
    progress(`banned peer dropped by all ${members.length} members ${Date.now() - bannedAt} ms after the ban (poll interval ${pollSec} s)`);
    // What it stored while admitted leaves the replicas with the ban, not at its expiry, and no reader
    // sees it as a claim meanwhile.
    const preBan = encodeURIComponent('+4930555000201');
    await waitFor('the record it stored before the ban to leave the store', async () => !(await (await acme.admin()).get<{ held: boolean }>(`/v1/store/dids/${preBan}`)).held, 10_000, 50);
    for (const m of members) expect((await (await m.admin()).get<{ claims: unknown[] }>(`/v1/dids/${preBan}`)).claims).toEqual([]);

    // Afterwards: every request it makes is refused at the connection, by every member.
    const bannedWire = wireOf(rogue, 3000);
    for (const m of members) {
      await bannedWire.know(m.peerId, m.ready.listen[0]!);
      const attempts = {
        store: await outcomeOf(bannedWire.ring(m.peerId, { store: { records: [rogueRecord('+4930555000202')] } })),
        fetch: await outcomeOf(bannedWire.ring(m.peerId, { fetch: { keys: [key] } })),
        validate: await outcomeOf(bannedWire.validation(m.peerId, randomBytes(16), validationStart())),
      };
      expect({ member: m.name, ...attempts }).toEqual({ member: m.name, store: 'E_RPC_UNREACHABLE', fetch: 'E_RPC_UNREACHABLE', validate: 'E_RPC_UNREACHABLE' });
    }
    // …and an admitted accomplice cannot store for it: the ring no longer takes its signature.
    const accomplice = wireOf(mallory);
    for (const m of [acme, globex, initech]) {
      await accomplice.know(m.peerId, m.ready.listen[0]!);
      expect(recordCodes(await accomplice.ring(m.peerId, { store: { records: [rogueRecord('+4930555000203')] } }), 'store')).toEqual(['E_PUBLISHER_NOT_ADMITTED']);
      expect(recordCodes(await accomplice.ring(m.peerId, { handoff: { records: [rogueRecord('+4930555000203')], done: true } }), 'handoff')).toEqual(['E_PUBLISHER_NOT_ADMITTED']);
    }

    // The banned peer's own view and API: RED, alerted, unable to read or write.
    await waitFor('the banned peer to learn of its ban', async () => (await summary(rogue)).healthReasons.join(' ').includes('banned'), 10_000, 100);
    expect((await summary(rogue)).health).toBe('RED');
    const rogueAdmin = await rogue.admin();
    expect((await rogueAdmin.get<{ alerts: { name: string }[] }>('/v1/alerts')).alerts.map((a) => a.name)).toContain('BannedFromNetwork');
    expect(await refusal(rogueAdmin.get(`/v1/dids/${encodeURIComponent('+12125550042')}`))).toBe('E_RING_UNAVAILABLE');
    const write = await rogueAdmin.post<{ published: number; failed: { code: string }[] }>('/v1/dids', { vserviceId: 'rogue-vs', numbers: ['+4930555000204'] });
    expect(write.published).toBe(0);
    expect((await counters(ring.bootstraps[0]!)).BannedPeers).toBe(1);
    // The ring goes on without it.
    expect((await lookup(acme, [ACME_CALLER, '+12125550042'])).found).toBe(2);
    expect((await summary(acme)).health).toBe('GREEN');
  }, 120_000);

  it("a member replaying another publisher's signed record (an older version, or under its own publisher id) is refused, and the owner's value stays on every replica", async () => {
    const number = parseE164('+4930555000777');
    const key = didRecordKey(salt, number);
    const ownerKey = peerIdFromString(initech.peerId).publicKey!.raw;
    const thief = publisherFromSeed(ed25519Seed(malloryKey));
    const owner = await initech.admin();
    const byId = new Map([acme, globex, initech, mallory].map((m) => [m.peerId, m]));
    const wire = wireOf(mallory);

    await owner.post('/v1/dids', { vserviceId: 'initech-v1', numbers: [number] });
    const { replicas } = await (await acme.admin()).get<{ replicas: string[] }>(`/v1/dids/${encodeURIComponent(number)}`);
    expect(replicas).toHaveLength(3);
    // The thief's own store is its own business; the replicas that matter are the others.
    const honest = replicas.filter((r) => r !== mallory.peerId).map((r) => byId.get(r)!);
    expect(honest.length).toBeGreaterThanOrEqual(2);
    for (const r of honest) await wire.know(r.peerId, r.ready.listen[0]!);
    const held = async (replica: Member): Promise<DidRecord[]> =>
      ((await wire.ring(replica.peerId, { fetch: { keys: [key] } })).fetch!.entries[0]?.records ?? []) as unknown as DidRecord[];
    const ownersAt = async (replica: Member) => (await held(replica)).find((r) => bytesEqual(r.publisherKey, ownerKey));
    const claimsSeen = async () =>
      Promise.all([acme, globex].map(async (m) => (await (await m.admin()).get<{ claims: { peerId: string; vserviceId: string }[] }>(`/v1/dids/${encodeURIComponent(number)}`)).claims));

    const v1 = (await ownersAt(honest[0]!))!;
    expect(v1).toEqual(expect.objectContaining({ tombstone: false }));
    await owner.post('/v1/dids', { vserviceId: 'initech-v2', numbers: [number] });
    const v2 = (await ownersAt(honest[0]!))!;
    expect(v2.sequence).toBeGreaterThan(v1.sequence);

    const replay = async (records: DidRecord[]) => {
      const out: string[] = [];
      for (const r of honest) {
        out.push(...recordCodes(await wire.ring(r.peerId, { store: { records } }), 'store'));
        out.push(...recordCodes(await wire.ring(r.peerId, { handoff: { records, done: true } }), 'handoff'));
      }
      return out;
    };
    // The same bytes, an older version: refused by every replica, by store and by handoff alike.
    expect(new Set(await replay([v1]))).toEqual(new Set(['E_STALE_SEQUENCE']));
    // The older version with a higher sequence written in: the owner's signature no longer covers it.
    expect(new Set(await replay([{ ...v1, sequence: v2.sequence + 1 }]))).toEqual(new Set(['E_DID_RECORD_SIGNATURE']));
    for (const r of honest) {
      const current = (await ownersAt(r))!;
      expect([current.sequence, Buffer.from(current.signature).toString('hex')]).toEqual([v2.sequence, Buffer.from(v2.signature).toString('hex')]);
    }
    for (const claims of await claimsSeen()) expect(claims).toEqual([expect.objectContaining({ peerId: initech.peerId, vserviceId: 'initech-v2' })]);

    // Under its own publisher id: the owner's signed record with the thief's key as its publisher, sent
    // over the thief's own connection. A replica may keep that as the thief's own record (it trusts a
    // publisher's own connection for its signature, and it cannot read the claim without the number),
    // but passed on it is refused, and nobody can read it as a claim: the owner's signature does not
    // cover the thief's key, and the claim is sealed to the owner's key.
    const asThief: DidRecord = { ...v2, publisherKey: thief.publicKey };
    const storeCodes: string[] = [];
    const handoffCodes: string[] = [];
    for (const r of honest) {
      // Handed on first, as repair and anti-entropy would from a replica that took it.
      handoffCodes.push(...recordCodes(await wire.ring(r.peerId, { handoff: { records: [asThief], done: true } }), 'handoff'));
      storeCodes.push(...recordCodes(await wire.ring(r.peerId, { store: { records: [asThief] } }), 'store'));
    }
    expect(storeCodes.every((c) => c === 'accepted' || c === 'E_DID_RECORD_SIGNATURE')).toBe(true);
    progress(`owner's record re-sent under the thief's publisher id: handoff ${handoffCodes.join(' ')}; store over the thief's own connection ${storeCodes.join(' ')}`);
    expect(new Set(handoffCodes)).toEqual(new Set(['E_DID_RECORD_SIGNATURE']));
    expect(() => openDidRecord(asThief, { ringSalt: salt, number })).toThrow(expect.objectContaining({ code: 'E_DID_RECORD_SIGNATURE' }));
    expect(() => openDidRecord(asThief, { ringSalt: salt, number, signatureVerified: true })).toThrow(expect.objectContaining({ code: 'E_DID_RECORD_DECRYPT' }));
    for (const claims of await claimsSeen()) expect(claims).toEqual([expect.objectContaining({ peerId: initech.peerId, vserviceId: 'initech-v2' })]);
    for (const r of honest) expect((await ownersAt(r))!.sequence).toBe(v2.sequence);

    // The owner withdraws; replaying either earlier version cannot bring the claim back.
    await owner.delete('/v1/dids', { numbers: [number] });
    const tombstone = (await ownersAt(honest[0]!))!;
    expect(tombstone).toEqual(expect.objectContaining({ tombstone: true }));
    expect(new Set([...(await replay([v2])), ...(await replay([v1]))])).toEqual(new Set(['E_STALE_SEQUENCE']));
    for (const r of honest) {
      const current = (await ownersAt(r))!;
      expect([current.tombstone, current.sequence]).toEqual([true, tombstone.sequence]);
    }
    for (const claims of await claimsSeen()) expect(claims).toEqual([]);
  }, 120_000);

  it('a peer guessing call details during validation fails, gets answers it cannot tell from a no-match, and is rate-limited; an honest validation still succeeds', async () => {
    const called = '+12125550042';
    const startMs = Date.now() - 3 * MINUTE;
    const stopMs = startMs + 61_000;
    // The real call: acme's +14085551001 called globex's +12125550042, and globex's call manager reported it.
    expect((await globexCm.uploadVcrs([{ calling: ACME_CALLER, called, startMs, stopMs, direction: 'terminating', callId: 'guessed-call' }])).refused).toEqual([]);
    const before = await counters(globex);
    const wire = wireOf(mallory);
    await wire.know(globex.peerId, globex.ready.listen[0]!);
    const cellMs = cellWidthMs(TOLERANCE_SEC * 1000);

    /** What the guesser can observe of one answer: its kind, its size on the wire and the size of every field. */
    const shape = (body: PvpResponseBody, bytes: number): unknown => {
      switch (body.kind) {
        case 'offer':
          return { kind: body.kind, bytes, slots: body.slots, maxAttempts: body.maxAttempts, nonce: body.terminatorNonce.length };
        case 'answer':
          return { kind: body.kind, bytes, attempt: body.attempt, slots: body.slots.map((s) => [s.share.length, s.confirm.length]) };
        case 'refused':
          return { kind: body.kind, code: body.code };
        case 'result':
          return { kind: body.kind, bytes, nonce: body.nonce.length, sealed: body.sealed.length };
        default:
          return { kind: body.kind, bytes };
      }
    };
    /** One validation as the product's originating side runs it, with the guessed details. */
    const guess = async (call: CallDetails) => {
      const transcript: unknown[] = [];
      const send: PvpSend = async (sessionId, body) => {
        const { response, bytes } = await wire.validation(globex.peerId, sessionId, body);
        transcript.push(shape(response.body, bytes));
        return response.body;
      };
      const outcome = await runValidation({ call, selfPeerId: mallory.peerId, claimantPeerId: globex.peerId, claimantDomain: 'globex.example', parameters: { windowMs: 300_000, cellMs }, send });
      return { outcome, transcript };
    };

    const rand = prng(0x6e55);
    const randomGuess = (): CallDetails => {
      // A caller of acme's range other than the real one, and a start up to two minutes off.
      const caller = `+140855510${String(2 + rand.int(98)).padStart(2, '0')}`;
      const offset = (rand.int(240) - 120) * 1000;
      return { calling: caller, called, startMs: startMs + offset, stopMs: stopMs + offset + rand.int(30_000) };
    };
    const guesses: Record<string, CallDetails> = {
      'wrong calling number': { calling: '+14085551002', called, startMs, stopMs },
      'wrong start time (40 s late)': { calling: ACME_CALLER, called, startMs: startMs + 40_000, stopMs: stopMs + 40_000 },
      'random guess 1': randomGuess(),
      'random guess 2': randomGuess(),
      'random guess 3': randomGuess(),
    };
    // Where globex holds no candidate call at all: what "no match" looks like.
    const baselines: Record<string, CallDetails> = {
      'a globex number with no call': { calling: ACME_CALLER, called: '+12125550043', startMs, stopMs },
      'the real number, an hour without calls': { calling: ACME_CALLER, called, startMs: startMs - 60 * MINUTE, stopMs: stopMs - 60 * MINUTE },
    };
    const transcripts: Record<string, unknown[]> = {};
    for (const [name, call] of Object.entries({ ...baselines, ...guesses })) {
      const { outcome, transcript } = await guess(call);
      expect({ name, outcome }).toEqual({ name, outcome: { kind: 'failure', attempts: 6 } });
      transcripts[name] = transcript;
    }
    const noMatch = transcripts['a globex number with no call']!;
    // An offer, six answers of three slots each (real candidates padded with dummies), then closed.
    expect(noMatch.map((t) => (t as { kind: string }).kind)).toEqual(['offer', ...Array(6).fill('answer'), 'closed']);
    for (const [name, transcript] of Object.entries(transcripts)) expect({ name, transcript }).toEqual({ name, transcript: noMatch });
    expect((await counters(globex)).ValidationsGranted ?? 0).toBe(before.ValidationsGranted ?? 0);

    // Repeated guessing: globex's per-peer budget runs out and it refuses, and keeps refusing.
    let refusedAfter = 0;
    for (let i = 0; i < 20; i++) {
      const { outcome } = await guess(randomGuess());
      if (outcome.kind === 'refused') {
        expect(outcome.code).toBe('E_PVP_RATE_LIMITED');
        refusedAfter = i + 1;
        break;
      }
      expect(outcome.kind).toBe('failure');
    }
    expect(refusedAfter).toBeGreaterThan(0);
    // It keeps hammering: from now on it gets no more than the refill rate allows.
    const hammerFrom = Date.now();
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) {
      const start = await wire.validation(globex.peerId, randomBytes(16), validationStart(called));
      answers.push(start.response.body.kind === 'refused' ? start.response.body.code : start.response.body.kind);
    }
    const refill = 1 + Math.floor(((Date.now() - hammerFrom) * TERMINATING_PER_MINUTE) / MINUTE);
    expect(answers.filter((a) => a !== 'E_PVP_RATE_LIMITED').length).toBeLessThanOrEqual(refill);
    expect(answers.filter((a) => a !== 'E_PVP_RATE_LIMITED' && a !== 'offer')).toEqual([]);
    const limited = await counters(globex);
    expect(limited.BlockedValidationTermTLSLimit ?? 0).toBeGreaterThanOrEqual((before.BlockedValidationTermTLSLimit ?? 0) + 1 + answers.filter((a) => a === 'E_PVP_RATE_LIMITED').length);
    expect(limited.ValidationsGranted ?? 0).toBe(before.ValidationsGranted ?? 0);
    progress(`guesser refused (E_PVP_RATE_LIMITED) after ${Object.keys(transcripts).length + refusedAfter} sessions`);

    // acme, who really made the call, proves it: same call, another peer, not limited.
    expect((await acmeCm.uploadVcrs([{ calling: ACME_CALLER, called, startMs, stopMs, direction: 'originating', callId: 'guessed-call' }])).refused).toEqual([]);
    let honest: ValidationView | undefined;
    await waitFor("acme's validation of the guessed call", async () => {
      honest = (await validationsOf(acme)).find((v) => v.called === called);
      return honest !== undefined;
    }, 60_000, 200);
    expect(honest).toEqual(expect.objectContaining({ outcome: 'success', value: 12, domain: 'globex.example' }));
    expect((await counters(globex)).ValidationsGranted ?? 0).toBe((before.ValidationsGranted ?? 0) + 1);
  }, 180_000);

  it('10 000 forged or mutated tickets against globex\'s edge verifier: none accepted, each refusal coded; a sample through `ime ticket verify` exits 1 with its code', async () => {
    const route = await routeFromGlobex();
    const nowMs = Date.now();
    const retiredAtMs = nowMs - 30 * DAY;
    const edge = new TicketVerifier({ current: GLOBEX_TICKET, previous: { ...GLOBEX_RETIRED_TICKET, retiredAtMs }, graceMs: 7 * DAY });
    const rightful = { callingDomain: 'acme.example', calledNumber: route.number, nowMs };
    // Control: the ticket globex's peer issued to acme is accepted for its number, from acme.
    expect(edge.verify(route.ticket, rightful)).toEqual(expect.objectContaining({ valid: true, epoch: GLOBEX_TICKET.epoch }));

    const genuine = new TicketIssuer(GLOBEX_TICKET.password, GLOBEX_TICKET.epoch);
    const retired = new TicketIssuer(GLOBEX_RETIRED_TICKET.password, GLOBEX_RETIRED_TICKET.epoch);
    const impostor = new TicketIssuer('not-globex-ticket-password', GLOBEX_TICKET.epoch);
    const claims = (nowAt: number, validForMs: number, numbers = [route.number]) => ({ issuerDomain: 'globex.example', callingDomain: 'acme.example', numbers, nowMs: nowAt, validForMs });
    const rand = prng(0x71c4e7);
    const real = Buffer.from(route.ticket, 'base64url');
    const ALPHABET = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ~%é😀'];
    const otherDomains = ['globex.example', 'initech.example', 'acme.example.evil', 'evil-acme.example', 'acme.exampl', 'sub.acme.example', 'acme.example.com', 'mallory.example'];

    interface Forgery {
      readonly category: string;
      readonly ticket: string;
      readonly callingDomain: string;
      readonly called: string;
    }
    const asIs = (ticket: string): Omit<Forgery, 'category'> => ({ ticket, callingDomain: 'acme.example', called: route.number });
    const CATEGORIES: { name: string; count: number; allowed: readonly TicketRefusalReason[]; make: () => Omit<Forgery, 'category'> }[] = [
      { name: 'random bytes', count: 1800, allowed: ['malformed', 'unknown-epoch', 'bad-signature'], make: () => asIs(Buffer.from(rand.bytes(1 + rand.int(200))).toString('base64url')) },
      { name: 'random text', count: 500, allowed: ['malformed', 'unknown-epoch', 'bad-signature'], make: () => asIs(Array.from({ length: 1 + rand.int(160) }, () => ALPHABET[rand.int(ALPHABET.length)]).join('')) },
      {
        name: 'one bit flipped',
        count: 3000,
        allowed: ['malformed', 'unknown-epoch', 'bad-signature'],
        make: () => {
          const b = Buffer.from(real);
          const bit = rand.int(b.length * 8);
          b[bit >> 3] = (b[bit >> 3] as number) ^ (1 << (bit & 7));
          return asIs(b.toString('base64url'));
        },
      },
      {
        name: 'bytes rewritten',
        count: 1000,
        allowed: ['malformed', 'unknown-epoch', 'bad-signature'],
        make: () => {
          const b = Buffer.from(real);
          for (let k = 0, n = 1 + rand.int(8); k < n; k++) {
            const at = rand.int(b.length);
            b[at] = ((b[at] as number) + 1 + rand.int(255)) & 0xff;
          }
          return asIs(b.toString('base64url'));
        },
      },
      {
        name: 'text cut, padded or re-spelled',
        count: 500,
        allowed: ['malformed', 'unknown-epoch', 'bad-signature'],
        make: () => {
          const t = route.ticket;
          switch (rand.int(3)) {
            case 0:
              return asIs(t.slice(0, rand.int(t.length)));
            case 1:
              return asIs(t + Array.from({ length: 1 + rand.int(8) }, () => ALPHABET[rand.int(64)]).join(''));
            default: {
              const at = rand.int(t.length);
              const ch = ALPHABET.filter((c) => c !== t[at])[rand.int(ALPHABET.length - 1)]!;
              return asIs(t.slice(0, at) + ch + t.slice(at + 1));
            }
          }
        },
      },
      { name: 'presented by another domain', count: 800, allowed: ['domain-mismatch'], make: () => ({ ...asIs(route.ticket), callingDomain: rand.next() < 0.5 ? otherDomains[rand.int(otherDomains.length)]! : `x${rand.int(1e6)}.example` }) },
      {
        name: 'for another number',
        count: 800,
        allowed: ['number-not-permitted'],
        make: () => {
          // globex's other numbers (the ticket's neighbours among them), or any North American number.
          for (;;) {
            const n = rand.next() < 0.5 ? `+121255500${String(rand.int(100)).padStart(2, '0')}` : `+1${2_000_000_000 + rand.int(7_999_999_999)}`;
            if (n !== route.number) return { ...asIs(route.ticket), called: n };
          }
        },
      },
      { name: 'expired', count: 500, allowed: ['expired'], make: () => asIs(genuine.issue(claims(nowMs - (2 + rand.int(700)) * DAY, rand.int(DAY))).ticket) },
      { name: 'previous epoch past its grace', count: 500, allowed: ['unknown-epoch'], make: () => asIs(retired.issue(claims(nowMs - rand.int(60) * DAY, 365 * DAY)).ticket) },
      {
        name: 'signed with another password',
        count: 500,
        allowed: ['bad-signature'],
        make: () => asIs(impostor.issue(claims(nowMs - rand.int(DAY), 365 * DAY, rand.next() < 0.5 ? [route.number] : [route.number, '+12125550001', '+12125550002'])).ticket),
      },
      { name: 'issued in the future', count: 100, allowed: ['not-yet-valid'], make: () => asIs(genuine.issue(claims(nowMs + 3600_000 + rand.int(30) * DAY, 365 * DAY)).ticket) },
    ];
    expect(CATEGORIES.reduce((n, c) => n + c.count, 0)).toBe(10_000);
    // Control for the retired epoch: inside its grace period the same kind of ticket is accepted.
    const duringGrace = new TicketVerifier({ current: GLOBEX_TICKET, previous: { ...GLOBEX_RETIRED_TICKET, retiredAtMs: nowMs - DAY }, graceMs: 7 * DAY });
    expect(duringGrace.verify(retired.issue(claims(nowMs - 30 * DAY, 365 * DAY)).ticket, rightful).valid).toBe(true);

    const sample: (Forgery & { reason: string })[] = [];
    const tally: Record<string, Record<string, number>> = {};
    let accepted = 0;
    for (const category of CATEGORIES) {
      const seen: Record<string, number> = (tally[category.name] = {});
      for (let i = 0; i < category.count; i++) {
        const forgery = { category: category.name, ...category.make() };
        const verdict = edge.verify(forgery.ticket, { callingDomain: forgery.callingDomain, calledNumber: forgery.called, nowMs });
        if (verdict.valid) {
          accepted++;
          continue;
        }
        const code = ticketRefusalCode(verdict.reason);
        expect(code).toMatch(/^E_TICKET_[A-Z_]+$/);
        if (!category.allowed.includes(verdict.reason)) throw new Error(`${category.name}: refused as ${verdict.reason}, expected one of ${category.allowed.join(', ')}`);
        seen[verdict.reason] = (seen[verdict.reason] ?? 0) + 1;
        if (i < 2 && !forgery.ticket.includes('\0')) sample.push({ ...forgery, reason: verdict.reason });
      }
    }
    expect(accepted).toBe(0);
    progress(`10 000 forged tickets refused: ${JSON.stringify(tally)}`);

    // The same check as the edge's operator runs it: `ime ticket verify`.
    const dir = ring.dir;
    const passwordFile = join(dir, 'globex-ticket.password');
    const retiredFile = join(dir, 'globex-ticket-retired.password');
    writeFileSync(passwordFile, `${GLOBEX_TICKET.password}\n`, { mode: 0o600 });
    writeFileSync(retiredFile, `${GLOBEX_RETIRED_TICKET.password}\n`, { mode: 0o600 });
    // The retired epoch is configured only where it is the point (each password costs the CLI a slow derivation).
    const verifyArgs = (ticket: string, callingDomain: string, called: string, withRetired: boolean) => [
      'ticket', 'verify', `--ticket=${ticket}`, '--password-file', passwordFile, '--epoch', String(GLOBEX_TICKET.epoch),
      '--calling-domain', callingDomain, '--called', called,
      ...(withRetired ? ['--previous-password-file', retiredFile, '--previous-epoch', String(GLOBEX_RETIRED_TICKET.epoch), '--previous-retired', new Date(retiredAtMs).toISOString(), '--grace-days', '7'] : []),
      '--at', new Date(nowMs).toISOString(), '--json',
    ];
    const control = await runIme(verifyArgs(route.ticket, 'acme.example', route.number, true), 60_000);
    expect([control.status, lastJson(control.stdout).valid]).toEqual([0, true]);
    expect(sample.length).toBeGreaterThanOrEqual(20);
    for (let i = 0; i < sample.length; i += 4) {
      await Promise.all(
        sample.slice(i, i + 4).map(async (f) => {
          const run = await runIme(verifyArgs(f.ticket, f.callingDomain, f.called, f.category === 'previous epoch past its grace'), 60_000);
          const json = lastJson(run.stdout);
          const code = ticketRefusalCode(f.reason as TicketRefusalReason);
          expect({ category: f.category, status: run.status, valid: json.valid, reason: json.reason, code: json.code, stderr: run.stderr.trim() }).toEqual({
            category: f.category,
            status: 1,
            valid: false,
            reason: f.reason,
            code,
            stderr: expect.stringContaining(code),
          });
          expect(run.stderr).not.toMatch(/\n\s+at /);
        }),
      );
    }
    progress(`${sample.length} forged tickets refused by \`ime ticket verify\` with exit 1 and their code`);
  }, 180_000);

  it('a call manager with a wrong password is refused registration (E_VAP_AUTH, InvalidCredentials, VAPInvalidCredentials) and nothing it sends is accepted', async () => {
    const port = vapPorts.get(globex)!;
    const admin = await globex.admin();
    const before = await counters(globex);
    const WRONG = 'guessed-password-123';
    const startMs = Date.now() - 2 * MINUTE;
    const evilVcr: Vcr = { calling: '+19005550001', called: '+12125550050', startMs, stopMs: startMs + 30_000, direction: 'terminating', callId: 'evil-call-1' };
    const evilService = { profileName: 'evil', id: 'evil-vs', domain: 'globex.example', sipUri: 'sip:ime@attacker.example:5060', maxDidCount: 100 };
    const evilEnrollment = { vserviceId: 'evil-vs', groups: [{ name: 'evil', patterns: ['+190055500XX'] }], exclusions: [], trustGroups: [] };
    const session = [
      encodeVapFrame({ sequence: 3, publishVservice: { vservice: writeVservice(evilService) } }),
      encodeVapFrame({ sequence: 4, publishEnrollment: writeEnrollment(evilEnrollment) }),
      encodeVapFrame({ sequence: 5, uploadVcr: { records: [writeVcr(evilVcr)] } }),
    ];

    // 1. The product's own client, with a wrong password.
    expect(await refusal(VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: VAP_USER, password: WRONG }))).toBe('E_VAP_AUTH');

    // 2. A call manager that sends its whole session right behind a Register with a wrong digest.
    const challengeOf = async (raw: RawVap, username: string) => {
      const clientNonce = new Uint8Array(randomBytes(32));
      raw.send({ hello: { username, clientNonce, clientSoftware: 'attacker' } });
      const frame = await raw.next();
      return { clientNonce, challenge: readChallenge(frame.challenge!) };
    };
    const pipelined = await RawVap.open(port);
    const { clientNonce, challenge } = await challengeOf(pipelined, VAP_USER);
    const digest = computeVapDigest(deriveVapKey(WRONG, challenge.salt, challenge.iterations), VAP_USER, clientNonce, challenge.serverNonce);
    pipelined.sendBytes(Buffer.concat([encodeVapFrame({ sequence: 2, register: { digest } }), ...session]));
    await pipelined.closed;
    expect(pipelined.frames.map((f) => f.error?.code ?? f.body)).toEqual(['E_VAP_AUTH']);

    // 3. No Hello at all: requests straight away.
    const headless = await RawVap.open(port);
    headless.sendBytes(Buffer.concat(session));
    await headless.closed;
    expect(headless.frames.map((f) => f.error?.code ?? f.body)).toEqual(['E_VAP_UNEXPECTED']);

    // 4. A user that does not exist gets a challenge of the same shape (no user enumeration) and the same refusal.
    const unknown = await RawVap.open(port);
    const probe = await challengeOf(unknown, 'root');
    expect([probe.challenge.salt.length, probe.challenge.iterations]).toEqual([challenge.salt.length, challenge.iterations]);
    unknown.send({ register: { digest: computeVapDigest(deriveVapKey(WRONG, probe.challenge.salt, probe.challenge.iterations), 'root', probe.clientNonce, probe.challenge.serverNonce) } });
    await unknown.closed;
    expect(unknown.frames.map((f) => f.error?.code ?? f.body)).toEqual(['E_VAP_AUTH']);

    const after = await counters(globex);
    expect(after.VAPInvalidCredentials ?? 0).toBe((before.VAPInvalidCredentials ?? 0) + 3);
    expect(after.VCRsReceived ?? 0).toBe(before.VCRsReceived ?? 0);
    const alerts = await admin.get<{ alerts: { name: string; details: Record<string, unknown> }[] }>('/v1/alerts');
    const raised = alerts.alerts.filter((a) => a.name === 'InvalidCredentials');
    expect(raised.map((a) => a.details.user)).toEqual(expect.arrayContaining([VAP_USER, 'root']));
    for (const a of raised) expect(a.details.clientAddress).toEqual(expect.stringContaining('127.0.0.1'));
    expect(JSON.stringify(alerts)).not.toContain(WRONG);

    // Nothing it sent was taken: no VCR, no Vservice, no enrollment, no DID in the ring.
    const vcrs = await admin.get<{ vcrs: { callId: string }[] }>('/v1/vcrs?direction=terminating&limit=10000');
    expect(vcrs.vcrs.map((v) => v.callId)).not.toContain('evil-call-1');
    const { vservices } = await admin.get<{ vservices: { vservice: { id: string }; didCount: number }[] }>('/v1/vservices');
    expect(vservices.map((v) => [v.vservice.id, v.didCount])).toEqual([['globex-vs', 100]]);
    expect((await lookup(acme, ['+19005550001', '+19005550099'])).found).toBe(0);
    expect((await (await acme.admin()).get<{ claims: { vserviceId: string }[] }>(`/v1/dids/${encodeURIComponent('+12125550050')}`)).claims.map((c) => c.vserviceId)).toEqual(['globex-vs']);

    // globex's own call manager was not disturbed.
    expect(globexCm.closed).toBe(false);
    expect((await globexCm.uploadVcrs([])).accepted).toBe(0);
    expect(after.ClientsRegistered).toBe(1);
  }, 60_000);

  it('a VAP connection flood: the excess is refused, the peer stays up within a sane memory bound, two registered call managers keep getting keepalive answers and acknowledged, stored VCRs, and a call manager that reconnects during the flood gets in', async () => {
    const admin = await initech.admin();
    const { boundPort: port } = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'flooded', host: '127.0.0.1', port: 0, maxConnectionsAllowed: 16, keepaliveIntervalSec: 1 });
    await admin.post('/v1/vap/credentials', { server: 'flooded', username: VAP_USER, password: VAP_PASSWORD, ticketPassword: 'initech-ticket-password-1', epoch: 1 });

    // Two legitimate call managers: the product's client (its keepalive watchdog closes it if three
    // intervals pass without a frame from the peer), and one written by hand so the test sees each
    // keepalive answer itself.
    const cm1 = await VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: VAP_USER, password: VAP_PASSWORD });
    clients.push(cm1);
    const cm2 = await RawVap.open(port);
    expect((await cm2.register(VAP_USER, VAP_PASSWORD)).frame.body).toBe('registered');
    const before = await counters(initech);
    const startMemoryMB = before.ProcessResidentMemoryMB!;

    const vcr = (callId: string): Vcr => ({ calling: '+15125550001', called: '+15125550002', startMs: Date.now() - 2 * MINUTE, stopMs: Date.now() - MINUTE, direction: 'terminating', callId });
    const stored: string[] = [];
    const failures: string[] = [];
    const served = { cm1: 0, cm2: 0, keepalives: 0 };
    let stop = false;
    const legitimate = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const ack1 = await cm1.uploadVcrs([vcr(`flood-cm1-${i}`)]);
          if (ack1.accepted === 1) {
            served.cm1++;
            stored.push(`flood-cm1-${i}`);
          } else failures.push(`cm1 upload ${i}: ${JSON.stringify(ack1)}`);
          const ka = cm2.send({ keepalive: { sentAtMs: Date.now() } });
          if ((await cm2.reply(ka, 15_000)).keepaliveAck) served.keepalives++;
          else failures.push(`cm2 keepalive ${i} not answered with an ack`);
          const up = cm2.send({ uploadVcr: { records: [writeVcr(vcr(`flood-cm2-${i}`))] } });
          const answer = await cm2.reply(up, 15_000);
          if (answer.ack && readAck(answer.ack).accepted === 1) {
            served.cm2++;
            stored.push(`flood-cm2-${i}`);
          } else failures.push(`cm2 upload ${i}: ${answer.error?.code ?? answer.body}`);
        } catch (err) {
          failures.push(`legitimate call manager: ${(err as Error).message}`);
          return;
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    })();

    let peakMemoryMB = startMemoryMB;
    const sampler = setInterval(() => {
      void counters(initech).then(
        (c) => (peakMemoryMB = Math.max(peakMemoryMB, c.ProcessResidentMemoryMB ?? 0)),
        () => undefined,
      );
    }, 500);

    // The flood: 300 connections at once, then 48 attackers reconnecting for twelve seconds — silent
    // sockets, garbage, a Hello and nothing more, wrong digests, absurd frame lengths, half a header.
    progress('flooding the VAP instance');
    const floodStarted = Date.now();
    const servedAtStart = { ...served };
    const outcomes: FloodOutcome[] = [];
    let launched = 0;
    const one = async () => {
      const kind = FLOOD_KINDS[launched++ % FLOOD_KINDS.length]!;
      outcomes.push(await floodConnection(port, kind, 25_000));
    };
    const wave = Promise.all(Array.from({ length: 300 }, one));
    // A call manager that has to (re)connect while the flood lasts still gets in: a full instance
    // gives the slot of its oldest connection that has not registered to the newcomer.
    const reconnections: string[] = [];
    const reconnecting = (async () => {
      for (let i = 0; Date.now() - floodStarted < 10_000; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        try {
          const cm = await VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: VAP_USER, password: VAP_PASSWORD });
          const ack = await cm.uploadVcrs([vcr(`flood-reconnect-${i}`)]);
          if (ack.accepted === 1) stored.push(`flood-reconnect-${i}`);
          reconnections.push(ack.accepted === 1 ? 'ok' : `upload ${JSON.stringify(ack)}`);
          await cm.close();
        } catch (err) {
          reconnections.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
        }
      }
    })();
    await Promise.all(
      Array.from({ length: 48 }, async () => {
        while (Date.now() - floodStarted < 12_000) {
          await one();
          await new Promise((r) => setTimeout(r, 300));
        }
      }),
    );
    await wave;
    await reconnecting;
    const floodMs = Date.now() - floodStarted;
    const servedDuringFlood = { cm1: served.cm1 - servedAtStart.cm1, cm2: served.cm2 - servedAtStart.cm2, keepalives: served.keepalives - servedAtStart.keepalives };
    // After the flood: the call managers keep going for a while.
    const servedAfterFlood = { ...served };
    await waitFor('the call managers served after the flood', () => served.cm1 >= servedAfterFlood.cm1 + 3 && served.cm2 >= servedAfterFlood.cm2 + 3 || failures.length > 0, 30_000);
    stop = true;
    await legitimate;
    clearInterval(sampler);

    const after = await counters(initech);
    const refusedSeen = outcomes.filter((o) => o.codes.includes('E_VAP_TOO_MANY_CONNECTIONS')).length;
    const codes = [...new Set(outcomes.flatMap((o) => o.codes))].sort();
    progress(
      `flood: ${outcomes.length} connections in ${floodMs} ms, ${refusedSeen} refused as over the limit, codes ${codes.join(' ')}; ` +
        `during it ${reconnections.length} reconnections (${reconnections.filter((r) => r === 'ok').length} registered and uploaded), cm1 ${servedDuringFlood.cm1} uploads, cm2 ${servedDuringFlood.cm2} uploads and ${servedDuringFlood.keepalives} keepalive answers; ` +
        `memory ${startMemoryMB} → peak ${peakMemoryMB} → ${after.ProcessResidentMemoryMB} MB`,
    );

    expect(failures).toEqual([]);
    expect(outcomes.length).toBeGreaterThanOrEqual(500);
    // Every hostile connection was closed by the peer (refused, a protocol error, the handshake timeout).
    expect(outcomes.filter((o) => !o.closedByServer)).toEqual([]);
    expect(refusedSeen).toBeGreaterThan(100);
    expect(codes).toEqual(expect.arrayContaining(['E_VAP_TOO_MANY_CONNECTIONS', 'E_VAP_AUTH']));
    expect(reconnections.length).toBeGreaterThanOrEqual(5);
    expect(reconnections.filter((r) => r !== 'ok')).toEqual([]);
    expect((after.VAPConnectionsRefused ?? 0) - (before.VAPConnectionsRefused ?? 0)).toBeGreaterThanOrEqual(refusedSeen);
    expect((after.VAPProtocolErrors ?? 0) - (before.VAPProtocolErrors ?? 0)).toBeGreaterThan(0);
    expect(after.VAPInvalidCredentials ?? 0).toBeGreaterThan(before.VAPInvalidCredentials ?? 0);
    // The legitimate call managers were served all along, and stayed registered.
    expect(servedDuringFlood.cm1).toBeGreaterThanOrEqual(5);
    expect(servedDuringFlood.cm2).toBeGreaterThanOrEqual(5);
    expect(servedDuringFlood.keepalives).toBeGreaterThanOrEqual(5);
    expect(cm1.closed).toBe(false);
    expect(cm2.isClosed).toBe(false);
    const { vcrs } = await admin.get<{ vcrs: { callId: string }[] }>('/v1/vcrs?direction=terminating&limit=10000');
    const held = new Set(vcrs.map((v) => v.callId));
    expect(stored.filter((id) => !held.has(id))).toEqual([]);
    // The peer process is up, healthy, and its memory stayed within a sane bound.
    expect(() => process.kill(initech.pid!, 0)).not.toThrow();
    expect((await summary(initech)).health).toBe('GREEN');
    expect(peakMemoryMB).toBeLessThan(startMemoryMB + 256);
    // Once the flood is over, a call manager can register again.
    const late = await VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: VAP_USER, password: VAP_PASSWORD });
    clients.push(late);
    expect((await late.uploadVcrs([vcr('after-the-flood')])).accepted).toBe(1);
    expect((await counters(initech)).ClientsRegistered).toBe(3);
    cm2.destroy();
  }, 180_000);
});
