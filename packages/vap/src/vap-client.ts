import { createHash, randomBytes } from 'node:crypto';
import { type Socket, connect as connectTcp } from 'node:net';
import { type TLSSocket, connect as connectTls } from 'node:tls';
import { ImeError, isImeError } from '@ime/core';
import {
  type VapRegistered,
  readAck,
  readChallenge,
  readErrorInfo,
  readLearnedRoutes,
  readNotice,
  readRegistered,
  writeEnrollment,
  writeErrorInfo,
  writeHello,
  writeVcr,
  writeVservice,
} from './vap-codec.js';
import { VAP_NONCE_BYTES, computeVapDigest, deriveVapKeyAsync } from './vap-digest.js';
import { VapFrameReader, encodeVapFrame, type VapFrameInit } from './vap-frame.js';
import { safely } from './safely.js';
import {
  DEFAULT_MAX_VAP_FRAME_BYTES,
  MISSED_KEEPALIVES_TO_CLOSE,
  type Enrollment,
  type LearnedRoute,
  type VapAck,
  type VapAuthenticationMode,
  type VapFrame,
  type VapNotice,
  type Vcr,
  type Vservice,
} from './vap-types.js';

/**
 * The call-manager side of VAP: connect, register with the digest, then publish, upload and receive
 * routes and notices. Outgoing content is not validated here (the server is the judge, and tests need
 * to send what a broken call manager would); incoming content is.
 */

export type VapClientErrorCode =
  | 'E_VAP_CONNECT'
  | 'E_VAP_TLS'
  | 'E_VAP_PROTOCOL'
  | 'E_VAP_CLOSED'
  | 'E_VAP_TIMEOUT'
  | 'E_VAP_KEEPALIVE';

export interface VapClientTlsOptions {
  /** Certificates this call manager trusts for the peer (its trust store). */
  readonly caPem: readonly string[];
  /** This call manager's certificate and key, which the peer must trust. */
  readonly certPem: string;
  readonly keyPem: string;
  /**
   * When set, the peer's certificate must also name this host. Without it, being in the trust store is
   * enough, as for CUCM (guide L2342–L2348).
   */
  readonly servername?: string;
}

export interface VapClientOptions {
  readonly host: string;
  readonly port: number;
  readonly mode: VapAuthenticationMode;
  readonly username: string;
  readonly password: string;
  readonly tls?: VapClientTlsOptions;
  /** For the TCP connect, the TLS handshake and registration together (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Per request (default 30 s). */
  readonly requestTimeoutMs?: number;
  readonly clientSoftware?: string;
  readonly maxFrameBytes?: number;
  /**
   * false: send no keepalives and do not watch the server's answers either, so a test can see the
   * server close a silent client. Default true.
   */
  readonly sendKeepalives?: boolean;
}

export const DEFAULT_VAP_CONNECT_TIMEOUT_MS = 10_000;
/** Route pushes kept for a listener that is not attached yet (each at most one frame). */
const MAX_UNHEARD_ROUTE_FRAMES = 64;
export const DEFAULT_VAP_REQUEST_TIMEOUT_MS = 30_000;

interface Pending {
  readonly resolve: (ack: VapAck) => void;
  readonly reject: (err: ImeError) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

type Phase = 'connecting' | 'handshake' | 'registered' | 'closed';

// Derived keys by (username, password, salt, iterations) digest, so reconnecting call managers in one
// simulator process pay PBKDF2 once. Bounded; holds password-equivalent keys of this process's users
// only.
const keyCache = new Map<string, Uint8Array>();
const KEY_CACHE_MAX = 4096;

async function cachedKey(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const id = createHash('sha256').update(password).update('\0').update(salt).update(`\0${iterations}`).digest('base64');
  const hit = keyCache.get(id);
  if (hit) return hit;
  const key = await deriveVapKeyAsync(password, salt, iterations);
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value as string);
  keyCache.set(id, key);
  return key;
}

