import { ImeError, type TrustGroup, domainProblem, e164Problem } from '@ime/core';
import type { LearnedRoute } from '@ime/vap';
import { judgeRoute } from './trust.js';

/**
 * The call manager's learned routes (guide L4363–L4408): number, domain, SIP URI, ticket,
 * learned-on, expires-on (learned-on + one year) and Admin Enabled, which turns a route off without
 * deleting it. Pure: the table neither reads files nor talks to the peer, so its rules are tested
 * directly; route-store.ts persists it.
 */

/** A learned route as the peer pushed it, with the call manager's own Admin Enabled flag. */
export interface StoredRoute extends LearnedRoute {
  readonly adminEnabled: boolean;
}

/** The JSON shape of `ime cm show routes` (INTERFACES.md). */
export interface RouteView {
  readonly number: string;
  readonly domain: string;
  readonly sipUri: string;
  readonly ticket: string;
  readonly learnedOn: string;
  readonly expiresOn: string;
  readonly adminEnabled: boolean;
}

export type RouteRejection =
  | 'blacklisted'
  | 'not-whitelisted'
  | 'invalid-number'
  | 'invalid-domain'
  | 'invalid-sip-uri'
  | 'invalid-ticket'
  | 'expired';

export type RouteOutcome =
  | { readonly kind: 'learned' | 'updated'; readonly route: StoredRoute }
  | { readonly kind: 'rejected'; readonly reason: RouteRejection; readonly number: string; readonly detail?: string };

const MAX_TICKET_CHARS = 16 * 1024;
const MAX_SIP_URI_CHARS = 512;

/** learned-on + one calendar year (guide L4398: routes expire a year after they were learned). */
export function oneYearAfter(ms: number): number {
  const d = new Date(ms);
  d.setUTCFullYear(d.getUTCFullYear() + 1);
  return d.getTime();
}

export function routeView(r: StoredRoute): RouteView {
  return {
    number: r.number,
    domain: r.domain,
    sipUri: r.sipUri,
    ticket: r.ticket,
    learnedOn: new Date(r.learnedOnMs).toISOString(),
    expiresOn: new Date(r.expiresOnMs).toISOString(),
    adminEnabled: r.adminEnabled,
  };
}

/**
 * Judges a pushed route: well formed, not expired, and trusted. The expiry is the peer's, capped at
 * one year after learning — a route never outlives its ticket, nor the guide's year.
 */
export function judgePushedRoute(raw: LearnedRoute, groups: readonly TrustGroup[], nowMs: number): RouteOutcome | Omit<StoredRoute, 'adminEnabled'> {
  const number = typeof raw.number === 'string' ? raw.number : '';
  const reject = (reason: RouteRejection, detail?: string): RouteOutcome => ({ kind: 'rejected', reason, number: number.slice(0, 32), ...(detail === undefined ? {} : { detail }) });
  if (e164Problem(raw.number) !== undefined) return reject('invalid-number');
  if (domainProblem(raw.domain) !== undefined) return reject('invalid-domain');
  if (typeof raw.sipUri !== 'string' || raw.sipUri.length > MAX_SIP_URI_CHARS || !/^sips?:\S+$/.test(raw.sipUri)) return reject('invalid-sip-uri');
  if (typeof raw.ticket !== 'string' || raw.ticket.length === 0 || raw.ticket.length > MAX_TICKET_CHARS || !/^[A-Za-z0-9_-]+$/.test(raw.ticket)) {
    return reject('invalid-ticket');
  }
  const domain = raw.domain.toLowerCase().replace(/\.$/, '');
  const learnedOnMs = Number.isSafeInteger(raw.learnedOnMs) && raw.learnedOnMs > 0 && raw.learnedOnMs <= nowMs + 60_000 ? raw.learnedOnMs : nowMs;
  const cap = oneYearAfter(learnedOnMs);
  const expiresOnMs = Number.isSafeInteger(raw.expiresOnMs) && raw.expiresOnMs > learnedOnMs ? Math.min(raw.expiresOnMs, cap) : cap;
  if (expiresOnMs <= nowMs) return reject('expired');
  const decision = judgeRoute(groups, { number, domain });
  if (!decision.trusted) {
    return reject(decision.reason === 'blacklisted' ? 'blacklisted' : 'not-whitelisted', decision.element === undefined ? undefined : `${decision.group ?? ''}: ${decision.element}`);
  }
  return { number, domain, sipUri: raw.sipUri, ticket: raw.ticket, learnedOnMs, expiresOnMs };
}

