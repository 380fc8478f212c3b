import { describe, expect, it } from '@jest/globals';
import { ime } from '@ime/wire';
import {
  VAP_LIMITS,
  checkAck,
  checkLearnedRoute,
  mergeUploadAck,
  readAck,
  readChallenge,
  readEnrollment,
  readErrorInfo,
  readHello,
  readLearnedRoutes,
  readNotice,
  readRegister,
  readRegistered,
  readVcr,
  readVcrUpload,
  readVservice,
  writeAck,
  writeEnrollment,
  writeErrorInfo,
  writeLearnedRoute,
  writeNotice,
  writeVcr,
  writeVservice,
} from '../src/vap-codec.js';
import { VAP_DIGEST_ALGORITHM } from '../src/vap-digest.js';
import type { Enrollment, LearnedRoute, Vcr, Vservice } from '../src/vap-types.js';
import { thrown } from './helpers.js';

/** Through the real encoder and decoder, as the other side would receive it. */
function wire<T>(type: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, message: T): T {
  return type.decode(type.encode(message).finish());
}

const NONCE = new Uint8Array(32).fill(7);

const VSERVICE: Vservice = {
  profileName: 'Vservice12-ccm18',
  id: '3834353762636435',
  domain: 'cisco.com',
  sipUri: 'sip:d954c46b-51b4-ea2d-cda4-8a20134279f6@cisco.com:5082;maddr=10.94.150.96;transport=tcp',
  maxDidCount: 100,
};

const ENROLLMENT: Enrollment = {
  vserviceId: 'vs-1',
  groups: [{ name: 'HQ', patterns: ['+14085550XXX', '+14085551234'] }],
  exclusions: ['+14085550001'],
  trustGroups: [
    {
      name: 'partners',
      trusted: true,
      description: 'who may validate',
      elements: [
        { kind: 'domain', value: 'globex.example' },
        { kind: 'prefix', value: '+1212!' },
      ],
    },
  ],
};

const VCR: Vcr = {
  calling: '+14085550100',
  called: '+12125550100',
  startMs: 1_700_000_000_000,
  stopMs: 1_700_000_060_000,
  direction: 'originating',
  callId: 'call-1',
};

const ROUTE: LearnedRoute = {
  number: '+12125550100',
  domain: 'globex.example',
  sipUri: 'sip:uuid@globex.example:5060;transport=tcp',
  ticket: 'AAAA_-zz',
  learnedOnMs: 1_700_000_000_000,
  expiresOnMs: 1_731_536_000_000,
};

