import { type Alerts, type Counters, type Logger } from '@ime/runtime';
import { TICKET_DEFAULT_VALIDITY_MS } from '@ime/ticket';
import { isImeError } from '@ime/core';
import type { LearnedRouteRecord, LearnedRouteStore } from './learned-route-store.js';
import type { PendingWatermark } from './pending-watermark.js';
import type { PoolStore } from './pool-store.js';
import type { PvpCrypto } from './pvp-crypto-pool.js';
import { type PvpSend, type ValidationOutcome, runValidation } from './pvp-originator.js';
import type { RateLimiter } from './rate-limiter.js';
import type { ValidationSchedule } from './validation-schedule.js';
import type { StoredVcr, VcrStore } from './vcr-store.js';

/**
 * The originating validator (SPEC §6, guide L257–L305): works through the pending validations (the
 * originating VCRs the call managers uploaded), finds who claims each called number in the ring,
 * validates against every claimant, feeds each outcome into that claimant's pool, and hands the routes
 * a bucket releases to the call managers.
 *
 * A VCR is not validated (and is counted with its reason) when the calling number is not one of this
 * enterprise's enrolled numbers or is excluded, when the called number is this enterprise's own
 * (intradomain), when nobody claims it, or when the same number was validated within the
 * revalidation interval (the one-hour rule).
 */

export type SkipReason = 'not-enrolled' | 'excluded' | 'intradomain' | 'not-found' | 'recently-validated';

/** Counter names per skip reason, as operators see them. */
export const SKIP_COUNTERS: Readonly<Record<SkipReason, string>> = {
  'not-enrolled': 'ValidationsSkippedNotEnrolled',
  excluded: 'ValidationsSkippedExcluded',
  intradomain: 'ValidationsSkippedIntradomain',
  'not-found': 'ValidationsSkippedNotFound',
  'recently-validated': 'ValidationsSkippedRecentlyValidated',
};

/** What each skip counter counts: its help on /metrics and in docs/OPERATIONS.md. */
export const SKIP_COUNTER_HELP: Readonly<Record<string, string>> = {
  ValidationsSkippedNotEnrolled: "Originating VCRs not validated: the calling number is not one of this enterprise's enrolled numbers",
  ValidationsSkippedExcluded: 'Originating VCRs not validated: the calling number is an exclusion number',
  ValidationsSkippedIntradomain: "Originating VCRs not validated: the called number is this enterprise's own",
  ValidationsSkippedNotFound: 'Originating VCRs not validated: nobody claims the called number in the ring',
  ValidationsSkippedRecentlyValidated: 'Originating VCRs not validated: the called number was validated within the revalidation interval (one-hour rule)',
};

export type OwnNumber = 'enrolled' | 'excluded' | 'not-enrolled';

export interface Claimant {
  readonly peerId: string;
  /** The domain its ring certificate binds (from the signed roster); undefined when not admitted. */
  readonly domain: string | undefined;
}

/** One finished validation, for `GET /v1/validator/validations` and the demo. */
export interface ValidationRecord {
  readonly atMs: number;
  readonly called: string;
  readonly peerId: string;
  readonly domain: string;
  readonly outcome: 'success' | 'failure' | 'refused' | 'error';
  readonly value?: 8 | 12;
  readonly code?: string;
  readonly attempts?: number;
  /** The bucket the outcome went to: a number (penalty box) or 'default'. */
  readonly bucket?: string;
  readonly bucketTotal?: number;
  readonly released?: number;
  /** An error: when the validation will be tried again (absent when it was given up). */
  readonly retryAtMs?: number;
}

