import { createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { ImeError } from '@ime/core';

/**
 * VAP registration: a challenge–response digest, so the password never crosses the wire and the
 * server never stores it.
 *
 *   client → Hello{username, clientNonce}
 *   server → Challenge{serverNonce, algorithm, salt, iterations}
 *   K      = PBKDF2-HMAC-SHA256(password, salt, iterations, 32 bytes)
 *   client → Register{digest = HMAC-SHA256(K, "ime-vap-register-v1" 0x00 username 0x00 clientNonce serverNonce)}
 *
 * The server keeps {username, salt, iterations, K}. K is password-equivalent for VAP (whoever has it
 * can register) but not for anything else the password is used for, and it is not the password.
 */

export const VAP_DIGEST_ALGORITHM = 'HMAC-SHA256-PBKDF2';
export const VAP_NONCE_BYTES = 32;
export const VAP_DIGEST_BYTES = 32;
export const VAP_KEY_BYTES = 32;
export const VAP_SALT_BYTES = 16;
export const MIN_VAP_SALT_BYTES = 16;
export const MAX_VAP_SALT_BYTES = 64;
/**
 * ≈ 1.7 ms of one core on this machine: a thousand call managers registering in a benchmark cost
 * under two seconds of client CPU in total, while each guess at a stolen salt and digest costs an
 * attacker as much.
 * The server pays PBKDF2 only when credentials are set.
 */
export const DEFAULT_VAP_ITERATIONS = 10_000;
export const MIN_VAP_ITERATIONS = 1_000;
export const MAX_VAP_ITERATIONS = 1_000_000;

const CONTEXT = Buffer.from('ime-vap-register-v1', 'utf8');
const ZERO = Buffer.from([0]);

/** What the server stores for a VAP user instead of the password. */
export interface VapVerifier {
  readonly username: string;
  readonly salt: Uint8Array;
  readonly iterations: number;
  /** K: a secret. Never logged, never sent. */
  readonly key: Uint8Array;
}

function checkIterations(iterations: number): void {
  if (!Number.isSafeInteger(iterations) || iterations < MIN_VAP_ITERATIONS || iterations > MAX_VAP_ITERATIONS) {
    throw new ImeError('E_VAP_BAD_CREDENTIALS', `iterations must be an integer from ${MIN_VAP_ITERATIONS} to ${MAX_VAP_ITERATIONS}`);
  }
}

export function deriveVapKey(password: string, salt: Uint8Array, iterations: number): Uint8Array {
  checkIterations(iterations);
  return new Uint8Array(pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, VAP_KEY_BYTES, 'sha256'));
}

/** The same on the libuv thread pool: a simulator running many call managers must not stall. */
export function deriveVapKeyAsync(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  checkIterations(iterations);
  return new Promise((resolve, reject) => {
    pbkdf2(Buffer.from(password, 'utf8'), salt, iterations, VAP_KEY_BYTES, 'sha256', (err, key) =>
      err ? reject(err) : resolve(new Uint8Array(key)),
    );
  });
}

export function computeVapDigest(
  key: Uint8Array,
  username: string,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
): Uint8Array {
  const mac = createHmac('sha256', key);
  mac.update(CONTEXT);
  mac.update(ZERO);
  mac.update(Buffer.from(username, 'utf8'));
  mac.update(ZERO);
  mac.update(clientNonce);
  mac.update(serverNonce);
  return new Uint8Array(mac.digest());
}

/** Constant-time for equal lengths; a length mismatch is not secret (digests have one length). */
export function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    // Still spend one comparison so a short digest is not answered measurably faster.
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

export function createVapVerifier(
  username: string,
  password: string,
  options: { iterations?: number; salt?: Uint8Array } = {},
): VapVerifier {
  const iterations = options.iterations ?? DEFAULT_VAP_ITERATIONS;
  const salt = options.salt ?? new Uint8Array(randomBytes(VAP_SALT_BYTES));
  if (salt.length < MIN_VAP_SALT_BYTES || salt.length > MAX_VAP_SALT_BYTES) {
    throw new ImeError('E_VAP_BAD_CREDENTIALS', `the salt must be ${MIN_VAP_SALT_BYTES}–${MAX_VAP_SALT_BYTES} bytes`);
  }
  return { username, salt, iterations, key: deriveVapKey(password, salt, iterations) };
}

/**
 * The salt shown to a username the server does not know: derived from a per-server secret so it is
 * stable across attempts and restarts, as a real user's salt is, and unpredictable to the prober.
 */
export function decoySalt(secret: Uint8Array, username: string): Uint8Array {
  return hmacLabel(secret, 'ime-vap-decoy-salt', username).subarray(0, VAP_SALT_BYTES);
}