describe('handshake messages', () => {
  it('reads a Hello and refuses a bad username, nonce or software name', () => {
    const hello = readHello(wire(ime.v1.Hello, { username: 'cucm', clientNonce: NONCE, clientSoftware: 'cm-sim 1' }));
    expect(hello.username).toBe('cucm');
    expect(Array.from(hello.clientNonce)).toEqual(Array.from(NONCE));
    expect(thrown(() => readHello({ username: '', clientNonce: NONCE })).code).toBe('E_VAP_BAD_HELLO');
    expect(thrown(() => readHello({ username: 'x'.repeat(65), clientNonce: NONCE })).code).toBe('E_VAP_BAD_HELLO');
    expect(thrown(() => readHello({ username: 'a\nb', clientNonce: NONCE })).code).toBe('E_VAP_BAD_HELLO');
    expect(thrown(() => readHello({ username: 'cucm', clientNonce: new Uint8Array(31) })).code).toBe('E_VAP_BAD_HELLO');
    expect(thrown(() => readHello({ username: 'cucm' })).code).toBe('E_VAP_BAD_HELLO');
    expect(thrown(() => readHello({ username: 'cucm', clientNonce: NONCE, clientSoftware: 's'.repeat(129) })).code).toBe('E_VAP_BAD_HELLO');
  });

  it('reads a Challenge and refuses an unknown algorithm or an absurd iteration count', () => {
    const good = { serverNonce: NONCE, algorithm: VAP_DIGEST_ALGORITHM, salt: new Uint8Array(16), iterations: 10_000, keepaliveIntervalSec: 30 };
    expect(readChallenge(wire(ime.v1.Challenge, good)).iterations).toBe(10_000);
    expect(thrown(() => readChallenge({ ...good, algorithm: 'MD5' })).code).toBe('E_VAP_BAD_CHALLENGE');
    expect(thrown(() => readChallenge({ ...good, iterations: 50_000_000 })).code).toBe('E_VAP_BAD_CHALLENGE');
    expect(thrown(() => readChallenge({ ...good, iterations: 1 })).code).toBe('E_VAP_BAD_CHALLENGE');
    expect(thrown(() => readChallenge({ ...good, salt: new Uint8Array(4) })).code).toBe('E_VAP_BAD_CHALLENGE');
    expect(thrown(() => readChallenge({ ...good, keepaliveIntervalSec: 0 })).code).toBe('E_VAP_BAD_CHALLENGE');
    expect(thrown(() => readChallenge({ ...good, serverNonce: new Uint8Array(0) })).code).toBe('E_VAP_BAD_CHALLENGE');
  });

  it('reads Register and Registered', () => {
    expect(readRegister({ digest: new Uint8Array(32) })).toHaveLength(32);
    expect(thrown(() => readRegister({ digest: new Uint8Array(16) })).code).toBe('E_VAP_BAD_REGISTER');
    expect(readRegistered({ peerId: '12D3KooW', keepaliveIntervalSec: 30, ringHealth: 2 })).toEqual({
      peerId: '12D3KooW',
      keepaliveIntervalSec: 30,
      ringHealth: 2,
    });
    expect(thrown(() => readRegistered({ peerId: '12D3KooW', keepaliveIntervalSec: 30, ringHealth: 3 })).code).toBe('E_VAP_BAD_REGISTERED');
    expect(thrown(() => readRegistered({ peerId: '', keepaliveIntervalSec: 30, ringHealth: 1 })).code).toBe('E_VAP_BAD_REGISTERED');
  });
});

describe('Vservice', () => {
  it('round-trips and normalises the domain', () => {
    expect(readVservice(wire(ime.v1.Vservice, writeVservice(VSERVICE)))).toEqual(VSERVICE);
    expect(readVservice({ ...writeVservice(VSERVICE), domain: 'Cisco.COM.' }).domain).toBe('cisco.com');
  });

  it.each([
    ['missing', null],
    ['empty profile name', { profileName: '' }],
    ['bad id', { id: 'has space' }],
    ['long id', { id: 'a'.repeat(65) }],
    ['bad domain', { domain: 'not a domain' }],
    ['empty SIP URI', { sipUri: '' }],
    ['SIP URI with a space', { sipUri: 'sip:a b@c' }],
    ['zero DIDs', { maxDidCount: 0 }],
    ['too many DIDs', { maxDidCount: VAP_LIMITS.maxDidCountMax + 1 }],
  ])('refuses %s with E_VAP_BAD_VSERVICE', (_what, change) => {
    const input = change === null ? null : { ...writeVservice(VSERVICE), ...change };
    expect(thrown(() => readVservice(input)).code).toBe('E_VAP_BAD_VSERVICE');
  });
});

