import { randomBytes } from 'node:crypto';
import { type Server, type Socket, createServer as createNetServer } from 'node:net';
import { type Server as TlsServer, type TLSSocket, createServer as createTlsServer } from 'node:tls';
import { ImeError } from '@ime/core';
import type { Logger } from '@ime/runtime';
import { type VapRingHealth, writeErrorInfo } from './vap-codec.js';
import { DEFAULT_VAP_HANDSHAKE_TIMEOUT_MS, VapConnection, plainAddress } from './vap-connection.js';
import { VapAuthenticator, type VapReplayCache, type VapVerifier } from './vap-digest.js';
import { encodeVapFrame } from './vap-frame.js';
import { safely } from './safely.js';
import {
  DEFAULT_MAX_VAP_FRAME_BYTES,
  type VapBackend,
  type VapInstanceSettings,
  type VapServerEvents,
  type VapSession,
  type VapSessionInfo,
} from './vap-types.js';

/**
 * One VAP instance: a TCP listener (authenticated mode) or a mutual-TLS listener (encrypted mode) for
 * one VapInstanceSettings, and the connections it accepted. The registry (vap-servers.ts) owns the
 * settings and restarts instances; this class only listens and serves.
 */

export type VapServerErrorCode = 'E_VAP_LISTEN' | 'E_VAP_TLS_CONFIG' | 'E_VAP_TOO_MANY_CONNECTIONS' | 'E_VAP_SHUTDOWN';

/** What an encrypted instance presents and whom it trusts. */
export interface VapTlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  /** Call-manager certificates (or their CAs) allowed to connect. Empty: nobody can. */
  readonly trustedPems: readonly string[];
}

export interface VapInstanceServerOptions {
  readonly settings: VapInstanceSettings;
  readonly backend: VapBackend;
  readonly events?: VapServerEvents;
  /** The instance's stored verifier for `username`, or undefined when that user is not configured. */
  readonly lookup: (username: string) => VapVerifier | undefined;
  /** Per-server secret behind the salts shown to unknown usernames; random when absent. */
  readonly secret?: Uint8Array;
  readonly replay?: VapReplayCache;
  /** Required in encrypted mode; read at each start. */
  readonly tls?: () => VapTlsMaterial;
  readonly peerId: () => string;
  readonly ringHealth: () => VapRingHealth;
  readonly log?: Logger;
  readonly handshakeTimeoutMs?: number;
  readonly maxFrameBytes?: number;
}

const STOP_GRACE_MS = 1_000;

export class VapInstanceServer {
  #settings: VapInstanceSettings;
  readonly #options: VapInstanceServerOptions;
  readonly #authenticator: VapAuthenticator;
  readonly #connections = new Set<VapConnection>();
  /** Every accepted socket, refused and still-handshaking ones included, so stop() can end them. */
  readonly #sockets = new Set<Socket>();
  readonly #addresses = new WeakMap<Socket, string>();
  #server: Server | undefined;
  #boundPort: number | undefined;

