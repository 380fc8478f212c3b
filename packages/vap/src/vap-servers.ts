import { X509Certificate, randomBytes } from 'node:crypto';
import { ImeError, describeInput, isImeError } from '@ime/core';
import { type Database, type Logger, getJson, keyOf, putJson } from '@ime/runtime';
import type { VapRingHealth } from './vap-codec.js';
import { DEFAULT_VAP_ITERATIONS, VapReplayCache, type VapVerifier, createVapVerifier } from './vap-digest.js';
import { VapInstanceServer } from './vap-server.js';
import { applySetting, checkCredentials, completeInstanceSettings, parseInstanceName } from './vap-settings.js';
import type {
  LearnedRoute,
  VapBackend,
  VapCredentials,
  VapInstanceSettings,
  VapNotice,
  VapServerEvents,
  VapSessionInfo,
} from './vap-types.js';

/**
 * The VAP instances of one peer (`add/set/show ime vapserver`, `add ime vapusercredentials`), kept
 * in the peer's LevelDB under `vap/`:
 *
 *   vap/instance/<name>     VapInstanceSettings
 *   vap/credentials/<name>  { username, salt, iterations, key, ticketPassword, epoch } — no password
 *   vap/trusted/<sha256>    { pem } a call-manager certificate trusted by encrypted instances
 *   vap/secret              { secret } behind the salts shown to unknown usernames
 *
 * Changes are applied to the running listeners at once and persisted only when they took effect.
 */

export type VapServersErrorCode =
  | 'E_VAP_SERVER_CONFLICT'
  | 'E_VAP_SERVER_NOT_FOUND'
  | 'E_VAP_PORT_CONFLICT'
  | 'E_VAP_BAD_CERTIFICATE'
  | 'E_VAP_CERTIFICATE_NOT_FOUND'
  /** Sent to the call managers of an instance that was disabled or removed. */
  | 'E_VAP_DISABLED'
  /** Sent to the call managers of an instance whose mode, port or trusted certificates changed. */
  | 'E_VAP_RECONFIGURED';

export interface VapServersOptions {
  readonly db: Database;
  readonly backend: VapBackend;
  readonly events?: VapServerEvents;
  /** The peer's own certificate and key for encrypted instances (read at each (re)start). */
  readonly tls: () => { certPem: string; keyPem: string };
  readonly peerId: () => string;
  readonly ringHealth: () => VapRingHealth;
  readonly log?: Logger;
  /** Listen address for instances added without one (default 0.0.0.0). */
  readonly defaultHost?: string;
  readonly handshakeTimeoutMs?: number;
  readonly maxFrameBytes?: number;
  /** PBKDF2 iterations for new credentials (default 10 000). */
  readonly iterations?: number;
}

export interface VapInstanceStatus {
  readonly settings: VapInstanceSettings;
  readonly listening: boolean;
  /** The bound port while listening (the real one when settings.port is 0). */
  readonly boundPort: number | undefined;
  readonly connections: number;
  readonly registered: number;
  readonly hasCredentials: boolean;
  /** Why an enabled instance is not listening (e.g. its port was taken at start-up). */
  readonly lastError?: { readonly code: string; readonly message: string };
}

export interface VapCredentialSummary {
  readonly instance: string;
  readonly username: string;
  readonly epoch: number;
}

export interface VapTicketSecret {
  readonly ticketPassword: string;
  readonly epoch: number;
}

export interface VapTrustedCertificate {
  /** SHA-256 fingerprint, colon-separated hex (as `openssl x509 -fingerprint -sha256` prints it). */
  readonly fingerprint: string;
  readonly subject: string;
  readonly validTo: string;
  readonly pem: string;
}

interface StoredCredentials {
  readonly username: string;
  readonly salt: string;
  readonly iterations: number;
  readonly key: string;
  readonly ticketPassword: string;
  readonly epoch: number;
}

interface LiveCredentials {
  readonly verifier: VapVerifier;
  readonly ticketPassword: string;
  readonly epoch: number;
}

interface Instance {
  settings: VapInstanceSettings;
  server: VapInstanceServer | undefined;
  lastError: { code: string; message: string } | undefined;
}

