import { createHash } from 'node:crypto';
import { type RingConfiguration, WIRE_VERSION, verifyRingCertificate } from '@ime/admission';
import { ImeError, decodeWire, isImeError } from '@ime/core';
import type { Counters, Logger } from '@ime/runtime';
import { ime } from '@ime/wire';
import {
  MAX_CONTACT_LENGTH,
  canonicalPeerId,
  checkAddresses,
  checkDomain,
  checkSoftwareVersion,
  checkText,
} from './bootstrap-checks.js';
import type { BootstrapConfig } from './bootstrap-config.js';
import type { BootstrapState, EnrollmentValue, MergeResult } from './bootstrap-state.js';

/**
 * The bootstrap's side of the ring's admission protocols (docs/RING.md "Roles and protocols"):
 * `/ime/enroll/1.0.0`, `/ime/config/1.0.0` and `/ime/bootstrap-sync/1.0.0`. Every request comes
 * from the network: it is length-checked and decoded with `decodeWire`, then validated field by
 * field. The remote PeerId is the one Noise authenticated for the connection.
 */

export type EnrollmentRefusalCode =
  | 'E_ENROLL_REQUEST'
  | 'E_ENROLL_BANNED'
  | 'E_ENROLL_TOKEN_INVALID'
  | 'E_ENROLL_TOKEN_EXPIRED'
  | 'E_ENROLL_TOKEN_USED'
  | 'E_ENROLL_DOMAIN'
  | 'E_ENROLL_UNKNOWN_PEER'
  | 'E_WIRE_VERSION';

export const MAX_ENROLLMENT_REQUEST_BYTES = 64 * 1024;
export const MAX_CONFIGURATION_REQUEST_BYTES = 1024;
/** Bootstrap sync carries whole state; it must fit an RPC frame (4 MiB) with room for the header. */
export const MAX_SYNC_BYTES = 4 * 1024 * 1024 - 64;
const MAX_SYNC_ENTRIES = 100_000;
const MAX_TOKEN_LENGTH = 1024;
const DAY_MS = 86_400_000;
// A peer whose clock lags the bootstrap's must still accept a certificate issued a moment ago.
const CERTIFICATE_BACKDATE_MS = 60 * 60 * 1000;

/** The signed configuration the bootstrap currently serves. */
export interface IssuedConfiguration {
  readonly config: RingConfiguration;
  readonly signed: ime.v1.SignedRingConfiguration;
  /** Encoded `SignedRingConfiguration`, as stored. */
  readonly encoded: Uint8Array;
  /** Content without sequence and times (`contentKey`): whether a new one would differ. */
  readonly key: string;
}

export interface ProtocolContext {
  readonly state: BootstrapState;
  readonly config: BootstrapConfig;
  readonly now: () => number;
  readonly log: Logger;
  readonly counters: Counters;
  /** The configuration served now. */
  current(): IssuedConfiguration | undefined;
  /** Resolves with a configuration reflecting every change made so far (issues are coalesced). */
  reissue(): Promise<IssuedConfiguration | undefined>;
  /** Resolves once no issue is pending, so what is served matches the state. */
  settled(): Promise<void>;
  /** Virtual nodes for a newly enrolled peer (configuration file, overridden by the setting). */
  virtualNodes(): number;
  isPeerBootstrap(peerId: string): boolean;
  /**
   * After entries from another bootstrap were merged: adopt its configuration when it says what this
   * bootstrap would say, else re-issue; pass the change on.
   */
  merged(result: MergeResult, from: string, offered: ime.v1.ISignedRingConfiguration | null | undefined): void;
  /** After a local change other bootstraps should learn. */
  changed(): void;
}

/** SHA-256 (hex) of a token's text: all the bootstrap ever stores of it. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

// --- /ime/enroll/1.0.0 ---------------------------------------------------------------------------

/**
 * Answers an enrollment or a refresh. Refusals are answers (`refused`), not RPC errors, so the peer
 * sees the code and knows whether another bootstrap could help. Only failures that are not ours to
 * explain (a database error) become RPC errors.
 */