  constructor(options: VapInstanceServerOptions) {
    this.#options = options;
    this.#settings = options.settings;
    this.#authenticator = new VapAuthenticator({
      secret: options.secret ?? new Uint8Array(randomBytes(32)),
      lookup: options.lookup,
      ...(options.replay ? { replay: options.replay } : {}),
    });
  }

  get name(): string {
    return this.#settings.name;
  }

  get settings(): VapInstanceSettings {
    return this.#settings;
  }

  /** Keepalive and connection limit apply to sessions and connections that start afterwards. */
  updateLimits(limits: { keepaliveIntervalSec?: number; maxConnectionsAllowed?: number }): void {
    this.#settings = { ...this.#settings, ...limits };
  }

  get listening(): boolean {
    return this.#server?.listening === true;
  }

  /** The port actually bound (differs from settings.port when 0 was asked). */
  get boundPort(): number | undefined {
    return this.#boundPort;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  get registeredCount(): number {
    let n = 0;
    for (const c of this.#connections) if (c.registered) n++;
    return n;
  }

  sessions(): VapSessionInfo[] {
    return [...this.#connections].map((c) => c.info()).sort((a, b) => a.handle - b.handle);
  }

  /** Registered sessions, for pushes. */
  registeredSessions(): VapSession[] {
    return [...this.#connections].filter((c) => c.registered).map((c) => c.session);
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = this.#createServer();
    const { host, port, name } = this.#settings;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        reject(
          new ImeError(
            'E_VAP_LISTEN',
            `VAP instance ${JSON.stringify(name)} cannot listen on ${host}:${port}: ${listenProblem(err)}`,
            { host, port, cause: err.code },
          ),
        );
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port, exclusive: true });
    });
    server.on('error', (err) => this.#options.log?.error('VAP listener error', { instance: name, err }));
    const address = server.address();
    this.#boundPort = typeof address === 'object' && address ? address.port : port;
    this.#server = server;
    this.#options.log?.info('VAP instance listening', {
      instance: name,
      host,
      port: this.#boundPort,
      mode: this.#settings.authenticationMode,
    });
  }

  /**
   * Encrypted mode: re-reads the certificate, key and trusted certificates for connections that start
   * from now on; established sessions are kept.
   */
  refreshTls(): void {
    const server = this.#server;
    if (!server || this.#settings.authenticationMode !== 'encrypted' || !this.#options.tls) return;
    const material = this.#options.tls();
    try {
      (server as TlsServer).setSecureContext({ cert: material.certPem, key: material.keyPem, ca: [...material.trustedPems] });
    } catch (err) {
      throw new ImeError('E_VAP_TLS_CONFIG', `VAP instance ${JSON.stringify(this.#settings.name)}: the new TLS material is not usable (${(err as Error).message})`);
    }
  }

  /** Stops listening and closes every connection with an error frame naming `code`. */
  async stop(code = 'E_VAP_SHUTDOWN', message = 'the VAP server is stopping'): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    this.#boundPort = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of [...this.#connections]) c.close(code, message);
    const grace = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, STOP_GRACE_MS);
    await closed;
    clearTimeout(grace);
    this.#options.log?.info('VAP instance stopped', { instance: this.#settings.name, code });
  }

  #createServer(): Server {
    const { authenticationMode } = this.#settings;
    const handshakeTimeout = this.#options.handshakeTimeoutMs ?? DEFAULT_VAP_HANDSHAKE_TIMEOUT_MS;
    if (authenticationMode === 'authenticated') {
      const server = createNetServer({ noDelay: true });
      server.on('connection', (socket) => this.#track(socket) && this.#accept(socket));
      return server;
    }
    if (!this.#options.tls) {
      throw new ImeError('E_VAP_TLS_CONFIG', `VAP instance ${JSON.stringify(this.#settings.name)} is encrypted but has no certificate`);
    }
    const material = this.#options.tls();
    if (material.trustedPems.length === 0) {
      this.#options.log?.warn('encrypted VAP instance trusts no call-manager certificate: every connection will be refused', {
        instance: this.#settings.name,
      });
    }
    let server: Server;
    try {
      server = createTlsServer({
        cert: material.certPem,
        key: material.keyPem,
        // An explicit list, even empty, replaces Node's public CA bundle: only imported call-manager
        // certificates may connect (guide L2558–L2602).
        ca: [...material.trustedPems],
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        handshakeTimeout,
      });
    } catch (err) {
      throw new ImeError(
        'E_VAP_TLS_CONFIG',
        `VAP instance ${JSON.stringify(this.#settings.name)}: the TLS certificate, key or trusted certificates are not usable (${(err as Error).message})`,
      );
    }
    server.on('connection', (socket: Socket) => this.#track(socket));
    server.on('secureConnection', (socket: TLSSocket) => this.#accept(socket));
    server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      // Node verifies the client's certificate after the handshake and then destroys the socket, so
      // the error is a bare ECONNRESET: the reason is in authorizationError, and the address only on
      // the underlying TCP socket.
      const reason = socket.authorizationError ? String(socket.authorizationError) : (err.code ?? err.message);
      const parent = (socket as unknown as { _parent?: Socket })._parent;
      const event = {
        instance: this.#settings.name,
        clientAddress: plainAddress(socket.remoteAddress ?? (parent && this.#addresses.get(parent))),
        code: 'E_VAP_TLS',
        message: `TLS handshake failed: ${reason}`,
      };
      this.#options.log?.info('VAP TLS handshake failed', event);
      safely(() => this.#options.events?.onProtocolError?.(event));
    });
    return server;
  }

  #track(socket: Socket): boolean {
    this.#sockets.add(socket);
    // Kept because a destroyed socket no longer knows its peer, and TLS failures are reported after.
    if (socket.remoteAddress) this.#addresses.set(socket, socket.remoteAddress);
    socket.once('close', () => this.#sockets.delete(socket));
    // Errors on sockets that never became connections (refused, failed TLS) must not go unhandled.
    socket.on('error', () => undefined);
    return true;
  }

  #accept(socket: Socket): void {
    try {
      const { name, maxConnectionsAllowed } = this.#settings;
      if (this.#connections.size >= maxConnectionsAllowed && !this.#displaceUnregistered(maxConnectionsAllowed)) {
        this.#refuse(socket, `VAP instance ${JSON.stringify(name)} already has its maximum of ${maxConnectionsAllowed} connections`);
        return;
      }
      const connection = new VapConnection(socket, {
        instance: name,
        keepaliveIntervalSec: () => this.#settings.keepaliveIntervalSec,
        authenticator: this.#authenticator,
        backend: this.#options.backend,
        events: this.#options.events ?? {},
        peerId: this.#options.peerId,
        ringHealth: this.#options.ringHealth,
        log: this.#options.log,
        handshakeTimeoutMs: this.#options.handshakeTimeoutMs ?? DEFAULT_VAP_HANDSHAKE_TIMEOUT_MS,
        maxFrameBytes: this.#options.maxFrameBytes ?? DEFAULT_MAX_VAP_FRAME_BYTES,
        onClosed: (c) => this.#connections.delete(c),
      });
      this.#connections.add(connection);
    } catch (err) {
      this.#options.log?.error('VAP accept failed', { instance: this.#settings.name, err });
      socket.destroy();
    }
  }

  /**
   * A full instance makes room by closing its oldest connection that has not registered yet. Slots are
   * for call managers, not for sockets that wait: otherwise a flood of connections that never
   * authenticate (each held until the handshake timeout) locks out a call manager that has to
   * reconnect. Registered sessions are never displaced; a flood only cycles the unregistered slots,
   * and a real call manager registers within a round trip of connecting.
   */
  #displaceUnregistered(max: number): boolean {
    for (const c of this.#connections) {
      if (c.registered || c.closed) continue;
      const clientAddress = c.clientAddress;
      const reason = `VAP instance ${JSON.stringify(this.#settings.name)} is full (${max} connections): a newer connection took the place of this one, which had not registered`;
      c.close('E_VAP_TOO_MANY_CONNECTIONS', reason);
      this.#connections.delete(c);
      this.#options.log?.warn('VAP connection displaced', { instance: this.#settings.name, clientAddress, reason });
      safely(() => this.#options.events?.onConnectionRefused?.({ instance: this.#settings.name, clientAddress, reason }));
      return true;
    }
    return false;
  }

  #refuse(socket: Socket, reason: string): void {
    const clientAddress = plainAddress(socket.remoteAddress);
    // Read and drop whatever it sent (its Hello), so its FIN is seen and the socket closes at once.
    socket.resume();
    socket.end(encodeVapFrame({ sequence: 1, error: writeErrorInfo('E_VAP_TOO_MANY_CONNECTIONS', reason) }));
    setTimeout(() => socket.destroy(), STOP_GRACE_MS).unref();
    this.#options.log?.warn('VAP connection refused', { instance: this.#settings.name, clientAddress, reason });
    safely(() => this.#options.events?.onConnectionRefused?.({ instance: this.#settings.name, clientAddress, reason }));
  }
}

function listenProblem(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'the port is in use';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges)';
    case 'EADDRNOTAVAIL':
      return 'the address is not one of this host';
    default:
      return err.code ?? err.message;
  }
}
