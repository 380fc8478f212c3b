import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { AdminServer, Alerts, AuditLog, Counters, type Logger, silentLogger } from '@ime/runtime';
import { type Deliver, type DeliveryResult, httpDeliverer } from './call-notifier.js';
import { type CallDirection, type CallNotification, parseCallRequest, planCall } from './call-plan.js';
import { LineTable, type LineView } from './line-table.js';
import { registerPstnAdminRoutes } from './pstn-admin.js';
import type { PstnConfig } from './pstn-config.js';
import { type RandomSource, cryptoRandom, randomHex16, randomSkew, seededRandom } from './random.js';

/**
 * The simulated PSTN (SPEC §2, §10): call managers attach the numbers they own, and a placed call
 * is reported to the call manager at each end, which then uploads its VCR. That is all the PSTN
 * does in this system — it is the shared experience only the real owner of a number can prove.
 */

export interface PstnSwitchOptions {
  readonly log?: Logger;
  readonly now?: () => number;
  /** Overrides the configured seed (tests). */
  readonly random?: RandomSource;
  /** Overrides HTTP delivery of notifications (unit tests of the switch logic). */
  readonly deliver?: Deliver;
}

export interface CallSide {
  readonly number: string;
  /** Domain of the call manager that owns the number, null for an unknown subscriber. */
  readonly domain: string | null;
  readonly attached: boolean;
  readonly notified: boolean;
  /** The times this side was told (the terminating side's are skewed). */
  readonly startMs: number;
  readonly stopMs: number;
  /** What the call manager answered (e.g. whether it uploaded a VCR). */
  readonly answer?: Record<string, unknown>;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface CallRecord {
  readonly callId: string;
  readonly from: string;
  readonly to: string;
  /** What the called party was shown: '' when withheld. */
  readonly callerId: string;
  readonly durationSec: number;
  readonly answered: boolean;
  /** 'ime' when the originating call manager had a learned route and took the call off the PSTN. */
  readonly route: 'pstn' | 'ime';
  readonly start: string;
  readonly stop: string;
  readonly startMs: number;
  readonly stopMs: number;
  /** How far the terminating side's clock was off for this call. */
  readonly skewMs: number;
  readonly originating: CallSide;
  readonly terminating: CallSide;
}

export const PSTN_COUNTERS = {
  PstnCallsPlaced: 'Calls placed on the simulated PSTN',
  PstnCallsRefused: 'Calls refused (bad input, or neither number attached)',
  PstnNotificationsDelivered: 'Call notifications a call manager accepted',
  PstnNotificationsFailed: 'Call notifications that could not be delivered or were refused',
} as const;

export class PstnSwitch {
  readonly name: string;
  readonly counters = new Counters();
  /** PstnNotificationFailed, per enterprise: a call manager the switch could not tell about a call. */
  readonly alerts: Alerts;
  readonly #config: PstnConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: RandomSource;
  readonly #deliver: Deliver;
  readonly #lines = new LineTable();
  readonly #calls: CallRecord[] = [];
  readonly #admin: AdminServer;
  #adminUrl = '';
  #stopped = false;