export async function answerEnrollment(ctx: ProtocolContext, payload: Uint8Array, remotePeer: string): Promise<Uint8Array> {
  try {
    const enrolled = await enroll(ctx, payload, remotePeer);
    ctx.counters.inc('EnrollmentsAccepted');
    return ime.v1.EnrollmentResponse.encode({ version: WIRE_VERSION, enrolled }).finish();
  } catch (err) {
    if (!isImeError(err)) throw err;
    ctx.counters.inc('EnrollmentsRefused');
    ctx.log.info('enrollment refused', { peerId: remotePeer, code: err.code, message: err.message });
    return ime.v1.EnrollmentResponse.encode({ version: WIRE_VERSION, refused: { code: err.code, message: err.message } }).finish();
  }
}

async function enroll(ctx: ProtocolContext, payload: Uint8Array, remotePeer: string): Promise<ime.v1.Enrollment.$Properties> {
  const { state, config } = ctx;
  let request: ime.v1.EnrollmentRequest;
  try {
    request = decodeWire(ime.v1.EnrollmentRequest, payload, MAX_ENROLLMENT_REQUEST_BYTES, 'enrollment request');
  } catch (err) {
    throw new ImeError('E_ENROLL_REQUEST', isImeError(err) ? err.message : 'the enrollment request cannot be decoded');
  }
  if (request.version !== WIRE_VERSION) {
    throw new ImeError('E_WIRE_VERSION', `enrollment request version ${request.version} is not supported (this bootstrap speaks ${WIRE_VERSION})`);
  }
  // Noise proved who is on the other end; a request naming anyone else is refused, so nobody can
  // get a certificate for a key they do not hold.
  if (request.peerId !== remotePeer) throw new ImeError('E_ENROLL_REQUEST', 'the request names another PeerId than the connection’s');
  if (canonicalPeerId(remotePeer) === undefined) {
    throw new ImeError('E_ENROLL_REQUEST', 'only Ed25519 PeerIds can be enrolled (the certificate carries the peer’s own key)');
  }
  const domain = checkDomain(request.domain, 'E_ENROLL_REQUEST');
  const contact = checkText(request.contact, MAX_CONTACT_LENGTH, 'E_ENROLL_REQUEST', 'contact');
  const addresses = checkAddresses(request.addresses, 'E_ENROLL_REQUEST');
  const softwareVersion = checkSoftwareVersion(request.softwareVersion, 'E_ENROLL_REQUEST');

  const ban = state.ban(remotePeer);
  if (ban?.banned === true) {
    throw new ImeError('E_ENROLL_BANNED', `this peer is banned from the ring${ban.reason ? `: ${ban.reason}` : ''}`);
  }

  const nowMs = ctx.now();
  const id = `enrollment/${remotePeer}`;
  const existing = state.enrollment(remotePeer);
  const token = request.enrollmentToken;
  let written: Promise<void> | undefined;

  // From here to state.change nothing awaits: the token is checked and marked used in one step, so
  // two requests racing with one token cannot both pass.
  if (token !== '') {
    if (token.length > MAX_TOKEN_LENGTH) throw new ImeError('E_ENROLL_TOKEN_INVALID', 'the enrollment token is not one this ring issued');
    const digest = tokenDigest(token);
    const issued = state.token(digest);
    if (issued === undefined) throw new ImeError('E_ENROLL_TOKEN_INVALID', 'the enrollment token is not one this ring issued');
    const retry = issued.usedBy === remotePeer;
    if (issued.usedBy !== undefined && !retry) throw new ImeError('E_ENROLL_TOKEN_USED', 'the enrollment token was already used by another peer');
    if (!retry && nowMs > issued.expiresAtMs) {
      throw new ImeError('E_ENROLL_TOKEN_EXPIRED', `the enrollment token expired at ${new Date(issued.expiresAtMs).toISOString()}`);
    }
    if (issued.domain !== undefined && issued.domain !== domain) {
      throw new ImeError('E_ENROLL_DOMAIN', `the enrollment token is for domain ${issued.domain}, not ${domain}`);
    }
    if (retry && existing !== undefined && existing.domain !== domain) {
      throw new ImeError('E_ENROLL_DOMAIN', `this peer is enrolled for domain ${existing.domain}, not ${domain}`);
    }
    const sameDomain = existing !== undefined && existing.domain === domain;
    const value: EnrollmentValue = {
      domain,
      contact,
      addresses,
      ...certificateFor(ctx, remotePeer, domain, sameDomain ? existing : undefined, nowMs),
      // A new token never takes back an admission the operator gave.
      virtualNodes: existing?.virtualNodes ?? ctx.virtualNodes(),
      admitted: existing?.admitted === true || config.admission === 'auto',
      enrolledAtMs: sameDomain ? existing.enrolledAtMs : nowMs,
      softwareVersion,
    };
    const changes: { id: string; value: unknown }[] = [{ id, value }];
    if (!retry) changes.push({ id: `token/${digest}`, value: { ...issued, usedBy: remotePeer, usedAtMs: nowMs } });
    written = state.change(changes);
    ctx.log.info(retry ? 'enrollment repeated with the same token' : 'peer enrolled', {
      peerId: remotePeer,
      domain,
      serial: value.certificateSerial,
      admitted: value.admitted,
    });
  } else {
    if (existing === undefined) {
      throw request.renewal
        ? new ImeError('E_ENROLL_UNKNOWN_PEER', 'this peer is not enrolled here; enroll it with a token from the bootstrap operator')
        : new ImeError('E_ENROLL_TOKEN_INVALID', 'an enrollment token is needed for a peer that is not enrolled yet');
    }
    if (existing.domain !== domain) throw new ImeError('E_ENROLL_DOMAIN', `this peer is enrolled for domain ${existing.domain}, not ${domain}`);
    const value: EnrollmentValue = {
      ...existing,
      contact,
      addresses,
      softwareVersion,
      ...certificateFor(ctx, remotePeer, domain, existing, nowMs),
    };
    if (JSON.stringify(value) !== JSON.stringify(existing)) {
      written = state.change([{ id, value }]);
      if (value.certificateSerial !== existing.certificateSerial) {
        ctx.log.info('peer certificate renewed', { peerId: remotePeer, serial: value.certificateSerial, expires: new Date(value.certificateExpiresAtMs).toISOString() });
      }
    }
  }

  if (written !== undefined) {
    await written;
    ctx.changed();
  }
  // Waits for the (coalesced) configuration that includes this change — with auto admission the
  // peer's answer already lists it — or, with no change, for the current one made fresh if due.
  const configuration = await ctx.reissue();
  const enrollment = state.enrollment(remotePeer);
  if (enrollment === undefined) throw new ImeError('E_ENROLL_UNKNOWN_PEER', 'the enrollment was replaced while it was answered');
  return {
    certificate: Buffer.from(enrollment.certificate, 'base64'),
    authorityCertificate: state.authority.certificateDer,
    ...(configuration === undefined ? {} : { configuration: configuration.signed }),
  };
}