describe('enrollment', () => {
  it('round-trips, with canonical patterns', () => {
    expect(readEnrollment(wire(ime.v1.PublishEnrollment, writeEnrollment(ENROLLMENT)))).toEqual(ENROLLMENT);
    const lower = readEnrollment({ ...writeEnrollment(ENROLLMENT), groups: [{ name: 'g', patterns: ['+1408555xxx'] }] });
    expect(lower.groups[0]?.patterns).toEqual(['+1408555XXX']);
  });

  it('refuses bad items naming the item, and keeps the core code in the message', () => {
    const base = writeEnrollment(ENROLLMENT);
    const badPattern = thrown(() => readEnrollment({ ...base, groups: [{ name: 'g', patterns: ['+1408XXXX'] }] }));
    expect(badPattern.code).toBe('E_VAP_BAD_ENROLLMENT');
    expect(badPattern.message).toContain('E_PATTERN_TOO_MANY_WILDCARDS');
    expect(badPattern.message).toContain('pattern 0 of group "g"');
    const wildExclusion = thrown(() => readEnrollment({ ...base, exclusions: ['+1408555XXXX'] }));
    expect(wildExclusion.message).toContain('E_EXCLUSION_WILDCARD');
    const bad = (e: ime.v1.PublishEnrollment.$Properties) => thrown(() => readEnrollment(e)).code;
    expect(bad({ ...base, vserviceId: '' })).toBe('E_VAP_BAD_ENROLLMENT');
    expect(bad({ ...base, groups: [{ name: 'a' }, { name: 'a' }] })).toBe('E_VAP_BAD_ENROLLMENT');
    expect(bad({ ...base, trustGroups: [{ name: 't', elements: [{ kind: 0, value: 'x.com' }] }] })).toBe('E_VAP_BAD_ENROLLMENT');
    expect(bad({ ...base, trustGroups: [{ name: 't', elements: [{ kind: 1, value: '+1408' }] }] })).toBe('E_VAP_BAD_ENROLLMENT');
    expect(bad({ ...base, trustGroups: [{ name: 'x'.repeat(33) }] })).toBe('E_VAP_BAD_ENROLLMENT');
  });

  it('enforces the size limits', () => {
    const base = writeEnrollment(ENROLLMENT);
    const patterns = Array.from({ length: VAP_LIMITS.patternsMax + 1 }, (_, i) => `+1408${String(i).padStart(7, '0')}`);
    const tooMany = thrown(() => readEnrollment({ ...base, groups: [{ name: 'a', patterns: patterns.slice(0, 600) }, { name: 'b', patterns: patterns.slice(600) }] }));
    expect(tooMany.code).toBe('E_VAP_BAD_ENROLLMENT');
    expect(tooMany.message).toContain('1001 enrolled patterns');
    expect(readEnrollment({ ...base, groups: [{ name: 'a', patterns: patterns.slice(0, 1000) }] }).groups[0]?.patterns).toHaveLength(1000);
    const exclusions = Array.from({ length: VAP_LIMITS.exclusionsMax + 1 }, (_, i) => `+1408${String(i).padStart(7, '0')}`);
    expect(thrown(() => readEnrollment({ ...base, exclusions })).code).toBe('E_VAP_BAD_ENROLLMENT');
    const groups = Array.from({ length: VAP_LIMITS.groupsMax + 1 }, (_, i) => ({ name: `g${i}` }));
    expect(thrown(() => readEnrollment({ ...base, groups })).code).toBe('E_VAP_BAD_ENROLLMENT');
  });
});

describe('VCRs', () => {
  it('round-trips a VCR', () => {
    expect(readVcr(wire(ime.v1.Vcr, writeVcr(VCR)))).toEqual(VCR);
  });

  it('refuses numbers that are not +E.164 with E_VCR_NOT_E164 (guide L3273)', () => {
    const err = thrown(() => readVcr({ ...writeVcr(VCR), called: '4085550100' }));
    expect(err.code).toBe('E_VCR_NOT_E164');
    expect(err.message).toContain('called');
    expect(thrown(() => readVcr({ ...writeVcr(VCR), calling: '' })).code).toBe('E_VCR_NOT_E164');
  });

  it.each([
    ['no start time', { startMs: 0 }],
    ['stop before start', { stopMs: VCR.startMs - 1 }],
    ['a time past what a Date holds', { stopMs: 9e15 }],
    ['no direction', { direction: 0 }],
    ['no call id', { callId: '' }],
  ])('refuses %s with E_VAP_BAD_VCR', (_what, change) => {
    expect(thrown(() => readVcr({ ...writeVcr(VCR), ...change })).code).toBe('E_VAP_BAD_VCR');
  });

  it('refuses items by index in an upload and lets the others through', () => {
    const upload = readVcrUpload({
      records: [writeVcr(VCR), { ...writeVcr(VCR), called: 'abc' }, writeVcr({ ...VCR, callId: 'call-2' }), { ...writeVcr(VCR), direction: 0 }],
    });
    expect(upload.vcrs.map((v) => v.callId)).toEqual(['call-1', 'call-2']);
    expect(upload.positions).toEqual([0, 2]);
    expect(upload.refused.map((r) => [r.index, r.code])).toEqual([
      [1, 'E_VCR_NOT_E164'],
      [3, 'E_VAP_BAD_VCR'],
    ]);
    // the backend refused its second VCR (request index 2): merged back at the request's index
    const merged = mergeUploadAck(upload, { accepted: 1, refused: [{ index: 1, code: 'E_DUPLICATE', message: 'seen' }] });
    expect(merged.accepted).toBe(1);
    expect(merged.refused.map((r) => [r.index, r.code])).toEqual([
      [1, 'E_VCR_NOT_E164'],
      [2, 'E_DUPLICATE'],
      [3, 'E_VAP_BAD_VCR'],
    ]);
  });

  it('refuses an upload over the limit as a whole', () => {
    const records = Array.from({ length: VAP_LIMITS.vcrsMax + 1 }, () => writeVcr(VCR));
    expect(thrown(() => readVcrUpload({ records })).code).toBe('E_VAP_BAD_VCR');
    expect(readVcrUpload({ records: records.slice(1) }).vcrs).toHaveLength(VAP_LIMITS.vcrsMax);
  });
});

