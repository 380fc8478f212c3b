import { createHash } from 'node:crypto';
import { encodeSignedRingConfiguration, signRingConfiguration } from '@ime/admission';
import { type DidRecord, type Publisher, parseE164, sealDidRecord, sealDidTombstone } from '@ime/core';
import { TicketIssuer } from '@ime/ticket';
import {
  PVP_SUITE,
  ProverAttempt,
  type PvpRequest,
  type PvpResponse,
  canonicalCallSecret,
  encodeGrant,
  encodeRequest,
  encodeResponse,
  originatorPlan,
  proverScalars,
  sealGrant,
  slotContext,
  verifierRespond,
  verifierScalars,
} from '@ime/validator';
import {
  VAP_DIGEST_ALGORITHM,
  type VapFrameInit,
  encodeVapFrame,
  writeAck,
  writeChallenge,
  writeEnrollment,
  writeErrorInfo,
  writeHello,
  writeLearnedRoute,
  writeNotice,
  writeRegistered,
  writeVcr,
  writeVservice,
} from '@ime/vap';
import { ime } from '@ime/wire';
import {
  DAY_MS,
  FUZZ_NOW_MS,
  GRANT_KEY,
  HOUR_MS,
  type Identity,
  type IdentityName,
  NUMBERS,
  RING_SALT,
  TICKETS,
  baseConfiguration,
  ensureAuthority,
  identities,
  loadAuthority,
  writeSeeds,
} from './fixture.js';

/**
 * Writes the fuzz corpus: a few dozen VALID inputs per format, each made by the product's own
 * encoders (so a format change is picked up by running this again). Run through the test:
 * `IME_FUZZ_REGENERATE=1 npm run test:reliability -- fuzz`. The ring authority in corpus/keys.json
 * is kept across generations; delete that file to make a new one.
 */

type Seeds = [string, Uint8Array][];

function bytesOf(label: string, n: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`ime-fuzz-bytes|${label}`).digest()).subarray(0, n);
}

// ---------------------------------------------------------------------------------------------
// VAP: length-prefixed frames, alone or several in one stream

