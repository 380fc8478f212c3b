import { e164Problem, parseE164 } from './e164.js';
import { ImeError, describeInput } from './errors.js';

/**
 * The originating validator's pools and buckets (SPEC §6, guide L274–L305), as a pure state machine.
 *
 * One pool per remote peer, holding a default bucket and number buckets. A success adds its value
 * (12 when start and stop times were proven, 8 when only the start time was) to the number's bucket
 * if one exists, else to the default bucket. A bucket whose total exceeds the threshold releases every
 * route it holds and is emptied. A failure empties every bucket of the pool and opens a number bucket
 * for the failed number (the penalty box), so that number then needs consecutive successes of its own.
 * Number buckets, once opened, stay: the penalty box is never left.
 */

export const VALUE_START_ONLY = 8;
export const VALUE_START_AND_STOP = 12;
export type ValidationValue = typeof VALUE_START_ONLY | typeof VALUE_START_AND_STOP;

export const DEFAULT_BUCKET_ENTROPY = 20;
export const MAX_BUCKET_ENTROPY = 1000;

export type PoolErrorCode = 'E_BUCKET_ENTROPY' | 'E_VALIDATION_VALUE' | 'E_POOL_PEER' | 'E_POOL_STATE';

/** One successful validation waiting in a bucket, with what it will release (a route, typically). */
export interface BucketEntry<R> {
  readonly number: string;
  readonly value: ValidationValue;
  readonly route: R;
}

export interface Bucket<R> {
  readonly total: number;
  readonly entries: readonly BucketEntry<R>[];
}

export interface Pool<R> {
  readonly peer: string;
  readonly defaultBucket: Bucket<R>;
  /** Penalty-box buckets by number. */
  readonly numberBuckets: Readonly<Record<string, Bucket<R>>>;
}

export type PoolEvent<R> =
  | { readonly kind: 'success'; readonly number: string; readonly value: ValidationValue; readonly route: R }
  | { readonly kind: 'failure'; readonly number: string };

export interface PoolTransition<R> {
  readonly pool: Pool<R>;
  /** Entries released to the call managers by this event (empty unless a bucket overflowed). */
  readonly released: readonly BucketEntry<R>[];
  /** The bucket the event touched: a number, or null for the default bucket. */
  readonly bucket: string | null;
  /** Entries discarded by a failure (no longer awaiting confirmation). */
  readonly discarded: number;
}

const EMPTY_BUCKET: Bucket<never> = Object.freeze({ total: 0, entries: Object.freeze([]) as readonly never[] });

/**
 * A rejected setting as shown in a message: a number as written, anything else through describeInput
 * (String() throws on objects without a prototype and would echo a long string in full).
 */
function shown(value: unknown): string {
  return typeof value === 'number' ? String(value) : describeInput(value);
}

export function checkBucketEntropy(threshold: unknown): number {
  if (typeof threshold !== 'number' || !Number.isInteger(threshold) || threshold < 0 || threshold > MAX_BUCKET_ENTROPY) {
    throw new ImeError(
      'E_BUCKET_ENTROPY',
      `bucket entropy must be an integer from 0 to ${MAX_BUCKET_ENTROPY}, got ${shown(threshold)}`,
    );
  }
  return threshold;
}

export function checkValidationValue(value: unknown): ValidationValue {
  if (value !== VALUE_START_ONLY && value !== VALUE_START_AND_STOP) {
    throw new ImeError(
      'E_VALIDATION_VALUE',
      `a validation is worth ${VALUE_START_ONLY} (start time proven) or ${VALUE_START_AND_STOP} (start and stop), got ${shown(value)}`,
    );
  }
  return value;
}

export function emptyPool<R>(peer: string): Pool<R> {
  if (typeof peer !== 'string' || peer.length === 0) throw new ImeError('E_POOL_PEER', 'a pool needs a peer id');
  return { peer, defaultBucket: EMPTY_BUCKET, numberBuckets: {} };
}

/** Applies one validation outcome to a pool. Pure: the input pool is not changed. */
export function applyPoolEvent<R>(pool: Pool<R>, event: PoolEvent<R>, threshold: number): PoolTransition<R> {
  checkBucketEntropy(threshold);
  const number = parseE164(event.number);
  if (event.kind === 'failure') {
    const discarded = awaitingConfirmation(pool);
    const numberBuckets: Record<string, Bucket<R>> = {};
    for (const n of Object.keys(pool.numberBuckets)) numberBuckets[n] = EMPTY_BUCKET;
    numberBuckets[number] = EMPTY_BUCKET;
    return { pool: { peer: pool.peer, defaultBucket: EMPTY_BUCKET, numberBuckets }, released: [], bucket: number, discarded };
  }
  const value = checkValidationValue(event.value);
  const inPenaltyBox = Object.hasOwn(pool.numberBuckets, number);
  const current = inPenaltyBox ? (pool.numberBuckets[number] as Bucket<R>) : pool.defaultBucket;
  const filled: Bucket<R> = {
    total: current.total + value,
    entries: [...current.entries, { number, value, route: event.route }],
  };
  const overflow = filled.total > threshold;
  const next = overflow ? EMPTY_BUCKET : filled;
  const released = overflow ? filled.entries : [];
  return {
    pool: inPenaltyBox
      ? { ...pool, numberBuckets: { ...pool.numberBuckets, [number]: next } }
      : { ...pool, defaultBucket: next },
    released,
    bucket: inPenaltyBox ? number : null,
    discarded: 0,
  };
}

