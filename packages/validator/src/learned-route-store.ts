import { ImeError, describeInput, domainProblem, e164Problem, parseDomain } from '@ime/core';
import { type Database, keyOf } from '@ime/runtime';
import type { RouteGrant } from './pool-store.js';

/**
 * Routes this peer learned by validation (SPEC §6): what a bucket released, kept until its ticket
 * expires so that call managers that connect later (or after a restart) still receive them.
 *
 * One route per called number and terminating domain: learning it again replaces it (a fresh ticket,
 * a later expiry). The key is built from the number and domain, and '|' occurs in neither.
 *
 *   validator/route/<number>|<domain>   → LearnedRouteRecord (JSON)
 */

export interface LearnedRouteRecord extends RouteGrant {
  /** The remote peer that granted it. */
  readonly peerId: string;
}

export interface LearnedRouteStoreOptions {
  readonly db: Database;
  readonly now?: () => number;
}

const PREFIX = 'validator/route/';
/** The first key after every `validator/route/…` key ('0' follows '/'). */
const END = 'validator/route0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isTime(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Why a route cannot be stored (or was stored corrupt), or undefined. */
function recordProblem(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object') return 'not a route';
  const g = r as Record<string, unknown>;
  if (e164Problem(g.number)) return `number ${describeInput(g.number)} is not +E.164`;
  if (domainProblem(g.domain)) return `domain ${describeInput(g.domain)} is not a domain name`;
  for (const f of ['sipUri', 'ticket', 'peerId'] as const) {
    if (typeof g[f] !== 'string' || (g[f] as string).length === 0) return `the route has no ${f}`;
  }
  if (!isTime(g.learnedOnMs) || !isTime(g.expiresOnMs)) return 'the route times must be milliseconds';
  if ((g.expiresOnMs as number) < (g.learnedOnMs as number)) return 'the route expires before it was learned';
  return undefined;
}

function idOf(r: { number: string; domain: string }): string {
  return `${r.number}|${r.domain}`;
}

function compare(a: LearnedRouteRecord, b: LearnedRouteRecord): number {
  if (a.number !== b.number) return a.number < b.number ? -1 : 1;
  return a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0;
}

export class LearnedRouteStore {
  readonly #db: Database;
  readonly #now: () => number;
  /** Every stored route by `number|domain`, expired ones too until swept (they are never listed). */
  readonly #routes: Map<string, LearnedRouteRecord>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(options: LearnedRouteStoreOptions, routes: Map<string, LearnedRouteRecord>) {
    this.#db = options.db;
    this.#now = options.now ?? Date.now;
    this.#routes = routes;
  }

  /** Loads every stored route; refuses a corrupt one (E_DB_CORRUPT) rather than push it to call managers. */
  static async open(options: LearnedRouteStoreOptions): Promise<LearnedRouteStore> {
    const routes = new Map<string, LearnedRouteRecord>();
    for await (const [k, v] of options.db.iterator({ gte: keyOf(PREFIX), lt: keyOf(END) })) {
      const key = decoder.decode(k);
      let record: LearnedRouteRecord;
      try {
        record = JSON.parse(decoder.decode(v)) as LearnedRouteRecord;
      } catch {
        throw new ImeError('E_DB_CORRUPT', `the stored value ${describeInput(key)} is not valid JSON`);
      }
      const problem = recordProblem(record);
      if (problem !== undefined || PREFIX + idOf(record) !== key) {
        throw new ImeError('E_DB_CORRUPT', `the stored route ${describeInput(key)} is not a valid route: ${problem ?? 'stored under another key'}`);
      }
      routes.set(idOf(record), record);
    }
    return new LearnedRouteStore(options, routes);
  }

  /** Stores routes, replacing any of the same number and domain; all or none (E_LEARNED_ROUTE). */
  add(routes: readonly LearnedRouteRecord[]): Promise<void> {
    return this.#serialised(async () => {
      const next = new Map<string, LearnedRouteRecord>();
      routes.forEach((r, index) => {
        const problem = recordProblem(r);
        if (problem !== undefined) throw new ImeError('E_LEARNED_ROUTE', `learned route ${index}: ${problem}`, { index });
        const record: LearnedRouteRecord = {
          number: r.number,
          // Normalised, so that "Example.com" and "example.com." replace each other.
          domain: parseDomain(r.domain),
          sipUri: r.sipUri,
          ticket: r.ticket,
          learnedOnMs: r.learnedOnMs,
          expiresOnMs: r.expiresOnMs,
          peerId: r.peerId,
        };
        // A later route in the same batch wins, as a later batch would.
        next.set(idOf(record), record);
      });
      if (next.size === 0) return;
      const batch = this.#db.batch();
      for (const [id, record] of next) batch.put(keyOf(PREFIX + id), encoder.encode(JSON.stringify(record)));
      await batch.write();
      for (const [id, record] of next) this.#routes.set(id, record);
    });
  }

  /** Routes not expired, by number then domain (what call managers receive). */
  list(): LearnedRouteRecord[] {
    const now = this.#now();
    return [...this.#routes.values()].filter((r) => r.expiresOnMs > now).sort(compare);
  }

  /** How many routes have not expired (the LearnedRoutes gauge). */
  get size(): number {
    const now = this.#now();
    let n = 0;
    for (const r of this.#routes.values()) if (r.expiresOnMs > now) n++;
    return n;
  }

  /** Deletes expired routes; returns how many. */
  sweepExpired(): Promise<number> {
    return this.#serialised(async () => {
      const now = this.#now();
      const expired = [...this.#routes.entries()].filter(([, r]) => r.expiresOnMs <= now).map(([id]) => id);
      if (expired.length === 0) return 0;
      const batch = this.#db.batch();
      for (const id of expired) batch.del(keyOf(PREFIX + id));
      await batch.write();
      for (const id of expired) this.#routes.delete(id);
      return expired.length;
    });
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