function vapSeeds(ticket: string): Seeds {
  const frame = (sequence: number, body: VapFrameInit, inReplyTo = 0) => encodeVapFrame({ sequence, inReplyTo, ...body });
  const stream = (...frames: Uint8Array[]) => Buffer.concat(frames);
  const vservice = { profileName: 'Acme IME', id: 'acme-vs-1', domain: 'acme.example', sipUri: 'sip:5e2f@acme.example:5060;transport=tcp', maxDidCount: 10_000 };
  const enrollment = {
    vserviceId: 'acme-vs-1',
    groups: [
      { name: 'main', patterns: ['+1408555XXXX', '+14085550100'] },
      { name: 'sales', patterns: ['+1212555XXX'] },
    ],
    exclusions: ['+14085550000'],
    trustGroups: [
      {
        name: 'partners',
        trusted: true,
        description: 'who may validate',
        elements: [
          { kind: 'domain' as const, value: 'globex.example' },
          { kind: 'prefix' as const, value: '+1212' },
        ],
      },
    ],
  };
  const vcr = (i: number, direction: 'originating' | 'terminating') => ({
    calling: '+14085550100',
    called: NUMBERS[i % NUMBERS.length] as string,
    startMs: FUZZ_NOW_MS - (i + 1) * 60_000,
    stopMs: FUZZ_NOW_MS - (i + 1) * 60_000 + 45_000,
    direction,
    callId: `call-${i}`,
  });
  const hello = frame(1, { hello: writeHello({ username: 'cucm-app', clientNonce: bytesOf('client-nonce', 32), clientSoftware: 'cm-sim 1.0' }) });
  const register = frame(2, { register: { digest: bytesOf('digest', 32) } });
  return [
    ['hello', hello],
    [
      'challenge',
      frame(
        1,
        { challenge: writeChallenge({ serverNonce: bytesOf('server-nonce', 32), algorithm: VAP_DIGEST_ALGORITHM, salt: bytesOf('salt', 16), iterations: 1000, keepaliveIntervalSec: 30 }) },
        1,
      ),
    ],
    ['register', register],
    ['registered', frame(2, { registered: writeRegistered({ peerId: '12D3KooWFuzzPeer', keepaliveIntervalSec: 30, ringHealth: 2 }) }, 2)],
    ['hello-register', stream(hello, register)],
    ['keepalive', frame(3, { keepalive: { sentAtMs: FUZZ_NOW_MS } })],
    ['keepalive-ack', frame(3, { keepaliveAck: { sentAtMs: FUZZ_NOW_MS } }, 3)],
    ['publish-vservice', frame(4, { publishVservice: { vservice: writeVservice(vservice) } })],
    ['withdraw-vservice', frame(5, { withdrawVservice: { id: 'acme-vs-1' } })],
    ['publish-enrollment', frame(6, { publishEnrollment: writeEnrollment(enrollment) })],
    [
      'publish-enrollment-blacklist',
      frame(6, {
        publishEnrollment: writeEnrollment({
          vserviceId: 'acme-vs-1',
          groups: [{ name: 'all', patterns: ['+1512555200X'] }],
          exclusions: [],
          trustGroups: [{ name: 'blocked', trusted: false, description: '', elements: [{ kind: 'domain', value: 'blocked.example' }] }],
        }),
      }),
    ],
    ['upload-vcr-1', frame(7, { uploadVcr: { records: [writeVcr(vcr(0, 'originating'))] } })],
    ['upload-vcr-3', frame(8, { uploadVcr: { records: [0, 1, 2].map((i) => writeVcr(vcr(i, i === 1 ? 'terminating' : 'originating'))) } })],
    ['ack', frame(4, { ack: writeAck({ accepted: 2, refused: [{ index: 1, code: 'E_VCR_NOT_E164', message: 'the called number is not +E.164' }] }) }, 8)],
    [
      'learned-routes',
      frame(9, {
        learnedRoutes: {
          routes: [
            writeLearnedRoute({
              number: NUMBERS[0],
              domain: 'globex.example',
              sipUri: 'sip:85b3@globex.example:5060;transport=tcp',
              ticket,
              learnedOnMs: FUZZ_NOW_MS,
              expiresOnMs: FUZZ_NOW_MS + 365 * DAY_MS,
            }),
          ],
        },
      }),
    ],
    ['notice', frame(10, { notice: writeNotice({ kind: 'over-quota', detail: 'the ring refused: quota used up' }) })],
    ['error', frame(11, { error: writeErrorInfo('E_VAP_AUTH', 'the digest does not match') }, 2)],
    ['publish-then-upload', stream(frame(4, { publishVservice: { vservice: writeVservice(vservice) } }), frame(7, { uploadVcr: { records: [writeVcr(vcr(3, 'terminating'))] } }))],
  ];
}

// ---------------------------------------------------------------------------------------------
// Ring: RingRequest payloads as one peer sends them to another

function ringRequest(request: ime.v1.IRingRequest): Uint8Array {
  return ime.v1.RingRequest.encode({ version: 1, ...request }).finish();
}

/** A DID record of one of the corpus's numbers, as `publisher` publishes it. */
export function sealRecord(publisher: Publisher, numberIndex: number, sequence: number, nowMs: number): DidRecord {
  return sealDidRecord({
    ringSalt: RING_SALT,
    number: parseE164(NUMBERS[numberIndex] as string),
    publisher,
    claim: { vserviceId: `vs-${numberIndex}`, publishedAtMs: nowMs },
    sequence,
    expiresAtMs: nowMs + 12 * HOUR_MS,
  });
}