/**
 * Checks a pool read back from storage: every entry a +E.164 number worth 8 or 12, every total the sum
 * of its entries, every number bucket keyed by its number. A corrupt pool must not release routes.
 */
export function checkPool(pool: Pool<unknown>): void {
  const bad = (why: string) => new ImeError('E_POOL_STATE', `saved pool ${describeInput(pool?.peer)}: ${why}`);
  if (typeof pool !== 'object' || pool === null || typeof pool.peer !== 'string' || pool.peer.length === 0) {
    throw bad('no peer id');
  }
  const checkBucket = (bucket: Bucket<unknown> | undefined, number: string | null) => {
    if (typeof bucket !== 'object' || bucket === null || !Array.isArray(bucket.entries)) throw bad('a bucket has no entries');
    let sum = 0;
    for (const e of bucket.entries) {
      if (e === null || typeof e !== 'object' || e164Problem(e.number)) throw bad('an entry has no valid number');
      if (e.value !== VALUE_START_ONLY && e.value !== VALUE_START_AND_STOP) throw bad('an entry is not worth 8 or 12');
      if (number !== null && e.number !== number) throw bad(`bucket ${number} holds an entry for another number`);
      sum += e.value;
    }
    if (bucket.total !== sum) throw bad('a bucket total is not the sum of its entries');
  };
  checkBucket(pool.defaultBucket, null);
  if (typeof pool.numberBuckets !== 'object' || pool.numberBuckets === null) throw bad('no number buckets');
  for (const [number, bucket] of Object.entries(pool.numberBuckets)) {
    if (e164Problem(number)) throw bad('a number bucket is not keyed by a +E.164 number');
    checkBucket(bucket, number);
  }
}

/** Successes held in a pool's buckets, not yet released (ValidationsAwaitingConfirmation). */
export function awaitingConfirmation(pool: Pool<unknown>): number {
  let n = pool.defaultBucket.entries.length;
  for (const b of Object.values(pool.numberBuckets)) n += b.entries.length;
  return n;
}

/** Every remote peer's pool, with one threshold (`set validator local bucketentropy`). */
export class ValidationPools<R> {
  #threshold: number;
  readonly #pools = new Map<string, Pool<R>>();

  constructor(threshold: number = DEFAULT_BUCKET_ENTROPY) {
    this.#threshold = checkBucketEntropy(threshold);
  }

  get threshold(): number {
    return this.#threshold;
  }

  setThreshold(threshold: unknown): void {
    this.#threshold = checkBucketEntropy(threshold);
  }

  pool(peer: string): Pool<R> {
    return this.#pools.get(peer) ?? emptyPool<R>(peer);
  }

  apply(peer: string, event: PoolEvent<R>): PoolTransition<R> {
    const transition = applyPoolEvent(this.pool(peer), event, this.#threshold);
    this.#pools.set(peer, transition.pool);
    return transition;
  }

  success(peer: string, number: string, value: ValidationValue, route: R): PoolTransition<R> {
    return this.apply(peer, { kind: 'success', number, value, route });
  }

  failure(peer: string, number: string): PoolTransition<R> {
    return this.apply(peer, { kind: 'failure', number });
  }

  awaitingConfirmation(): number {
    let n = 0;
    for (const p of this.#pools.values()) n += awaitingConfirmation(p);
    return n;
  }

  /** Every pool, for `show validator pools` and for persistence. */
  pools(): Pool<R>[] {
    return [...this.#pools.values()].sort((a, b) => a.peer.localeCompare(b.peer));
  }

  /** Restores pools saved with `pools()` (for example after a restart); refuses inconsistent state. */
  static fromPools<R>(pools: readonly Pool<R>[], threshold: number = DEFAULT_BUCKET_ENTROPY): ValidationPools<R> {
    const v = new ValidationPools<R>(threshold);
    for (const p of pools) {
      checkPool(p);
      if (v.#pools.has(p.peer)) throw new ImeError('E_POOL_STATE', `saved pools list peer ${describeInput(p.peer)} twice`);
      v.#pools.set(p.peer, p);
    }
    return v;
  }
}