export class RouteTable {
  readonly #routes = new Map<string, StoredRoute>();

  constructor(routes: Iterable<StoredRoute> = []) {
    for (const r of routes) this.#routes.set(r.number, r);
  }

  /** Applies a pushed route: judged, then learned or updated (Admin Enabled is the admin's, kept). */
  apply(raw: LearnedRoute, groups: readonly TrustGroup[], nowMs: number): RouteOutcome {
    const judged = judgePushedRoute(raw, groups, nowMs);
    if ('kind' in judged) return judged;
    const previous = this.get(judged.number, nowMs);
    const route: StoredRoute = { ...judged, adminEnabled: previous?.adminEnabled ?? true };
    this.#routes.set(route.number, route);
    return { kind: previous === undefined ? 'learned' : 'updated', route };
  }

  /** An unexpired route for the number, enabled or not. */
  get(number: string, nowMs: number): StoredRoute | undefined {
    const r = this.#routes.get(number);
    return r !== undefined && r.expiresOnMs > nowMs ? r : undefined;
  }

  setAdminEnabled(number: string, enabled: boolean, nowMs: number): StoredRoute {
    const r = this.get(number, nowMs);
    if (r === undefined) throw new ImeError('E_CM_ROUTE_NOT_FOUND', `no learned route for ${JSON.stringify(number.slice(0, 32))}`);
    const updated = { ...r, adminEnabled: enabled };
    this.#routes.set(number, updated);
    return updated;
  }

  /** Drops expired routes; returns how many. */
  sweep(nowMs: number): number {
    let n = 0;
    for (const [number, r] of this.#routes) {
      if (r.expiresOnMs <= nowMs) {
        this.#routes.delete(number);
        n++;
      }
    }
    return n;
  }

  /** Unexpired routes by number. */
  list(nowMs: number): StoredRoute[] {
    return [...this.#routes.values()].filter((r) => r.expiresOnMs > nowMs).sort((a, b) => (a.number < b.number ? -1 : a.number > b.number ? 1 : 0));
  }

  size(nowMs: number): number {
    return this.list(nowMs).length;
  }

  /** Distinct domains of unexpired routes (DomainsUnique). */
  domainCount(nowMs: number): number {
    return new Set(this.list(nowMs).map((r) => r.domain)).size;
  }

  /** Every route, expired or not, for persistence. */
  all(): StoredRoute[] {
    return [...this.#routes.values()];
  }
}

/** Reads what `RouteTable.all()` wrote; anything malformed is refused rather than half-loaded. */
export function parseStoredRoutes(value: unknown): StoredRoute[] {
  const bad = (why: string): ImeError => new ImeError('E_CM_ROUTES_FILE', `the learned routes file is not valid: ${why}`);
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { routes?: unknown }).routes)) throw bad('expected {"routes":[…]}');
  return ((value as { routes: unknown[] }).routes).map((r, i) => {
    const o = r as Record<string, unknown>;
    if (
      typeof o !== 'object' || o === null ||
      e164Problem(o.number) !== undefined ||
      domainProblem(o.domain) !== undefined ||
      typeof o.sipUri !== 'string' ||
      typeof o.ticket !== 'string' ||
      !Number.isSafeInteger(o.learnedOnMs) ||
      !Number.isSafeInteger(o.expiresOnMs) ||
      typeof o.adminEnabled !== 'boolean'
    ) {
      throw bad(`route ${i} is malformed`);
    }
    return {
      number: o.number as string,
      domain: o.domain as string,
      sipUri: o.sipUri,
      ticket: o.ticket,
      learnedOnMs: o.learnedOnMs as number,
      expiresOnMs: o.expiresOnMs as number,
      adminEnabled: o.adminEnabled,
    };
  });
}
