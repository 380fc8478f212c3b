import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ImeError, type TrustGroup, isImeError } from '@ime/core';
import { AdminServer, Alerts, AuditLog, Counters, type Logger, readAdminTokenFile, silentLogger } from '@ime/runtime';
import { type Enrollment, type LearnedRoute, type VapAck, VapClient, type Vcr, type VapNotice, type Vservice } from '@ime/vap';
import { registerCmAdminRoutes, registerPstnEventRoute } from './cm-admin.js';
import { type CmConfig, type CmSettings, GUIDE_MIN_RECONNECT_SEC, type VapTarget, checkCmConfig } from './cm-config.js';
import { loadOrCreateClientCertificate, readPasswordFile, readPem } from './cm-secrets.js';
import { CM_ALERTS, type CmAlertName, SERVICE_STATUS_ALERT_THROTTLE_MS, defineCmCounters } from './cm-telemetry.js';
import { type PstnAttachment, attachPstnLine } from './pstn-line.js';
import { type RouteView, RouteTable, routeView } from './route-table.js';
import { RouteStore } from './route-store.js';
import { trustGroupsOf, vapTrustGroups } from './trust.js';
import { type VapClientLike, type VapConnect, type VapConnectOptions, type LinkError, type LinkState, VapLink } from './vap-link.js';
import { VCR_SKIP_REASONS, type VcrSkipReason, decideVcr, parsePstnEvent } from './vcr-policy.js';
import { VcrQueue } from './vcr-queue.js';

/**
 * A simulated call manager (checklist §4): registers with its IME server over VAP, publishes its
 * Vservice and enrollment, learns routes (judged against its trust lists, kept a year, switchable by
 * the admin), and uploads a VCR after each PSTN call the simulated switch reports — queued while the
 * IME server is unreachable. Counters and alerts carry the guide's names.
 */

export interface CallManagerSimulatorOptions {
  readonly log?: Logger;
  readonly now?: () => number;
  /** How to open a VAP connection; default `VapClient.connect`. */
  readonly connect?: VapConnect;
}

export interface CmStatus {
  readonly name: string;
  readonly domain: string;
  readonly state: LinkState;
  /** 0 unknown / never connected, 1 registered, 2 retrying (IMEServiceStatus, VAPStatus). */
  readonly serviceStatus: 0 | 1 | 2;
  readonly mode: 'authenticated' | 'encrypted';
  readonly server: { readonly label: string; readonly address: string } | null;
  readonly servers: readonly { readonly label: string; readonly address: string }[];
  readonly peerId: string | null;
  readonly ringHealth: number | null;
  readonly keepaliveIntervalSec: number | null;
  readonly registeredSince: string | null;
  readonly lastError: LinkError | null;
  readonly connectionAttempts: number;
  readonly reconnectAttempts: number;
  readonly reconnectIntervalSec: number;
  readonly nextAttemptAt: string | null;
  readonly vservice: Vservice & { readonly published: boolean };
  readonly enrollment: {
    readonly group: string;
    readonly patterns: readonly string[];
    readonly exclusions: readonly string[];
    readonly accepted: number | null;
    readonly refused: readonly { readonly index: number; readonly code: string; readonly message: string }[];
  };
  readonly vcrQueue: { readonly size: number; readonly max: number; readonly dropped: number };
  readonly vcrSkips: Readonly<Record<VcrSkipReason, number>>;
  readonly lastVcrRefusals: readonly { readonly callId: string; readonly code: string; readonly message: string }[];
  readonly routes: number;
  readonly routeRejections: Readonly<Record<string, number>>;
  readonly pstn: { readonly attached: boolean; readonly admin: string | null; readonly callbackUrl: string | null; readonly lines: readonly string[]; readonly shadowed: readonly string[] };
  readonly clientCertificateFile: string | null;
}

export interface PstnEventAnswer {
  readonly ok: true;
  readonly callId: string;
  readonly direction: string;
  /** Originating side only: the call went over IME (an enabled learned route), not the PSTN. */
  readonly viaIme: boolean;
  readonly vcr: 'sent' | 'queued' | 'skipped';
  readonly reason?: VcrSkipReason;
}

const UPLOAD_BATCH = 100;
/** How long a PSTN event waits for its VCR to be sent before answering "queued". */
const EVENT_UPLOAD_WAIT_MS = 5000;
const ROUTE_SWEEP_MS = 60_000;
const MAX_REFUSALS_KEPT = 20;
/** Codes that mean the request may not have reached the IME server: the VCRs go back in the queue. */
const TRANSPORT_CODES = new Set(['E_VAP_CONNECT', 'E_VAP_CLOSED', 'E_VAP_TIMEOUT', 'E_VAP_TLS', 'E_VAP_PROTOCOL', 'E_VAP_NOT_CONNECTED', 'E_VAP_SHUTDOWN']);