/**
 * The peer's certificate: the current one while it has more than `renewBeforeDays` left, else a new
 * one (new serial) valid `certificateValidityDays`.
 */
function certificateFor(
  ctx: ProtocolContext,
  peerId: string,
  domain: string,
  existing: EnrollmentValue | undefined,
  nowMs: number,
): Pick<EnrollmentValue, 'certificate' | 'certificateSerial' | 'certificateExpiresAtMs'> {
  if (existing !== undefined && existing.certificateExpiresAtMs - nowMs > ctx.config.renewBeforeDays * DAY_MS) {
    return { certificate: existing.certificate, certificateSerial: existing.certificateSerial, certificateExpiresAtMs: existing.certificateExpiresAtMs };
  }
  const authority = ctx.state.authority;
  const der = authority.issuePeerCertificate({
    peerId,
    domain,
    notBeforeMs: nowMs - CERTIFICATE_BACKDATE_MS,
    notAfterMs: nowMs + ctx.config.certificateValidityDays * DAY_MS,
  });
  // Read back what was written (serial as the roster carries it, times cut to whole seconds).
  const info = verifyRingCertificate(der, { certificateDer: authority.certificateDer }, { peerId, nowMs });
  return { certificate: Buffer.from(der).toString('base64'), certificateSerial: info.serialHex, certificateExpiresAtMs: info.notAfterMs };
}

// --- /ime/config/1.0.0 ---------------------------------------------------------------------------