function ringSeeds(ids: Record<IdentityName, Identity>, signedConfigurations: readonly Uint8Array[]): Seeds {
  const { alpha, beta } = ids;
  const record = (who: Identity, n: number, seq = 1) => sealRecord(who.publisher, n, seq, FUZZ_NOW_MS);
  const tombstone = (who: Identity, n: number, seq: number) =>
    sealDidTombstone({ ringSalt: RING_SALT, number: parseE164(NUMBERS[n] as string), publisher: who.publisher, sequence: seq, expiresAtMs: FUZZ_NOW_MS + 12 * HOUR_MS });
  const key = (n: number) => (record(alpha, n) as DidRecord).key;
  const top = new Uint8Array(32).fill(0xff);
  const zero = new Uint8Array(32);
  const middle = Uint8Array.from(zero, (_, i) => (i === 0 ? 0x80 : 0));
  const seeds: Seeds = [
    ['store-1', ringRequest({ store: { records: [record(alpha, 0)] } })],
    ['store-3', ringRequest({ store: { records: [record(alpha, 1), record(alpha, 2), record(alpha, 3)] } })],
    ['store-seq-2', ringRequest({ store: { records: [record(alpha, 0, 2)] } })],
    ['store-other-publisher', ringRequest({ store: { records: [record(beta, 0)] } })],
    ['store-tombstone-refused', ringRequest({ store: { records: [tombstone(alpha, 1, 5)] } })],
    ['withdraw', ringRequest({ withdraw: { tombstones: [tombstone(alpha, 2, 3)] } })],
    ['handoff', ringRequest({ handoff: { configurationSequence: 3, records: [record(beta, 1), record(alpha, 3)], done: true } })],
    ['fetch-1', ringRequest({ fetch: { keys: [key(0)] } })],
    ['fetch-3', ringRequest({ fetch: { keys: [key(0), key(1), key(2)] } })],
    ['range-digest-ring', ringRequest({ rangeDigest: { start: zero, end: zero, buckets: 16 } })],
    ['range-digest-half', ringRequest({ rangeDigest: { start: zero, end: middle, buckets: 1 } })],
    ['range-fetch-ring', ringRequest({ rangeFetch: { start: zero, end: zero, limit: 0 } })],
    ['range-fetch-after', ringRequest({ rangeFetch: { start: middle, end: top, after: key(1), limit: 10 } })],
    ['ping', ringRequest({ ping: { configurationSequence: 5 } })],
  ];
  signedConfigurations.slice(0, 3).forEach((signed, i) => {
    seeds.push([`configuration-push-${i + 1}`, ringRequest({ configuration: { configuration: ime.v1.SignedRingConfiguration.decode(signed), hops: 1 + i } })]);
  });
  return seeds;
}

// ---------------------------------------------------------------------------------------------
// Validation: requests (originator → terminator), responses (back) and grants (sealed inside a result)

/** The call both sides saw, which the corpus's shares are made from. */
export const VALIDATION_CALL = { calling: '+14085550100', called: NUMBERS[0] as string, startMs: FUZZ_NOW_MS - 10 * 60_000, stopMs: FUZZ_NOW_MS - 10 * 60_000 + 95_000 };
export const VALIDATION_WINDOW_MS = 10 * 60_000;
export const VALIDATION_CELL_MS = 10_000;
export const SESSION_IDS = [0, 1, 2, 3].map((i) => bytesOf(`session-${i}`, 16));
export const TERMINATOR_NONCE = bytesOf('terminator-nonce', 16);

/** The slot context of the corpus's answers (and of the fuzz target's originator-side checks). */
export function corpusSlotContext(ids: Record<IdentityName, Identity>, slot: number): Uint8Array {
  return slotContext({
    sessionId: SESSION_IDS[0] as Uint8Array,
    terminatorNonce: TERMINATOR_NONCE,
    originatorPeer: ids.alpha.peerId,
    terminatorPeer: ids.beta.peerId,
    called: VALIDATION_CALL.called,
    windowStartMs: Math.floor(VALIDATION_CALL.startMs / VALIDATION_WINDOW_MS) * VALIDATION_WINDOW_MS,
    cellMs: VALIDATION_CELL_MS,
    attempt: 1,
    slot,
  });
}