const PREFIX = 'vap/';
const INSTANCE = `${PREFIX}instance/`;
const CREDENTIALS = `${PREFIX}credentials/`;
const TRUSTED = `${PREFIX}trusted/`;
const SECRET = `${PREFIX}secret`;
const MAX_CERTIFICATE_PEM = 64 * 1024;

export class VapServers {
  readonly #options: VapServersOptions;
  readonly #db: Database;
  readonly #secret: Uint8Array;
  readonly #replay = new VapReplayCache();
  readonly #instances = new Map<string, Instance>();
  readonly #credentials = new Map<string, LiveCredentials>();
  readonly #trusted = new Map<string, VapTrustedCertificate>();
  #lock: Promise<unknown> = Promise.resolve();
  #stopped = false;

  private constructor(options: VapServersOptions, secret: Uint8Array) {
    this.#options = options;
    this.#db = options.db;
    this.#secret = secret;
  }

  /** Loads the registry and starts every enabled instance; one that cannot listen is reported, not fatal. */
  static async open(options: VapServersOptions): Promise<VapServers> {
    const { db } = options;
    let stored = await getJson<{ secret: string }>(db, SECRET);
    if (!stored || typeof stored.secret !== 'string') {
      stored = { secret: Buffer.from(randomBytes(32)).toString('base64') };
      await putJson(db, SECRET, stored);
    }
    const servers = new VapServers(options, new Uint8Array(Buffer.from(stored.secret, 'base64')));
    for (const [name, value] of await readPrefix<VapInstanceSettings>(db, INSTANCE)) {
      try {
        servers.#instances.set(name, { settings: completeInstanceSettings(value), server: undefined, lastError: undefined });
      } catch (err) {
        options.log?.error('stored VAP instance is invalid; ignored', { instance: name, err });
      }
    }
    for (const [name, value] of await readPrefix<StoredCredentials>(db, CREDENTIALS)) {
      servers.#credentials.set(name, {
        verifier: {
          username: value.username,
          salt: new Uint8Array(Buffer.from(value.salt, 'base64')),
          iterations: value.iterations,
          key: new Uint8Array(Buffer.from(value.key, 'base64')),
        },
        ticketPassword: value.ticketPassword,
        epoch: value.epoch,
      });
    }
    for (const [fingerprint, value] of await readPrefix<{ pem: string }>(db, TRUSTED)) {
      try {
        servers.#trusted.set(fingerprint, describeCertificate(value.pem));
      } catch (err) {
        options.log?.error('stored trusted VAP certificate is invalid; ignored', { fingerprint, err });
      }
    }
    for (const instance of servers.#instances.values()) {
      if (!instance.settings.enabled) continue;
      try {
        await servers.#start(instance);
      } catch (err) {
        options.log?.error('VAP instance did not start', { instance: instance.settings.name, err });
      }
    }
    return servers;
  }

  // -------------------------------------------------------------------------------------------
  // Instances

  /** `add ime vapserver`: defaults per SPEC §5; starts listening when enabled. */
  add(input: Partial<VapInstanceSettings> & { name: string }): Promise<VapInstanceStatus> {
    return this.#exclusive(async () => {
      const settings = completeInstanceSettings(input, this.#options.defaultHost ?? '0.0.0.0');
      if (this.#instances.has(settings.name)) {
        throw new ImeError('E_VAP_SERVER_CONFLICT', `VAP instance ${JSON.stringify(settings.name)} already exists`);
      }
      this.#checkPort(settings);
      const instance: Instance = { settings, server: undefined, lastError: undefined };
      if (settings.enabled) await this.#start(instance);
      try {
        await putJson(this.#db, INSTANCE + settings.name, settings);
      } catch (err) {
        await instance.server?.stop();
        throw err;
      }
      this.#instances.set(settings.name, instance);
      return this.#status(instance);
    });
  }

  /**
   * `set ime vapserver <field> <name> <value>`. A new mode or port restarts the listener, closing its
   * connections (the call managers reconnect); enabled=false closes them too. Keepalive and maximum
   * connections apply to sessions and connections that start afterwards.
   */
  set(name: string, field: string, value: string): Promise<VapInstanceStatus> {
    return this.#exclusive(async () => {
      const instance = this.#get(name);
      const before = instance.settings;
      const after = applySetting(before, field, value);
      if (after.port !== before.port) this.#checkPort(after);
      const restart = after.authenticationMode !== before.authenticationMode || after.port !== before.port;
      if (!after.enabled) {
        await this.#stopInstance(instance, 'E_VAP_DISABLED', 'the VAP instance was disabled');
        instance.settings = after;
      } else if (!before.enabled || restart || !instance.server) {
        await this.#stopInstance(instance, 'E_VAP_RECONFIGURED', 'the VAP instance changed its mode or port: reconnect');
        instance.settings = after;
        try {
          await this.#start(instance);
        } catch (err) {
          instance.settings = before;
          if (before.enabled) await this.#start(instance).catch(() => undefined);
          throw err;
        }
      } else {
        instance.settings = after;
        instance.server?.updateLimits({
          keepaliveIntervalSec: after.keepaliveIntervalSec,
          maxConnectionsAllowed: after.maxConnectionsAllowed,
        });
      }
      await putJson(this.#db, INSTANCE + name, instance.settings);
      return this.#status(instance);
    });
  }

  /** Stops and forgets an instance and its credentials. */
  remove(name: string): Promise<void> {
    return this.#exclusive(async () => {
      const instance = this.#get(name);
      await this.#stopInstance(instance, 'E_VAP_DISABLED', 'the VAP instance was removed');
      await this.#db.batch([
        { type: 'del', key: keyOf(INSTANCE + name) },
        { type: 'del', key: keyOf(CREDENTIALS + name) },
      ]);
      this.#instances.delete(name);
      this.#credentials.delete(name);
    });
  }

  list(): VapInstanceStatus[] {
    return [...this.#instances.values()].sort((a, b) => a.settings.name.localeCompare(b.settings.name)).map((i) => this.#status(i));
  }

  status(name: string): VapInstanceStatus {
    return this.#status(this.#get(name));
  }

  // -------------------------------------------------------------------------------------------
  // Credentials

  /**
   * `add ime vapusercredentials` for one instance: replaces its user. Only the PBKDF2 key is kept of
   * the password; the ticket password and epoch are kept as they are, for signing tickets.
   */
  setCredentials(instanceName: string, creds: VapCredentials): Promise<VapCredentialSummary> {
    return this.#exclusive(async () => {
      this.#get(instanceName);
      const { username, password, ticketPassword, epoch } = checkCredentials(creds);
      const verifier = createVapVerifier(username, password, { iterations: this.#options.iterations ?? DEFAULT_VAP_ITERATIONS });
      const stored: StoredCredentials = {
        username,
        salt: Buffer.from(verifier.salt).toString('base64'),
        iterations: verifier.iterations,
        key: Buffer.from(verifier.key).toString('base64'),
        ticketPassword,
        epoch,
      };
      await putJson(this.#db, CREDENTIALS + instanceName, stored);
      this.#credentials.set(instanceName, { verifier, ticketPassword, epoch });
      this.#options.log?.info('VAP credentials set', { instance: instanceName, username, epoch });
      return { instance: instanceName, username, epoch };
    });
  }

  removeCredentials(instanceName: string): Promise<void> {
    return this.#exclusive(async () => {
      this.#get(instanceName);
      await this.#db.del(keyOf(CREDENTIALS + instanceName));
      this.#credentials.delete(instanceName);
    });
  }

  /** Without secrets: what `show` commands may print. */
  credentials(): VapCredentialSummary[] {
    return [...this.#credentials.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([instance, c]) => ({ instance, username: c.verifier.username, epoch: c.epoch }));
  }

  /** The ticket password and epoch of an instance, for the validator's ticket signing. A secret. */
  ticketSecret(instanceName: string): VapTicketSecret | undefined {
    const c = this.#credentials.get(instanceName);
    return c ? { ticketPassword: c.ticketPassword, epoch: c.epoch } : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Trusted call-manager certificates (encrypted mode)

  /**
   * `set cert import trust IME`: a call manager's certificate that encrypted instances accept from
   * now on. Established sessions are kept.
   */
  trustCertificate(pem: string): Promise<VapTrustedCertificate> {
    return this.#exclusive(async () => {
      const cert = describeCertificate(pem);
      await putJson(this.#db, TRUSTED + cert.fingerprint, { pem: cert.pem });
      this.#trusted.set(cert.fingerprint, cert);
      this.#refreshTls();
      this.#options.log?.info('VAP trusted certificate added', { fingerprint: cert.fingerprint, subject: cert.subject });
      return cert;
    });
  }

  /** Removes a trusted certificate and restarts encrypted instances, so its holder is disconnected. */
  untrustCertificate(fingerprint: string): Promise<void> {
    return this.#exclusive(async () => {
      const key = normaliseFingerprint(fingerprint);
      if (!this.#trusted.has(key)) {
        throw new ImeError('E_VAP_CERTIFICATE_NOT_FOUND', `no trusted VAP certificate has fingerprint ${describeInput(fingerprint)}`);
      }
      await this.#db.del(keyOf(TRUSTED + key));
      this.#trusted.delete(key);
      for (const instance of this.#instances.values()) {
        if (instance.settings.authenticationMode !== 'encrypted' || !instance.server) continue;
        await this.#stopInstance(instance, 'E_VAP_RECONFIGURED', 'the trusted certificates changed: reconnect');
        await this.#start(instance).catch((err: unknown) => this.#options.log?.error('VAP instance did not restart', { instance: instance.settings.name, err }));
      }
    });
  }

  trustedCertificates(): VapTrustedCertificate[] {
    return [...this.#trusted.values()].sort((a, b) => a.fingerprint.localeCompare(b.fingerprint));
  }

  /** The peer's own certificate changed (renewal): encrypted instances present the new one. */
  refreshTls(): void {
    this.#refreshTls();
  }

  // -------------------------------------------------------------------------------------------
  // Sessions

  sessions(): VapSessionInfo[] {
    return [...this.#instances.values()].flatMap((i) => i.server?.sessions() ?? []);
  }

  sessionsOf(instanceName: string): VapSessionInfo[] {
    return this.#get(instanceName).server?.sessions() ?? [];
  }

  /** Pushes routes to every registered session `filter` selects; returns how many got them. */
  pushRoutes(filter: (info: VapSessionInfo) => boolean, routes: readonly LearnedRoute[]): number {
    let n = 0;
    for (const i of this.#instances.values()) {
      for (const s of i.server?.registeredSessions() ?? []) if (filter(s.info()) && s.pushRoutes(routes)) n++;
    }
    return n;
  }

  notice(filter: (info: VapSessionInfo) => boolean, notice: VapNotice): number {
    let n = 0;
    for (const i of this.#instances.values()) {
      for (const s of i.server?.registeredSessions() ?? []) if (filter(s.info()) && s.notice(notice)) n++;
    }
    return n;
  }

  /** Stops every listener and closes every connection. The database stays open (the peer owns it). */
  stop(): Promise<void> {
    if (this.#stopped) return this.#lock.then(() => undefined);
    return this.#exclusive(async () => {
      this.#stopped = true;
      await Promise.all([...this.#instances.values()].map((i) => this.#stopInstance(i, 'E_VAP_SHUTDOWN', 'the peer is stopping')));
    });
  }

  // -------------------------------------------------------------------------------------------

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(() => {
      if (this.#stopped) throw new ImeError('E_VAP_SHUTDOWN', 'the VAP servers are stopped');
      return fn();
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  #get(name: string): Instance {
    const instance = typeof name === 'string' ? this.#instances.get(name) : undefined;
    if (!instance) {
      parseInstanceName(name);
      throw new ImeError('E_VAP_SERVER_NOT_FOUND', `no VAP instance is named ${describeInput(name)}`);
    }
    return instance;
  }

  /** The guide gives every instance its own port (L1686–L1696); 0 (any free port) never clashes. */
  #checkPort(settings: VapInstanceSettings): void {
    if (settings.port === 0) return;
    for (const other of this.#instances.values()) {
      if (other.settings.name !== settings.name && other.settings.port === settings.port) {
        throw new ImeError(
          'E_VAP_PORT_CONFLICT',
          `port ${settings.port} is already used by VAP instance ${JSON.stringify(other.settings.name)}`,
          { port: settings.port, instance: other.settings.name },
        );
      }
    }
  }

  async #start(instance: Instance): Promise<void> {
    const name = instance.settings.name;
    const server = new VapInstanceServer({
      settings: instance.settings,
      backend: this.#options.backend,
      ...(this.#options.events ? { events: this.#options.events } : {}),
      lookup: (username) => {
        const c = this.#credentials.get(name);
        return c && c.verifier.username === username ? c.verifier : undefined;
      },
      secret: this.#secret,
      replay: this.#replay,
      tls: () => ({ ...this.#options.tls(), trustedPems: [...this.#trusted.values()].map((t) => t.pem) }),
      peerId: this.#options.peerId,
      ringHealth: this.#options.ringHealth,
      ...(this.#options.log ? { log: this.#options.log } : {}),
      ...(this.#options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#options.handshakeTimeoutMs } : {}),
      ...(this.#options.maxFrameBytes !== undefined ? { maxFrameBytes: this.#options.maxFrameBytes } : {}),
    });
    try {
      await server.start();
      instance.server = server;
      instance.lastError = undefined;
    } catch (err) {
      instance.server = undefined;
      instance.lastError = isImeError(err)
        ? { code: err.code, message: err.message }
        : { code: 'E_VAP_LISTEN', message: (err as Error).message };
      throw isImeError(err) ? err : new ImeError('E_VAP_LISTEN', `VAP instance ${JSON.stringify(name)} cannot start`);
    }
  }

  async #stopInstance(instance: Instance, code: string, message: string): Promise<void> {
    const server = instance.server;
    instance.server = undefined;
    instance.lastError = undefined;
    await server?.stop(code, message);
  }

  #refreshTls(): void {
    for (const instance of this.#instances.values()) {
      try {
        instance.server?.refreshTls();
      } catch (err) {
        this.#options.log?.error('VAP instance kept its previous TLS material', { instance: instance.settings.name, err });
      }
    }
  }

  #status(instance: Instance): VapInstanceStatus {
    const server = instance.server;
    return {
      settings: instance.settings,
      listening: server?.listening ?? false,
      boundPort: server?.boundPort,
      connections: server?.connectionCount ?? 0,
      registered: server?.registeredCount ?? 0,
      hasCredentials: this.#credentials.has(instance.settings.name),
      ...(instance.lastError ? { lastError: instance.lastError } : {}),
    };
  }
}

async function readPrefix<T>(db: Database, prefix: string): Promise<[string, T][]> {
  const out: [string, T][] = [];
  const decoder = new TextDecoder();
  // Every key under the prefix: '/' + 1 is '0', so [prefix, prefix-without-slash + '0') is the range.
  const upper = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  for await (const [k, v] of db.iterator({ gte: keyOf(prefix), lt: keyOf(upper) })) {
    const name = decoder.decode(k).slice(prefix.length);
    try {
      out.push([name, JSON.parse(decoder.decode(v)) as T]);
    } catch {
      throw new ImeError('E_DB_CORRUPT', `the stored value ${prefix}${name} is not valid JSON`);
    }
  }
  return out;
}

function normaliseFingerprint(value: string): string {
  const hex = typeof value === 'string' ? value.replace(/:/g, '').toUpperCase() : '';
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new ImeError('E_VAP_BAD_CERTIFICATE', `${describeInput(value)} is not a SHA-256 fingerprint`);
  }
  return hex.match(/../g)!.join(':');
}

function describeCertificate(pem: string): VapTrustedCertificate {
  if (typeof pem !== 'string' || pem.length > MAX_CERTIFICATE_PEM) {
    throw new ImeError('E_VAP_BAD_CERTIFICATE', `a certificate must be PEM text of at most ${MAX_CERTIFICATE_PEM} characters`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) {
    throw new ImeError('E_VAP_BAD_CERTIFICATE', `expected one PEM certificate, found ${blocks.length}`);
  }
  const block = blocks[0] as string;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(block);
  } catch {
    throw new ImeError('E_VAP_BAD_CERTIFICATE', 'the PEM block is not an X.509 certificate');
  }
  return { fingerprint: x509.fingerprint256, subject: x509.subject.replace(/\n/g, ', '), validTo: new Date(x509.validTo).toISOString(), pem: `${block}\n` };
}