  private constructor(config: PstnConfig, options: PstnSwitchOptions) {
    this.name = config.name;
    this.#config = config;
    this.#log = options.log ?? silentLogger();
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? (config.seed === undefined ? cryptoRandom() : seededRandom(config.seed));
    this.#deliver = options.deliver ?? httpDeliverer(config.callbackTimeoutMs);
    this.alerts = new Alerts({ log: this.#log.child('alerts'), now: this.#now });
    for (const [name, help] of Object.entries(PSTN_COUNTERS)) this.counters.define(name, help);
    this.counters.gauge('PstnLinesAttached', 'Call managers attached to the switch', () => this.#lines.size);
    this.#admin = new AdminServer({
      listen: config.admin.listen,
      allowNonLoopback: config.admin.allowRemote,
      tokenFile: this.adminTokenFile,
      log: this.#log.child('admin'),
      audit: new AuditLog(join(config.dataDir, 'audit.log')),
    });
  }

  static async start(config: PstnConfig, options: PstnSwitchOptions = {}): Promise<PstnSwitch> {
    const sw = new PstnSwitch(config, options);
    registerPstnAdminRoutes(sw.#admin, sw);
    sw.#adminUrl = (await sw.#admin.start()).url;
    sw.#log.info('PSTN switch ready', { admin: sw.#adminUrl, clockSkewMs: config.clockSkewMs, seeded: config.seed !== undefined });
    return sw;
  }

  get adminUrl(): string {
    return this.#adminUrl;
  }

  get adminTokenFile(): string {
    return this.#config.admin.tokenFile ?? join(this.#config.dataDir, 'admin.token');
  }

  get clockSkewMs(): number {
    return this.#config.clockSkewMs;
  }

  attach(body: unknown): { line: LineView; replaced: boolean; shadowed: string[] } {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ImeError('E_ADMIN_BAD_REQUEST', 'the request body must be a JSON object');
    const b = body as Record<string, unknown>;
    const { line, replaced, shadowed } = this.#lines.attach(
      { domain: b.domain, patterns: b.patterns, exclusions: b.exclusions, callbackUrl: b.callbackUrl, callbackToken: b.callbackToken },
      this.#now(),
    );
    const view = this.#lines.list().find((l) => l.domain === line.domain) as LineView;
    this.#log.info('call manager attached', { domain: line.domain, patterns: view.patterns, replaced, shadowed });
    return { line: view, replaced, shadowed };
  }

  detach(domain: string): void {
    if (!this.#lines.detach(domain)) throw new ImeError('E_PSTN_LINE_NOT_FOUND', `no call manager of ${JSON.stringify(domain.slice(0, 128))} is attached`);
    this.#log.info('call manager detached', { domain });
  }

  lines(): LineView[] {
    return this.#lines.list();
  }

  /** Recent calls, newest first. */
  calls(): CallRecord[] {
    return [...this.#calls].reverse();
  }

  async placeCall(body: unknown): Promise<CallRecord> {
    let request;
    try {
      request = parseCallRequest(body);
    } catch (err) {
      this.counters.inc('PstnCallsRefused');
      throw err;
    }
    const caller = this.#lines.ownerOf(request.from)?.line;
    const callee = this.#lines.ownerOf(request.to)?.line;
    if (caller === undefined && callee === undefined) {
      this.counters.inc('PstnCallsRefused');
      throw new ImeError('E_PSTN_UNKNOWN_SUBSCRIBER', `neither ${request.from} nor ${request.to} belongs to an attached call manager`);
    }
    const callId = `call-${randomHex16(this.#random)}`;
    const skewMs = request.skewMs ?? randomSkew(this.#random, this.#config.clockSkewMs);
    const plan = planCall(request, callId, this.#now(), skewMs);

    // The originating side is told first: its answer says whether it took the call over IME, which
    // the terminating side must know to count the call as an IME call rather than a PSTN one.
    const orig = caller === undefined ? undefined : await this.#notify(caller.domain, caller.callbackUrl, caller.callbackToken, { ...plan.originating, viaIme: false });
    const viaIme = orig?.delivered === true && orig.answer?.viaIme === true;
    const term = callee === undefined ? undefined : await this.#notify(callee.domain, callee.callbackUrl, callee.callbackToken, { ...plan.terminating, viaIme });

    const side = (direction: CallDirection, line: typeof caller, result: DeliveryResult | undefined): CallSide => {
      const told = direction === 'originating' ? plan.originating : plan.terminating;
      return {
        number: direction === 'originating' ? request.from : request.to,
        domain: line?.domain ?? null,
        attached: line !== undefined,
        notified: result?.delivered === true,
        startMs: told.startMs,
        stopMs: told.stopMs,
        ...(result?.answer === undefined ? {} : { answer: result.answer }),
        ...(result?.error === undefined ? {} : { error: result.error }),
      };
    };
    const record: CallRecord = {
      callId,
      from: request.from,
      to: request.to,
      callerId: request.presentedCallerId,
      durationSec: request.durationSec,
      answered: request.answered,
      route: viaIme ? 'ime' : 'pstn',
      start: new Date(plan.startMs).toISOString(),
      stop: new Date(plan.stopMs).toISOString(),
      startMs: plan.startMs,
      stopMs: plan.stopMs,
      skewMs,
      originating: side('originating', caller, orig),
      terminating: side('terminating', callee, term),
    };
    this.counters.inc('PstnCallsPlaced');
    this.#calls.push(record);
    if (this.#calls.length > this.#config.maxRecentCalls) this.#calls.splice(0, this.#calls.length - this.#config.maxRecentCalls);
    this.#log.info('call placed', {
      callId,
      from: record.from,
      to: record.to,
      route: record.route,
      originating: record.originating.domain,
      terminating: record.terminating.domain,
    });
    return record;
  }

  async #notify(domain: string, url: string, token: string, notification: CallNotification): Promise<DeliveryResult> {
    const result = await this.#deliver(url, token, notification);
    this.counters.inc(result.delivered ? 'PstnNotificationsDelivered' : 'PstnNotificationsFailed');
    if (result.delivered) {
      this.alerts.clear('PstnNotificationFailed', domain);
    } else {
      // That enterprise's call manager never hears of the call, so it uploads no VCR for it: the
      // operator should know why a call did not lead to a validation.
      const details = { domain, callId: notification.callId, direction: notification.direction, code: result.error?.code ?? 'E_INTERNAL' };
      this.#log.warn('call notification not delivered', details);
      this.alerts.raise('PstnNotificationFailed', { severity: 'warning', key: domain, details, throttleMs: 60_000 });
    }
    return result;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#admin.stop().catch(() => undefined);
  }
}
