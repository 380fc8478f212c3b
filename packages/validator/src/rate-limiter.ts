import { ImeError, describeInput } from '@ime/core';

/**
 * Validation attempts per remote peer are rate-limited (SPEC §6, BlockedValidationOrigTLSLimit and
 * BlockedValidationTermTLSLimit): one token bucket per key (a remote peer id), refilled at `perMinute`
 * tokens a minute up to `burst`. Pure: time comes from `now`, nothing is stored.
 *
 * Memory is bounded because keys come from the network. A bucket that has refilled to `burst` carries
 * no information (an unknown key starts full), so those are dropped first; only when every tracked key
 * is below full are the least recently used ones dropped — which at worst gives such a peer a fresh
 * burst, never refuses a peer that should have been allowed.
 */

export interface RateLimiterOptions {
  /** Tokens added per minute (> 0). */
  readonly perMinute: number;
  /** Bucket size: the most attempts allowed at once (≥ 1). */
  readonly burst: number;
  readonly now?: () => number;
  /** Keys tracked at most (default 10 000). */
  readonly maxKeys?: number;
}

export const DEFAULT_RATE_LIMITER_MAX_KEYS = 10_000;

interface Entry {
  tokens: number;
  atMs: number;
}

function configError(what: string, value: unknown): ImeError {
  const shown = typeof value === 'number' ? String(value) : describeInput(value);
  return new ImeError('E_RATE_LIMIT_CONFIG', `${what}, got ${shown}`);
}

export class RateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #maxKeys: number;
  /** In least recently used order (a Map keeps insertion order; a touched key is re-inserted). */
  readonly #entries = new Map<string, Entry>();

  constructor(options: RateLimiterOptions) {
    const { perMinute, burst } = options;
    const maxKeys = options.maxKeys ?? DEFAULT_RATE_LIMITER_MAX_KEYS;
    if (typeof perMinute !== 'number' || !Number.isFinite(perMinute) || perMinute <= 0) {
      throw configError('perMinute must be a number above 0', perMinute);
    }
    if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1) throw configError('burst must be a whole number from 1', burst);
    if (typeof maxKeys !== 'number' || !Number.isInteger(maxKeys) || maxKeys < 1) throw configError('maxKeys must be a whole number from 1', maxKeys);
    if (options.now !== undefined && typeof options.now !== 'function') throw configError('now must be a function', options.now);
    this.#perMs = perMinute / 60_000;
    this.#burst = burst;
    this.#now = options.now ?? Date.now;
    this.#maxKeys = maxKeys;
  }

  /** Takes `n` tokens for `key`; false (and nothing taken) when fewer are left. */
  take(key: string, n = 1): boolean {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
      throw new ImeError('E_RATE_LIMIT_TAKE', `tokens taken must be a whole number from 1, got ${typeof n === 'number' ? String(n) : describeInput(n)}`);
    }
    const now = this.#now();
    const tokens = this.#tokens(key, now);
    if (tokens < n) return false;
    const atMs = Math.max(now, this.#entries.get(key)?.atMs ?? now);
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxKeys) this.#evict(now);
    this.#entries.set(key, { tokens: tokens - n, atMs });
    return true;
  }

  /** Whole tokens `key` could take now. */
  remaining(key: string): number {
    return Math.floor(this.#tokens(key, this.#now()));
  }

  /** Keys tracked (for tests and operators). */
  get size(): number {
    return this.#entries.size;
  }

  #tokens(key: string, now: number): number {
    const e = this.#entries.get(key);
    return e === undefined ? this.#burst : this.#level(e, now);
  }

  #level(e: Entry, now: number): number {
    // A clock that goes back refills nothing (and takes nothing back).
    return Math.min(this.#burst, e.tokens + Math.max(0, now - e.atMs) * this.#perMs);
  }

  /** Makes room for one key: every full bucket, else the least recently used. */
  #evict(now: number): void {
    for (const [key, e] of this.#entries) {
      if (this.#level(e, now) >= this.#burst) this.#entries.delete(key);
    }
    for (const key of this.#entries.keys()) {
      if (this.#entries.size < this.#maxKeys) break;
      this.#entries.delete(key);
    }
  }
}