describe('answers, routes and notices', () => {
  it('carries refusal indexes through the wire', () => {
    const ack = { accepted: 3, refused: [{ index: 4, code: 'E_VCR_NOT_E164', message: 'the called number "x" is not +E.164' }] };
    expect(readAck(wire(ime.v1.Ack, writeAck(ack)))).toEqual(ack);
    expect(thrown(() => readAck({ accepted: 1, refused: [{ index: -1, code: 'E_X', message: 'a negative index' }] })).code).toBe('E_VAP_BAD_ACK');
  });

  it('checks what a backend answers', () => {
    expect(checkAck({ accepted: 0, refused: [] })).toEqual({ accepted: 0, refused: [] });
    expect(thrown(() => checkAck(undefined)).code).toBe('E_VAP_BAD_ACK');
    expect(thrown(() => checkAck({ accepted: -1, refused: [] })).code).toBe('E_VAP_BAD_ACK');
    expect(thrown(() => checkAck({ accepted: 1, refused: [{ index: 'x' }] })).code).toBe('E_VAP_BAD_ACK');
  });

  it('round-trips routes and refuses bad ones', () => {
    expect(readLearnedRoutes(wire(ime.v1.LearnedRoutePush, { routes: [writeLearnedRoute(ROUTE)] }))).toEqual([ROUTE]);
    expect(thrown(() => checkLearnedRoute({ ...ROUTE, number: '12125550100' })).code).toBe('E_VAP_BAD_ROUTE');
    expect(thrown(() => checkLearnedRoute({ ...ROUTE, ticket: 'not base64url!' })).code).toBe('E_VAP_BAD_ROUTE');
    expect(thrown(() => checkLearnedRoute({ ...ROUTE, expiresOnMs: ROUTE.learnedOnMs - 1 })).code).toBe('E_VAP_BAD_ROUTE');
    expect(thrown(() => checkLearnedRoute({ ...ROUTE, domain: 'bad domain' })).code).toBe('E_VAP_BAD_ROUTE');
  });

  it('round-trips notices and refuses unknown kinds', () => {
    expect(readNotice(wire(ime.v1.Notice, writeNotice({ kind: 'over-quota', detail: 'quota 100 of 100' })))).toEqual({
      kind: 'over-quota',
      detail: 'quota 100 of 100',
    });
    expect(thrown(() => readNotice({ kind: 0 })).code).toBe('E_VAP_BAD_NOTICE');
    expect(thrown(() => readNotice({ kind: 9 as ime.v1.Notice.Kind })).code).toBe('E_VAP_BAD_NOTICE');
  });

  it('cleans error frames in both directions', () => {
    expect(writeErrorInfo('not a code', 'x').code).toBe('E_INTERNAL');
    expect(writeErrorInfo('E_VAP_AUTH', 'line\nbreak').message).toBe('line break');
    expect(writeErrorInfo('E_VAP_AUTH', 'm'.repeat(10_000)).message?.length).toBe(VAP_LIMITS.errorMessageMax);
    expect(readErrorInfo({ code: '<script>', message: 'x' }).code).toBe('E_VAP_PROTOCOL');
    expect(readErrorInfo(null)).toEqual({ code: 'E_VAP_PROTOCOL', message: '' });
  });
});