export interface OriginatingValidatorOptions {
  readonly selfPeerId: string;
  readonly selfDomain: string;
  readonly vcrs: VcrStore;
  readonly pools: PoolStore;
  readonly routes: LearnedRouteStore;
  readonly schedule: ValidationSchedule;
  /** Validations this peer starts toward one remote peer. */
  readonly limiter: RateLimiter;
  readonly watermark: PendingWatermark;
  readonly counters: Counters;
  readonly alerts: Alerts;
  readonly log: Logger;
  readonly ownNumber: (number: string) => OwnNumber;
  readonly lookup: (number: string) => Promise<readonly Claimant[]>;
  readonly send: (peerId: string) => PvpSend;
  readonly deliver: (routes: readonly LearnedRouteRecord[]) => void;
  readonly windowMs: number;
  readonly cellMs: number;
  /** How long after its upload an originating VCR waits, so the callee's VCR has arrived too. */
  readonly delayMs: number;
  /** Validations run at once. */
  readonly concurrency: number;
  /** Where the key exchanges run (default: the event loop). */
  readonly crypto?: PvpCrypto;
  /** First wait before trying again a validation that could not run; doubles up to the maximum. */
  readonly retryAfterErrorMs?: number;
  readonly retryAfterErrorMaxMs?: number;
  readonly now?: () => number;
}

const DEFAULT_RETRY_AFTER_ERROR_MS = 10_000;
const DEFAULT_RETRY_AFTER_ERROR_MAX_MS = 600_000;

const HISTORY_MAX = 200;

export class OriginatingValidator {
  readonly #o: OriginatingValidatorOptions;
  readonly #now: () => number;
  readonly #history: ValidationRecord[] = [];
  /** Numbers being validated right now (the one-hour rule before its mark lands). */
  readonly #inFlight = new Set<string>();
  #running: Promise<number> | undefined;

  constructor(options: OriginatingValidatorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const c = options.counters;
    c.gauge('ValidationsPending', 'Validations scheduled and not yet run (originating VCRs waiting)', () => options.vcrs.counts().originating);
    c.gauge('ValidationsAwaitingConfirmation', 'Successful validations held in buckets, not yet released as routes', () => options.pools.awaitingConfirmation());
    c.gauge('LearnedRoutes', 'Routes learned by validation and not expired', () => options.routes.size);
    c.define('ValidationAttempts', 'Called numbers found in the ring and validated');
    c.define('ValidationsSucceeded', 'Validations that proved the call both ways');
    c.define('ValidationsFailed', 'Validations whose proof failed (the claimant penalised)');
    c.define('ValidationsRefused', 'Validations the claimant refused before any proof (blocked, rate limit)');
    c.define('ValidationErrors', 'Validations that could not run (claimant unreachable, protocol error); the VCR stays pending and is tried again');
    c.define('ValidationsAbandoned', 'Pending validations given up after errors: the call became older than the VCR retention, so the claimant no longer holds its side');
    c.define('BlockedValidationOrigTLSLimit', 'Validations postponed because this peer reached its own per-peer validation rate');
    c.define('RoutesReleased', 'Routes released to call managers by a bucket');
    for (const name of Object.values(SKIP_COUNTERS)) c.define(name, SKIP_COUNTER_HELP[name] ?? name);
  }

  /** The last validations, newest last. */
  history(): readonly ValidationRecord[] {
    return this.#history;
  }

  /** Resolves when no run is in progress (for a clean stop). */
  async idle(): Promise<void> {
    await this.#running?.catch(() => undefined);
  }