export class VapClient {
  readonly #options: VapClientOptions;
  readonly #socket: Socket;
  readonly #reader: VapFrameReader;
  readonly #maxFrameBytes: number;
  readonly #pending = new Map<number, Pending>();
  readonly #routeListeners: ((routes: LearnedRoute[]) => void)[] = [];
  readonly #unheardRoutes: LearnedRoute[][] = [];
  readonly #noticeListeners: ((notice: VapNotice) => void)[] = [];
  readonly #closeListeners: ((code: string, message: string) => void)[] = [];
  readonly #clientNonce = new Uint8Array(randomBytes(VAP_NONCE_BYTES));
  readonly #closedPromise: Promise<void>;
  #phase: Phase = 'connecting';
  #registered: VapRegistered | undefined;
  #sequence = 0;
  #keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  #heardSinceTick = false;
  #missed = 0;
  /** A Challenge was answered: a second one, or Registered before it, is a violation. */
  #answered = false;
  #closeCode = 'E_VAP_CLOSED';
  #closeMessage = 'the connection closed';
  #handshake: { resolve: () => void; reject: (err: ImeError) => void };

  private constructor(options: VapClientOptions, socket: Socket, handshake: { resolve: () => void; reject: (err: ImeError) => void }) {
    this.#options = options;
    this.#socket = socket;
    this.#handshake = handshake;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_VAP_FRAME_BYTES;
    this.#reader = new VapFrameReader({ maxFrameBytes: this.#maxFrameBytes });
    this.#closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Connects, registers and resolves once the peer answered Registered. */
  static connect(options: VapClientOptions): Promise<VapClient> {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_VAP_CONNECT_TIMEOUT_MS;
    return new Promise<VapClient>((resolve, reject) => {
      let socket: Socket;
      try {
        socket = openSocket(options);
      } catch (err) {
        reject(isImeError(err) ? err : new ImeError('E_VAP_CONNECT', `cannot connect: ${(err as Error).message}`));
        return;
      }
      let settled = false;
      let client: VapClient;
      const timer = setTimeout(() => {
        const phase = client.#phase;
        const err =
          phase === 'connecting'
            ? new ImeError(
                options.mode === 'encrypted' && !socket.connecting ? 'E_VAP_TLS' : 'E_VAP_CONNECT',
                `${options.host}:${options.port} did not ${options.mode === 'encrypted' && !socket.connecting ? 'complete the TLS handshake' : 'accept the connection'} within ${timeoutMs} ms`,
              )
            : new ImeError('E_VAP_TIMEOUT', `${options.host}:${options.port} did not complete registration within ${timeoutMs} ms`);
        client.#fail(err);
      }, timeoutMs);
      client = new VapClient(options, socket, {
        resolve: () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(client);
        },
        reject: (err) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(err);
        },
      });
      client.#wire(options.mode === 'encrypted' ? 'secureConnect' : 'connect');
    });
  }

  /** What the peer said at registration. */
  get registered(): VapRegistered {
    return this.#registered as VapRegistered;
  }

  get closed(): boolean {
    return this.#phase === 'closed';
  }

  publishVservice(vservice: Vservice): Promise<VapAck> {
    return this.#request({ publishVservice: { vservice: writeVservice(vservice) } });
  }

  withdrawVservice(id: string): Promise<VapAck> {
    return this.#request({ withdrawVservice: { id } });
  }

  publishEnrollment(enrollment: Enrollment): Promise<VapAck> {
    return this.#request({ publishEnrollment: writeEnrollment(enrollment) });
  }

  uploadVcrs(vcrs: readonly Vcr[]): Promise<VapAck> {
    return this.#request({ uploadVcr: { records: vcrs.map(writeVcr) } });
  }

  /** Routes that arrived before any listener are handed to the first one. */
  onRoutes(listener: (routes: LearnedRoute[]) => void): void {
    this.#routeListeners.push(listener);
    for (const routes of this.#unheardRoutes.splice(0)) safely(() => listener(routes));
  }

  onNotice(listener: (notice: VapNotice) => void): void {
    this.#noticeListeners.push(listener);
  }

  /** Called once when the connection ends, with the peer's error code when it gave one. */
  onClose(listener: (code: string, message: string) => void): void {
    if (this.#phase === 'closed') {
      queueMicrotask(() => listener(this.#closeCode, this.#closeMessage));
      return;
    }
    this.#closeListeners.push(listener);
  }

  /** Closes the connection; resolves when the socket is gone. */
  close(): Promise<void> {
    this.#shutdown('E_VAP_CLOSED', 'closed by the client', false);
    return this.#closedPromise;
  }

  // -------------------------------------------------------------------------------------------

  #wire(connectEvent: 'connect' | 'secureConnect'): void {
    const socket = this.#socket;
    socket.once(connectEvent, () => this.#guard(() => this.#onConnected()));
    socket.on('data', (chunk: Buffer) => this.#guard(() => this.#onData(chunk)));
    socket.on('error', (err: NodeJS.ErrnoException) => this.#guard(() => this.#onSocketError(err)));
    socket.on('end', () => this.#guard(() => this.#onEnd()));
    socket.on('close', () => this.#guard(() => this.#shutdown(this.#closeCode, this.#closeMessage, false)));
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#fail(isImeError(err) ? err : new ImeError('E_VAP_PROTOCOL', `the client failed: ${(err as Error).message}`));
    }
  }

  #onConnected(): void {
    if (this.#phase !== 'connecting') return;
    this.#phase = 'handshake';
    this.#socket.setNoDelay(true);
    this.#send({
      hello: writeHello({
        username: this.#options.username,
        clientNonce: this.#clientNonce,
        clientSoftware: this.#options.clientSoftware ?? 'ime-vap-client',
      }),
    });
  }

  #onData(chunk: Buffer): void {
    if (this.#phase === 'closed') return;
    const { frames, error } = this.#reader.push(chunk);
    for (const frame of frames) {
      if (this.closed) return;
      this.#onFrame(frame);
    }
    if (error && !this.closed) this.#violation(error.code, error.message);
  }

  #onFrame(frame: VapFrame): void {
    this.#heardSinceTick = true;
    this.#missed = 0;
    const body = frame.body as string;
    if (body === 'error') return this.#onError(frame);
    if (this.#phase === 'handshake') {
      if (body === 'challenge' && this.#registered === undefined && !this.#answered) return this.#onChallenge(frame);
      if (body === 'registered' && this.#answered) return this.#onRegistered(frame);
      return this.#violation('E_VAP_UNEXPECTED', `a ${body} frame is not expected during registration`);
    }
    switch (body) {
      case 'ack': {
        const pending = this.#take(frame.inReplyTo);
        if (!pending) return; // answered after its timeout
        let ack: VapAck;
        try {
          ack = readAck(frame.ack ?? {});
        } catch (err) {
          pending.reject(err as ImeError);
          return this.#violation('E_VAP_PROTOCOL', (err as Error).message);
        }
        pending.resolve(ack);
        return;
      }
      case 'keepaliveAck':
        return;
      case 'learnedRoutes': {
        let routes: LearnedRoute[];
        try {
          routes = readLearnedRoutes(frame.learnedRoutes ?? {});
        } catch (err) {
          return this.#violation('E_VAP_PROTOCOL', (err as Error).message);
        }
        // Routes pushed at registration can arrive before the caller had a chance to listen.
        if (this.#routeListeners.length === 0) {
          if (this.#unheardRoutes.length < MAX_UNHEARD_ROUTE_FRAMES) this.#unheardRoutes.push(routes);
          return;
        }
        for (const l of this.#routeListeners) safely(() => l(routes));
        return;
      }
      case 'notice': {
        let notice: VapNotice;
        try {
          notice = readNotice(frame.notice ?? {});
        } catch (err) {
          return this.#violation('E_VAP_PROTOCOL', (err as Error).message);
        }
        for (const l of this.#noticeListeners) safely(() => l(notice));
        return;
      }
      default:
        return this.#violation('E_VAP_UNEXPECTED', `a ${body} frame is not expected from the peer`);
    }
  }

  #onChallenge(frame: VapFrame): void {
    let challenge;
    try {
      challenge = readChallenge(frame.challenge ?? {});
    } catch (err) {
      return this.#violation('E_VAP_PROTOCOL', (err as Error).message);
    }
    this.#answered = true;
    const { username, password } = this.#options;
    cachedKey(password, challenge.salt, challenge.iterations).then(
      (key) =>
        this.#guard(() => {
          if (this.#phase !== 'handshake') return;
          this.#send({ register: { digest: computeVapDigest(key, username, this.#clientNonce, challenge.serverNonce) } });
        }),
      (err: unknown) => this.#fail(new ImeError('E_VAP_PROTOCOL', `cannot derive the key: ${(err as Error).message}`)),
    );
  }

  #onRegistered(frame: VapFrame): void {
    let registered: VapRegistered;
    try {
      registered = readRegistered(frame.registered ?? {});
    } catch (err) {
      return this.#violation('E_VAP_PROTOCOL', (err as Error).message);
    }
    this.#registered = registered;
    this.#phase = 'registered';
    this.#heardSinceTick = false;
    if (this.#options.sendKeepalives !== false) {
      this.#keepaliveTimer = setInterval(() => this.#guard(() => this.#keepaliveTick()), registered.keepaliveIntervalSec * 1000);
      this.#keepaliveTimer.unref();
    }
    this.#handshake.resolve();
  }

  #keepaliveTick(): void {
    if (this.#phase !== 'registered') return;
    if (this.#heardSinceTick) {
      this.#heardSinceTick = false;
    } else if (++this.#missed >= MISSED_KEEPALIVES_TO_CLOSE) {
      const sec = this.#registered?.keepaliveIntervalSec ?? 0;
      this.#shutdown('E_VAP_KEEPALIVE', `no frame from the peer for ${this.#missed} keepalive intervals of ${sec} s`, true);
      return;
    }
    this.#send({ keepalive: { sentAtMs: Date.now() } });
  }

  /** An error frame: the answer to one request, or the peer's reason for closing. */
  #onError(frame: VapFrame): void {
    const info = readErrorInfo(frame.error);
    if (frame.inReplyTo !== 0 && this.#phase === 'registered') {
      const pending = this.#take(frame.inReplyTo);
      if (pending) pending.reject(new ImeError(info.code, info.message));
      return;
    }
    this.#shutdown(info.code, info.message, false);
  }

  #onSocketError(err: NodeJS.ErrnoException): void {
    this.#fail(classifySocketError(err, this.#phase, this.#options));
  }

  #onEnd(): void {
    const truncated = this.#reader.end();
    if (truncated) return this.#fail(new ImeError('E_VAP_PROTOCOL', truncated.message));
    if (this.#phase === 'handshake' && this.#options.mode === 'encrypted') {
      // With TLS 1.3 the server judges the client's certificate after the client thinks the handshake
      // is done; a refusal then looks like a close before the Challenge.
      return this.#fail(new ImeError('E_VAP_TLS', "the peer closed the connection before registration (does it trust this call manager's certificate?)"));
    }
    if (this.#phase === 'handshake' || this.#phase === 'connecting') {
      return this.#fail(new ImeError('E_VAP_PROTOCOL', 'the peer closed the connection during registration (does its VAP instance use encrypted mode?)'));
    }
    this.#shutdown(this.#closeCode, this.#closeMessage, false);
  }

  #violation(code: string, message: string): void {
    this.#shutdown('E_VAP_PROTOCOL', message, true, code);
  }

  #fail(err: ImeError): void {
    this.#shutdown(err.code, err.message, false);
  }

  /** Ends the connection once; `tellPeer` sends an error frame with `wireCode` first. */
  #shutdown(code: string, message: string, tellPeer: boolean, wireCode = code): void {
    if (this.#phase === 'closed') return;
    const wasRegistered = this.#phase === 'registered';
    this.#phase = 'closed';
    this.#closeCode = code;
    this.#closeMessage = message;
    if (this.#keepaliveTimer) clearInterval(this.#keepaliveTimer);
    if (tellPeer && this.#socket.writable) {
      try {
        this.#socket.write(encodeVapFrame({ sequence: this.#nextSequence(), error: writeErrorInfo(wireCode, message) }));
      } catch {
        // closing anyway
      }
    }
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1_000).unref();
    for (const [seq, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new ImeError('E_VAP_CLOSED', `the connection closed before the peer answered (${code}: ${message})`, { cause: code }));
      this.#pending.delete(seq);
    }
    if (!wasRegistered) this.#handshake.reject(new ImeError(code, message));
    for (const l of this.#closeListeners) safely(() => l(code, message));
  }

  #request(body: VapFrameInit): Promise<VapAck> {
    if (this.#phase !== 'registered') {
      return Promise.reject(new ImeError('E_VAP_CLOSED', `the VAP connection is closed (${this.#closeCode}: ${this.#closeMessage})`));
    }
    const sequence = this.#nextSequence();
    let bytes: Uint8Array;
    try {
      bytes = encodeVapFrame({ ...body, sequence }, this.#maxFrameBytes);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = this.#options.requestTimeoutMs ?? DEFAULT_VAP_REQUEST_TIMEOUT_MS;
    return new Promise<VapAck>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(sequence);
        reject(new ImeError('E_VAP_TIMEOUT', `the peer did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(sequence, { resolve, reject, timer });
      this.#socket.write(bytes);
    });
  }

  #take(sequence: number): Pending | undefined {
    const p = this.#pending.get(sequence);
    if (p) {
      this.#pending.delete(sequence);
      clearTimeout(p.timer);
    }
    return p;
  }

  #send(frame: VapFrameInit): void {
    if (this.#phase === 'closed' || !this.#socket.writable) return;
    this.#socket.write(encodeVapFrame({ ...frame, sequence: this.#nextSequence() }, this.#maxFrameBytes));
  }

  #nextSequence(): number {
    this.#sequence = this.#sequence >= 0xffffffff ? 1 : this.#sequence + 1;
    return this.#sequence;
  }
}

function openSocket(options: VapClientOptions): Socket {
  const { host, port, mode } = options;
  if (mode === 'authenticated') return connectTcp({ host, port, noDelay: true });
  if (mode !== 'encrypted') throw new ImeError('E_VAP_CONNECT', `unknown VAP mode ${JSON.stringify(mode)}`);
  const tls = options.tls;
  if (!tls || tls.caPem.length === 0 || !tls.certPem || !tls.keyPem) {
    throw new ImeError('E_VAP_TLS', 'encrypted mode needs tls.caPem (the peer certificates to trust), tls.certPem and tls.keyPem');
  }
  try {
    const socket: TLSSocket = connectTls({
      host,
      port,
      ca: [...tls.caPem],
      cert: tls.certPem,
      key: tls.keyPem,
      minVersion: 'TLSv1.2',
      ...(tls.servername ? { servername: tls.servername } : { checkServerIdentity: () => undefined }),
    });
    return socket;
  } catch (err) {
    throw new ImeError('E_VAP_TLS', `the TLS certificate or key is not usable: ${(err as Error).message}`);
  }
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

function classifySocketError(err: NodeJS.ErrnoException, phase: Phase, options: VapClientOptions): ImeError {
  const code = err.code ?? '';
  const where = `${options.host}:${options.port}`;
  if (phase === 'connecting' && CONNECT_ERRORS.has(code)) {
    return new ImeError('E_VAP_CONNECT', `cannot connect to ${where}: ${code}`, { cause: code });
  }
  if (options.mode === 'encrypted' && (phase === 'connecting' || phase === 'handshake') && isTlsError(err)) {
    return new ImeError('E_VAP_TLS', `TLS with ${where} failed: ${code || err.message}`, { cause: code });
  }
  if (phase === 'connecting') return new ImeError('E_VAP_CONNECT', `cannot connect to ${where}: ${code || err.message}`, { cause: code });
  return new ImeError('E_VAP_CLOSED', `the connection to ${where} failed: ${code || err.message}`, { cause: code });
}

function isTlsError(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? '';
  return (
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_TLS') ||
    /CERT|SELF_SIGNED|UNABLE_TO|ISSUER/.test(code) ||
    code === 'ECONNRESET' ||
    /alert|ssl|tls|certificate/i.test(err.message)
  );
}