function hmacLabel(secret: Uint8Array, label: string, username: string): Uint8Array {
  const mac = createHmac('sha256', secret);
  mac.update(label);
  mac.update(ZERO);
  mac.update(Buffer.from(username, 'utf8'));
  return new Uint8Array(mac.digest());
}

/** Remembers accepted digests for a while, oldest first out. */
export class VapReplayCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, number>();

  constructor(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? 60 * 60 * 1000;
    this.#maxEntries = options.maxEntries ?? 50_000;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#seen.size;
  }

  has(digest: Uint8Array): boolean {
    const key = Buffer.from(digest).toString('base64');
    const expires = this.#seen.get(key);
    return expires !== undefined && expires > this.#now();
  }

  remember(digest: Uint8Array): void {
    const now = this.#now();
    for (const [k, expires] of this.#seen) {
      if (expires > now && this.#seen.size < this.#maxEntries) break;
      this.#seen.delete(k);
    }
    this.#seen.set(Buffer.from(digest).toString('base64'), now + this.#ttlMs);
  }
}

export type VapAuthFailureReason = 'unknown username' | 'wrong password' | 'replayed digest' | 'challenge already answered';

export interface VapChallengeState {
  readonly username: string;
  readonly clientNonce: Uint8Array;
  readonly serverNonce: Uint8Array;
  readonly salt: Uint8Array;
  readonly iterations: number;
  answered: boolean;
}

export type VapVerifyResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'E_VAP_AUTH' | 'E_VAP_REPLAY'; readonly reason: VapAuthFailureReason };

export interface VapAuthenticatorOptions {
  /** Per-server secret for decoy salts and keys (32 random bytes, kept across restarts). */
  readonly secret: Uint8Array;
  /** The stored verifier for a username, or undefined when the username is unknown. */
  readonly lookup: (username: string) => VapVerifier | undefined;
  readonly replay?: VapReplayCache;
  /** Iterations shown for unknown usernames: the default, like every real user's. */
  readonly decoyIterations?: number;
}

/**
 * The server side of the digest, without I/O. An unknown username gets a Challenge like any other
 * and fails only at Register, after the same work as a wrong password.
 */
export class VapAuthenticator {
  readonly #secret: Uint8Array;
  readonly #lookup: (username: string) => VapVerifier | undefined;
  readonly #replay: VapReplayCache;
  readonly #decoyIterations: number;

  constructor(options: VapAuthenticatorOptions) {
    if (!(options.secret instanceof Uint8Array) || options.secret.length < 16) {
      throw new ImeError('E_VAP_BAD_SETTING', 'the VAP server secret must be at least 16 bytes');
    }
    this.#secret = options.secret;
    this.#lookup = options.lookup;
    this.#replay = options.replay ?? new VapReplayCache();
    this.#decoyIterations = options.decoyIterations ?? DEFAULT_VAP_ITERATIONS;
  }

  challenge(username: string, clientNonce: Uint8Array): VapChallengeState {
    const verifier = this.#lookup(username);
    return {
      username,
      clientNonce,
      serverNonce: new Uint8Array(randomBytes(VAP_NONCE_BYTES)),
      salt: verifier ? verifier.salt : decoySalt(this.#secret, username),
      iterations: verifier ? verifier.iterations : this.#decoyIterations,
      answered: false,
    };
  }

  verify(state: VapChallengeState, digest: Uint8Array): VapVerifyResult {
    if (state.answered) return { ok: false, code: 'E_VAP_AUTH', reason: 'challenge already answered' };
    state.answered = true;
    if (this.#replay.has(digest)) return { ok: false, code: 'E_VAP_REPLAY', reason: 'replayed digest' };
    // Looked up again: credentials changed since the Challenge must not let the old password in.
    const verifier = this.#lookup(state.username);
    const known = verifier !== undefined && sameSalt(verifier, state);
    const key = known ? verifier.key : hmacLabel(this.#secret, 'ime-vap-decoy-key', state.username);
    const expected = computeVapDigest(key, state.username, state.clientNonce, state.serverNonce);
    const match = digestsEqual(expected, digest);
    if (verifier === undefined) return { ok: false, code: 'E_VAP_AUTH', reason: 'unknown username' };
    if (!known || !match) return { ok: false, code: 'E_VAP_AUTH', reason: 'wrong password' };
    this.#replay.remember(digest);
    return { ok: true };
  }
}

function sameSalt(verifier: VapVerifier, state: VapChallengeState): boolean {
  return verifier.iterations === state.iterations && Buffer.from(verifier.salt).equals(state.salt);
}