  /** Runs every due validation once; resolves with how many VCRs were taken off the queue. */
  runDue(): Promise<number> {
    if (this.#running) return this.#running;
    const run = this.#runDue().finally(() => {
      this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #runDue(): Promise<number> {
    let done = 0;
    for (;;) {
      const due = await this.#o.vcrs.dueOriginating(Math.max(16, this.#o.concurrency * 4), this.#now() - this.#o.delayMs);
      if (due.length === 0) break;
      let next = 0;
      let progressed = 0;
      const worker = async () => {
        while (next < due.length) {
          const vcr = due[next++] as StoredVcr;
          if (await this.#process(vcr)) progressed++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, due.length) }, worker));
      done += progressed;
      this.#updateWatermark();
      // What is left is waiting for a rate limit or a reachable claimant: try again next time.
      if (progressed < due.length) break;
    }
    this.#updateWatermark();
    return done;
  }

  #updateWatermark(): void {
    const pending = this.#o.vcrs.counts().originating;
    const change = this.#o.watermark.update(pending);
    if (change === 'clear') this.#o.alerts.clear('ValidationsPendingExceeded');
    // The guide: at once when crossing the high watermark, then once an hour while above it (L9527).
    if (change === 'raise' || this.#o.alerts.isActive('ValidationsPendingExceeded')) {
      this.#o.alerts.raise('ValidationsPendingExceeded', { severity: 'critical', details: { pending }, throttleMs: 3600_000 });
    }
  }

  #skip(vcr: StoredVcr, reason: SkipReason): Promise<boolean> {
    this.#o.counters.inc(SKIP_COUNTERS[reason]);
    this.#o.log.debug('VCR not validated', { called: vcr.called, reason });
    return this.#o.vcrs.removeOriginating(vcr).then(() => true);
  }

  /** True when the VCR left the queue; false when it stays for a later run. */
  async #process(vcr: StoredVcr): Promise<boolean> {
    const o = this.#o;
    const calling = o.ownNumber(vcr.calling);
    if (calling !== 'enrolled') return this.#skip(vcr, calling);
    if (o.ownNumber(vcr.called) !== 'not-enrolled') return this.#skip(vcr, 'intradomain');
    if (this.#inFlight.has(vcr.called) || !o.schedule.mayValidate(vcr.called)) return this.#skip(vcr, 'recently-validated');
    this.#inFlight.add(vcr.called);
    try {
      let claimants: readonly Claimant[];
      try {
        claimants = await o.lookup(vcr.called);
      } catch (err) {
        o.log.warn('could not look the called number up in the ring; will retry', { code: isImeError(err) ? err.code : 'E_INTERNAL' });
        return false;
      }
      if (claimants.length === 0) return this.#skip(vcr, 'not-found');
      const remote = claimants.flatMap((c) => (c.peerId !== o.selfPeerId && c.domain !== undefined && c.domain !== o.selfDomain ? [{ peerId: c.peerId, domain: c.domain }] : []));
      if (remote.length === 0) return this.#skip(vcr, 'intradomain');
      if (remote.some((c) => o.limiter.remaining(c.peerId) < 1)) {
        o.counters.inc('BlockedValidationOrigTLSLimit');
        return false;
      }
      o.counters.inc('ValidationAttempts');
      const markedAt = this.#now();
      await o.schedule.markValidated(vcr.called, markedAt);
      const outcomes: ValidationRecord['outcome'][] = [];
      for (const claimant of remote) {
        o.limiter.take(claimant.peerId);
        outcomes.push(await this.#validateAgainst(vcr, claimant));
      }
      // Nobody could be asked (a claimant unreachable, a network cut): the call still proves what it
      // proves, so it is neither used up nor counted against the one-hour rule — it waits for a retry.
      if (outcomes.every((k) => k === 'error')) return this.#retryLater(vcr, markedAt);
      await o.vcrs.removeOriginating(vcr);
      return true;
    } finally {
      this.#inFlight.delete(vcr.called);
    }
  }

  /** Keeps a VCR whose validation could not run for a later try, or gives it up once too old. */
  async #retryLater(vcr: StoredVcr, markedAt: number): Promise<boolean> {
    const o = this.#o;
    const now = this.#now();
    await o.schedule.unmark(vcr.called, markedAt);
    const last = this.#history.findLast((r) => r.called === vcr.called && r.outcome === 'error');
    if (now - vcr.stopMs >= o.vcrs.retentionMs) {
      o.counters.inc('ValidationsAbandoned');
      o.log.warn('validation given up: the call is older than the VCR retention', { called: vcr.called, retries: vcr.retries ?? 0 });
      await o.vcrs.removeOriginating(vcr);
      return true;
    }
    const first = o.retryAfterErrorMs ?? DEFAULT_RETRY_AFTER_ERROR_MS;
    const wait = Math.min(o.retryAfterErrorMaxMs ?? DEFAULT_RETRY_AFTER_ERROR_MAX_MS, first * 2 ** Math.min(vcr.retries ?? 0, 30));
    await o.vcrs.postponeOriginating(vcr, now + wait);
    if (last !== undefined) this.#history[this.#history.lastIndexOf(last)] = { ...last, retryAtMs: now + wait };
    return true;
  }

  async #validateAgainst(vcr: StoredVcr, claimant: { peerId: string; domain: string }): Promise<ValidationRecord['outcome']> {
    const o = this.#o;
    let outcome: ValidationOutcome;
    try {
      outcome = await runValidation({
        call: vcr,
        selfPeerId: o.selfPeerId,
        claimantPeerId: claimant.peerId,
        claimantDomain: claimant.domain,
        parameters: { windowMs: o.windowMs, cellMs: o.cellMs },
        send: o.send(claimant.peerId),
        ...(o.crypto ? { crypto: o.crypto } : {}),
      });
    } catch (err) {
      const code = isImeError(err) ? err.code : 'E_INTERNAL';
      o.counters.inc('ValidationErrors');
      o.log.warn('validation could not run', { called: vcr.called, peer: claimant.peerId, code, message: (err as Error).message });
      this.#record({ called: vcr.called, peerId: claimant.peerId, domain: claimant.domain, outcome: 'error', code });
      return 'error';
    }
    if (outcome.kind === 'refused') {
      o.counters.inc('ValidationsRefused');
      o.log.info('validation refused by the claimant', { called: vcr.called, peer: claimant.peerId, code: outcome.code });
      this.#record({ called: vcr.called, peerId: claimant.peerId, domain: claimant.domain, outcome: 'refused', code: outcome.code });
      return 'refused';
    }
    if (outcome.kind === 'failure') {
      o.counters.inc('ValidationsFailed');
      const t = await o.pools.failure(claimant.peerId, vcr.called);
      o.log.info('validation failed: the claimant pool is emptied and the number penalised', { called: vcr.called, peer: claimant.peerId, discarded: t.discarded });
      this.#record({ called: vcr.called, peerId: claimant.peerId, domain: claimant.domain, outcome: 'failure', attempts: outcome.attempts, bucket: vcr.called, bucketTotal: 0, released: 0 });
      return 'failure';
    }
    o.counters.inc('ValidationsSucceeded');
    const now = this.#now();
    const grant = outcome.grant;
    let routes: LearnedRouteRecord[] = [];
    const t = await o.pools.success(
      claimant.peerId,
      vcr.called,
      grant.value,
      {
        number: vcr.called,
        domain: claimant.domain,
        sipUri: grant.sipUri,
        ticket: grant.ticket,
        learnedOnMs: now,
        expiresOnMs: now + TICKET_DEFAULT_VALIDITY_MS,
      },
      // Stored before the pool that no longer holds them: a crash in between must not lose them.
      async (transition) => {
        // A penalty-box bucket holds several successes of one number: one route each, the latest ticket.
        const released = [...new Map(transition.released.map((e) => [e.number, e])).values()];
        // Routes are released with the time they were learned: now, and a year from now (guide L4398).
        routes = released.map((e) => ({ ...e.route, learnedOnMs: now, expiresOnMs: now + TICKET_DEFAULT_VALIDITY_MS, peerId: claimant.peerId }));
        if (routes.length > 0) await o.routes.add(routes);
      },
    );
    const bucket = t.bucket === null ? t.pool.defaultBucket : t.pool.numberBuckets[t.bucket];
    this.#record({
      called: vcr.called,
      peerId: claimant.peerId,
      domain: claimant.domain,
      outcome: 'success',
      value: grant.value,
      attempts: outcome.attempts,
      bucket: t.bucket ?? 'default',
      bucketTotal: bucket?.total ?? 0,
      released: routes.length,
    });
    if (routes.length > 0) {
      o.counters.inc('RoutesReleased', routes.length);
      o.log.info('bucket released routes', { peer: claimant.peerId, routes: routes.map((r) => r.number) });
      o.deliver(routes);
    }
    return 'success';
  }

  #record(entry: Omit<ValidationRecord, 'atMs'>): void {
    this.#history.push({ atMs: this.#now(), ...entry });
    if (this.#history.length > HISTORY_MAX) this.#history.splice(0, this.#history.length - HISTORY_MAX);
  }
}