async function validationSeeds(ids: Record<IdentityName, Identity>, ticket: string): Promise<Seeds> {
  const windowStartMs = Math.floor(VALIDATION_CALL.startMs / VALIDATION_WINDOW_MS) * VALIDATION_WINDOW_MS;
  const plan = originatorPlan(VALIDATION_CALL, VALIDATION_CELL_MS);
  const secret = (i: number) => canonicalCallSecret(VALIDATION_CALL, plan[i % plan.length] as (typeof plan)[number], VALIDATION_CELL_MS);
  const share = (i: number) => ProverAttempt.start(proverScalars(secret(i))).share;
  const request = (sessionId: Uint8Array, body: PvpRequest['body']) => encodeRequest({ sessionId, body });
  const response = (sessionId: Uint8Array, body: PvpResponse['body']) => encodeResponse({ sessionId, body });
  const [s0, s1, s2, s3] = SESSION_IDS as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const start = (sessionId: Uint8Array, called: string, suite = PVP_SUITE) =>
    request(sessionId, { kind: 'start', called, windowStartMs, windowMs: VALIDATION_WINDOW_MS, cellMs: VALIDATION_CELL_MS, suite });
  const slotAnswer = async (slot: number) => {
    const r = await verifierRespond(verifierScalars(secret(0)), corpusSlotContext(ids, slot), share(0));
    return { share: r.share, confirm: r.confirm };
  };
  const grant = (value: 8 | 12) => encodeGrant({ domain: ids.beta.domain, sipUri: 'sip:85b3@globex.example:5060;transport=tcp', ticket, value });
  const sealed = sealGrant(GRANT_KEY, grant(12));
  return [
    ['request-start', start(s0, VALIDATION_CALL.called)],
    ['request-start-2', start(s1, VALIDATION_CALL.called)],
    ['request-start-other-number', start(s2, NUMBERS[1] as string)],
    ['request-start-unclaimed', start(s3, NUMBERS[3] as string)],
    ['request-start-wrong-suite', start(s1, VALIDATION_CALL.called, 'SPAKE2-P384')],
    ['request-attempt', request(s0, { kind: 'attempt', attempt: 1, proof: 'start-stop', share: share(0) })],
    ['request-attempt-2', request(s1, { kind: 'attempt', attempt: 1, proof: 'start-stop', share: share(1) })],
    ['request-attempt-start-only', request(s2, { kind: 'attempt', attempt: 1, proof: 'start-only', share: share(plan.length - 1) })],
    ['request-attempt-second', request(s0, { kind: 'attempt', attempt: 2, proof: 'start-stop', share: share(1) })],
    ['request-confirm', request(s0, { kind: 'confirm', attempt: 1, slot: 0, confirm: bytesOf('confirm', 32) })],
    ['request-abandon', request(s1, { kind: 'abandon' })],
    ['response-offer', response(s0, { kind: 'offer', slots: 3, maxAttempts: 6, terminatorNonce: TERMINATOR_NONCE })],
    ['response-answer', response(s0, { kind: 'answer', attempt: 1, slots: [await slotAnswer(0)] })],
    ['response-result', response(s0, { kind: 'result', nonce: sealed.nonce, sealed: sealed.sealed })],
    ['response-refused', response(s0, { kind: 'refused', code: 'E_PVP_BLOCKED', message: 'this enterprise does not validate calls from your domain' })],
    ['response-closed', response(s0, { kind: 'closed' })],
    ['grant-12', grant(12)],
    ['grant-8', grant(8)],
  ];
}

// ---------------------------------------------------------------------------------------------
// Ring configurations, signed by the corpus's authority

