import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BOOTSTRAP_SYNC_PROTOCOL,
  type BootstrapEntry,
  CONFIG_PROTOCOL,
  ENROLL_PROTOCOL,
  RING_PROTOCOL,
  type RingConfiguration,
  type RingParameters,
  WIRE_VERSION,
  decodeSignedRingConfiguration,
  encodeSignedRingConfiguration,
  signRingConfiguration,
  verifySignedRingConfiguration,
} from '@ime/admission';
import { ImeError, decodeWire, isImeError } from '@ime/core';
import {
  AdminServer,
  Alerts,
  AuditLog,
  type Database,
  Counters,
  type Logger,
  RpcClient,
  createLogger,
  createRingHost,
  openDatabase,
  readIdentityKeyFile,
  serveRpc,
  silentLogger,
} from '@ime/runtime';
import { ime } from '@ime/wire';
import type { Libp2p, PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { registerBootstrapAdminRoutes } from './bootstrap-admin.js';
import {
  MAX_ADDRESSES,
  MAX_NOTE_LENGTH,
  MAX_REASON_LENGTH,
  checkDomain,
  checkInteger,
  checkPeerId,
  checkText,
  isAddress,
  isRecord,
} from './bootstrap-checks.js';
import { type BootstrapConfig, type PeerBootstrapAddress, checkBootstrapConfig } from './bootstrap-config.js';
import {
  type IssuedConfiguration,
  MAX_SYNC_BYTES,
  type ProtocolContext,
  answerConfigurationPoll,
  answerEnrollment,
  answerSync,
  decodeSync,
  mergeSync,
  tokenDigest,
} from './bootstrap-protocols.js';
import {
  BootstrapState,
  type BootstrapStateDocument,
  type MergeResult,
  PARAMETER_SETTINGS,
  type ParameterSetting,
  type SettingName,
  type SettingValue,
  checkSetting,
} from './bootstrap-state.js';
import { type BaseParameters, configurationContent, contentKey, effectiveParameters } from './configuration-builder.js';

/**
 * The bootstrap server (SPEC §3, docs/RING.md "Admission"): the ring's enrollment authority and the
 * signer of the ring configuration. It enrolls peers (`/ime/enroll/1.0.0`), serves the current
 * signed configuration to pollers (`/ime/config/1.0.0`), pushes each new one to the roster peers
 * connected to it (`/ime/ring/1.0.0`), and keeps its state in step with the ring's other bootstraps
 * (`/ime/bootstrap-sync/1.0.0`). Operators drive it through the admin API (bootstrap-admin.ts).
 *
 * A configuration is issued after every change a peer would see — coalesced, so a burst of
 * enrollments gives one — every quarter of its lifetime, and after a merge from another bootstrap
 * that changed something. A change that alters nothing in the document (a token, a contact) issues
 * nothing: peers would only fetch and check an identical document with a new number.
 */

export interface BootstrapServerOptions {
  /** Default: a logger made from the configuration's `log` section (closed by `stop`). */
  readonly log?: Logger;
  /** Clock in ms, for tests (certificates, tokens, sequences). Timers run on real time. */
  readonly now?: () => number;
}

export interface CreateTokenOptions {
  /** Enroll only a peer of this domain. */
  readonly domain?: string;
  /** Default 168 (7 days), at most 8760. */
  readonly validHours?: number;
  readonly note?: string;
}

export interface RosterView {
  readonly peerId: string;
  readonly domain: string;
  readonly contact: string;
  readonly addresses: readonly string[];
  readonly admitted: boolean;
  readonly banned: boolean;
  /** In the configuration served now. */
  readonly inRoster: boolean;
  readonly certificateSerial: string;
  readonly certificateExpires: string;
  readonly enrolledAt: string;
  readonly softwareVersion: string;
  readonly virtualNodes: number;
}

export interface BootstrapSummary {
  readonly role: 'bootstrap';
  readonly name: string;
  readonly peerId: string;
  readonly ringName: string;
  /** The highest configuration sequence of the ring known here (issued here or by a peer bootstrap). */
  readonly sequence: number;
  /** Sequence of the configuration this bootstrap serves. */
  readonly issuedSequence: number;
  readonly configurationExpires: string | null;
  readonly rosterSize: number;
  readonly pendingAdmission: number;
  readonly bans: number;
  readonly messageOfTheDay: string;
  readonly minSoftwareVersion: string;
  readonly storageQuota: number;
  readonly parameters: RingParameters & { readonly virtualNodes: number };
  readonly admission: 'auto' | 'manual';
  readonly ordinal: number;
  readonly authorityFingerprint: string;
  readonly addresses: readonly string[];
  readonly peerBootstraps: readonly { readonly peerId: string; readonly address: string; readonly lastSyncAgoSec: number | null }[];
}

export interface ChangeResult {
  /** Sequence of the configuration served once the change is in. */
  readonly sequence: number;
}

/** A burst of changes within this window gives one configuration. */
const COALESCE_MS = 50;
/** Re-check configuration freshness and certificate expiries at least this often. */
const MAX_HOUSEKEEPING_MS = 60_000;
const DEFAULT_TOKEN_HOURS = 168;
const MAX_TOKEN_HOURS = 8760;
const MAX_STATE_FILE_BYTES = 64 * 1024 * 1024;
const SYNC_TIMEOUT_MS = 10_000;
const PUSH_TIMEOUT_MS = 5_000;
/** Every this many rounds a sync sends everything, in case the other side lost what it was sent. */
const FULL_SYNC_EVERY = 12;
/** Consecutive failed syncs before PeerBootstrapUnreachable is raised. */
const SYNC_FAILURES_ALERT = 3;
const MAX_ACK_BYTES = 64 * 1024;

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers that fire and forget must not turn a failed issue into an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface SyncPeer extends PeerBootstrapAddress {
  readonly id: PeerId;
  /** Local state version last sent successfully (delta sync). */
  sentVersion: number;
  rounds: number;
  failures: number;
  lastSyncMs: number | undefined;
  running: Promise<void> | undefined;
  again: boolean;
}

interface ServerParts {
  readonly config: BootstrapConfig;
  readonly log: Logger;
  readonly ownLog: Logger | undefined;
  readonly now: () => number;
  readonly db: Database;
  readonly state: BootstrapState;
  readonly host: Libp2p;
  readonly peerBootstraps: readonly PeerBootstrapAddress[];
}

export class BootstrapServer {
  readonly name: string;
  readonly peerId: string;
  readonly tokenFile: string;
  readonly counters = new Counters();
  readonly alerts: Alerts;
  readonly #config: BootstrapConfig;
  readonly #log: Logger;
  readonly #ownLog: Logger | undefined;
  readonly #now: () => number;
  readonly #db: Database;
  readonly #state: BootstrapState;
  readonly #host: Libp2p;
  readonly #base: BaseParameters;
  readonly #lifetimeMs: number;
  readonly #syncPeers: SyncPeer[];
  readonly #ringRpc: RpcClient;
  readonly #syncRpc: RpcClient;
  readonly #context: ProtocolContext;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #admin: AdminServer | undefined;
  #adminUrl = '';
  #current: IssuedConfiguration | undefined;
  #pendingIssue: { deferred: Deferred<IssuedConfiguration | undefined>; timer: ReturnType<typeof setTimeout> } | undefined;
  #syncSoon: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #stopping: Promise<void> | undefined;

  private constructor(parts: ServerParts) {
    const { config } = parts;
    this.#config = config;
    this.name = config.name;
    this.#log = parts.log;
    this.#ownLog = parts.ownLog;
    this.#now = parts.now;
    this.#db = parts.db;
    this.#state = parts.state;
    this.#host = parts.host;
    this.peerId = parts.state.peerId;
    this.tokenFile = config.admin.tokenFile ?? join(config.dataDir, 'admin.token');
    this.alerts = new Alerts({ log: parts.log.child('alerts'), now: parts.now });
    this.#base = { ...config.parameters };
    this.#lifetimeMs = config.configurationLifetimeSec * 1000;
    this.#syncPeers = parts.peerBootstraps.map((b) => ({
      ...b,
      id: peerIdFromString(b.peerId),
      sentVersion: 0,
      rounds: 0,
      failures: 0,
      lastSyncMs: undefined,
      running: undefined,
      again: false,
    }));
    this.#ringRpc = new RpcClient(parts.host, RING_PROTOCOL, { timeoutMs: PUSH_TIMEOUT_MS, connectTimeoutMs: PUSH_TIMEOUT_MS });
    this.#syncRpc = new RpcClient(parts.host, BOOTSTRAP_SYNC_PROTOCOL, { timeoutMs: SYNC_TIMEOUT_MS, connectTimeoutMs: SYNC_TIMEOUT_MS });
    const peerIds = new Set(parts.peerBootstraps.map((b) => b.peerId));
    this.#context = {
      state: parts.state,
      config,
      now: parts.now,
      log: parts.log.child('enroll'),
      counters: this.counters,
      current: () => this.#current,
      settled: async () => {
        await this.#pendingIssue?.deferred.promise.catch(() => undefined);
      },
      reissue: () => this.#requestIssue(),
      virtualNodes: () => effectiveParameters(this.#state, this.#base).virtualNodes,
      isPeerBootstrap: (id) => peerIds.has(id),
      merged: (result, from, offered) => this.#afterMerge(result, from, offered),
      changed: () => this.#scheduleSync(),
    };
    this.#defineCounters();
  }

  /**
   * Starts a bootstrap: opens its database, creates the ring authority on first start (or imports
   * `importState`), listens, serves the protocols, issues a configuration, starts the admin API.
   */
  static async start(config: BootstrapConfig, options: BootstrapServerOptions = {}): Promise<BootstrapServer> {
    const { peerBootstraps } = checkBootstrapConfig(config);
    const ownLog =
      options.log === undefined
        ? createLogger({ level: config.log.level, modules: config.log.modules, ...(config.log.file === undefined ? {} : { sink: { file: config.log.file } }) })
        : undefined;
    const log = options.log ?? ownLog ?? silentLogger();
    const now = options.now ?? Date.now;
    const cleanup: (() => unknown)[] = [() => ownLog?.close()];
    try {
      const db = await openDatabase(join(config.dataDir, 'db'));
      cleanup.unshift(() => db.close());
      const state = await prepareState(db, config, now, log);
      const host = await createRingHost({ privateKey: state.identity, listen: config.listen, announce: config.announce });
      cleanup.unshift(() => host.stop());
      for (const b of peerBootstraps) {
        await host.peerStore.merge(peerIdFromString(b.peerId), { multiaddrs: [multiaddr(b.address)] });
      }
      const server = new BootstrapServer({ config, log, ownLog, now, db, state, host, peerBootstraps });
      cleanup.unshift(() => server.#stopWork());
      await server.#serve();
      await server.#loadConfiguration();
      await server.#issue(false);
      const admin = new AdminServer({
        listen: config.admin.listen,
        allowNonLoopback: config.admin.allowRemote,
        tokenFile: server.tokenFile,
        log: log.child('admin'),
        audit: new AuditLog(join(config.dataDir, 'audit.log')),
      });
      registerBootstrapAdminRoutes(admin, server);
      server.#adminUrl = (await admin.start()).url;
      server.#admin = admin;
      server.#startTimers();
      log.info('bootstrap started', {
        name: config.name,
        peerId: server.peerId,
        addresses: server.addresses,
        ring: state.ring.name,
        authority: state.authority.fingerprintHex,
        admission: config.admission,
        sequence: server.#current?.config.sequence,
      });
      return server;
    } catch (err) {
      for (const c of cleanup) await Promise.resolve().then(c).catch(() => undefined);
      throw err;
    }
  }

  // --- what the server shows ---------------------------------------------------------------------

  /** Addresses peers dial: the announce list, else the listen addresses (without /p2p/). */
  get addresses(): string[] {
    const list = this.#config.announce.length > 0 ? this.#config.announce : this.#host.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, ''));
    return [...new Set(list)].filter(isAddress).slice(0, MAX_ADDRESSES);
  }

  get adminUrl(): string {
    return this.#adminUrl;
  }

  get authorityFingerprint(): string {
    return this.#state.authority.fingerprintHex;
  }

  get authorityCertificateDer(): Uint8Array {
    return this.#state.authority.certificateDer;
  }

  get ringSalt(): Uint8Array {
    return this.#state.ring.salt;
  }

  /** The signed configuration served now. */
  currentConfiguration(): IssuedConfiguration | undefined {
    return this.#current;
  }

  /** Every enrolled peer with its admission state, by PeerId. */
  roster(): RosterView[] {
    const inRoster = new Set(this.#current?.config.roster.map((e) => e.peerId) ?? []);
    return this.#state
      .enrollments()
      .map(({ peerId, value }) => ({
        peerId,
        domain: value.domain,
        contact: value.contact,
        addresses: value.addresses,
        admitted: value.admitted,
        banned: this.#state.isBanned(peerId),
        inRoster: inRoster.has(peerId),
        certificateSerial: value.certificateSerial,
        certificateExpires: new Date(value.certificateExpiresAtMs).toISOString(),
        enrolledAt: new Date(value.enrolledAtMs).toISOString(),
        softwareVersion: value.softwareVersion,
        virtualNodes: value.virtualNodes,
      }))
      .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  }

  /** Bans in force. */
  bans(): { peerId: string; reason: string; bannedAt: string }[] {
    return this.#state.bans().map((b) => ({ peerId: b.peerId, reason: b.value.reason, bannedAt: new Date(b.value.atMs).toISOString() }));
  }

  /** Tokens without their secret: the first 12 hex digits of their digest name them. */
  tokens(): { id: string; domain: string | null; note: string | null; created: string; expires: string; usedBy: string | null; used: string | null }[] {
    return this.#state.tokens().map(({ id, value }) => ({
      id: id.slice(0, 12),
      domain: value.domain ?? null,
      note: value.note ?? null,
      created: new Date(value.createdAtMs).toISOString(),
      expires: new Date(value.expiresAtMs).toISOString(),
      usedBy: value.usedBy ?? null,
      used: value.usedAtMs === undefined ? null : new Date(value.usedAtMs).toISOString(),
    }));
  }

  summary(): BootstrapSummary {
    const current = this.#current?.config;
    const { parameters, virtualNodes } = effectiveParameters(this.#state, this.#base);
    const motd = this.#state.setting('messageOfTheDay');
    const minVersion = this.#state.setting('minSoftwareVersion');
    const nowMs = this.#now();
    return {
      role: 'bootstrap',
      name: this.name,
      peerId: this.peerId,
      ringName: this.#state.ring.name,
      // What up-to-date peers hold: the highest sequence issued here or by a peer bootstrap (each
      // bootstrap signs its own documents, and peers keep whichever is newest).
      sequence: Math.max(current?.sequence ?? 0, this.#state.sequence),
      issuedSequence: current?.sequence ?? 0,
      configurationExpires: current === undefined ? null : new Date(current.expiresAtMs).toISOString(),
      rosterSize: current?.roster.length ?? 0,
      pendingAdmission: this.#state.enrollments().filter((e) => !e.value.admitted && !this.#state.isBanned(e.peerId)).length,
      bans: this.#state.bans().length,
      messageOfTheDay: typeof motd === 'string' ? motd : '',
      minSoftwareVersion: typeof minVersion === 'string' ? minVersion : '',
      storageQuota: parameters.storageQuota,
      parameters: { ...parameters, virtualNodes },
      admission: this.#config.admission as 'auto' | 'manual',
      ordinal: this.#config.ordinal,
      authorityFingerprint: this.#state.authority.fingerprintHex,
      addresses: this.addresses,
      peerBootstraps: this.#syncPeers.map((p) => ({
        peerId: p.peerId,
        address: p.address,
        lastSyncAgoSec: p.lastSyncMs === undefined ? null : Math.max(0, Math.round((nowMs - p.lastSyncMs) / 1000)),
      })),
    };
  }

  /** The shared state (authority with its private key, ring, entries, sequence): a secret document. */
  exportState(): BootstrapStateDocument {
    return this.#state.exportState();
  }

  // --- operator changes --------------------------------------------------------------------------

  /** A one-time enrollment token. Only its SHA-256 is kept; the text is returned once, here. */
  async createToken(options: CreateTokenOptions = {}): Promise<{ token: string; expiresAtMs: number }> {
    if (!isRecord(options)) throw new ImeError('E_TOKEN_REQUEST', 'token options must be an object');
    const domain = options.domain === undefined ? undefined : checkDomain(options.domain, 'E_TOKEN_REQUEST');
    const validHours = options.validHours === undefined ? DEFAULT_TOKEN_HOURS : checkInteger(options.validHours, 1, MAX_TOKEN_HOURS, 'E_TOKEN_REQUEST', 'validHours');
    const note = options.note === undefined ? undefined : checkText(options.note, MAX_NOTE_LENGTH, 'E_TOKEN_REQUEST', 'note');
    const token = randomBytes(32).toString('base64url');
    const nowMs = this.#now();
    const expiresAtMs = nowMs + validHours * 3_600_000;
    await this.#state.change([
      {
        id: `token/${tokenDigest(token)}`,
        value: { ...(domain === undefined ? {} : { domain }), expiresAtMs, createdAtMs: nowMs, ...(note === undefined ? {} : { note }) },
      },
    ]);
    // The other bootstraps learn it at once, so the peer may enroll at any of them.
    this.#scheduleSync();
    this.#log.info('enrollment token created', { domain: domain ?? null, expires: new Date(expiresAtMs).toISOString() });
    return { token, expiresAtMs };
  }

  /** Admits a peer waiting for manual admission; E_PEER_NOT_FOUND when it never enrolled. */
  async admit(peerId: string): Promise<ChangeResult & { admitted: true }> {
    const id = checkPeerId(peerId, 'E_PEER_ID');
    const enrollment = this.#state.enrollment(id);
    if (enrollment === undefined) throw new ImeError('E_PEER_NOT_FOUND', `${id} has not enrolled with this ring`);
    if (!enrollment.admitted) {
      await this.#state.change([{ id: `enrollment/${id}`, value: { ...enrollment, admitted: true } }]);
      this.#log.info('peer admitted', { peerId: id, domain: enrollment.domain });
    }
    return { ...(await this.#afterLocalChange()), admitted: true };
  }

  /** Bans a peer (enrolled or not): it leaves the roster and the configuration lists the ban. */
  async ban(peerId: string, reason: string): Promise<ChangeResult & { banned: true }> {
    const id = checkPeerId(peerId, 'E_PEER_ID');
    const text = checkText(reason, MAX_REASON_LENGTH, 'E_BAN_REASON', 'the ban reason');
    await this.#state.change([{ id: `ban/${id}`, value: { banned: true, reason: text, atMs: this.#now() } }]);
    this.#log.warn('peer banned', { peerId: id, reason: text });
    return { ...(await this.#afterLocalChange()), banned: true };
  }

  /** Lifts a ban; E_BAN_NOT_FOUND when the peer is not banned. */
  async unban(peerId: string): Promise<ChangeResult & { banned: false }> {
    const id = checkPeerId(peerId, 'E_PEER_ID');
    const ban = this.#state.ban(id);
    if (ban?.banned !== true) throw new ImeError('E_BAN_NOT_FOUND', `${id} is not banned`);
    await this.#state.change([{ id: `ban/${id}`, value: { banned: false, reason: ban.reason, atMs: this.#now() } }]);
    this.#log.info('peer unbanned', { peerId: id });
    return { ...(await this.#afterLocalChange()), banned: false };
  }

  /** Shown by every peer (MessageOfTheDay alert); empty clears it. */
  async setMessageOfTheDay(text: string): Promise<ChangeResult> {
    return this.#setSettings({ messageOfTheDay: checkSetting('messageOfTheDay', text, 'E_MOTD_INVALID') });
  }

  /** `ime set dht global storagequota N`: DIDs one peer may publish. */
  async setStorageQuota(quota: number): Promise<ChangeResult> {
    return this.#setSettings({ storageQuota: checkSetting('storageQuota', quota, 'E_QUOTA_INVALID') });
  }

  /** `major.minor.patch`, or empty for no minimum; older peers raise SWUpdateRequired. */
  async setMinSoftwareVersion(version: string): Promise<ChangeResult> {
    return this.#setSettings({ minSoftwareVersion: checkSetting('minSoftwareVersion', version, 'E_VERSION_INVALID') });
  }

  /**
   * Overrides ring parameters (null restores the configuration file's value). The result must hold
   * together (W, R ≤ N; republish interval < TTL), else E_PARAMETERS_INVALID and nothing changes.
   */
  async setParameters(partial: Partial<Record<ParameterSetting, number | null>>): Promise<ChangeResult> {
    if (!isRecord(partial)) throw new ImeError('E_PARAMETERS_INVALID', 'parameters must be an object');
    const keys = Object.keys(partial);
    if (keys.length === 0) throw new ImeError('E_PARAMETERS_INVALID', `name at least one of ${PARAMETER_SETTINGS.join(', ')}`);
    const settings: Partial<Record<SettingName, SettingValue>> = {};
    for (const key of keys) {
      if (!(PARAMETER_SETTINGS as readonly string[]).includes(key)) {
        throw new ImeError('E_PARAMETERS_INVALID', `unknown parameter ${JSON.stringify(key.slice(0, 40))} (known: ${PARAMETER_SETTINGS.join(', ')})`);
      }
      settings[key as ParameterSetting] = checkSetting(key as ParameterSetting, partial[key as ParameterSetting], 'E_PARAMETERS_INVALID');
    }
    const values: Record<string, number> = { ...this.#base };
    for (const name of PARAMETER_SETTINGS) {
      const v = name in settings ? settings[name] : this.#state.setting(name);
      if (typeof v === 'number') values[name] = v;
    }
    const n = values.replicationFactor as number;
    if ((values.writeQuorum as number) > n || (values.readQuorum as number) > n) {
      throw new ImeError('E_PARAMETERS_INVALID', `writeQuorum and readQuorum must not exceed replicationFactor (${n})`);
    }
    if ((values.republishIntervalSec as number) >= (values.recordTtlSec as number)) {
      throw new ImeError('E_PARAMETERS_INVALID', 'republishIntervalSec must be less than recordTtlSec');
    }
    return this.#setSettings(settings);
  }

  async #setSettings(settings: Partial<Record<SettingName, SettingValue>>): Promise<ChangeResult> {
    await this.#state.change(Object.entries(settings).map(([name, value]) => ({ id: `setting/${name}`, value })));
    this.#log.info('ring settings changed', { settings });
    return this.#afterLocalChange();
  }

  async #afterLocalChange(): Promise<ChangeResult> {
    const issued = this.#requestIssue();
    // Sync once the new configuration exists, so the other bootstraps can serve it as it is.
    void issued.finally(() => this.#scheduleSync()).catch(() => undefined);
    return { sequence: (await issued)?.config.sequence ?? 0 };
  }

  // --- stopping ------------------------------------------------------------------------------------

  /** Stops serving, finishes writing the state and closes the database. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    await this.#admin?.stop().catch(() => undefined);
    this.#stopWork();
    await Promise.resolve()
      .then(() => this.#host.stop())
      .catch(() => undefined);
    await Promise.allSettled(this.#syncPeers.map((p) => p.running));
    await this.#state.flush().catch(() => undefined);
    if (this.#state.writeError !== undefined) this.#log.error('a state change could not be written', { err: this.#state.writeError });
    await this.#db.close().catch(() => undefined);
    this.#log.info('bootstrap stopped', { name: this.name });
    this.#ownLog?.close();
  }

  /** Timers, pending issues and RPC clients; what start undoes when it fails half-way. */
  #stopWork(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    if (this.#syncSoon !== undefined) clearTimeout(this.#syncSoon);
    const pending = this.#pendingIssue;
    this.#pendingIssue = undefined;
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.deferred.reject(new ImeError('E_STOPPED', 'the bootstrap is stopping'));
    }
    this.#ringRpc.stop();
    this.#syncRpc.stop();
  }

  // --- protocols -----------------------------------------------------------------------------------

  async #serve(): Promise<void> {
    const ctx = this.#context;
    const internal = (protocol: string) => (err: unknown, remote: PeerId) =>
      this.#log.error('request failed', { protocol, remote: remote.toString(), err });
    await serveRpc(this.#host, ENROLL_PROTOCOL, (payload, { remotePeer }) => answerEnrollment(ctx, payload, remotePeer.toString()), {
      // The frame holds the request plus the RPC header.
      maxFrameBytes: 64 * 1024 + 16,
      onInternalError: internal(ENROLL_PROTOCOL),
    });
    await serveRpc(this.#host, CONFIG_PROTOCOL, (payload) => answerConfigurationPoll(ctx, payload), {
      maxFrameBytes: 1024 + 16,
      onInternalError: internal(CONFIG_PROTOCOL),
    });
    await serveRpc(this.#host, BOOTSTRAP_SYNC_PROTOCOL, (payload, { remotePeer }) => answerSync(ctx, payload, remotePeer.toString()), {
      onInternalError: internal(BOOTSTRAP_SYNC_PROTOCOL),
    });
  }

  // --- issuing configurations ----------------------------------------------------------------------

  /** The stored configuration from the last run, if it is ours and readable. */
  async #loadConfiguration(): Promise<void> {
    const stored = this.#state.configuration;
    if (stored === undefined) return;
    try {
      const signed = decodeSignedRingConfiguration(stored);
      // Expiry is not checked here (nowMs 0): an expired one is replaced by the first issue anyway.
      const config = verifySignedRingConfiguration(signed, { authorityCertificateDer: this.#state.authority.certificateDer }, { nowMs: 0 });
      this.#current = { config, signed, encoded: stored, key: contentKey(config) };
    } catch (err) {
      this.#log.warn('the stored ring configuration cannot be used; a new one is issued', { code: isImeError(err) ? err.code : 'E_INTERNAL' });
    }
  }

  #bootstrapEntries(): BootstrapEntry[] {
    return [
      { peerId: this.peerId, addresses: this.addresses },
      ...this.#syncPeers.map((p) => ({ peerId: p.peerId, addresses: isAddress(p.address) ? [p.address] : [] })),
    ];
  }

  /**
   * Builds, signs, stores and pushes a configuration when the content differs from the one served,
   * when that one is due for re-signing (a quarter of its lifetime), or when forced. The sequence is
   * reserved before anything awaits, so issues never share one.
   */
  async #issue(force: boolean): Promise<IssuedConfiguration> {
    const nowMs = this.#now();
    const { content, adjusted } = configurationContent(this.#state, this.#base, this.#bootstrapEntries(), nowMs);
    if (adjusted.length > 0) this.#log.warn('merged ring parameters did not fit together and were adjusted', { adjusted });
    const key = contentKey(content);
    const current = this.#current;
    const fresh = current !== undefined && nowMs - current.config.issuedAtMs < this.#lifetimeMs / 4 && nowMs < current.config.expiresAtMs;
    if (!force && current !== undefined && current.key === key && fresh) return current;

    const sequence = this.#state.nextSequence(nowMs, this.#config.ordinal);
    const config: RingConfiguration = { ...content, sequence, issuedAtMs: nowMs, expiresAtMs: nowMs + this.#lifetimeMs };
    const signed = signRingConfiguration(config, this.#state.authority.signer);
    const encoded = encodeSignedRingConfiguration(signed);
    const issued: IssuedConfiguration = { config, signed, encoded, key };
    this.#current = issued;
    this.counters.inc('ConfigurationsIssued');
    this.#log.info('ring configuration issued', { sequence, roster: config.roster.length, bans: config.bans.length, changed: current?.key !== key });
    await this.#state.saveConfiguration(encoded, sequence);
    this.#push(issued);
    return issued;
  }

  /**
   * A configuration that reflects every change made before the call, issued at most COALESCE_MS
   * later together with every other change of the window.
   */
  #requestIssue(): Promise<IssuedConfiguration | undefined> {
    if (this.#stopped) return Promise.resolve(this.#current);
    let pending = this.#pendingIssue;
    if (pending === undefined) {
      const d = deferred<IssuedConfiguration | undefined>();
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#pendingIssue?.deferred === d) this.#pendingIssue = undefined;
        this.#issue(false).then(d.resolve, (err: unknown) => {
          this.#log.error('cannot issue a ring configuration', { err });
          d.reject(err);
        });
      }, COALESCE_MS);
      this.#timers.add(timer);
      pending = { deferred: d, timer };
      this.#pendingIssue = pending;
    }
    return pending.deferred.promise;
  }

  /**
   * Best effort: to every roster peer connected to this bootstrap right now, and to banned ones, so
   * that a banned peer learns it at once instead of at its next poll.
   */
  #push(issued: IssuedConfiguration): void {
    if (this.#stopped) return;
    const members = new Set([...issued.config.roster.map((e) => e.peerId), ...issued.config.bans.map((b) => b.peerId)]);
    const targets = new Map<string, PeerId>();
    for (const c of this.#host.getConnections()) {
      const id = c.remotePeer.toString();
      if (c.status === 'open' && members.has(id)) targets.set(id, c.remotePeer);
    }
    if (targets.size === 0) return;
    const payload = ime.v1.RingRequest.encode({ version: WIRE_VERSION, configuration: { configuration: issued.signed, hops: 1 } }).finish();
    const log = this.#log.child('push');
    for (const [id, peer] of targets) {
      this.counters.inc('ConfigurationPushes');
      this.#ringRpc.request(peer, payload).then(
        (bytes) => {
          try {
            const response = decodeWire(ime.v1.RingResponse, bytes, MAX_ACK_BYTES, 'ring response');
            log.debug('configuration pushed', { peerId: id, sequence: issued.config.sequence, accepted: response.configuration?.accepted ?? false });
          } catch {
            log.debug('configuration pushed; the answer was not readable', { peerId: id });
          }
        },
        (err: unknown) => log.debug('configuration push failed', { peerId: id, code: isImeError(err) ? err.code : 'E_INTERNAL' }),
      );
    }
  }

  // --- bootstrap sync ------------------------------------------------------------------------------

  #scheduleSync(): void {
    if (this.#stopped || this.#syncPeers.length === 0 || this.#syncSoon !== undefined) return;
    this.#syncSoon = setTimeout(() => {
      this.#syncSoon = undefined;
      this.#syncAll();
    }, COALESCE_MS);
  }

  #syncAll(): void {
    for (const peer of this.#syncPeers) {
      if (peer.running !== undefined) {
        // One exchange per peer at a time; a change during one is sent by the next.
        peer.again = true;
        continue;
      }
      peer.running = this.#syncWith(peer).finally(() => {
        peer.running = undefined;
        if (peer.again && !this.#stopped) {
          peer.again = false;
          this.#syncAll();
        }
      });
    }
  }

  /**
   * One exchange with a peer bootstrap: what changed here since the last successful exchange (or
   * everything, every FULL_SYNC_EVERY rounds and after a failure), and everything it has back.
   */
  async #syncWith(peer: SyncPeer): Promise<void> {
    const log = this.#log.child('sync');
    // Send entries only with the document that reflects them (see answerSync).
    await this.#context.settled();
    const full = peer.failures > 0 || peer.rounds % FULL_SYNC_EVERY === 0;
    const version = this.#state.version;
    const entries = this.#state.wireEntries(full ? 0 : peer.sentVersion);
    try {
      const served = this.#current?.signed;
      const request = ime.v1.BootstrapSyncRequest.encode({
        version: WIRE_VERSION,
        entries,
        configurationSequence: this.#state.sequence,
        ...(served ? { configuration: served } : {}),
      }).finish();
      if (request.length > MAX_SYNC_BYTES) throw new ImeError('E_SYNC_TOO_LARGE', `the state is ${request.length} bytes, over the ${MAX_SYNC_BYTES}-byte sync limit`);
      const bytes = await this.#syncRpc.request(peer.id, request);
      const response = decodeSync(ime.v1.BootstrapSyncResponse, bytes, 'bootstrap sync response');
      peer.sentVersion = version;
      peer.rounds++;
      await mergeSync(this.#context, response, peer.peerId);
      if (peer.failures >= SYNC_FAILURES_ALERT) log.info('peer bootstrap reachable again', { peerId: peer.peerId });
      peer.failures = 0;
      peer.lastSyncMs = this.#now();
      this.counters.inc('BootstrapSyncs');
      this.alerts.clear('PeerBootstrapUnreachable', peer.peerId);
    } catch (err) {
      if (this.#stopped) return;
      peer.failures++;
      this.counters.inc('BootstrapSyncFailures');
      const code = isImeError(err) ? err.code : 'E_INTERNAL';
      log.debug('bootstrap sync failed', { peerId: peer.peerId, code, message: (err as Error).message });
      if (peer.failures >= SYNC_FAILURES_ALERT) {
        this.alerts.raise('PeerBootstrapUnreachable', {
          severity: 'warning',
          key: peer.peerId,
          details: { peerId: peer.peerId, address: peer.address, failures: peer.failures, code },
          throttleMs: 3_600_000,
        });
      }
    }
  }

  #afterMerge(result: MergeResult, from: string, offered: ime.v1.ISignedRingConfiguration | null | undefined): void {
    const log = this.#log.child('sync');
    if (result.refused.length > 0) {
      log.warn('entries from another bootstrap were refused', { from, count: result.refused.length, first: result.refused[0] });
    }
    const adopted = offered ? this.#adopt(offered, from) : false;
    if (result.changed.length === 0) return;
    log.info('state merged from another bootstrap', { from, changed: result.changed.length, adopted });
    if (!adopted) this.#requestIssue().catch(() => undefined);
    // Passed on, so a third bootstrap learns it without waiting for its own round with `from`.
    this.#scheduleSync();
  }

  /**
   * Serves another bootstrap's newer configuration when it says exactly what this bootstrap's state
   * says (the bootstrap list aside), instead of signing the same content under a second sequence:
   * both bootstraps then serve one document and peers fetch it once.
   */
  #adopt(offered: ime.v1.ISignedRingConfiguration, from: string): boolean {
    let config: RingConfiguration;
    try {
      config = verifySignedRingConfiguration(
        offered,
        { authorityCertificateDer: this.#state.authority.certificateDer },
        { nowMs: this.#now(), ...(this.#current ? { knownSequence: this.#current.config.sequence } : {}) },
      );
    } catch {
      return false; // older than ours, or not from this authority: nothing to adopt
    }
    const { content } = configurationContent(this.#state, this.#base, this.#bootstrapEntries(), this.#now());
    if (contentKey(content, { withBootstraps: false }) !== contentKey(config, { withBootstraps: false })) return false;
    const signed = decodeSignedRingConfiguration(encodeSignedRingConfiguration(offered));
    const encoded = encodeSignedRingConfiguration(signed);
    this.#current = { config, signed, encoded, key: contentKey(content) };
    this.#state.noteSequence(config.sequence);
    this.#state.saveConfiguration(encoded, config.sequence).catch((err: unknown) => this.#log.error('cannot store an adopted configuration', { err }));
    this.#log.child('sync').info('serving the configuration issued by another bootstrap', { from, sequence: config.sequence });
    return true;
  }

  // --- timers and counters ------------------------------------------------------------------------

  #startTimers(): void {
    const every = (ms: number, fn: () => unknown): void => {
      const run = (): void => {
        if (this.#stopped) return;
        Promise.resolve()
          .then(fn)
          .catch((err: unknown) => this.#log.error('periodic task failed', { err }))
          .finally(() => {
            if (this.#stopped) return;
            const t = setTimeout(() => {
              this.#timers.delete(t);
              run();
            }, ms);
            this.#timers.add(t);
          });
      };
      const t = setTimeout(() => {
        this.#timers.delete(t);
        run();
      }, ms);
      this.#timers.add(t);
    };
    // Re-signs before peers could hold an expired configuration, and drops expired certificates.
    every(Math.min(MAX_HOUSEKEEPING_MS, Math.max(1000, this.#lifetimeMs / 8)), () => this.#issue(false));
    if (this.#syncPeers.length > 0) {
      every(this.#config.syncIntervalSec * 1000, () => this.#syncAll());
      this.#syncAll();
    }
  }

  #defineCounters(): void {
    this.counters
      .define('EnrollmentsAccepted', 'Enrollments and refreshes answered with a certificate')
      .define('EnrollmentsRefused', 'Enrollments and refreshes refused')
      .define('ConfigurationsIssued', 'Ring configurations signed')
      .define('ConfigurationPolls', 'Configuration polls answered')
      .define('ConfigurationPushes', 'Configurations pushed to connected roster peers')
      .define('BootstrapSyncs', 'State exchanges with peer bootstraps that succeeded')
      .define('BootstrapSyncFailures', 'State exchanges with peer bootstraps that failed')
      .gauge('RosterSize', 'Peers on the roster of the configuration served now', () => this.#current?.config.roster.length ?? 0)
      .gauge('RingConfigurationSequence', 'Sequence of the configuration served now', () => this.#current?.config.sequence ?? 0)
      .gauge('PendingAdmission', 'Enrolled peers waiting for manual admission', () =>
        this.#state.enrollments().filter((e) => !e.value.admitted && !this.#state.isBanned(e.peerId)).length,
      )
      .gauge('BannedPeers', 'Bans in force', () => this.#state.bans().length);
  }
}

/**
 * Opens (or creates) a bootstrap's state without serving: the libp2p identity, and the ring
 * authority — created, or imported from `importState` when the data directory has none yet. Used by
 * `start`, and by `ime ring up` to learn a bootstrap's PeerId before the other bootstraps start.
 */
export async function prepareBootstrap(config: BootstrapConfig, options: BootstrapServerOptions = {}): Promise<{ peerId: string; authorityFingerprint: string }> {
  checkBootstrapConfig(config);
  const db = await openDatabase(join(config.dataDir, 'db'));
  try {
    const state = await prepareState(db, config, options.now ?? Date.now, options.log ?? silentLogger());
    return { peerId: state.peerId, authorityFingerprint: state.authority.fingerprintHex };
  } finally {
    await db.close();
  }
}

async function prepareState(db: Database, config: BootstrapConfig, now: () => number, log: Logger): Promise<BootstrapState> {
  const identity = config.identityKeyFile === undefined ? undefined : await readIdentityKeyFile(config.identityKeyFile);
  const state = await BootstrapState.open(db, { now, ...(identity === undefined ? {} : { identity }) });
  if (!state.hasAuthority) {
    if (config.importState !== undefined) {
      await state.importState(await readStateFile(config.importState));
      log.info('bootstrap state imported', { file: config.importState, entries: state.entries().length, sequence: state.sequence });
    } else {
      await state.initialize(config.ringName);
      log.info('ring authority created', { ring: config.ringName, authority: state.authority.fingerprintHex });
    }
  } else if (config.importState !== undefined) {
    log.info('importState ignored: this data directory already holds the ring authority', { file: config.importState });
  }
  if (state.ring.name !== config.ringName) {
    throw new ImeError(
      'E_STATE_RING_NAME',
      `this bootstrap's ring is ${JSON.stringify(state.ring.name)}, but the configuration says ringName ${JSON.stringify(config.ringName)}; set ringName to the ring's name`,
    );
  }
  return state;
}

/** Reads an exported state file: E_STATE_FORMAT when it is not one (the content is never quoted: it holds the CA key). */
export async function readStateFile(path: string): Promise<unknown> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new ImeError('E_STATE_FILE', `${path} is not a regular file`);
    if (info.size > MAX_STATE_FILE_BYTES) throw new ImeError('E_STATE_FILE', `${path} is larger than ${MAX_STATE_FILE_BYTES} bytes`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isImeError(err)) throw err;
    throw new ImeError('E_STATE_FILE', `cannot read the state file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ImeError('E_STATE_FORMAT', `${path} is not a JSON document`);
  }
}
