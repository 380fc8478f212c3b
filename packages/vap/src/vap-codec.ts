import {
  ImeError,
  describeInput,
  domainProblem,
  e164Problem,
  isImeError,
  parseDomain,
  parseEnrolledPattern,
  parseExclusionNumber,
  parseTrustElement,
  TRUST_DESCRIPTION_MAX,
  TRUST_GROUP_NAME_MAX,
} from '@ime/core';
import { ime } from '@ime/wire';
import {
  MAX_VAP_ITERATIONS,
  MAX_VAP_SALT_BYTES,
  MIN_VAP_ITERATIONS,
  MIN_VAP_SALT_BYTES,
  VAP_DIGEST_ALGORITHM,
  VAP_DIGEST_BYTES,
  VAP_NONCE_BYTES,
} from './vap-digest.js';
import type {
  EnrolledGroup,
  Enrollment,
  LearnedRoute,
  TrustElement,
  TrustGroup,
  VapAck,
  VapItemRefusal,
  VapNotice,
  VapNoticeKind,
  Vcr,
  Vservice,
} from './vap-types.js';

/**
 * Pure mapping between the VAP wire messages and the contract types. Everything that arrives is
 * checked field by field here before any other code sees it; a refusal names the field and carries
 * a code an operator can look up in docs/VAP.md. Writers are the inverse and trust their input.
 */

export type VapCodecErrorCode =
  | 'E_VAP_BAD_HELLO'
  | 'E_VAP_BAD_CHALLENGE'
  | 'E_VAP_BAD_REGISTER'
  | 'E_VAP_BAD_REGISTERED'
  | 'E_VAP_BAD_VSERVICE'
  | 'E_VAP_BAD_ENROLLMENT'
  | 'E_VAP_BAD_VCR'
  | 'E_VCR_NOT_E164'
  | 'E_VAP_BAD_ROUTE'
  | 'E_VAP_BAD_NOTICE'
  | 'E_VAP_BAD_ACK';

export const VAP_LIMITS = {
  usernameMax: 64,
  clientSoftwareMax: 128,
  peerIdMax: 128,
  keepaliveMinSec: 1,
  keepaliveMaxSec: 3600,
  profileNameMax: 64,
  vserviceIdMax: 64,
  sipUriMax: 512,
  maxDidCountMax: 10_000_000,
  groupsMax: 100,
  groupNameMax: 64,
  patternsMax: 1_000,
  exclusionsMax: 10_000,
  trustGroupsMax: 64,
  trustElementsMax: 1_000,
  vcrsMax: 10_000,
  callIdMax: 128,
  ticketMax: 4_096,
  noticeDetailMax: 512,
  errorMessageMax: 512,
  refusalsMax: 10_000,
} as const;

/** Largest time accepted, in ms since the epoch (the largest a JavaScript Date holds). */
export const VAP_TIME_MAX_MS = 8.64e15;

export interface VapHello {
  readonly username: string;
  readonly clientNonce: Uint8Array;
  readonly clientSoftware: string;
}

export interface VapChallenge {
  readonly serverNonce: Uint8Array;
  readonly algorithm: typeof VAP_DIGEST_ALGORITHM;
  readonly salt: Uint8Array;
  readonly iterations: number;
  readonly keepaliveIntervalSec: number;
}

export type VapRingHealth = 0 | 1 | 2;

/** What a call manager learns at registration. */
export interface VapRegistered {
  readonly peerId: string;
  readonly keepaliveIntervalSec: number;
  /** 0 red, 1 yellow, 2 green. */
  readonly ringHealth: VapRingHealth;
}

export interface VapErrorInfo {
  readonly code: string;
  readonly message: string;
}

// ---------------------------------------------------------------------------------------------
// Small checks

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const VISIBLE_ASCII = /^[\x21-\x7e]*$/;
// Any character but C0/C1 controls and the line/paragraph separators: names shown to operators.
const DISPLAYABLE = /^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$/u;
const VSERVICE_ID = /^[A-Za-z0-9._:-]+$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const ERROR_CODE = /^E_[A-Z0-9_]{1,60}$/;

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function bytes(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? value : new Uint8Array(0);
}

