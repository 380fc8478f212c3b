import { ImeError, isImeError } from '@ime/core';
import { type Alerts, type Counters, type Database, type Logger, RpcClient, serveRpc } from '@ime/runtime';
import { TicketIssuer } from '@ime/ticket';
import {
  type Claimant,
  LearnedRouteStore,
  OriginatingValidator,
  PendingWatermark,
  PoolStore,
  type PvpSend,
  PvpTerminator,
  type PvpCrypto,
  createPvpCrypto,
  RateLimiter,
  type TerminatingClaim,
  VALIDATION_PROTOCOL,
  ValidationSchedule,
  type VcrStore,
  cellWidthMs,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '@ime/validator';
import type { Libp2p } from 'libp2p';
import { PeerIdCache } from './peer-id-cache.js';
import type { PeerConfig } from './peer-config.js';
import type { PeerVapService } from './vap-service.js';

/**
 * The peer's validator (SPEC §6–§7): serves the terminating side of the validation exchange on the
 * ring's libp2p connections, runs the originating side for the VCRs its call managers upload, and
 * delivers released routes to them over VAP. Everything it keeps (pools, learned routes, the
 * one-hour rule, VCRs) is in the peer's LevelDB, so a restart loses nothing.
 */

export interface ValidationServiceOptions {
  readonly db: Database;
  readonly host: Libp2p;
  readonly selfPeerId: string;
  readonly domain: string;
  readonly config: PeerConfig['validator'];
  readonly vcrs: VcrStore;
  readonly vap: () => PeerVapService;
  /** The domain the signed roster binds to an admitted peer; undefined otherwise. */
  readonly memberDomain: (peerId: string) => string | undefined;
  readonly lookup: (number: string) => Promise<readonly { peerId: string }[]>;
  readonly counters: Counters;
  readonly alerts: Alerts;
  readonly log: Logger;
  readonly rpcTimeoutMs: number;
  readonly now?: () => number;
}

/** Ticket issuers by VAP instance, re-derived only when the password or epoch changes (PBKDF2 is slow on purpose). */
class TicketIssuers {
  readonly #byInstance = new Map<string, { password: string; epoch: number; issuer: TicketIssuer }>();

  get(instance: string, secret: { ticketPassword: string; epoch: number }): TicketIssuer {
    const held = this.#byInstance.get(instance);
    if (held && held.password === secret.ticketPassword && held.epoch === secret.epoch) return held.issuer;
    const issuer = new TicketIssuer(secret.ticketPassword, secret.epoch);
    this.#byInstance.set(instance, { password: secret.ticketPassword, epoch: secret.epoch, issuer });
    return issuer;
  }
}

export class ValidationService {
  readonly #o: ValidationServiceOptions;
  readonly #client: RpcClient;
  readonly #issuers = new TicketIssuers();
  readonly #peerIds = new PeerIdCache();
  readonly pools: PoolStore;
  readonly routes: LearnedRouteStore;
  readonly schedule: ValidationSchedule;
  readonly terminator: PvpTerminator;
  readonly originator: OriginatingValidator;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #crypto: PvpCrypto;

  private constructor(
    options: ValidationServiceOptions,
    stores: { pools: PoolStore; routes: LearnedRouteStore; schedule: ValidationSchedule },
  ) {
    this.#o = options;
    const { config, counters, log } = options;
    const now = options.now ?? Date.now;
    this.pools = stores.pools;
    this.routes = stores.routes;
    this.schedule = stores.schedule;
    this.#client = new RpcClient(options.host, VALIDATION_PROTOCOL, { timeoutMs: Math.max(options.rpcTimeoutMs, 5000), connectTimeoutMs: options.rpcTimeoutMs });
    const cellMs = cellWidthMs(config.toleranceSec * 1000);
    counters.define('ValidationsBlocked', 'Validations refused because the calling domain is blacklisted or not whitelisted');
    counters.define('BlockedValidationTermTLSLimit', 'Validation requests refused because the remote peer exceeded its rate');
    counters.define('ValidationsGranted', 'Validations this peer proved as the terminating side (tickets issued)');
    this.#crypto = createPvpCrypto(config.cryptoThreads);
    this.terminator = new PvpTerminator({
      crypto: this.#crypto,
      selfPeerId: options.selfPeerId,
      domain: options.domain,
      vcrs: options.vcrs,
      claim: (number) => this.#claim(number),
      limiter: new RateLimiter({ perMinute: config.terminatingPerMinute, burst: config.burst, now }),
      policy: { slots: config.slots, maxAttempts: config.maxAttempts, maxWindowMs: 600_000, maxCellMs: cellMs },
      onEvent: (e) => {
        if (e.kind === 'blocked') {
          counters.inc('ValidationsBlocked');
          log.info('validation blocked by the trust lists', { peer: e.peerId, domain: e.domain, reason: e.reason });
        } else if (e.kind === 'rate-limited') {
          counters.inc('BlockedValidationTermTLSLimit');
          log.warn('validation refused: the remote peer is over its rate', { peer: e.peerId });
        } else if (e.kind === 'validated') {
          counters.inc('ValidationsGranted');
          log.info('call proved to a caller: ticket issued', { peer: e.peerId, domain: e.domain, value: e.value });
        }
      },
      now,
    });
    this.originator = new OriginatingValidator({
      selfPeerId: options.selfPeerId,
      selfDomain: options.domain,
      vcrs: options.vcrs,
      pools: this.pools,
      routes: this.routes,
      schedule: this.schedule,
      limiter: new RateLimiter({ perMinute: config.originatingPerMinute, burst: config.burst, now }),
      watermark: new PendingWatermark({ high: config.pendingHighWatermark, low: config.pendingLowWatermark }),
      counters,
      alerts: options.alerts,
      log,
      ownNumber: (number) => {
        const owner = options.vap().numberOwner(number);
        return owner === undefined ? 'not-enrolled' : owner.excluded ? 'excluded' : 'enrolled';
      },
      lookup: async (number): Promise<Claimant[]> => (await options.lookup(number)).map((c) => ({ peerId: c.peerId, domain: options.memberDomain(c.peerId) })),
      send: (peerId) => this.#sender(peerId),
      deliver: (routes) => {
        const sessions = options.vap().deliverRoutes(routes);
        log.info('routes delivered to call managers', { routes: routes.length, callManagers: sessions });
      },
      windowMs: config.windowSec * 1000,
      cellMs,
      delayMs: config.delaySec * 1000,
      retryAfterErrorMs: config.retryAfterErrorSec * 1000,
      retryAfterErrorMaxMs: Math.max(config.retryAfterErrorSec, config.retryAfterErrorMaxSec) * 1000,
      concurrency: config.concurrency,
      crypto: this.#crypto,
      now,
    });
    options.vap().setLearnedRoutes(() => this.routes.list());
  }

  static async open(options: ValidationServiceOptions): Promise<ValidationService> {
    if (options.config.pendingLowWatermark >= options.config.pendingHighWatermark) {
      throw new ImeError('E_CONFIG_INVALID', 'validator.pendingLowWatermark must be below validator.pendingHighWatermark');
    }
    const now = options.now ?? Date.now;
    const stores = {
      pools: await PoolStore.open({ db: options.db }),
      routes: await LearnedRouteStore.open({ db: options.db, now }),
      schedule: await ValidationSchedule.open({ db: options.db, now, revalidateAfterMs: options.config.revalidateAfterSec * 1000 }),
    };
    const service = new ValidationService(options, stores);
    await serveRpc(
      options.host,
      VALIDATION_PROTOCOL,
      async (payload, context) => {
        const remote = context.remotePeer.toString();
        let sessionId: Uint8Array = new Uint8Array(16);
        try {
          const request = decodeRequest(payload);
          sessionId = request.sessionId;
          const domain = options.memberDomain(remote);
          if (domain === undefined) throw new ImeError('E_PVP_NOT_ADMITTED', 'only admitted ring members validate');
          return encodeResponse({ sessionId, body: await service.terminator.handle(request, { peerId: remote, domain }) });
        } catch (err) {
          if (!isImeError(err)) throw err;
          return encodeResponse({ sessionId, body: { kind: 'refused', code: err.code, message: err.message } });
        }
      },
      { onInternalError: (err, remote) => options.log.error('validation request failed', { remote: remote.toString(), message: (err as Error).message }) },
    );
    return service;
  }

  /** Starts working through pending validations every `intervalMs`. */
  start(intervalMs = 1000): void {
    this.#timer ??= setInterval(() => {
      this.originator.runDue().catch((err: unknown) => this.#o.log.warn('validation run failed', { message: (err as Error).message }));
    }, intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#client.stop();
    await this.originator.idle();
    await this.#crypto.close();
  }

  /** What the terminating side knows about a number it claims: Vservice, trust lists, ticket signer. */
  #claim(number: string): TerminatingClaim | undefined {
    const vap = this.#o.vap();
    const owner = vap.numberOwner(number);
    if (!owner || owner.excluded) return undefined;
    const credentials = vap.servers.credentials();
    const instance = owner.record.instance ?? credentials[0]?.instance;
    const secret = instance === undefined ? undefined : vap.servers.ticketSecret(instance);
    if (instance === undefined || secret === undefined) {
      this.#o.log.warn('a number is claimed but its VAP instance has no ticket password: no validation possible', { vservice: owner.record.vservice.id });
      return undefined;
    }
    const issuer = this.#issuers.get(instance, secret);
    return {
      sipUri: owner.record.vservice.sipUri,
      trustGroups: owner.trustGroups,
      issueTicket: (callingDomain, calledNumber) => issuer.issue({ issuerDomain: this.#o.domain, callingDomain, numbers: [calledNumber] }).ticket,
    };
  }

  #sender(peerId: string): PvpSend {
    const remote = this.#peerIds.get(peerId);
    return async (sessionId, body) => {
      const bytes = await this.#client.request(remote, encodeRequest({ sessionId, body }));
      const response = decodeResponse(bytes);
      if (Buffer.compare(Buffer.from(response.sessionId), Buffer.from(sessionId)) !== 0) {
        throw new ImeError('E_PVP_UNEXPECTED', 'the claimant answered for another session');
      }
      return response.body;
    };
  }
}

