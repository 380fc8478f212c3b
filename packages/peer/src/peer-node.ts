import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Libp2p, PeerId } from '@libp2p/interface';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import {
  CONFIG_PROTOCOL,
  DEFAULT_RING_PARAMETERS,
  ENROLL_PROTOCOL,
  RING_PROTOCOL,
  type RingConfiguration,
  admissionOf,
  daysUntilExpiry,
} from '@ime/admission';
import {
  ImeError,
  type Publisher,
  didRecordKey,
  isImeError,
  openDidRecord,
  parseE164,
  publisherFromSeed,
} from '@ime/core';
import {
  AdminServer,
  Alerts,
  AuditLog,
  Counters,
  type Database,
  type Logger,
  RpcClient,
  createRingHost,
  ed25519Seed,
  loadOrCreateIdentity,
  openDatabase,
  serveRpc,
  silentLogger,
} from '@ime/runtime';
import { AntiEntropy } from './anti-entropy.js';
import { ConfigSync, type CurrentConfiguration } from './config-sync.js';
import { DidPublisher, type PublishReport } from './did-publisher.js';
import { registerPeerAdminRoutes } from './peer-admin.js';
import { type Enrollment, enroll, enrollPersistently, loadEnrollment } from './enrollment-client.js';
import { Handoff } from './handoff.js';
import { type AdmissionState, type Health, computeHealth } from './health.js';
import type { PeerConfig } from './peer-config.js';
import { RecordStore } from './record-store.js';
import { RingCoordinator } from './ring-coordinator.js';
import type { PlacementMember } from './ring-placement.js';
import { createRingHandler } from './ring-service.js';
import { RpcRingTransport } from './ring-transport.js';
import type { RingLog } from './ring-types.js';
import { LiveRingView } from './ring-view.js';
import { ValidationService } from './validation-service.js';
import { PeerSettings, publicRingAddresses } from './peer-settings.js';
import { PeerVapService, loadVapTls } from './vap-service.js';
import { VcrStore } from '@ime/validator';
import { recoverInterruptedRestore } from './peer-backup-files.js';

/**
 * A ring peer (SPEC §3–§4): enrolls with a bootstrap, keeps the signed configuration current, admits
 * only roster members, stores its share of the DID records and serves the ring's RPCs, and publishes
 * its own numbers. Everything an operator sees (`ime show dht summary`, counters, alerts) comes from
 * here through the admin API.
 */

export const PEER_SOFTWARE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const DAY_MS = 24 * 3600 * 1000;
/** Renew the certificate when fewer days than this remain (the bootstrap decides, this asks). */
const RENEW_BEFORE_DAYS = 30;
/** The expiry alert threshold of the guide (L8643): fewer than 14 days. */
const EXPIRY_ALERT_DAYS = 14;

export interface PeerNodeOptions {
  readonly log?: Logger;
  readonly now?: () => number;
}

export interface DhtSummary {
  readonly peerId: string;
  readonly name: string;
  readonly domain: string;
  readonly health: 'RED' | 'YELLOW' | 'GREEN';
  readonly healthLevel: 0 | 1 | 2;
  readonly healthReasons: readonly string[];
  readonly bootstrap: string | null;
  readonly lastContactSec: number | null;
  readonly sequence: number;
  readonly configsReceived: number;
  readonly configsRefused: number;
  readonly hopsFromBootstrap: number;
  readonly peerCount: number;
  readonly livePeers: number;
  readonly nodeCount: number;
  readonly messageOfTheDay: string;
  readonly certificateExpires: string | null;
  readonly daysUntilCertExpiry: number | null;
}

export interface DidClaimView {
  readonly peerId: string;
  readonly vserviceId: string;
  readonly expires: string;
}

/** What `POST /v1/dids/lookup` answers (PeerNode.lookupDids). */
export interface DidLookupReport {
  total: number;
  found: number;
  missing: string[];
  failed: { number: string; code: string }[];
  /** Each fetch's time inside this peer (ms), when asked for. */
  latenciesMs?: number[];
}

export interface FetchDidResult {
  readonly found: boolean;
  readonly claims: readonly DidClaimView[];
  readonly replicas: readonly string[];
}

interface BootstrapAddress {
  readonly peerId: string;
  readonly address: string;
}

