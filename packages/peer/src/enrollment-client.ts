import { peerIdFromString } from '@libp2p/peer-id';
import { type RingCertificateInfo, authorityFingerprint, verifyRingCertificate } from '@ime/admission';
import { ImeError, decodeWire, isImeError } from '@ime/core';
import { type Database, type RpcClient, getJson, putJson } from '@ime/runtime';
import { ime } from '@ime/wire';

/**
 * Enrollment (SPEC §3): the first start sends PeerId, domain, contact and the operator's one-time
 * token to a bootstrap and keeps the certificate, the authority certificate and the configuration it
 * gets back. Later starts refresh: no token, the bootstrap learns the peer's current addresses and
 * renews the certificate when it is near expiry.
 */

const STORED_KEY = 'meta/enrollment';
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024 + 64 * 1024;

export interface Enrollment {
  readonly certificateDer: Uint8Array;
  readonly authorityCertificateDer: Uint8Array;
  readonly info: RingCertificateInfo;
}

export interface EnrollmentRequestInput {
  readonly peerId: string;
  readonly domain: string;
  readonly contact: string;
  readonly token?: string;
  readonly addresses: readonly string[];
  readonly softwareVersion: string;
}

/** Codes after which trying another bootstrap cannot help: the request itself is refused. */
const FINAL = new Set(['E_ENROLL_TOKEN_INVALID', 'E_ENROLL_TOKEN_USED', 'E_ENROLL_TOKEN_EXPIRED', 'E_ENROLL_DOMAIN', 'E_ENROLL_BANNED', 'E_ENROLL_REQUEST', 'E_ENROLL_UNKNOWN_PEER']);

export async function loadEnrollment(db: Database, peerId: string, nowMs: number): Promise<Enrollment | undefined> {
  const stored = await getJson<{ certificate: string; authority: string }>(db, STORED_KEY);
  if (!stored) return undefined;
  const certificateDer = Buffer.from(stored.certificate, 'base64');
  const authorityCertificateDer = Buffer.from(stored.authority, 'base64');
  // Expiry is reported (health, DaysUntilCertExpiry) and renewed, not a reason to forget the enrollment.
  const info = verifyRingCertificate(certificateDer, { certificateDer: authorityCertificateDer }, { peerId, nowMs, allowExpired: true });
  return { certificateDer, authorityCertificateDer, info };
}

/**
 * Sends an enrollment (with a token) or a refresh (without) to each bootstrap in turn until one
 * answers. Returns the enrollment and the signed configuration that came with it.
 */
export async function enroll(options: {
  readonly db: Database;
  readonly rpc: RpcClient;
  readonly bootstraps: readonly string[];
  readonly request: EnrollmentRequestInput;
  /** SHA-256 hex of the authority certificate, when the operator pinned it. */
  readonly authorityFingerprint?: string;
  readonly nowMs: number;
}): Promise<{ enrollment: Enrollment; configuration: ime.v1.ISignedRingConfiguration | undefined }> {
  const { request } = options;
  const bytes = ime.v1.EnrollmentRequest.encode({
    version: 1,
    peerId: request.peerId,
    domain: request.domain,
    contact: request.contact,
    enrollmentToken: request.token ?? '',
    addresses: [...request.addresses],
    softwareVersion: request.softwareVersion,
    requestedAtMs: options.nowMs,
    renewal: request.token === undefined,
  }).finish();
  let lastError: ImeError | undefined;
  for (const bootstrap of options.bootstraps) {
    let response: ime.v1.EnrollmentResponse;
    try {
      const answer = await options.rpc.request(peerIdFromString(bootstrap), bytes, { timeoutMs: 15_000 });
      response = decodeWire(ime.v1.EnrollmentResponse, answer, MAX_RESPONSE_BYTES, 'enrollment response');
    } catch (err) {
      lastError = isImeError(err) ? err : new ImeError('E_ENROLL_UNREACHABLE', String(err));
      if (FINAL.has(lastError.code)) throw lastError;
      continue;
    }
    if (response.refused) {
      const refusal = new ImeError(response.refused.code || 'E_ENROLL_REFUSED', `bootstrap refused enrollment: ${response.refused.message}`);
      if (FINAL.has(refusal.code)) throw refusal;
      lastError = refusal;
      continue;
    }
    const enrolled = response.enrolled;
    if (!enrolled) {
      lastError = new ImeError('E_ENROLL_RESPONSE', 'the bootstrap answered without a certificate');
      continue;
    }
    const authorityCertificateDer = enrolled.authorityCertificate;
    if (options.authorityFingerprint) {
      if (authorityFingerprint(authorityCertificateDer) !== options.authorityFingerprint.toLowerCase()) {
        throw new ImeError('E_ENROLL_AUTHORITY', 'the bootstrap presented a ring authority other than the pinned one');
      }
    }
    const info = verifyRingCertificate(enrolled.certificate, { certificateDer: authorityCertificateDer }, { peerId: request.peerId, nowMs: options.nowMs });
    if (info.domain !== request.domain.toLowerCase()) {
      throw new ImeError('E_ENROLL_DOMAIN', `the certificate names domain ${info.domain}, not ${request.domain}`);
    }
    await putJson(options.db, STORED_KEY, {
      certificate: Buffer.from(enrolled.certificate).toString('base64'),
      authority: Buffer.from(authorityCertificateDer).toString('base64'),
    });
    return {
      enrollment: { certificateDer: enrolled.certificate, authorityCertificateDer, info },
      configuration: enrolled.configuration ?? undefined,
    };
  }
  throw lastError ?? new ImeError('E_ENROLL_UNREACHABLE', 'no bootstrap is configured');
}

/** How long a first start keeps trying to reach a bootstrap, and the longest pause between tries. */
export const FIRST_ENROLLMENT_RETRY_MS = 120_000;
const FIRST_ENROLLMENT_MAX_PAUSE_MS = 15_000;

/**
 * The first enrollment, tried again while no bootstrap answers: peers and bootstraps are often started
 * together (compose, a reboot, a loaded host), and a peer that gave up on the first timeout would need
 * an operator to start it again. A refusal of the request itself (token, domain, ban) ends at once;
 * a retry with the same token is safe, the bootstrap recognises its own PeerId's token.
 */
export async function enrollPersistently(
  options: Parameters<typeof enroll>[0] & {
    readonly now: () => number;
    readonly retryForMs?: number;
    readonly onRetry?: (error: ImeError, pauseMs: number) => void;
    readonly sleep?: (ms: number) => Promise<void>;
  },
): Promise<Awaited<ReturnType<typeof enroll>>> {
  const deadline = options.now() + (options.retryForMs ?? FIRST_ENROLLMENT_RETRY_MS);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let pauseMs = 1000; ; pauseMs = Math.min(pauseMs * 2, FIRST_ENROLLMENT_MAX_PAUSE_MS)) {
    try {
      return await enroll({ ...options, nowMs: options.now() });
    } catch (err) {
      const error = isImeError(err) ? err : new ImeError('E_ENROLL_UNREACHABLE', String(err));
      if (FINAL.has(error.code) || error.code === 'E_ENROLL_AUTHORITY' || error.code === 'E_ENROLL_DOMAIN') throw error;
      const pause = Math.min(pauseMs, deadline - options.now());
      if (pause <= 0) throw error;
      options.onRetry?.(error, pause);
      await sleep(pause);
    }
  }
}