export class CallManagerSimulator {
  readonly name: string;
  readonly domain: string;
  readonly counters = new Counters();
  readonly alerts: Alerts;
  readonly settings: CmSettings;
  readonly #config: CmConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #trust: readonly TrustGroup[];
  readonly #routes: RouteTable;
  readonly #store: RouteStore;
  readonly #queue: VcrQueue;
  readonly #admin: AdminServer;
  readonly #events: AdminServer;
  readonly #link: VapLink;
  readonly #skips: Record<VcrSkipReason, number> = Object.fromEntries(VCR_SKIP_REASONS.map((r) => [r, 0])) as Record<VcrSkipReason, number>;
  readonly #rejections: Record<string, number> = {};
  readonly #vcrRefusals: { callId: string; code: string; message: string }[] = [];
  #published = false;
  #enrollmentAck: VapAck | undefined;
  #routesPublished = 0;
  #flushing: Promise<void> | undefined;
  #adminUrl = '';
  #callbackUrl: string | undefined;
  #pstn: PstnAttachment | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  private constructor(parts: {
    config: CmConfig;
    settings: CmSettings;
    log: Logger;
    now: () => number;
    routes: RouteTable;
    store: RouteStore;
    connect: VapConnect;
    connectOptions: (target: VapTarget) => VapConnectOptions;
  }) {
    const { config, settings, log, now } = parts;
    this.#config = config;
    this.settings = settings;
    this.name = config.name;
    this.domain = settings.domain;
    this.#log = log;
    this.#now = now;
    this.#trust = trustGroupsOf(config);
    this.#routes = parts.routes;
    this.#store = parts.store;
    this.#queue = new VcrQueue(config.vcrQueueMax);
    this.alerts = new Alerts({ log: log.child('alerts'), now });
    this.#link = new VapLink({
      targets: settings.targets,
      connect: parts.connect,
      connectOptions: parts.connectOptions,
      reconnectIntervalMs: config.vap.reconnectIntervalSec * 1000,
      connectTimeoutMs: config.vap.connectTimeoutSec * 1000,
      log: log.child('vap'),
      now,
      onAttempt: (_target, attempt) => {
        if (attempt > 1) this.counters.inc('ReconnectAttempts');
      },
      onRegistered: (client, target) => this.#registered(client, target),
      onAttemptFailed: (error, target) => this.#attemptFailed(error, target),
      onLost: () => {
        this.#published = false;
      },
      onStatusChange: (status) => {
        if (status === 2) {
          this.#raise('IMEServiceStatus', { status, lastError: this.#link.lastError ?? null }, SERVICE_STATUS_ALERT_THROTTLE_MS);
        } else if (status === 1) this.alerts.clear('IMEServiceStatus');
      },
    });
    defineCmCounters(this.counters, {
      serviceStatus: () => this.#link.serviceStatus,
      routesLearned: () => this.#routes.size(this.#now()),
      routesPublished: () => this.#routesPublished,
      domainsUnique: () => this.#routes.domainCount(this.#now()),
      queuedVcrs: () => this.#queue.size,
    });
    this.#admin = new AdminServer({
      listen: config.admin.listen,
      allowNonLoopback: config.admin.allowRemote,
      tokenFile: this.adminTokenFile,
      log: log.child('admin'),
      audit: new AuditLog(join(config.dataDir, 'audit.log')),
    });
    // The switch gets its own listener and token: the admin token would let it change everything.
    // A callback URL names where the switch reaches this listener from elsewhere (another container):
    // only then may it listen beyond loopback.
    this.#events = new AdminServer({
      listen: config.pstn.callbackListen,
      allowNonLoopback: config.pstn.callbackUrl !== undefined,
      tokenFile: this.#callbackTokenFile,
      log: log.child('pstn'),
    });
  }

  /** Starts the admin API, attaches to the PSTN switch when configured, and begins connecting. */
  static async start(config: CmConfig, options: CallManagerSimulatorOptions = {}): Promise<CallManagerSimulator> {
    const log = options.log ?? silentLogger();
    const now = options.now ?? Date.now;
    const settings = checkCmConfig(config);
    if (config.vap.reconnectIntervalSec < GUIDE_MIN_RECONNECT_SEC) {
      log.warn('vap.reconnectIntervalSec is below the guide\'s 60 s: use such values for tests only', { reconnectIntervalSec: config.vap.reconnectIntervalSec });
    }
    const password = await readPasswordFile(config.vap.passwordFile);
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    let tls: VapConnectOptions['tls'];
    if (config.vap.mode === 'encrypted') {
      const peerPem = await readPem(config.vap.tls.peerCertificateFile as string, "the IME server's VAP certificate");
      const own = await loadOrCreateClientCertificate(settings.certificateFile, settings.keyFile, config.name);
      if (own.created) log.info('made a VAP client certificate; the IME server must trust it', { certificateFile: settings.certificateFile });
      tls = { caPem: [peerPem], certPem: own.certPem, keyPem: own.keyPem, ...(config.vap.tls.servername === undefined ? {} : { servername: config.vap.tls.servername }) };
    }
    const store = new RouteStore(join(config.dataDir, 'routes.json'));
    const routes = new RouteTable(await store.load());
    const connect: VapConnect = options.connect ?? ((o) => VapClient.connect(o));
    const sim = new CallManagerSimulator({
      config,
      settings,
      log,
      now,
      routes,
      store,
      connect,
      connectOptions: (target) => ({
        host: target.host,
        port: target.port,
        mode: config.vap.mode,
        username: config.vap.username,
        password,
        ...(tls === undefined ? {} : { tls }),
        clientSoftware: 'ime-cm-sim',
      }),
    });
    await sim.#startServices();
    return sim;
  }

  async #startServices(): Promise<void> {
    registerCmAdminRoutes(this.#admin, this);
    registerPstnEventRoute(this.#events, this);
    try {
      this.#adminUrl = (await this.#admin.start()).url;
      // A fresh callback token at each start: a switch holding an old one can no longer post.
      await rm(this.#callbackTokenFile, { force: true });
      const listening = (await this.#events.start()).url;
      this.#callbackUrl = `${this.#config.pstn.callbackUrl ?? listening}/v1/pstn/events`;
      const pstn = this.#config.pstn;
      if (pstn.admin !== undefined && pstn.tokenFile !== undefined) {
        this.#pstn = await attachPstnLine({
          admin: pstn.admin,
          tokenFile: pstn.tokenFile,
          domain: this.domain,
          patterns: this.settings.pstnLines,
          exclusions: this.settings.exclusions,
          callbackUrl: this.#callbackUrl,
          callbackToken: await readAdminTokenFile(this.#callbackTokenFile),
        });
        if (this.#pstn.shadowed.length > 0) this.#log.warn('another enterprise owns some of these numbers on the PSTN', { shadowed: this.#pstn.shadowed });
      }
    } catch (err) {
      await this.#events.stop().catch(() => undefined);
      await this.#admin.stop().catch(() => undefined);
      throw err;
    }
    this.#sweepTimer = setInterval(() => this.#sweep(), ROUTE_SWEEP_MS);
    this.#sweepTimer.unref();
    this.#link.start();
    this.#log.info('call manager started', { name: this.name, domain: this.domain, admin: this.#adminUrl, servers: this.settings.targets.map((t) => `${t.host}:${t.port}`) });
  }

  get adminUrl(): string {
    return this.#adminUrl;
  }

  get adminTokenFile(): string {
    return this.#config.admin.tokenFile ?? join(this.#config.dataDir, 'admin.token');
  }

  get #callbackTokenFile(): string {
    return join(this.#config.dataDir, 'pstn-callback.token');
  }

  /** Where the PSTN switch reports calls (bearer: the callback token). */
  get callbackUrl(): string | undefined {
    return this.#callbackUrl;
  }

  get vapUsername(): string {
    return this.#config.vap.username;
  }

  get state(): LinkState {
    return this.#link.state;
  }

  /** Resolves when the first round of connection attempts has ended, registered or not. */
  firstConnection(): Promise<void> {
    return this.#link.firstRound();
  }

  // ---- VAP ----------------------------------------------------------------------------------

  #raise(name: CmAlertName, details: Record<string, unknown>, throttleMs?: number): void {
    this.alerts.raise(name, { severity: CM_ALERTS[name], details, ...(throttleMs === undefined ? {} : { throttleMs }) });
  }

  #attemptFailed(error: ImeError, target: VapTarget): void {
    const server = `${target.host}:${target.port}`;
    const details = { server, label: target.label, code: error.code, reason: error.message };
    if (error.code === 'E_VAP_AUTH') this.#raise('InvalidCredentials', { ...details, username: this.#config.vap.username });
    else if (error.code === 'E_VAP_CONNECT') this.#raise('TCPSetupToIMEFailed', details);
    else if (error.code === 'E_VAP_TLS') this.#raise('TLSConnectionToIMEFailed', details);
  }

  #registered(client: VapClientLike, target: VapTarget): void {
    for (const name of ['InvalidCredentials', 'TCPSetupToIMEFailed', 'TLSConnectionToIMEFailed'] as const) this.alerts.clear(name);
    this.#ringHealth(client.registered.ringHealth, `at registration with ${target.host}:${target.port}`);
    client.onRoutes((routes) => this.#learn(routes));
    client.onNotice((notice) => this.#notice(notice, target));
    void this.#publish(client, target);
  }

  #ringHealth(health: number, when: string): void {
    if (health === 0) this.#raise('IMEDistributedCacheInactive', { ringHealth: health, detail: `the IME server's ring is not active (${when})` });
    else this.alerts.clear('IMEDistributedCacheInactive');
  }

  #notice(notice: VapNotice, target: VapTarget): void {
    const server = `${target.host}:${target.port}`;
    this.#log.info('notice from the IME server', { kind: notice.kind, detail: notice.detail, server });
    if (notice.kind === 'over-quota') this.#raise('IMEOverQuota', { server, detail: notice.detail });
    else if (notice.kind === 'ring-inactive') this.#raise('IMEDistributedCacheInactive', { server, detail: notice.detail });
    else if (notice.kind === 'ring-active') this.alerts.clear('IMEDistributedCacheInactive');
  }

  get #vservice(): Vservice {
    return this.settings.vservice;
  }

  get #enrollment(): Enrollment {
    return {
      vserviceId: this.#vservice.id,
      groups: [{ name: this.#config.enrolledGroup, patterns: this.settings.patterns }],
      exclusions: this.settings.exclusions,
      trustGroups: vapTrustGroups(this.#trust),
    };
  }

  async #publish(client: VapClientLike, target: VapTarget): Promise<void> {
    const server = `${target.host}:${target.port}`;
    try {
      await client.publishVservice(this.#vservice);
      this.#published = true;
      const ack = await client.publishEnrollment(this.#enrollment);
      this.#enrollmentAck = ack;
      this.#routesPublished = ack.accepted;
      const overQuota = ack.refused.filter((r) => r.code === 'E_OVER_QUOTA');
      if (overQuota.length > 0) this.#raise('IMEOverQuota', { server, refused: overQuota.length, detail: overQuota[0]?.message ?? '' });
      else this.alerts.clear('IMEOverQuota');
      this.#log.info('enrollment published', { server, accepted: ack.accepted, refused: ack.refused.length });
    } catch (err) {
      if (this.#link.client !== client) return;
      const error = isImeError(err) ? err : new ImeError('E_INTERNAL', String((err as Error)?.message ?? err));
      this.#log.warn('the IME server refused the publication', { server, code: error.code, message: error.message });
      if (error.code === 'E_OVER_QUOTA') {
        this.#routesPublished = 0;
        this.#raise('IMEOverQuota', { server, detail: error.message });
      }
    }
    await this.#flush();
  }

  #learn(routes: readonly LearnedRoute[]): void {
    const now = this.#now();
    let changed = false;
    for (const raw of routes) {
      const outcome = this.#routes.apply(raw, this.#trust, now);
      if (outcome.kind === 'rejected') {
        this.#rejections[outcome.reason] = (this.#rejections[outcome.reason] ?? 0) + 1;
        if (outcome.reason === 'blacklisted' || outcome.reason === 'not-whitelisted') this.counters.inc('RoutesRejected');
        else this.counters.inc('RoutesInvalid');
        this.#log.info('learned route rejected', { number: outcome.number, reason: outcome.reason, ...(outcome.detail === undefined ? {} : { by: outcome.detail }) });
        continue;
      }
      changed = true;
      this.#log.info(outcome.kind === 'learned' ? 'route learned' : 'route updated', { number: outcome.route.number, domain: outcome.route.domain });
    }
    if (changed) this.#save();
  }

  #save(): void {
    this.#store.save(this.#routes.all()).catch((err: unknown) => this.#log.error('cannot save the learned routes', { err }));
  }

  #sweep(): void {
    if (this.#routes.sweep(this.#now()) > 0) this.#save();
  }

  /** Sends queued VCRs while registered; one flush at a time, later callers join it. */
  #flush(): Promise<void> {
    if (this.#flushing !== undefined) return this.#flushing.then(() => (this.#queue.size > 0 && this.#link.client !== undefined ? this.#flush() : undefined));
    const run = async (): Promise<void> => {
      for (;;) {
        const client = this.#link.client;
        if (client === undefined || this.#queue.size === 0 || this.#stopped) return;
        const batch = this.#queue.take(UPLOAD_BATCH);
        this.counters.inc('VCRUploadRequests', batch.length);
        let ack: VapAck;
        try {
          ack = await client.uploadVcrs(batch);
        } catch (err) {
          const code = isImeError(err) ? err.code : 'E_INTERNAL';
          if (TRANSPORT_CODES.has(code) || this.#link.client !== client) {
            this.#dropped(this.#queue.requeue(batch));
            return;
          }
          this.counters.inc('VCRsRefused', batch.length);
          for (const v of batch) this.#vcrRefused(v.callId, code, isImeError(err) ? err.message : 'refused');
          if (code === 'E_OVER_QUOTA') this.#raise('IMEOverQuota', { detail: isImeError(err) ? err.message : '' });
          continue;
        }
        if (ack.refused.length > 0) {
          this.counters.inc('VCRsRefused', ack.refused.length);
          for (const r of ack.refused) this.#vcrRefused(batch[r.index]?.callId ?? '?', r.code, r.message);
        }
      }
    };
    this.#flushing = run().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  #vcrRefused(callId: string, code: string, message: string): void {
    this.#log.info('VCR refused by the IME server', { callId, code, message });
    this.#vcrRefusals.push({ callId, code, message });
    if (this.#vcrRefusals.length > MAX_REFUSALS_KEPT) this.#vcrRefusals.shift();
  }

  #skip(reason: VcrSkipReason, n = 1): void {
    if (n <= 0) return;
    this.#skips[reason] += n;
    this.counters.inc('VCRsSkipped', n);
  }

  #dropped(n: number): void {
    if (n > 0) this.#log.warn('VCR queue full: dropped the oldest', { dropped: n });
    this.#skip('queue-full', n);
  }

  // ---- what the admin API and the PSTN switch call ---------------------------------------------

  /** A call the switch reports: count it, and upload its VCR unless the policy says not to. */
  async handlePstnEvent(body: unknown): Promise<PstnEventAnswer> {
    const event = parsePstnEvent(body);
    const now = this.#now();
    let viaIme = event.viaIme;
    if (event.direction === 'originating') {
      // The call goes over IME when we hold an enabled route for the number (guide L3527).
      viaIme = this.#routes.get(event.called, now)?.adminEnabled === true;
      if (viaIme && event.answered) this.counters.inc('CallsSetup');
    } else if (viaIme) {
      this.counters.inc('CallsAttempted');
      this.counters.inc('CallsReceived');
      if (event.answered) this.counters.inc('CallsAccepted');
    }
    const decision = decideVcr(
      { ...event, viaIme },
      { isExcluded: (n) => this.settings.exclusions.includes(n), hasRoute: (n) => this.#routes.get(n, now) !== undefined },
    );
    const base = { ok: true as const, callId: event.callId, direction: event.direction, viaIme };
    if ('skip' in decision) {
      this.#skip(decision.skip);
      this.#log.debug('no VCR for this call', { callId: event.callId, reason: decision.skip });
      return { ...base, vcr: 'skipped', reason: decision.skip };
    }
    this.#dropped(this.#queue.push(decision.upload));
    if (this.#link.client !== undefined) {
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, EVENT_UPLOAD_WAIT_MS).unref());
      await Promise.race([this.#flush(), timeout]);
    }
    return { ...base, vcr: this.#queue.has(decision.upload) ? 'queued' : 'sent' };
  }

  /**
   * `ime cm vcr upload`: sends one VCR as given, for a call that need not have happened, so the IME
   * server's refusals can be tested; its refusal is this request's refusal.
   */
  async uploadVcr(body: unknown): Promise<{ accepted: number; vcr: Vcr & { start: string; stop: string } }> {
    const vcr = parseManualVcr(body);
    const client = this.#link.client;
    if (client === undefined) throw new ImeError('E_CM_NOT_REGISTERED', `not registered with an IME server (state ${this.#link.state})`);
    this.counters.inc('VCRUploadRequests');
    const ack = await client.uploadVcrs([vcr]);
    const refusal = ack.refused[0];
    if (refusal !== undefined) {
      this.counters.inc('VCRsRefused');
      this.#vcrRefused(vcr.callId, refusal.code, refusal.message);
      throw new ImeError(refusal.code, `the IME server refused the VCR: ${refusal.message}`);
    }
    return { accepted: ack.accepted, vcr: { ...vcr, start: new Date(vcr.startMs).toISOString(), stop: new Date(vcr.stopMs).toISOString() } };
  }

  routes(): RouteView[] {
    return this.#routes.list(this.#now()).map(routeView);
  }

  async setRouteEnabled(number: string, enabled: boolean): Promise<RouteView> {
    const route = this.#routes.setAdminEnabled(number, enabled, this.#now());
    await this.#store.save(this.#routes.all());
    this.#log.info(enabled ? 'route enabled' : 'route disabled', { number });
    return routeView(route);
  }

  status(): CmStatus {
    const client = this.#link.client;
    const target = this.#link.target;
    const at = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
    const ack = this.#enrollmentAck;
    return {
      name: this.name,
      domain: this.domain,
      state: this.#link.state,
      serviceStatus: this.#link.serviceStatus,
      mode: this.#config.vap.mode,
      server: target === undefined ? null : { label: target.label, address: `${target.host}:${target.port}` },
      servers: this.settings.targets.map((t) => ({ label: t.label, address: `${t.host}:${t.port}` })),
      peerId: client?.registered.peerId ?? null,
      ringHealth: client?.registered.ringHealth ?? null,
      keepaliveIntervalSec: client?.registered.keepaliveIntervalSec ?? null,
      registeredSince: at(this.#link.registeredAtMs),
      lastError: this.#link.lastError ?? null,
      connectionAttempts: this.#link.attempts,
      reconnectAttempts: this.counters.get('ReconnectAttempts'),
      reconnectIntervalSec: this.#config.vap.reconnectIntervalSec,
      nextAttemptAt: at(this.#link.nextAttemptAtMs),
      vservice: { ...this.#vservice, published: this.#published && client !== undefined },
      enrollment: {
        group: this.#config.enrolledGroup,
        patterns: this.settings.patterns,
        exclusions: this.settings.exclusions,
        accepted: ack?.accepted ?? null,
        refused: ack?.refused ?? [],
      },
      vcrQueue: { size: this.#queue.size, max: this.#config.vcrQueueMax, dropped: this.#queue.dropped },
      vcrSkips: { ...this.#skips },
      lastVcrRefusals: [...this.#vcrRefusals],
      routes: this.#routes.size(this.#now()),
      routeRejections: { ...this.#rejections },
      pstn: {
        attached: this.#pstn !== undefined,
        admin: this.#config.pstn.admin ?? null,
        callbackUrl: this.#callbackUrl ?? null,
        lines: this.settings.pstnLines,
        shadowed: this.#pstn?.shadowed ?? [],
      },
      clientCertificateFile: this.#config.vap.mode === 'encrypted' ? this.settings.certificateFile : null,
    };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    await this.#pstn?.detach().catch((err: unknown) => this.#log.warn('cannot detach from the PSTN switch', { code: isImeError(err) ? err.code : 'error' }));
    await this.#link.stop();
    await this.#flushing?.catch(() => undefined);
    await this.#events.stop().catch(() => undefined);
    await this.#admin.stop().catch(() => undefined);
    await this.#store.settled();
  }
}

/** Body of `POST /v1/vcrs`: numbers are kept as given (refusing them is the IME server's job). */
export function parseManualVcr(body: unknown): Vcr {
  const bad = (message: string): ImeError => new ImeError('E_ADMIN_BAD_REQUEST', message);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the request body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of ['calling', 'called'] as const) {
    if (typeof b[k] !== 'string' || (b[k] as string).length > 32) throw bad(`${k} must be a string of at most 32 characters`);
  }
  const time = (k: 'start' | 'stop'): number => {
    const v = b[k];
    const ms = typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v) ? Date.parse(v) : Number.NaN;
    if (Number.isNaN(ms)) throw new ImeError('E_CM_BAD_TIME', `${k} must be an ISO 8601 time such as 2026-11-24T10:00:00Z`);
    return ms;
  };
  const direction = b.direction ?? 'originating';
  if (direction !== 'originating' && direction !== 'terminating') throw bad('direction must be originating or terminating');
  return {
    calling: b.calling as string,
    called: b.called as string,
    startMs: time('start'),
    stopMs: time('stop'),
    direction,
    callId: `manual-${randomBytes(8).toString('hex')}`,
  };
}
