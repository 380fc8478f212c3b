import {
  DEFAULT_BUCKET_ENTROPY,
  ImeError,
  type LearnedRoute,
  type Pool,
  type PoolEvent,
  type PoolTransition,
  type ValidationValue,
  applyPoolEvent,
  awaitingConfirmation,
  checkBucketEntropy,
  checkPool,
  describeInput,
  emptyPool,
} from '@ime/core';
import { type Database, getJson, keyOf, putJson } from '@ime/runtime';

/**
 * The originating validator's pools and buckets (SPEC §6, guide L274–L305), kept in the peer's LevelDB
 * so that a restart neither forgets a penalty box nor releases routes twice.
 *
 * The state machine is the core's `applyPoolEvent`; this module only stores its result. Each event is
 * applied to the saved pool, the new pool is written, and only then does memory move on: a failed
 * write leaves memory as it is on disk.
 *
 *   validator/pool/<peerId>   → Pool<RouteGrant> (JSON)
 *   validator/bucketentropy   → threshold (JSON number)
 */

/** What a bucket entry releases: the core's learned route, delivered over VAP. */
export type RouteGrant = LearnedRoute;

export interface PoolStoreOptions {
  readonly db: Database;
}

const POOL_PREFIX = 'validator/pool/';
/** The first key after every `validator/pool/…` key ('0' follows '/'). */
const POOL_END = 'validator/pool0';
const THRESHOLD_KEY = 'validator/bucketentropy';

const decoder = new TextDecoder();

function isTime(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** A saved route must be whole: a corrupt one would otherwise be pushed to the call managers. */
function routeProblem(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object') return 'an entry has no route';
  const g = r as Record<string, unknown>;
  for (const f of ['number', 'domain', 'sipUri', 'ticket'] as const) {
    if (typeof g[f] !== 'string' || (g[f] as string).length === 0) return `a route has no ${f}`;
  }
  if (!isTime(g.learnedOnMs) || !isTime(g.expiresOnMs)) return 'a route has no valid times';
  return undefined;
}

function checkSavedPool(key: string, value: unknown): Pool<RouteGrant> {
  const pool = value as Pool<RouteGrant>;
  checkPool(pool);
  const peer = key.slice(POOL_PREFIX.length);
  if (pool.peer !== peer) {
    throw new ImeError('E_POOL_STATE', `saved pool ${describeInput(peer)} belongs to peer ${describeInput(pool.peer)}`);
  }
  for (const bucket of [pool.defaultBucket, ...Object.values(pool.numberBuckets)]) {
    for (const e of bucket.entries) {
      const problem = routeProblem(e.route);
      if (problem) throw new ImeError('E_POOL_STATE', `saved pool ${describeInput(peer)}: ${problem}`);
    }
  }
  return pool;
}

export class PoolStore {
  readonly #db: Database;
  readonly #pools: Map<string, Pool<RouteGrant>>;
  #threshold: number;
  /** Writes one after another: each event starts from the pool the previous one saved. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(db: Database, pools: Map<string, Pool<RouteGrant>>, threshold: number) {
    this.#db = db;
    this.#pools = pools;
    this.#threshold = threshold;
  }

  /** Loads every saved pool and the threshold; refuses corrupt state (E_DB_CORRUPT, E_POOL_STATE). */
  static async open(options: PoolStoreOptions): Promise<PoolStore> {
    const { db } = options;
    const savedThreshold = await getJson<unknown>(db, THRESHOLD_KEY);
    let threshold = DEFAULT_BUCKET_ENTROPY;
    if (savedThreshold !== undefined) {
      try {
        threshold = checkBucketEntropy(savedThreshold);
      } catch {
        throw new ImeError('E_POOL_STATE', `the saved bucket entropy ${describeInput(savedThreshold)} is not a valid threshold`);
      }
    }
    const pools = new Map<string, Pool<RouteGrant>>();
    for await (const [k, v] of db.iterator({ gte: keyOf(POOL_PREFIX), lt: keyOf(POOL_END) })) {
      const key = decoder.decode(k);
      let value: unknown;
      try {
        value = JSON.parse(decoder.decode(v));
      } catch {
        throw new ImeError('E_DB_CORRUPT', `the stored value ${describeInput(key)} is not valid JSON`);
      }
      const pool = checkSavedPool(key, value);
      pools.set(pool.peer, pool);
    }
    return new PoolStore(db, pools, threshold);
  }

  get threshold(): number {
    return this.#threshold;
  }

  /** `set validator local bucketentropy`: checked, persisted, and returns the previous threshold. */
  setThreshold(n: unknown): Promise<number> {
    return this.#serialised(async () => {
      const threshold = checkBucketEntropy(n);
      const previous = this.#threshold;
      await putJson(this.#db, THRESHOLD_KEY, threshold);
      this.#threshold = threshold;
      return previous;
    });
  }

  /**
   * `beforeSave` runs once the transition is known and before the pool is written: the caller stores
   * the routes a release hands out there, so that a crash between the two writes repeats a release
   * (the same routes again, later) instead of losing routes whose bucket was already emptied on disk.
   */
  success(
    peer: string,
    number: string,
    value: ValidationValue,
    route: RouteGrant,
    beforeSave?: (transition: PoolTransition<RouteGrant>) => Promise<void>,
  ): Promise<PoolTransition<RouteGrant>> {
    return this.#apply(peer, { kind: 'success', number, value, route }, beforeSave);
  }

  failure(peer: string, number: string): Promise<PoolTransition<RouteGrant>> {
    return this.#apply(peer, { kind: 'failure', number });
  }

  /** Every pool, by peer id (`show validator pools`). */
  pools(): Pool<RouteGrant>[] {
    return [...this.#pools.values()].sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  /** Successes held in buckets, not yet released (ValidationsAwaitingConfirmation). */
  awaitingConfirmation(): number {
    let n = 0;
    for (const p of this.#pools.values()) n += awaitingConfirmation(p);
    return n;
  }

  #apply(peer: string, event: PoolEvent<RouteGrant>, beforeSave?: (transition: PoolTransition<RouteGrant>) => Promise<void>): Promise<PoolTransition<RouteGrant>> {
    return this.#serialised(async () => {
      const transition = applyPoolEvent(this.#pools.get(peer) ?? emptyPool<RouteGrant>(peer), event, this.#threshold);
      await beforeSave?.(transition);
      await putJson(this.#db, POOL_PREFIX + peer, transition.pool);
      this.#pools.set(peer, transition.pool);
      return transition;
    });
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