/** 64-bit fields arrive as numbers (Long support is off in @ime/wire); anything else reads as NaN. */
function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value !== null && typeof value === 'object' && 'toNumber' in value) {
    return Number((value as { toNumber(): number }).toNumber());
  }
  return value === undefined || value === null ? 0 : Number.NaN;
}

function checkText(
  code: VapCodecErrorCode,
  field: string,
  value: string,
  min: number,
  max: number,
  charset: RegExp,
  charsetName: string,
): string {
  if (value.length < min || value.length > max) {
    throw new ImeError(
      code,
      min === 0
        ? `${field} has ${value.length} characters; at most ${max} are allowed`
        : `${field} must be ${min}–${max} characters, got ${value.length}`,
    );
  }
  if (!charset.test(value)) throw new ImeError(code, `${field} ${describeInput(value)} may contain only ${charsetName}`);
  return value;
}

function checkTime(code: VapCodecErrorCode, field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0 || value > VAP_TIME_MAX_MS) {
    throw new ImeError(code, `${field} must be a time in ms since the epoch, got ${String(value)}`);
  }
  return value;
}

function checkCount(
  code: VapCodecErrorCode,
  field: string,
  value: number,
  min: number,
  max: number,
): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ImeError(code, `${field} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Re-raises a core validation error under a VAP code, keeping the core code in the message. */
function rewrap<T>(code: VapCodecErrorCode, where: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!isImeError(err)) throw err;
    throw new ImeError(code, `${where}: ${err.message} (${err.code})`, { cause: err.code });
  }
}

// ---------------------------------------------------------------------------------------------
// Handshake

export function readHello(hello: ime.v1.Hello.$Properties): VapHello {
  const username = checkText(
    'E_VAP_BAD_HELLO',
    'the username',
    text(hello.username),
    1,
    VAP_LIMITS.usernameMax,
    PRINTABLE_ASCII,
    'printable ASCII',
  );
  const clientNonce = bytes(hello.clientNonce);
  if (clientNonce.length !== VAP_NONCE_BYTES) {
    throw new ImeError('E_VAP_BAD_HELLO', `the client nonce must be ${VAP_NONCE_BYTES} bytes, got ${clientNonce.length}`);
  }
  const clientSoftware = checkText(
    'E_VAP_BAD_HELLO',
    'the client software name',
    text(hello.clientSoftware),
    0,
    VAP_LIMITS.clientSoftwareMax,
    PRINTABLE_ASCII,
    'printable ASCII',
  );
  return { username, clientNonce, clientSoftware };
}

export function writeHello(hello: VapHello): ime.v1.Hello.$Properties {
  return { username: hello.username, clientNonce: hello.clientNonce, clientSoftware: hello.clientSoftware };
}

export function readChallenge(challenge: ime.v1.Challenge.$Properties): VapChallenge {
  const serverNonce = bytes(challenge.serverNonce);
  if (serverNonce.length !== VAP_NONCE_BYTES) {
    throw new ImeError('E_VAP_BAD_CHALLENGE', `the server nonce must be ${VAP_NONCE_BYTES} bytes, got ${serverNonce.length}`);
  }
  if (challenge.algorithm !== VAP_DIGEST_ALGORITHM) {
    throw new ImeError(
      'E_VAP_BAD_CHALLENGE',
      `digest algorithm ${describeInput(challenge.algorithm)} is not supported; this side knows ${VAP_DIGEST_ALGORITHM}`,
    );
  }
  const salt = bytes(challenge.salt);
  if (salt.length < MIN_VAP_SALT_BYTES || salt.length > MAX_VAP_SALT_BYTES) {
    throw new ImeError('E_VAP_BAD_CHALLENGE', `the salt must be ${MIN_VAP_SALT_BYTES}–${MAX_VAP_SALT_BYTES} bytes, got ${salt.length}`);
  }
  // A server asking for millions of iterations would make every reconnect burn the client's CPU.
  const iterations = checkCount('E_VAP_BAD_CHALLENGE', 'the iteration count', num(challenge.iterations), MIN_VAP_ITERATIONS, MAX_VAP_ITERATIONS);
  const keepaliveIntervalSec = checkCount(
    'E_VAP_BAD_CHALLENGE',
    'the keepalive interval',
    num(challenge.keepaliveIntervalSec),
    VAP_LIMITS.keepaliveMinSec,
    VAP_LIMITS.keepaliveMaxSec,
  );
  return { serverNonce, algorithm: VAP_DIGEST_ALGORITHM, salt, iterations, keepaliveIntervalSec };
}

export function writeChallenge(challenge: VapChallenge): ime.v1.Challenge.$Properties {
  return {
    serverNonce: challenge.serverNonce,
    algorithm: challenge.algorithm,
    salt: challenge.salt,
    iterations: challenge.iterations,
    keepaliveIntervalSec: challenge.keepaliveIntervalSec,
  };
}

export function readRegister(register: ime.v1.Register.$Properties): Uint8Array {
  const digest = bytes(register.digest);
  if (digest.length !== VAP_DIGEST_BYTES) {
    throw new ImeError('E_VAP_BAD_REGISTER', `the digest must be ${VAP_DIGEST_BYTES} bytes, got ${digest.length}`);
  }
  return digest;
}

export function readRegistered(registered: ime.v1.Registered.$Properties): VapRegistered {
  const peerId = checkText(
    'E_VAP_BAD_REGISTERED',
    'the peer id',
    text(registered.peerId),
    1,
    VAP_LIMITS.peerIdMax,
    VISIBLE_ASCII,
    'visible ASCII',
  );
  const keepaliveIntervalSec = checkCount(
    'E_VAP_BAD_REGISTERED',
    'the keepalive interval',
    num(registered.keepaliveIntervalSec),
    VAP_LIMITS.keepaliveMinSec,
    VAP_LIMITS.keepaliveMaxSec,
  );
  const ringHealth = checkCount('E_VAP_BAD_REGISTERED', 'the ring health', num(registered.ringHealth), 0, 2) as VapRingHealth;
  return { peerId, keepaliveIntervalSec, ringHealth };
}

export function writeRegistered(registered: VapRegistered): ime.v1.Registered.$Properties {
  return {
    peerId: registered.peerId,
    keepaliveIntervalSec: registered.keepaliveIntervalSec,
    ringHealth: registered.ringHealth,
  };
}

// ---------------------------------------------------------------------------------------------
// Vservice

export function readVserviceId(value: unknown, code: VapCodecErrorCode = 'E_VAP_BAD_VSERVICE'): string {
  return checkText(code, 'the Vservice id', text(value), 1, VAP_LIMITS.vserviceIdMax, VSERVICE_ID, 'letters, digits, ".", "_", ":" and "-"');
}

export function readVservice(vservice: ime.v1.Vservice.$Properties | null | undefined): Vservice {
  if (!vservice) throw new ImeError('E_VAP_BAD_VSERVICE', 'PublishVservice carries no Vservice');
  const profileName = checkText(
    'E_VAP_BAD_VSERVICE',
    'the profile name',
    text(vservice.profileName),
    1,
    VAP_LIMITS.profileNameMax,
    DISPLAYABLE,
    'characters without control codes',
  );
  const id = readVserviceId(vservice.id);
  const domain = rewrap('E_VAP_BAD_VSERVICE', 'the Vservice domain', () => parseDomain(text(vservice.domain)));
  // CUCM builds it as [sip:]UUID@domain:port;maddr=IP;transport=tcp (guide L3904–L3928): one token.
  const sipUri = checkText(
    'E_VAP_BAD_VSERVICE',
    'the SIP URI',
    text(vservice.sipUri),
    1,
    VAP_LIMITS.sipUriMax,
    VISIBLE_ASCII,
    'visible ASCII without spaces',
  );
  const maxDidCount = checkCount('E_VAP_BAD_VSERVICE', 'the maximum DID count', num(vservice.maxDidCount), 1, VAP_LIMITS.maxDidCountMax);
  return { profileName, id, domain, sipUri, maxDidCount };
}

export function writeVservice(v: Vservice): ime.v1.Vservice.$Properties {
  return { profileName: v.profileName, id: v.id, domain: v.domain, sipUri: v.sipUri, maxDidCount: v.maxDidCount };
}

// ---------------------------------------------------------------------------------------------
// Enrollment

const TRUST_KIND_FROM_WIRE: Readonly<Record<number, TrustElement['kind']>> = {
  [ime.v1.TrustElementInfo.Kind.DOMAIN]: 'domain',
  [ime.v1.TrustElementInfo.Kind.PREFIX]: 'prefix',
};

/**
 * An enrollment replaces the previous one as a whole, so a bad item refuses the whole request
 * rather than publishing part of what the call manager meant.
 */
export function readEnrollment(enrollment: ime.v1.PublishEnrollment.$Properties): Enrollment {
  const code = 'E_VAP_BAD_ENROLLMENT';
  const vserviceId = readVserviceId(enrollment.vserviceId, code);
  const wireGroups = enrollment.groups ?? [];
  if (wireGroups.length > VAP_LIMITS.groupsMax) {
    throw new ImeError(code, `${wireGroups.length} enrolled groups are over the limit of ${VAP_LIMITS.groupsMax}`);
  }
  let patternCount = 0;
  for (const g of wireGroups) patternCount += g?.patterns?.length ?? 0;
  if (patternCount > VAP_LIMITS.patternsMax) {
    throw new ImeError(code, `${patternCount} enrolled patterns are over the limit of ${VAP_LIMITS.patternsMax} per enrollment`);
  }
  const names = new Set<string>();
  const groups: EnrolledGroup[] = wireGroups.map((g, gi) => {
    const name = checkText(code, `the name of enrolled group ${gi}`, text(g?.name), 1, VAP_LIMITS.groupNameMax, DISPLAYABLE, 'characters without control codes');
    if (names.has(name)) throw new ImeError(code, `enrolled group ${describeInput(name)} appears twice`);
    names.add(name);
    const patterns = (g?.patterns ?? []).map((p, pi) =>
      rewrap(code, `pattern ${pi} of group ${describeInput(name)}`, () => parseEnrolledPattern(p).text),
    );
    return { name, patterns };
  });

  const wireExclusions = enrollment.exclusions ?? [];
  if (wireExclusions.length > VAP_LIMITS.exclusionsMax) {
    throw new ImeError(code, `${wireExclusions.length} exclusion numbers are over the limit of ${VAP_LIMITS.exclusionsMax}`);
  }
  const exclusions = wireExclusions.map((e, i) => rewrap(code, `exclusion ${i}`, () => parseExclusionNumber(e) as string));

  const wireTrust = enrollment.trustGroups ?? [];
  if (wireTrust.length > VAP_LIMITS.trustGroupsMax) {
    throw new ImeError(code, `${wireTrust.length} trust groups are over the limit of ${VAP_LIMITS.trustGroupsMax}`);
  }
  let elementCount = 0;
  for (const t of wireTrust) elementCount += t?.elements?.length ?? 0;
  if (elementCount > VAP_LIMITS.trustElementsMax) {
    throw new ImeError(code, `${elementCount} trust elements are over the limit of ${VAP_LIMITS.trustElementsMax}`);
  }
  const trustNames = new Set<string>();
  const trustGroups: TrustGroup[] = wireTrust.map((t, ti) => {
    const name = checkText(code, `the name of trust group ${ti}`, text(t?.name), 1, TRUST_GROUP_NAME_MAX, DISPLAYABLE, 'characters without control codes');
    if (trustNames.has(name)) throw new ImeError(code, `trust group ${describeInput(name)} appears twice`);
    trustNames.add(name);
    const description = checkText(
      code,
      `the description of trust group ${describeInput(name)}`,
      text(t?.description),
      0,
      TRUST_DESCRIPTION_MAX,
      DISPLAYABLE,
      'characters without control codes',
    );
    const elements: TrustElement[] = (t?.elements ?? []).map((e, ei) => {
      const kind = TRUST_KIND_FROM_WIRE[e?.kind ?? 0];
      if (kind === undefined) {
        throw new ImeError(code, `element ${ei} of trust group ${describeInput(name)} is neither a domain nor a prefix`);
      }
      const parsed = rewrap(code, `element ${ei} of trust group ${describeInput(name)}`, () => parseTrustElement(text(e?.value), kind));
      return { kind, value: parsed.kind === 'domain' ? parsed.domain : parsed.text };
    });
    return { name, trusted: t?.trusted === true, description, elements };
  });
  return { vserviceId, groups, exclusions, trustGroups };
}

export function writeEnrollment(e: Enrollment): ime.v1.PublishEnrollment.$Properties {
  return {
    vserviceId: e.vserviceId,
    groups: e.groups.map((g) => ({ name: g.name, patterns: [...g.patterns] })),
    exclusions: [...e.exclusions],
    trustGroups: e.trustGroups.map((t) => ({
      name: t.name,
      trusted: t.trusted,
      description: t.description,
      elements: t.elements.map((el) => ({
        kind: el.kind === 'domain' ? ime.v1.TrustElementInfo.Kind.DOMAIN : ime.v1.TrustElementInfo.Kind.PREFIX,
        value: el.value,
      })),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// VCRs

const DIRECTION_FROM_WIRE: Readonly<Record<number, Vcr['direction']>> = {
  [ime.v1.Vcr.Direction.ORIGINATING]: 'originating',
  [ime.v1.Vcr.Direction.TERMINATING]: 'terminating',
};

/** Validates one VCR; the guide's rule for numbers that are not +E.164 has its own code (L3273). */
export function readVcr(vcr: ime.v1.Vcr.$Properties | null | undefined): Vcr {
  if (!vcr) throw new ImeError('E_VAP_BAD_VCR', 'empty VCR');
  const calling = text(vcr.calling);
  const called = text(vcr.called);
  for (const [field, value] of [
    ['calling', calling],
    ['called', called],
  ] as const) {
    const problem = e164Problem(value);
    if (problem) {
      throw new ImeError('E_VCR_NOT_E164', `the ${field} number ${describeInput(value)} is not +E.164 (${problem.code})`, {
        field,
        cause: problem.code,
      });
    }
  }
  const startMs = checkTime('E_VAP_BAD_VCR', 'the start time', num(vcr.startMs));
  const stopMs = checkTime('E_VAP_BAD_VCR', 'the stop time', num(vcr.stopMs));
  if (stopMs < startMs) throw new ImeError('E_VAP_BAD_VCR', 'the stop time is before the start time');
  const direction = DIRECTION_FROM_WIRE[vcr.direction ?? 0];
  if (direction === undefined) throw new ImeError('E_VAP_BAD_VCR', 'the direction must be originating or terminating');
  const callId = checkText('E_VAP_BAD_VCR', 'the call id', text(vcr.callId), 1, VAP_LIMITS.callIdMax, VISIBLE_ASCII, 'visible ASCII');
  return { calling, called, startMs, stopMs, direction, callId };
}

export interface VcrUpload {
  /** The VCRs that passed, in request order. */
  readonly vcrs: readonly Vcr[];
  /** positions[i] = index in the request of vcrs[i], to map the backend's refusals back. */
  readonly positions: readonly number[];
  readonly refused: readonly VapItemRefusal[];
}

/** Sorts an upload into good VCRs and per-item refusals; only an oversized upload is refused whole. */
export function readVcrUpload(upload: ime.v1.UploadVcr.$Properties): VcrUpload {
  const records = upload.records ?? [];
  if (records.length > VAP_LIMITS.vcrsMax) {
    throw new ImeError('E_VAP_BAD_VCR', `${records.length} VCRs are over the limit of ${VAP_LIMITS.vcrsMax} per upload`);
  }
  const vcrs: Vcr[] = [];
  const positions: number[] = [];
  const refused: VapItemRefusal[] = [];
  records.forEach((r, index) => {
    try {
      vcrs.push(readVcr(r));
      positions.push(index);
    } catch (err) {
      if (!isImeError(err)) throw err;
      refused.push({ index, code: err.code, message: err.message });
    }
  });
  return { vcrs, positions, refused };
}

export function writeVcr(v: Vcr): ime.v1.Vcr.$Properties {
  return {
    calling: v.calling,
    called: v.called,
    startMs: v.startMs,
    stopMs: v.stopMs,
    direction: v.direction === 'originating' ? ime.v1.Vcr.Direction.ORIGINATING : ime.v1.Vcr.Direction.TERMINATING,
    callId: v.callId,
  };
}

/**
 * The answer to an upload: the backend saw only the good VCRs, so its refusal indexes are mapped
 * back to the request's, and merged with the codec's refusals in index order.
 */
export function mergeUploadAck(upload: VcrUpload, backend: VapAck): VapAck {
  const mapped = backend.refused.map((r) => ({ ...r, index: upload.positions[r.index] ?? r.index }));
  const refused = [...upload.refused, ...mapped].sort((a, b) => a.index - b.index);
  return { accepted: backend.accepted, refused };
}

// ---------------------------------------------------------------------------------------------
// Learned routes

export function checkLearnedRoute(route: LearnedRoute, index = 0): LearnedRoute {
  const code = 'E_VAP_BAD_ROUTE';
  const where = `learned route ${index}`;
  const problem = e164Problem(route.number);
  if (problem) throw new ImeError(code, `${where}: the number is not +E.164 (${problem.code})`);
  const domainIssue = domainProblem(route.domain);
  if (domainIssue) throw new ImeError(code, `${where}: ${domainIssue.message} (${domainIssue.code})`);
  checkText(code, `${where}: the SIP URI`, text(route.sipUri), 1, VAP_LIMITS.sipUriMax, VISIBLE_ASCII, 'visible ASCII');
  checkText(code, `${where}: the ticket`, text(route.ticket), 1, VAP_LIMITS.ticketMax, BASE64URL, 'base64url characters');
  checkTime(code, `${where}: learned-on`, route.learnedOnMs);
  checkTime(code, `${where}: expires-on`, route.expiresOnMs);
  if (route.expiresOnMs < route.learnedOnMs) throw new ImeError(code, `${where}: expires before it was learned`);
  return route;
}

export function readLearnedRoutes(push: ime.v1.LearnedRoutePush.$Properties): LearnedRoute[] {
  return (push.routes ?? []).map((r, i) =>
    checkLearnedRoute(
      {
        number: text(r?.number),
        domain: parseDomainOr(text(r?.domain)),
        sipUri: text(r?.sipUri),
        ticket: text(r?.ticket),
        learnedOnMs: num(r?.learnedOnMs),
        expiresOnMs: num(r?.expiresOnMs),
      },
      i,
    ),
  );
}

/** Normalises a domain when it is valid; an invalid one is left for checkLearnedRoute to refuse. */
function parseDomainOr(value: string): string {
  return domainProblem(value) ? value : parseDomain(value);
}

export function writeLearnedRoute(r: LearnedRoute): ime.v1.LearnedRoute.$Properties {
  return {
    number: r.number,
    domain: r.domain,
    sipUri: r.sipUri,
    ticket: r.ticket,
    learnedOnMs: r.learnedOnMs,
    expiresOnMs: r.expiresOnMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Notices, answers, errors

const NOTICE_FROM_WIRE: Readonly<Record<number, VapNoticeKind>> = {
  [ime.v1.Notice.Kind.OVER_QUOTA]: 'over-quota',
  [ime.v1.Notice.Kind.RING_INACTIVE]: 'ring-inactive',
  [ime.v1.Notice.Kind.RING_ACTIVE]: 'ring-active',
};
const NOTICE_TO_WIRE: Readonly<Record<VapNoticeKind, ime.v1.Notice.Kind>> = {
  'over-quota': ime.v1.Notice.Kind.OVER_QUOTA,
  'ring-inactive': ime.v1.Notice.Kind.RING_INACTIVE,
  'ring-active': ime.v1.Notice.Kind.RING_ACTIVE,
};

export function readNotice(notice: ime.v1.Notice.$Properties): VapNotice {
  const kind = NOTICE_FROM_WIRE[notice.kind ?? 0];
  if (kind === undefined) throw new ImeError('E_VAP_BAD_NOTICE', `notice kind ${String(notice.kind)} is unknown`);
  const detail = checkText('E_VAP_BAD_NOTICE', 'the notice detail', text(notice.detail), 0, VAP_LIMITS.noticeDetailMax, DISPLAYABLE, 'characters without control codes');
  return { kind, detail };
}

export function writeNotice(notice: VapNotice): ime.v1.Notice.$Properties {
  const kind = NOTICE_TO_WIRE[notice.kind];
  if (kind === undefined) throw new ImeError('E_VAP_BAD_NOTICE', `notice kind ${describeInput(notice.kind)} is unknown`);
  return { kind, detail: cleanMessage(notice.detail, VAP_LIMITS.noticeDetailMax) };
}

export function writeAck(ack: VapAck): ime.v1.Ack.$Properties {
  return {
    accepted: ack.accepted,
    refused: ack.refused.map((r) => ({ index: r.index, ...writeErrorInfo(r.code, r.message) })),
  };
}

export function readAck(ack: ime.v1.Ack.$Properties): VapAck {
  const accepted = checkCount('E_VAP_BAD_ACK', 'the accepted count', num(ack.accepted), 0, 0xffffffff);
  const wire = ack.refused ?? [];
  if (wire.length > VAP_LIMITS.refusalsMax) {
    throw new ImeError('E_VAP_BAD_ACK', `${wire.length} refusals are over the limit of ${VAP_LIMITS.refusalsMax}`);
  }
  const refused = wire.map((e) => {
    const info = readErrorInfo(e);
    return { index: checkCount('E_VAP_BAD_ACK', 'a refused item index', num(e.index), 0, 0xffffffff), code: info.code, message: info.message };
  });
  return { accepted, refused };
}

/** Checks a backend's answer before it goes on the wire. */
export function checkAck(ack: unknown): VapAck {
  const a = ack as VapAck | null | undefined;
  if (!a || !Number.isSafeInteger(a.accepted) || a.accepted < 0 || a.accepted > 0xffffffff || !Array.isArray(a.refused)) {
    throw new ImeError('E_VAP_BAD_ACK', 'the answer must have an accepted count and a list of refusals');
  }
  for (const r of a.refused as unknown[]) {
    const x = r as VapItemRefusal | null;
    if (!x || !Number.isSafeInteger(x.index) || x.index < 0 || typeof x.code !== 'string' || typeof x.message !== 'string') {
      throw new ImeError('E_VAP_BAD_ACK', 'a refusal must have an index, a code and a message');
    }
  }
  return a;
}

export function writeErrorInfo(code: string, message: string): ime.v1.ErrorInfo.$Properties {
  return { code: ERROR_CODE.test(code) ? code : 'E_INTERNAL', message: cleanMessage(message, VAP_LIMITS.errorMessageMax) };
}

/** An error from the other side: its code if it looks like one, its message cut and cleaned. */
export function readErrorInfo(info: ime.v1.ErrorInfo.$Properties | null | undefined): VapErrorInfo {
  const code = text(info?.code);
  return {
    code: ERROR_CODE.test(code) ? code : 'E_VAP_PROTOCOL',
    message: cleanMessage(text(info?.message), VAP_LIMITS.errorMessageMax),
  };
}

function cleanMessage(message: string, max: number): string {
  const flat = message.replace(/[\x00-\x1f\x7f\u2028\u2029]+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