function parseBootstraps(list: readonly string[]): BootstrapAddress[] {
  return list.map((text) => {
    try {
      const ma = multiaddr(text);
      const id = ma.getComponents().findLast((c) => c.name === 'p2p')?.value;
      if (!id) throw new Error('no /p2p/ component');
      return { peerId: peerIdFromString(id).toString(), address: text };
    } catch (err) {
      throw new ImeError('E_CONFIG_BOOTSTRAP', `bootstrap address ${JSON.stringify(text)} is not a multiaddr ending in /p2p/<PeerId> (${(err as Error).message})`);
    }
  });
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function withoutPeerId(address: string): string {
  return address.replace(/\/p2p\/[^/]+$/, '');
}

/**
 * What the bootstrap records for this peer, and so what other peers dial: the public IPv4 set with
 * `set addressing publicipaddrv4` first, then the configured announce list or the listen addresses.
 */
function announcedAddresses(config: PeerConfig, host: Libp2p, settings: PeerSettings): string[] {
  const listen = host.getMultiaddrs().map((a) => withoutPeerId(a.toString()));
  const own = config.announce.length > 0 ? config.announce : listen;
  return [...new Set([...publicRingAddresses(settings.publicIpv4, listen), ...own])].slice(0, 8);
}

export class PeerNode {
  readonly peerId: string;
  readonly name: string;
  readonly domain: string;
  readonly counters: Counters;
  readonly alerts: Alerts;
  /** Customer information and the public address, kept in the database. */
  readonly settings: PeerSettings;
  readonly #transport: RpcRingTransport;
  readonly #config: PeerConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #db: Database;
  readonly #host: Libp2p;
  readonly #bootstraps: readonly BootstrapAddress[];
  readonly #configSync: ConfigSync;
  readonly #view: LiveRingView;
  readonly #store: RecordStore;
  readonly #coordinator: RingCoordinator;
  readonly #handoff: Handoff;
  readonly #antiEntropy: AntiEntropy;
  readonly #publisher: DidPublisher;
  readonly #rpc: { ring: RpcClient; config: RpcClient; enroll: RpcClient };
  readonly #admin: AdminServer;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #enrollment: Enrollment | undefined;
  #vap: PeerVapService | undefined;
  #validation: ValidationService | undefined;
  #adminUrl = '';
  #stopped = false;
  /** How this peer was started, so that a restore can start it again in this process (restartWith). */
  #startOptions: PeerNodeOptions = {};
  #auditLog: AuditLog | undefined;
  /** The peer that replaced this one after a restore: `current` and `stop()` follow it. */
  #successor: PeerNode | undefined;
  #restarting: Promise<PeerNode> | undefined;
  #lastMotd = '';
  #admitsPublisher: (publisherKey: Uint8Array) => boolean = () => false;
  #health: Health = { level: 0, name: 'RED', reasons: ['starting'] };

  private constructor(parts: {
    config: PeerConfig;
    log: Logger;
    now: () => number;
    db: Database;
    host: Libp2p;
    bootstraps: readonly BootstrapAddress[];
    configSync: ConfigSync;
    view: LiveRingView;
    store: RecordStore;
    coordinator: RingCoordinator;
    handoff: Handoff;
    antiEntropy: AntiEntropy;
    publisher: DidPublisher;
    rpc: { ring: RpcClient; config: RpcClient; enroll: RpcClient };
    admin: AdminServer;
    enrollment: Enrollment | undefined;
    alerts: Alerts;
    counters: Counters;
    transport: RpcRingTransport;
    settings: PeerSettings;
  }) {
    this.#config = parts.config;
    this.name = parts.config.name;
    this.domain = parts.config.domain.toLowerCase();
    this.#log = parts.log;
    this.#now = parts.now;
    this.#db = parts.db;
    this.#host = parts.host;
    this.peerId = parts.host.peerId.toString();
    this.#bootstraps = parts.bootstraps;
    this.#configSync = parts.configSync;
    this.#view = parts.view;
    this.#store = parts.store;
    this.#coordinator = parts.coordinator;
    this.#handoff = parts.handoff;
    this.#antiEntropy = parts.antiEntropy;
    this.#publisher = parts.publisher;
    this.#rpc = parts.rpc;
    this.#admin = parts.admin;
    this.#enrollment = parts.enrollment;
    this.alerts = parts.alerts;
    this.counters = parts.counters;
    this.#transport = parts.transport;
    this.settings = parts.settings;
  }

  /** Starts a peer from its configuration; resolves once it listens, is enrolled and serves. */
  static async start(config: PeerConfig, options: PeerNodeOptions = {}): Promise<PeerNode> {
    const log = options.log ?? silentLogger();
    const now = options.now ?? Date.now;
    const bootstraps = parseBootstraps(config.bootstraps);
    const dataDir = config.dataDir;
    recoverInterruptedRestore(dataDir);
    const db = await openDatabase(join(dataDir, 'db'));
    const cleanup: (() => Promise<unknown> | unknown)[] = [() => db.close()];
    try {
      const privateKey = await loadOrCreateIdentity(db);
      const settings = await PeerSettings.open(db);
      const self = peerIdFromPublicKey(privateKey.publicKey).toString();
      const alerts = new Alerts({ log: log.child('alerts') });
      const bootstrapIds = new Set(bootstraps.map((b) => b.peerId));

      // The gate needs the configuration, which needs the host: it reads through this late binding.
      let current: () => CurrentConfiguration | undefined = () => undefined;
      const isBootstrap = (id: string): boolean =>
        bootstrapIds.has(id) || (current()?.config.bootstraps.some((b) => b.peerId === id) ?? false);
      const isAdmitted = (id: string): boolean => {
        const c = current();
        return c !== undefined && admissionOf(c.config, id, now()).admitted;
      };
      const isAllowed = (id: string): boolean => isBootstrap(id) || isAdmitted(id);

      const host = await createRingHost({
        privateKey,
        listen: config.listen,
        announce: config.announce,
        gater: {
          denyInboundEncryptedConnection: (peer) => !isAllowed(peer.toString()),
          denyOutboundEncryptedConnection: (peer) => !isAllowed(peer.toString()),
        },
      });
      cleanup.unshift(() => host.stop());
      for (const b of bootstraps) await host.peerStore.merge(peerIdFromString(b.peerId), { multiaddrs: [multiaddr(withoutPeerId(b.address))] });

      const rpcTimeoutMs = config.tuning.rpcTimeoutMs;
      const rpc = {
        ring: new RpcClient(host, RING_PROTOCOL, { timeoutMs: rpcTimeoutMs, connectTimeoutMs: rpcTimeoutMs }),
        config: new RpcClient(host, CONFIG_PROTOCOL, { timeoutMs: rpcTimeoutMs, connectTimeoutMs: rpcTimeoutMs }),
        enroll: new RpcClient(host, ENROLL_PROTOCOL, { timeoutMs: 15_000, connectTimeoutMs: rpcTimeoutMs }),
      };
      cleanup.unshift(() => Object.values(rpc).forEach((c) => c.stop()));
      // `view` is assigned below, once the first configuration is known.
      const transport = new RpcRingTransport(rpc.ring, { onAnswer: (peerId) => view?.heardFrom(peerId) });
      const ringLog: RingLog = (level, message, details) => log.child('ring')[level](message, details);

      let enrollment = await loadEnrollment(db, self, now());
      let view: LiveRingView | undefined;
      const configSync = new ConfigSync({
        db,
        authority: () => enrollment?.authorityCertificateDer,
        bootstraps: () => bootstraps.map((b) => b.peerId),
        configRpc: rpc.config,
        gossip: async (push, exclude) => {
          const targets = (view?.neighbours() ?? []).filter((p) => p !== exclude && p !== self);
          await Promise.allSettled(targets.map((p) => transport.request(p, { configuration: push })));
        },
        now,
        onRefused: (code, message, from) => log.child('config').warn('refused a ring configuration', { code, message, from }),
      });
      current = () => configSync.current;
      if (enrollment) await configSync.load();

      const request = { peerId: self, domain: config.domain.toLowerCase(), contact: config.contact, addresses: announcedAddresses(config, host, settings), softwareVersion: PEER_SOFTWARE_VERSION };
      if (!enrollment) {
        const tokenFile = config.enrollmentTokenFile;
        if (!tokenFile) {
          throw new ImeError('E_ENROLL_NO_TOKEN', 'this peer is not enrolled yet: set enrollmentTokenFile to a file holding the token from the bootstrap operator');
        }
        let token: string;
        try {
          token = readFileSync(tokenFile, 'utf8').trim();
        } catch (err) {
          throw new ImeError('E_ENROLL_NO_TOKEN', `cannot read the enrollment token file ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        }
        const result = await enrollPersistently({
          db,
          rpc: rpc.enroll,
          bootstraps: [...bootstrapIds],
          request: { ...request, token },
          ...(config.authorityFingerprint ? { authorityFingerprint: config.authorityFingerprint } : {}),
          nowMs: now(),
          now,
          onRetry: (err, pauseMs) => log.child('enroll').warn('no bootstrap answered the enrollment; trying again', { code: err.code, message: err.message, inMs: pauseMs }),
        });
        enrollment = result.enrollment;
        if (result.configuration) await configSync.accept(result.configuration, 1, undefined);
      } else {
        // A refresh tells the bootstrap our current addresses and renews a certificate near expiry;
        // with no bootstrap reachable the peer runs on its stored configuration (health says so).
        try {
          const result = await enroll({ db, rpc: rpc.enroll, bootstraps: [...bootstrapIds], request, nowMs: now() });
          enrollment = result.enrollment;
          if (result.configuration) await configSync.accept(result.configuration, 1, undefined);
        } catch (err) {
          if (isImeError(err) && err.code === 'E_ENROLL_BANNED') alerts.raise('BannedFromNetwork', { severity: 'critical', details: { reason: err.message } });
          log.child('enroll').warn('could not refresh the enrollment at start', { code: isImeError(err) ? err.code : 'E_INTERNAL', message: (err as Error).message });
        }
      }

      const membersOf = (c: CurrentConfiguration | undefined): PlacementMember[] =>
        c === undefined
          ? []
          : c.config.roster.filter((e) => admissionOf(c.config, e.peerId, now()).admitted).map((e) => ({ peerId: e.peerId, virtualNodes: e.virtualNodes }));
      const liveView = new LiveRingView({
        self,
        members: membersOf(configSync.current),
        parameters: configSync.current ? configSync.current.config.parameters : DEFAULT_RING_PARAMETERS,
        now,
        log: ringLog,
      });
      view = liveView;
      const parameters = () => liveView.parameters;

      // A record's publisher key is a ring member's PeerId key. Records of a publisher that is not
      // admitted now (never on the roster, banned, certificate expired) are refused whoever sends them:
      // otherwise an admitted accomplice could store for a banned or outside peer, or sign with keys of
      // its own making to get around the per-publisher quota. Keys are looked up in the roster (no
      // key parsing on what the network sends), indexed once per configuration.
      let publisherIndex: { config: RingConfiguration | undefined; peerIdByKey: Map<string, string> } = { config: undefined, peerIdByKey: new Map() };
      const admitsPublisher = (publisherKey: Uint8Array): boolean => {
        const config = configSync.current?.config;
        if (config === undefined) return false;
        if (publisherIndex.config !== config) {
          const peerIdByKey = new Map<string, string>();
          for (const e of config.roster) {
            const raw = peerIdFromString(e.peerId).publicKey?.raw;
            if (raw) peerIdByKey.set(Buffer.from(raw).toString('hex'), e.peerId);
          }
          publisherIndex = { config, peerIdByKey };
        }
        const peerId = publisherIndex.peerIdByKey.get(Buffer.from(publisherKey.buffer, publisherKey.byteOffset, publisherKey.byteLength).toString('hex'));
        return peerId !== undefined && isAdmitted(peerId);
      };
      const store = await RecordStore.open({
        db,
        now,
        admitsPublisher,
        maxTtlMs: () => parameters().recordTtlSec * 1000,
        // A replica holds about quota × share of a publisher's records; twice that absorbs imbalance.
        // The share walks the whole ring, so it is computed once per view version.
        capFor: (() => {
          let cached = { version: -1, quota: -1, cap: 0 };
          return () => {
            const p = parameters();
            if (cached.version !== liveView.version || cached.quota !== p.storageQuota) {
              const share = liveView.placement.replicaShare(self, p.replicationFactor, (id) => liveView.isLive(id));
              cached = { version: liveView.version, quota: p.storageQuota, cap: Math.ceil(p.storageQuota * Math.min(1, 2 * share)) + 64 };
            }
            return cached.cap;
          };
        })(),
      });
      const counters = new Counters();
      counters.define('IMEDistributedCacheStores', 'DID records stored by this peer as a replica', 'counter');
      counters.define('IMEDistributedCacheReads', 'DID record keys read from this peer as a replica', 'counter');
      counters.define('IMEDistributedCacheFetches', 'DID fetches this peer made as a reader', 'counter');
      counters.define('IMEDistributedCachePublishes', 'DIDs this peer published into the ring', 'counter');

      // Set once anti-entropy exists (below); stores arrive only after the ring service is up.
      let strays: AntiEntropy | undefined;
      await serveRpc(
        host,
        RING_PROTOCOL,
        createRingHandler({
          store,
          isAdmitted,
          isBootstrap,
          onConfigurationPush: async (push, from) => {
            const outcome = await configSync.accept(push.configuration, push.hops, from);
            return { sequence: configSync.current?.config.sequence ?? 0, accepted: outcome === 'accepted' };
          },
          onPing: () => configSync.current?.config.sequence ?? 0,
          onRequest: (peerId) => view?.heardFrom(peerId),
          // A writer that saw the replicas down fell back to us: readers ask the replicas, so the
          // records must get there (anti-entropy's stray handover) rather than wait here.
          onStored: (keys) => {
            if (keys.some((k) => !liveView.replicasFor(k).includes(self))) strays?.handOverStraysSoon();
          },
          counters: { stores: (n) => counters.inc('IMEDistributedCacheStores', n), reads: (n) => counters.inc('IMEDistributedCacheReads', n) },
        }),
        { onInternalError: (err, remote) => log.child('ring').error('ring request failed', { remote: remote.toString(), message: (err as Error).message }) },
      );

      const publisherKey = peerIdFromString(self).publicKey?.raw;
      const coordinator = new RingCoordinator({
        view: liveView,
        transport,
        localStore: store,
        ...(publisherKey ? { localPublisherKey: publisherKey } : {}),
        admitsPublisher,
        log: ringLog,
        now,
        requestTimeoutMs: rpcTimeoutMs,
      });
      const sequence = () => configSync.current?.config.sequence ?? 0;
      const handoff = new Handoff({ view: liveView, store, transport, self, configurationSequence: sequence, log: ringLog, requestTimeoutMs: Math.max(rpcTimeoutMs, 10_000) });
      const antiEntropy = new AntiEntropy({
        view: liveView,
        store,
        transport,
        self,
        intervalMs: config.tuning.antiEntropyIntervalSec * 1000,
        configurationSequence: sequence,
        log: ringLog,
        requestTimeoutMs: Math.max(rpcTimeoutMs, 10_000),
      });
      strays = antiEntropy;
      const ownPublisher: Publisher = publisherFromSeed(ed25519Seed(privateKey));
      const publisher = await DidPublisher.open({
        db,
        ring: coordinator,
        publisher: ownPublisher,
        context: () => {
          const c = configSync.current;
          return c ? { ringSalt: c.config.ringSalt, ...c.config.parameters } : undefined;
        },
        now,
      });

      const auditLog = new AuditLog(join(dataDir, 'audit.log'));
      const admin = new AdminServer({
        listen: config.admin.listen,
        allowNonLoopback: config.admin.allowRemote,
        tokenFile: config.admin.tokenFile ?? join(dataDir, 'admin.token'),
        log: log.child('admin'),
        audit: auditLog,
      });
      const node = new PeerNode({
        config,
        log,
        now,
        db,
        host,
        bootstraps,
        configSync,
        view: liveView,
        store,
        coordinator,
        handoff,
        antiEntropy,
        publisher,
        rpc,
        admin,
        enrollment,
        alerts,
        counters,
        transport,
        settings,
      });
      node.#startOptions = options;
      node.#auditLog = auditLog;
      node.#wire(membersOf, isAllowed, admitsPublisher);
      const vcrs = await VcrStore.open({ db, now, retentionMs: config.vap.vcrRetentionHours * 3600 * 1000 });
      const vapTls = await loadVapTls(db, config.vap, `${config.name}.${node.domain}`);
      node.#vap = await PeerVapService.open({
        db,
        domain: node.domain,
        publication: node,
        vcrs,
        counters,
        alerts,
        log: log.child('vap'),
        peerId: () => node.peerId,
        ringHealth: () => node.#health.level,
        tls: () => vapTls,
        defaultHost: config.vap.host,
        now,
      });
      cleanup.unshift(() => node.#vap?.stop());
      node.#validation = await ValidationService.open({
        db,
        host,
        selfPeerId: self,
        domain: node.domain,
        config: config.validator,
        vcrs,
        vap: () => node.vap,
        memberDomain: (peerId) => node.memberDomain(peerId),
        lookup: async (number) => (await node.fetchDid(number)).claims,
        counters,
        alerts,
        log: log.child('validator'),
        rpcTimeoutMs,
        now,
      });
      cleanup.unshift(() => node.#validation?.stop());
      node.#validation.start();
      const validation = node.#validation;
      node.#every(3600 * 1000, () => vcrs.sweepExpired());
      node.#every(3600 * 1000, () => validation.schedule.sweep());
      node.#every(3600 * 1000, () => validation.routes.sweepExpired());
      registerPeerAdminRoutes(admin, node);
      node.#adminUrl = (await admin.start()).url;
      return node;
    } catch (err) {
      for (const c of cleanup) await Promise.resolve().then(c).catch(() => undefined);
      throw err;
    }
  }

  #wire(
    membersOf: (c: CurrentConfiguration | undefined) => PlacementMember[],
    isAllowed: (id: string) => boolean,
    admitsPublisher: (publisherKey: Uint8Array) => boolean,
  ): void {
    this.#admitsPublisher = admitsPublisher;
    const log = this.#log;
    const c = this.counters;
    c.gauge('IMEDistributedCacheHealth', 'Ring health: 0 red, 1 yellow, 2 green', () => this.#health.level);
    c.gauge('IMEDistributedCacheNodeCount', 'Virtual nodes of the live ring members this peer knows', () =>
      [...this.#view.placement.members.values()].filter((m) => this.#view.isLive(m.peerId)).reduce((s, m) => s + m.virtualNodes, 0),
    );
    c.gauge('IMEDistributedCacheStoredData', 'DID records stored here', () => this.#store.recordCount);
    c.gauge('IMEDistributedCacheQuota', 'DIDs this peer may publish (ring storage quota)', () => this.#view.parameters.storageQuota);
    c.gauge('IMEDistributedCacheQuotaUsed', 'DIDs this peer publishes', () => this.#publisher.used);
    c.gauge('DaysUntilCertExpiry', 'Days until the ring certificate expires', () =>
      this.#enrollment ? daysUntilExpiry(this.#enrollment.info, this.#now()) : 0,
    );
    // Memory, so an operator (and the benchmark) can tell the JavaScript heap from native memory.
    const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
    c.gauge('ProcessResidentMemoryMB', 'Resident memory of the peer process (MB)', () => mb(process.memoryUsage.rss()));
    c.gauge('ProcessHeapUsedMB', 'JavaScript heap in use (MB)', () => mb(process.memoryUsage().heapUsed));
    c.gauge('ProcessExternalMemoryMB', 'Memory of buffers outside the JavaScript heap (MB)', () => mb(process.memoryUsage().external));
    c.gauge('ConfigurationsReceived', 'Ring configurations accepted', () => this.#configSync.status().configsReceived);
    c.gauge('ConfigurationsRefused', 'Ring configurations refused (forged, older, other authority)', () => this.#configSync.status().configsRefused);
    c.gauge('HandoffRecordsSent', 'DID records sent to new replicas after membership changes', () => this.#handoff.stats.recordsSent);

    this.#configSync.onChange((now, previous) => this.#onConfiguration(now, previous, membersOf, isAllowed));
    if (this.#configSync.current) this.#onConfiguration(this.#configSync.current, undefined, membersOf, isAllowed);

    this.#host.addEventListener('peer:disconnect', (evt) => {
      const id = evt.detail.toString();
      if (this.#view.isMember(id)) this.#view.probeNow(id).catch(() => undefined);
    });
    this.#view.startProbing({
      intervalMs: this.#config.tuning.pingIntervalMs,
      misses: this.#config.tuning.pingMisses,
      ping: async (id) => {
        await this.#transport.request(id, { ping: { configurationSequence: this.#configSync.current?.config.sequence ?? 0 } });
      },
    });
    this.#configSync.start(() => (this.#configSync.current?.config.parameters.pollIntervalSec ?? 30) * 1000);
    this.#antiEntropy.start();
    this.#publisher.start((err) => log.child('publish').warn('republish failed', { message: (err as Error).message }));
    const every = (ms: number, fn: () => unknown) => this.#every(ms, fn);
    every(this.#config.tuning.expirySweepSec * 1000, () => this.#sweepStore());
    every(1000, () => this.#evaluateHealth());
    every(12 * 3600 * 1000, () => this.#renewIfDue());
    this.#evaluateHealth();
  }

  /** Runs `fn` every `ms` until the peer stops; a failure is logged and the next run still happens. */
  #every(ms: number, fn: () => unknown): void {
    const t = setInterval(() => {
      Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.#log.warn('periodic task failed', { message: (err as Error).message }));
    }, ms);
    t.unref();
    this.#timers.push(t);
  }

  #onConfiguration(
    current: CurrentConfiguration,
    previous: CurrentConfiguration | undefined,
    membersOf: (c: CurrentConfiguration | undefined) => PlacementMember[],
    isAllowed: (id: string) => boolean,
  ): void {
    const config = current.config;
    for (const entry of [...config.roster, ...config.bootstraps]) {
      if (entry.peerId === this.peerId) continue;
      const addrs = entry.addresses.flatMap((a) => {
        try {
          return [multiaddr(withoutPeerId(a))];
        } catch {
          return [];
        }
      });
      if (addrs.length > 0) this.#host.peerStore.merge(peerIdFromString(entry.peerId), { multiaddrs: addrs }).catch(() => undefined);
    }
    this.#view.update(membersOf(current), config.parameters);
    // Whoever the new configuration no longer admits is disconnected now, not at its next request.
    for (const conn of this.#host.getConnections()) {
      const remote = conn.remotePeer.toString();
      if (!isAllowed(remote)) {
        this.#rpc.ring.disconnect(conn.remotePeer);
        conn.close().catch(() => undefined);
      }
    }
    // A ban (or a peer taken off the roster) takes its records off this replica now, not at expiry.
    const nowMs = this.#now();
    if (previous?.config.roster.some((e) => admissionOf(previous.config, e.peerId, nowMs).admitted && !admissionOf(config, e.peerId, nowMs).admitted)) {
      this.#sweepStore()
        .then((dropped) => dropped > 0 && this.#log.child('config').info('records of publishers no longer admitted dropped', { records: dropped }))
        .catch((err: unknown) => this.#log.warn('dropping the records of publishers no longer admitted failed', { message: (err as Error).message }));
    }
    const self = admissionOf(config, this.peerId, nowMs);
    if (!self.admitted && self.reason === 'banned') {
      const ban = config.bans.find((b) => b.peerId === this.peerId);
      this.alerts.raise('BannedFromNetwork', { severity: 'critical', details: { reason: ban?.reason ?? '' } });
    } else {
      this.alerts.clear('BannedFromNetwork');
    }
    if (config.messageOfTheDay && config.messageOfTheDay !== this.#lastMotd && config.messageOfTheDay !== previous?.config.messageOfTheDay) {
      this.alerts.raise('MessageOfTheDay', { severity: 'notice', details: { message: config.messageOfTheDay } });
    }
    this.#lastMotd = config.messageOfTheDay;
    if (config.minSoftwareVersion && compareVersions(PEER_SOFTWARE_VERSION, config.minSoftwareVersion) < 0) {
      this.alerts.raise('SWUpdateRequired', {
        severity: 'warning',
        details: { running: PEER_SOFTWARE_VERSION, required: config.minSoftwareVersion },
        throttleMs: 3600_000,
      });
    } else {
      this.alerts.clear('SWUpdateRequired');
    }
    this.#log.child('config').info('ring configuration accepted', { sequence: config.sequence, hops: current.hops, members: config.roster.length });
  }

  /** Expired records go, and those of publishers the current configuration no longer admits. */
  #sweepStore(): Promise<number> {
    return this.#store.sweep(this.#configSync.current ? { admitted: this.#admitsPublisher } : {});
  }

  #admissionState(): AdmissionState {
    const c = this.#configSync.current;
    if (!c) return 'no-configuration';
    const a = admissionOf(c.config, this.peerId, this.#now());
    return a.admitted ? 'admitted' : a.reason;
  }

  #evaluateHealth(): void {
    const status = this.#configSync.status();
    const params = this.#view.parameters;
    const pollMs = (this.#configSync.current?.config.parameters.pollIntervalSec ?? 30) * 1000;
    const members = this.#view.placement.size;
    const live = [...this.#view.placement.members.keys()].filter((id) => this.#view.isLive(id)).length;
    const info = this.#enrollment?.info;
    const nowMs = this.#now();
    const health = computeHealth({
      hasCertificate: info !== undefined,
      certificateExpired: info !== undefined && nowMs > info.notAfterMs,
      admission: this.#admissionState(),
      members,
      liveMembers: live,
      writeQuorum: params.writeQuorum,
      replicationFactor: params.replicationFactor,
      neighboursDown: this.#view.neighboursDown().length,
      bootstrapContactAgeMs: status.lastContactMs === undefined ? undefined : nowMs - status.lastContactMs,
      pollIntervalMs: pollMs,
    });
    if (health.level === 0 && this.#health.level !== 0) {
      this.alerts.raise('IMEDistributedCacheFailure', { severity: 'critical', details: { health: 'RED', reasons: health.reasons } });
    } else if (health.level !== 0) {
      this.alerts.clear('IMEDistributedCacheFailure');
    }
    this.#health = health;
    this.#vap?.ringHealthChanged(health.level, health.reasons);
    if (info) {
      const days = daysUntilExpiry(info, nowMs);
      if (days < 0) {
        this.alerts.raise('InvalidCertificate', { severity: 'critical', details: { reason: 'the ring certificate has expired' }, throttleMs: DAY_MS });
      } else if (days < EXPIRY_ALERT_DAYS) {
        this.alerts.raise('IMEDistributedCacheCertificateExpiring', { severity: 'warning', details: { days }, throttleMs: DAY_MS });
      }
    }
  }

  async #renewIfDue(): Promise<void> {
    const info = this.#enrollment?.info;
    if (!info || daysUntilExpiry(info, this.#now()) >= RENEW_BEFORE_DAYS) return;
    await this.#refreshEnrollment();
  }

  /** A refresh tells a bootstrap this peer's current addresses and renews a certificate near expiry. */
  async #refreshEnrollment(): Promise<void> {
    const result = await enroll({
      db: this.#db,
      rpc: this.#rpc.enroll,
      bootstraps: this.#bootstraps.map((b) => b.peerId),
      request: { peerId: this.peerId, domain: this.domain, contact: this.#config.contact, addresses: announcedAddresses(this.#config, this.#host, this.settings), softwareVersion: PEER_SOFTWARE_VERSION },
      nowMs: this.#now(),
    });
    this.#enrollment = result.enrollment;
    if (result.configuration) await this.#configSync.accept(result.configuration, 1, undefined);
  }

  /**
   * `set addressing publicipaddrv4` (null removes it): kept in the database, and a bootstrap is told
   * at once so that the next signed roster carries the address to every peer. When no bootstrap
   * answers, the change stays kept and is announced at the next start or renewal.
   */
  async setPublicIpv4(value: unknown): Promise<{ publicIpAddrV4: string | null; previous: string | null; announced: boolean; addresses: string[]; code?: string }> {
    const previous = (await this.settings.setPublicIpv4(value)) ?? null;
    const view = { publicIpAddrV4: this.settings.publicIpv4 ?? null, previous, addresses: announcedAddresses(this.#config, this.#host, this.settings) };
    try {
      await this.#refreshEnrollment();
      return { ...view, announced: true };
    } catch (err) {
      const code = isImeError(err) ? err.code : 'E_INTERNAL';
      this.#log.child('enroll').warn('the new public address could not be announced to a bootstrap yet', { code, message: (err as Error).message });
      return { ...view, announced: false, code };
    }
  }


  /** The validator: pools, learned routes, both sides of the validation exchange. */
  get validation(): ValidationService {
    if (!this.#validation) throw new ImeError('E_VALIDATOR_STOPPED', 'the validator is not running');
    return this.#validation;
  }

  /** The domain the signed roster binds to an admitted member (its ring certificate's domain). */
  memberDomain(peerId: string): string | undefined {
    const c = this.#configSync.current;
    if (!c || !admissionOf(c.config, peerId, this.#now()).admitted) return undefined;
    return c.config.roster.find((e) => e.peerId === peerId)?.domain;
  }

  /** VAP: the call managers' side of this peer. */
  get vap(): PeerVapService {
    if (!this.#vap) throw new ImeError('E_VAP_STOPPED', 'the VAP service is not running');
    return this.#vap;
  }

  get adminUrl(): string {
    return this.#adminUrl;
  }

  get adminTokenFile(): string {
    return this.#config.admin.tokenFile ?? join(this.#config.dataDir, 'admin.token');
  }

  /** The addresses this peer listens on (without /p2p). */
  addresses(): string[] {
    return this.#host.getMultiaddrs().map((a) => withoutPeerId(a.toString()));
  }

  get health(): Health {
    return this.#health;
  }

  summary(): DhtSummary {
    this.#evaluateHealth();
    const status = this.#configSync.status();
    const info = this.#enrollment?.info;
    const live = [...this.#view.placement.members.values()].filter((m) => this.#view.isLive(m.peerId));
    return {
      peerId: this.peerId,
      name: this.name,
      domain: this.domain,
      health: this.#health.name,
      healthLevel: this.#health.level,
      healthReasons: this.#health.reasons,
      bootstrap: status.bootstrap ?? null,
      lastContactSec: status.lastContactMs === undefined ? null : Math.floor((this.#now() - status.lastContactMs) / 1000),
      sequence: status.sequence,
      configsReceived: status.configsReceived,
      configsRefused: status.configsRefused,
      hopsFromBootstrap: status.hopsFromBootstrap,
      peerCount: this.#view.placement.size,
      livePeers: live.length,
      nodeCount: live.reduce((s, m) => s + m.virtualNodes, 0),
      messageOfTheDay: this.#configSync.current?.config.messageOfTheDay ?? '',
      certificateExpires: info ? new Date(info.notAfterMs).toISOString() : null,
      daysUntilCertExpiry: info ? daysUntilExpiry(info, this.#now()) : null,
    };
  }

  /** Bootstraps as configured, with the addresses this peer dials (`show bootstrap ip`). */
  bootstraps(): { peerId: string; address: string; lastAnswered: boolean }[] {
    const last = this.#configSync.status().bootstrap;
    return this.#bootstraps.map((b) => ({ peerId: b.peerId, address: b.address, lastAnswered: b.peerId === last }));
  }

  addressing(): { publicIpAddrV4: string | null; dhtPort: number | null; validatorPort: number; listen: string[]; announce: string[]; announced: string[] } {
    const port = this.addresses()
      .map((a) => /\/tcp\/(\d+)/.exec(a)?.[1])
      .find((p) => p !== undefined);
    return {
      publicIpAddrV4: this.settings.publicIpv4 ?? null,
      dhtPort: port === undefined ? null : Number(port),
      validatorPort: this.#config.validatorPort,
      listen: this.addresses(),
      announce: [...this.#config.announce],
      // What the bootstrap records and other peers dial.
      announced: announcedAddresses(this.#config, this.#host, this.settings),
    };
  }

  /** PeerIds this peer has a connection with right now. */
  connections(): string[] {
    return [...new Set(this.#host.getConnections().map((c) => c.remotePeer.toString()))].sort();
  }

  /** Members of the ring as this peer sees them. */
  members(): { peerId: string; live: boolean; virtualNodes: number; neighbour: boolean }[] {
    const neighbours = new Set(this.#view.neighbours());
    return [...this.#view.placement.members.values()].map((m) => ({
      peerId: m.peerId,
      live: this.#view.isLive(m.peerId),
      virtualNodes: m.virtualNodes,
      neighbour: neighbours.has(m.peerId),
    }));
  }

  #ringSalt(): Uint8Array {
    const c = this.#configSync.current;
    if (!c) throw new ImeError('E_RING_INACTIVE', 'this peer has no ring configuration yet (not enrolled or not admitted)');
    return c.config.ringSalt;
  }

  /** `ime utils fetch did`: who claims a number, read with the number itself (nobody else can). */
  async fetchDid(number: string): Promise<FetchDidResult> {
    const n = parseE164(number);
    const ringSalt = this.#ringSalt();
    const key = didRecordKey(ringSalt, n);
    this.counters.inc('IMEDistributedCacheFetches');
    const outcome = await this.#coordinator.fetch(key);
    const claims: DidClaimView[] = [];
    for (const record of outcome.records) {
      if (record.tombstone) continue;
      try {
        // The coordinator verified every answer (our own store holds only records verified on the way
        // in, or received from their publisher over its Noise-authenticated connection).
        const opened = openDidRecord(record, { ringSalt, number: n, signatureVerified: true });
        claims.push({
          peerId: peerIdFromPublicKey(publicKeyFromRaw(opened.publisherKey) as Parameters<typeof peerIdFromPublicKey>[0]).toString(),
          vserviceId: opened.vserviceId,
          expires: new Date(opened.expiresAtMs).toISOString(),
        });
      } catch {
        // A record that does not open under this number is not a claim on it.
      }
    }
    return { found: claims.length > 0, claims, replicas: this.#view.replicasFor(key) };
  }

  /**
   * Whether this peer's own store holds a live record for the number (without asking the ring):
   * lets an operator, or a test, see where copies of a record are before taking replicas away.
   */
  async heldLocally(number: string): Promise<{ held: boolean; records: number }> {
    const key = didRecordKey(this.#ringSalt(), parseE164(number));
    const now = this.#now();
    const records = (await this.#store.get(key)).filter((r) => !r.tombstone && r.expiresAtMs > now);
    return { held: records.length > 0, records: records.length };
  }

  /**
   * Looks up many numbers at once (a bounded number in flight): how many are in the ring and which
   * are not. For operators checking a publication, and for tests.
   */
  async lookupDids(
    numbers: readonly string[],
    options: { concurrency?: number; timings?: boolean } = {},
  ): Promise<DidLookupReport> {
    const missing: string[] = [];
    const failed: { number: string; code: string }[] = [];
    const latencies: number[] = [];
    let found = 0;
    let next = 0;
    const worker = async () => {
      while (next < numbers.length) {
        const number = numbers[next++] as string;
        const start = performance.now();
        try {
          if ((await this.fetchDid(number)).found) found++;
          else missing.push(number);
        } catch (err) {
          failed.push({ number, code: isImeError(err) ? err.code : 'E_INTERNAL' });
        }
        if (options.timings) latencies.push(performance.now() - start);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 64, numbers.length)) }, worker));
    return { total: numbers.length, found, missing: missing.sort(), failed, ...(options.timings ? { latenciesMs: latencies } : {}) };
  }

  /**
   * Round trips of the ring protocol's ping to another member over the kept stream: the floor under
   * every ring request (what a fetch costs beyond the network).
   */
  async pingPeer(peerId: string, count: number): Promise<number[]> {
    if (!this.#view.isMember(peerId)) throw new ImeError('E_PEER_NOT_FOUND', `${peerId} is not a ring member`);
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      await this.#transport.request(peerId, { ping: { configurationSequence: this.#configSync.current?.config.sequence ?? 0 } });
      latencies.push(performance.now() - start);
    }
    return latencies;
  }

  async publish(vserviceId: string, numbers: readonly string[]): Promise<PublishReport> {
    const report = await this.#publisher.publish(vserviceId, numbers);
    this.counters.inc('IMEDistributedCachePublishes', report.published);
    return report;
  }

  withdraw(numbers: readonly string[]): Promise<PublishReport> {
    return this.#publisher.withdraw(numbers);
  }

  publishedNumbers(vserviceId?: string): Promise<string[]> {
    return this.#publisher.numbers(vserviceId);
  }

  /** Resolves when no handoff is running or pending (for tests and the harness). */
  handoffIdle(): Promise<void> {
    return this.#handoff.idle();
  }

  runAntiEntropy(): Promise<unknown> {
    return this.#antiEntropy.runOnce();
  }

  /** Polls the bootstraps now instead of at the next interval. */
  pollConfiguration(): Promise<void> {
    return this.#configSync.pollOnce();
  }

  get libp2p(): Libp2p {
    return this.#host;
  }

  remotePeerId(id: string): PeerId {
    return peerIdFromString(id);
  }

  /** The configuration this peer runs with (a backup carries it). */
  get configuration(): PeerConfig {
    return this.#config;
  }

  /** The audit log of administrative changes (`<dataDir>/audit.log`). */
  get auditLog(): AuditLog {
    return this.#auditLog as AuditLog;
  }

  /**
   * Every key and value of the peer's database as of this call: a LevelDB iterator reads from a
   * snapshot, so a backup taken while the peer runs is consistent. Close it when done.
   */
  stateIterator(): { nextv(size: number): Promise<[Uint8Array, Uint8Array][]>; close(): Promise<void> } {
    return this.#db.iterator();
  }

  /**
   * A restore (peer-backup-service.ts): stops this peer completely, runs `change.apply()` while
   * nothing holds the data dir, and starts the peer again in this process from the same
   * configuration. If the changed state does not start, `change.undo()` puts the old one back and
   * that is started instead, and the start error is thrown. Whoever holds this object keeps a
   * working handle: `current` is the running peer and `stop()` stops it.
   */
  restartWith(change: { apply(): Promise<void>; undo(): Promise<void> }): Promise<PeerNode> {
    if (this.#successor) return this.#successor.restartWith(change);
    if (this.#restarting || this.#stopped) return Promise.reject(new ImeError('E_RESTORE_BUSY', 'this peer is already stopping or restarting'));
    this.#restarting = this.#restartAround(change);
    return this.#restarting;
  }

  async #restartAround(change: { apply(): Promise<void>; undo(): Promise<void> }): Promise<PeerNode> {
    await this.#stopServices();
    try {
      await change.apply();
      this.#successor = await PeerNode.start(this.#config, this.#startOptions);
      return this.#successor;
    } catch (err) {
      await change.undo();
      try {
        this.#successor = await PeerNode.start(this.#config, this.#startOptions);
      } catch (again) {
        this.#log.error('the peer could not start again after a failed restore: it is stopped', { message: (again as Error).message });
        throw new ImeError('E_RESTORE_RESTART', `the restored state did not start (${(err as Error).message}) and the previous state did not start again (${(again as Error).message}): the peer is stopped`);
      }
      throw err;
    }
  }

  /** The running peer: this one, or the one a restore started in its place. */
  get current(): PeerNode {
    return this.#successor?.current ?? this;
  }

  async stop(): Promise<void> {
    // A restart in progress finishes first, so that the peer it starts is the one stopped.
    await this.#restarting?.catch(() => undefined);
    if (this.#successor) return this.#successor.stop();
    await this.#stopServices();
  }

  async #stopServices(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#configSync.stop();
    this.#view.stop();
    this.#antiEntropy.stop();
    this.#handoff.stop();
    this.#publisher.stop();
    await this.#validation?.stop().catch(() => undefined);
    await this.#vap?.stop().catch(() => undefined);
    await Promise.resolve(this.#admin.stop()).catch(() => undefined);
    for (const c of Object.values(this.#rpc)) c.stop();
    await Promise.resolve(this.#host.stop()).catch(() => undefined);
    await this.#coordinator.settled().catch(() => undefined);
    await this.#db.close().catch(() => undefined);
  }
}