/**
 * A poll: the configuration when it is newer than the one the peer holds, else nothing. Anyone may
 * poll, banned peers included: that is how a banned peer learns it is banned.
 */
export function answerConfigurationPoll(ctx: ProtocolContext, payload: Uint8Array): Uint8Array {
  ctx.counters.inc('ConfigurationPolls');
  let request: ime.v1.ConfigurationRequest;
  try {
    request = decodeWire(ime.v1.ConfigurationRequest, payload, MAX_CONFIGURATION_REQUEST_BYTES, 'configuration request');
  } catch (err) {
    const code = isImeError(err) ? err.code : 'E_WIRE_MALFORMED';
    return ime.v1.ConfigurationResponse.encode({ version: WIRE_VERSION, error: { code, message: (err as Error).message } }).finish();
  }
  if (request.version !== WIRE_VERSION) {
    const message = `configuration request version ${request.version} is not supported (this bootstrap speaks ${WIRE_VERSION})`;
    return ime.v1.ConfigurationResponse.encode({ version: WIRE_VERSION, error: { code: 'E_WIRE_VERSION', message } }).finish();
  }
  const current = ctx.current();
  const known = Number(request.knownSequence);
  if (current !== undefined && current.config.sequence > known) {
    return ime.v1.ConfigurationResponse.encode({ version: WIRE_VERSION, configuration: current.signed }).finish();
  }
  return ime.v1.ConfigurationResponse.encode({ version: WIRE_VERSION }).finish();
}

// --- /ime/bootstrap-sync/1.0.0 -------------------------------------------------------------------

/**
 * Another bootstrap's sync: merge what it sent, answer with everything here. Only the configured
 * peer bootstraps may sync — the state holds every enrollment and token digest of the ring.
 */
export async function answerSync(ctx: ProtocolContext, payload: Uint8Array, remotePeer: string): Promise<Uint8Array> {
  if (!ctx.isPeerBootstrap(remotePeer)) {
    throw new ImeError('E_NOT_BOOTSTRAP', 'only the bootstraps of this ring may synchronise state with it');
  }
  const request = decodeSync(ime.v1.BootstrapSyncRequest, payload, 'bootstrap sync request');
  // A change made here but not issued yet would reach the sender without its document, and the
  // sender would sign the same content under its own sequence: answer once the issue is done.
  await ctx.settled();
  // The answer is this bootstrap's state as it was before the merge: the sender has its own entries.
  const entries = ctx.state.wireEntries();
  const sequence = ctx.state.sequence;
  const served = ctx.current()?.signed;
  await mergeSync(ctx, request, remotePeer);
  return ime.v1.BootstrapSyncResponse.encode({
    version: WIRE_VERSION,
    entries,
    configurationSequence: Math.max(sequence, ctx.state.sequence),
    ...(served ? { configuration: served } : {}),
  }).finish();
}

/** Decodes a sync message (request or response) and checks its version and size. */
export function decodeSync<T extends { version: number; entries: unknown[] }>(
  type: { decode(bytes: Uint8Array): T },
  bytes: Uint8Array,
  what: string,
): T {
  const message = decodeWire(type, bytes, MAX_SYNC_BYTES, what);
  if (message.version !== WIRE_VERSION) {
    throw new ImeError('E_WIRE_VERSION', `${what} version ${message.version} is not supported (this bootstrap speaks ${WIRE_VERSION})`);
  }
  if (message.entries.length > MAX_SYNC_ENTRIES) throw new ImeError('E_SYNC_TOO_LARGE', `${what} carries more than ${MAX_SYNC_ENTRIES} entries`);
  return message;
}

/** Merges a sync message's entries and sequence floor into the state. */
export async function mergeSync(
  ctx: ProtocolContext,
  message: {
    readonly entries: readonly ime.v1.BootstrapStateEntry.$Properties[];
    readonly configurationSequence: number;
    readonly configuration?: ime.v1.ISignedRingConfiguration | null;
  },
  from: string,
): Promise<MergeResult> {
  const { result, written } = ctx.state.merge(message.entries);
  await written;
  ctx.state.noteSequence(Number(message.configurationSequence));
  ctx.merged(result, from, message.configuration);
  return result;
}