function ringConfigurationSeeds(ids: Record<IdentityName, Identity>): Seeds {
  const { signer } = loadAuthority();
  const sign = (sequence: number, overrides = {}) => encodeSignedRingConfiguration(signRingConfiguration(baseConfiguration(ids, sequence, overrides), signer));
  const base = baseConfiguration(ids, 1);
  return [
    ['sequence-1', sign(1)],
    ['sequence-2-motd', sign(2, { messageOfTheDay: 'maintenance on Sunday 02:00 UTC', minSoftwareVersion: '0.1.0' })],
    [
      'sequence-3-banned',
      sign(3, { bans: [{ peerId: ids.stranger.peerId, reason: 'sent forged records', bannedAtMs: FUZZ_NOW_MS - DAY_MS }] }),
    ],
    [
      'sequence-4-parameters',
      sign(4, { parameters: { replicationFactor: 5, writeQuorum: 3, readQuorum: 3, recordTtlSec: 3600, republishIntervalSec: 1800, storageQuota: 50_000, pollIntervalSec: 10 } }),
    ],
    [
      'sequence-5-three-members',
      sign(5, {
        roster: [
          ...base.roster,
          {
            peerId: ids.stranger.peerId,
            addresses: ['/ip4/10.0.0.3/tcp/6084', '/dns4/peer3.example/tcp/6084'],
            domain: 'initech.example',
            certificateSerial: '00ff10',
            certificateExpiresAtMs: FUZZ_NOW_MS + 100 * DAY_MS,
            virtualNodes: 64,
          },
        ],
      }),
    ],
    ['sequence-6-two-bootstraps', sign(6, { bootstraps: [...base.bootstraps, { peerId: ids.stranger.peerId, addresses: ['/ip4/127.0.0.1/tcp/6081'] }] })],
    ['sequence-7-empty-roster', sign(7, { roster: [], bootstraps: [] })],
    ['sequence-1000-long-expiry', sign(1000, { expiresAtMs: FUZZ_NOW_MS + 365 * DAY_MS })],
  ];
}

// ---------------------------------------------------------------------------------------------
// Tickets: the raw bytes (version, epoch, claims, MAC) as the terminating peer issues them

function ticketSeeds(current: TicketIssuer, previous: TicketIssuer): Seeds {
  const raw = (t: { ticket: string }) => new Uint8Array(Buffer.from(t.ticket, 'base64url'));
  const issue = (issuer: TicketIssuer, callingDomain: string, numbers: readonly string[], nowMs = FUZZ_NOW_MS - DAY_MS, validForMs?: number) =>
    raw(issuer.issue({ issuerDomain: TICKETS.issuerDomain, callingDomain, numbers, nowMs, ...(validForMs === undefined ? {} : { validForMs }) }));
  return [
    ['one-number', issue(current, 'acme.example', [NUMBERS[0]])],
    ['two-numbers', issue(current, 'acme.example', [NUMBERS[0], NUMBERS[1]])],
    ['four-numbers', issue(current, 'initech.example', [...NUMBERS])],
    ['other-caller', issue(current, 'initech.example', [NUMBERS[1]])],
    ['previous-epoch', issue(previous, 'acme.example', [NUMBERS[0]], FUZZ_NOW_MS - 30 * DAY_MS)],
    ['expired', issue(current, 'acme.example', [NUMBERS[0]], FUZZ_NOW_MS - 10 * DAY_MS, DAY_MS)],
    ['issued-in-the-future', issue(current, 'acme.example', [NUMBERS[0]], FUZZ_NOW_MS + DAY_MS)],
    ['short-validity', issue(current, 'acme.example', [NUMBERS[2]], FUZZ_NOW_MS - HOUR_MS, 2 * HOUR_MS)],
  ];
}

export async function generateCorpus(log: (line: string) => void = () => undefined): Promise<void> {
  ensureAuthority();
  const ids = await identities();
  const current = new TicketIssuer(TICKETS.password, TICKETS.epoch);
  const previous = new TicketIssuer(TICKETS.previousPassword, TICKETS.previousEpoch);
  const routeTicket = current.issue({ issuerDomain: TICKETS.issuerDomain, callingDomain: ids.alpha.domain, numbers: [NUMBERS[0]], nowMs: FUZZ_NOW_MS - DAY_MS }).ticket;
  const ringconf = ringConfigurationSeeds(ids);
  const sets: [Parameters<typeof writeSeeds>[0], Seeds][] = [
    ['vap', vapSeeds(routeTicket)],
    ['ring', ringSeeds(ids, ringconf.slice(1).map(([, b]) => b))],
    ['validation', await validationSeeds(ids, routeTicket)],
    ['ringconf', ringconf],
    ['ticket', ticketSeeds(current, previous)],
  ];
  for (const [format, seeds] of sets) {
    writeSeeds(format, seeds);
    log(`fuzz corpus: ${seeds.length} ${format} seeds written`);
  }
}
