import type { Socket } from 'node:net';
import { ImeError, isImeError } from '@ime/core';
import type { Logger } from '@ime/runtime';
import { ime } from '@ime/wire';
import {
  checkAck,
  checkLearnedRoute,
  mergeUploadAck,
  readEnrollment,
  readHello,
  readRegister,
  readVcrUpload,
  readVservice,
  readVserviceId,
  writeAck,
  writeChallenge,
  writeErrorInfo,
  writeLearnedRoute,
  writeNotice,
  writeRegistered,
  type VapRingHealth,
} from './vap-codec.js';
import { VAP_DIGEST_ALGORITHM, type VapAuthenticator, type VapChallengeState } from './vap-digest.js';
import { VapFrameReader, encodeVapFrame, type VapFrameInit } from './vap-frame.js';
import { safely } from './safely.js';
import {
  MISSED_KEEPALIVES_TO_CLOSE,
  type LearnedRoute,
  type VapAck,
  type VapBackend,
  type VapFrame,
  type VapNotice,
  type VapServerEvents,
  type VapSession,
  type VapSessionInfo,
} from './vap-types.js';

/**
 * One call manager's connection, server side: the VAP state machine (Hello → Challenge → Register →
 * Registered → requests), keepalive accounting, and the VapSession handed to the backend. Nothing a
 * client sends may throw out of here: every failure ends as an error frame and a closed connection.
 */

export type VapSessionErrorCode =
  | 'E_VAP_UNEXPECTED'
  | 'E_VAP_AUTH'
  | 'E_VAP_REPLAY'
  | 'E_VAP_HANDSHAKE_TIMEOUT'
  | 'E_VAP_KEEPALIVE'
  | 'E_VAP_BAD_SEQUENCE'
  | 'E_VAP_SLOW_CONSUMER'
  | 'E_INTERNAL';

/** Hello and Register are small; a stranger may not make the server buffer a megabyte. */
export const VAP_HANDSHAKE_MAX_FRAME_BYTES = 4096;
export const DEFAULT_VAP_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Requests queued on one session before the server stops reading from it. */
const QUEUE_PAUSE_AT = 64;
const QUEUE_RESUME_AT = 16;
/** Unsent bytes on one connection (the call manager stopped reading) before the server gives up. */
const MAX_UNSENT_BYTES = 16 * 1024 * 1024;
/** How long a closing connection may linger for its last frame to drain. */
const CLOSE_LINGER_MS = 2_000;

let nextHandle = 1;

/** Client handles are unique in the process, counting from 1 (guide L3879–L3887). */
export function allocateVapHandle(): number {
  return nextHandle++;
}

export interface VapConnectionContext {
  readonly instance: string;
  readonly keepaliveIntervalSec: () => number;
  readonly authenticator: VapAuthenticator;
  readonly backend: VapBackend;
  readonly events: VapServerEvents;
  readonly peerId: () => string;
  readonly ringHealth: () => VapRingHealth;
  readonly log: Logger | undefined;
  readonly handshakeTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly onClosed: (connection: VapConnection) => void;
}

type State = 'hello' | 'challenged' | 'registered' | 'closed';

const REQUEST_BODIES = new Set(['publishVservice', 'withdrawVservice', 'publishEnrollment', 'uploadVcr']);

export class VapConnection {
  readonly handle = allocateVapHandle();
  readonly session: VapSession;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly #socket: Socket;
  readonly #ctx: VapConnectionContext;
  readonly #reader = new VapFrameReader({ maxFrameBytes: VAP_HANDSHAKE_MAX_FRAME_BYTES });
  readonly #connectedAtMs = Date.now();
  readonly #vserviceIds = new Set<string>();
  #state: State = 'hello';
  #wasRegistered = false;
  #username = '';
  #challenge: VapChallengeState | undefined;
  #sequence = 0;
  #packetsSent = 0;
  #packetsReceived = 0;
  #missed = 0;
  #heardSinceTick = false;
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #paused = false;
  #handshakeTimer: ReturnType<typeof setTimeout> | undefined;
  #keepaliveTimer: ReturnType<typeof setInterval> | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #closeReason = { code: 'E_VAP_CLOSED', message: 'the call manager closed the connection' };
  #finished = false;

  constructor(socket: Socket, ctx: VapConnectionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.clientAddress = plainAddress(socket.remoteAddress);
    this.clientPort = socket.remotePort ?? 0;
    this.session = {
      info: () => this.info(),
      pushRoutes: (routes) => this.#pushRoutes(routes),
      notice: (notice) => this.#notice(notice),
      close: (code, message) => this.close(code, message),
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#guard(() => this.#onData(chunk)));
    socket.on('end', () => this.#guard(() => this.#onEnd()));
    socket.on('error', (err) => this.#guard(() => this.#onSocketError(err)));
    socket.on('close', () => this.#guard(() => this.#finish()));
    this.#handshakeTimer = setTimeout(
      () => this.#guard(() => this.#protocolError(new ImeError('E_VAP_HANDSHAKE_TIMEOUT', `no registration within ${ctx.handshakeTimeoutMs} ms`))),
      ctx.handshakeTimeoutMs,
    );
    this.#handshakeTimer.unref();
  }

  get registered(): boolean {
    return this.#state === 'registered';
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  info(): VapSessionInfo {
    return {
      handle: this.handle,
      instance: this.#ctx.instance,
      username: this.#username,
      clientAddress: this.clientAddress,
      clientPort: this.clientPort,
      registrationStatus: this.#wasRegistered ? 'Registered' : 'Connected',
      connectedAtMs: this.#connectedAtMs,
      packetsSent: this.#packetsSent,
      packetsReceived: this.#packetsReceived,
      missedKeepalives: this.#missed,
      vserviceIds: [...this.#vserviceIds],
    };
  }

  /** Sends an error frame naming `code`, then closes. Idempotent. */
  close(code: string, message: string): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeReason = { code, message };
    this.#stopTimers();
    if (this.#socket.writable) {
      try {
        this.#socket.write(encodeVapFrame({ sequence: this.#nextSequence(), error: writeErrorInfo(code, message) }));
        this.#packetsSent++;
      } catch {
        // the socket broke under us: closing is all that is left to do
      }
    }
    this.#socket.end();
    this.#lingerTimer = setTimeout(() => this.#socket.destroy(), CLOSE_LINGER_MS);
    this.#lingerTimer.unref();
  }

  // -------------------------------------------------------------------------------------------
  // Input

  /** Socket callbacks must never throw: a bug here becomes E_INTERNAL on this connection only. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#ctx.log?.error('VAP connection handler failed', { instance: this.#ctx.instance, handle: this.handle, err });
      try {
        this.close('E_INTERNAL', 'the peer failed to handle the connection');
      } catch {
        this.#socket.destroy();
      }
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed') return;
    const { frames, error } = this.#reader.push(chunk);
    for (const frame of frames) {
      if (this.closed) return;
      this.#onFrame(frame);
    }
    if (error && !this.closed) this.#protocolError(error);
  }

  #onEnd(): void {
    if (this.#state === 'closed') return;
    const truncated = this.#reader.end();
    if (truncated) {
      this.#reportProtocolError(truncated);
      this.#closeReason = { code: truncated.code, message: truncated.message };
    }
    // The call manager is gone: drop without an error frame nobody would read.
    this.#state = 'closed';
    this.#stopTimers();
    this.#socket.end();
  }

  #onSocketError(err: Error): void {
    this.#ctx.log?.debug('VAP socket error', { instance: this.#ctx.instance, handle: this.handle, code: (err as { code?: string }).code });
    if (this.#state !== 'closed') {
      this.#state = 'closed';
      this.#closeReason = { code: 'E_VAP_CLOSED', message: `the connection failed (${(err as { code?: string }).code ?? 'socket error'})` };
      this.#stopTimers();
    }
    this.#socket.destroy();
  }

  #onFrame(frame: VapFrame): void {
    this.#packetsReceived++;
    this.#heardSinceTick = true;
    this.#missed = 0;
    const body = frame.body as string;
    if (body === 'error') {
      // The call manager explains why it leaves; nothing to answer.
      this.#state = 'closed';
      this.#closeReason = { code: 'E_VAP_CLOSED', message: 'the call manager closed the connection with an error' };
      this.#stopTimers();
      this.#socket.end();
      return;
    }
    switch (this.#state) {
      case 'hello':
        if (body === 'hello') return this.#onHello(frame);
        return this.#unexpected(body, 'before Hello');
      case 'challenged':
        if (body === 'register') return this.#onRegister(frame);
        return this.#unexpected(body, 'before Register');
      case 'registered':
        if (body === 'keepalive') {
          this.#send({ inReplyTo: frame.sequence, keepaliveAck: { sentAtMs: frame.keepalive?.sentAtMs ?? 0 } });
          return;
        }
        if (REQUEST_BODIES.has(body)) return this.#enqueue(frame);
        return this.#unexpected(body, 'on a registered connection');
      case 'closed':
        return;
    }
  }

  #unexpected(body: string, when: string): void {
    this.#protocolError(new ImeError('E_VAP_UNEXPECTED', `a ${body} frame is not expected ${when}`));
  }

  #onHello(frame: VapFrame): void {
    let hello;
    try {
      hello = readHello(frame.hello ?? {});
    } catch (err) {
      return this.#protocolError(asImeError(err));
    }
    this.#username = hello.username;
    const state = this.#ctx.authenticator.challenge(hello.username, hello.clientNonce);
    this.#challenge = state;
    this.#state = 'challenged';
    this.#send({
      inReplyTo: frame.sequence,
      challenge: writeChallenge({
        serverNonce: state.serverNonce,
        algorithm: VAP_DIGEST_ALGORITHM,
        salt: state.salt,
        iterations: state.iterations,
        keepaliveIntervalSec: this.#ctx.keepaliveIntervalSec(),
      }),
    });
  }

  #onRegister(frame: VapFrame): void {
    let digest: Uint8Array;
    try {
      digest = readRegister(frame.register ?? {});
    } catch (err) {
      return this.#protocolError(asImeError(err));
    }
    const challenge = this.#challenge as VapChallengeState;
    const result = this.#ctx.authenticator.verify(challenge, digest);
    if (!result.ok) {
      const event = { instance: this.#ctx.instance, username: this.#username, clientAddress: this.clientAddress, reason: result.reason };
      this.#ctx.log?.warn('VAP registration refused', { ...event, code: result.code });
      safely(() => this.#ctx.events.onInvalidCredentials?.(event));
      this.close(
        result.code,
        result.code === 'E_VAP_REPLAY'
          ? 'registration refused: this digest was already used'
          : 'registration refused: unknown username or wrong password',
      );
      return;
    }
    const keepaliveIntervalSec = this.#ctx.keepaliveIntervalSec();
    this.#state = 'registered';
    this.#wasRegistered = true;
    this.#challenge = undefined;
    this.#reader.maxFrameBytes = this.#ctx.maxFrameBytes;
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    this.#heardSinceTick = false;
    this.#keepaliveTimer = setInterval(() => this.#guard(() => this.#keepaliveTick(keepaliveIntervalSec)), keepaliveIntervalSec * 1000);
    this.#keepaliveTimer.unref();
    this.#send({
      inReplyTo: frame.sequence,
      registered: writeRegistered({ peerId: this.#ctx.peerId(), keepaliveIntervalSec, ringHealth: this.#ctx.ringHealth() }),
    });
    this.#ctx.log?.info('VAP client registered', {
      instance: this.#ctx.instance,
      handle: this.handle,
      username: this.#username,
      clientAddress: this.clientAddress,
    });
    safely(() => this.#ctx.backend.onRegistered?.(this.session));
  }

  #keepaliveTick(intervalSec: number): void {
    if (this.#state !== 'registered') return;
    // A request still being served is proof of life too: its sender may be waiting for the answer.
    if (this.#heardSinceTick || this.#queued > 0) {
      this.#heardSinceTick = false;
      return;
    }
    this.#missed++;
    if (this.#missed >= MISSED_KEEPALIVES_TO_CLOSE) {
      this.#ctx.log?.info('VAP client missed its keepalives', { instance: this.#ctx.instance, handle: this.handle, missed: this.#missed });
      this.close('E_VAP_KEEPALIVE', `no frame from the call manager for ${this.#missed} keepalive intervals of ${intervalSec} s`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Requests, one at a time per session so a publish and a withdraw cannot overtake each other.

  #enqueue(frame: VapFrame): void {
    if (frame.sequence === 0) {
      return this.#protocolError(new ImeError('E_VAP_BAD_SEQUENCE', 'a request must carry a sequence number (1 or more)'));
    }
    this.#queued++;
    if (this.#queued >= QUEUE_PAUSE_AT && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
    this.#queue = this.#queue.then(() => this.#serve(frame));
  }

  async #serve(frame: VapFrame): Promise<void> {
    try {
      if (this.#state !== 'registered') return;
      let ack: VapAck;
      try {
        ack = await this.#dispatch(frame);
      } catch (err) {
        if (this.#state !== 'registered') return;
        const { code, message } = this.#refusal(err, frame.body as string);
        this.#send({ inReplyTo: frame.sequence, error: writeErrorInfo(code, message) });
        return;
      }
      if (this.#state === 'registered') this.#sendAck(frame.sequence, ack);
    } catch (err) {
      this.#ctx.log?.error('VAP request handling failed', { instance: this.#ctx.instance, handle: this.handle, err });
    } finally {
      this.#queued--;
      if (this.#paused && this.#queued <= QUEUE_RESUME_AT && this.#state !== 'closed') {
        this.#paused = false;
        this.#socket.resume();
      }
    }
  }

  async #dispatch(frame: VapFrame): Promise<VapAck> {
    const { backend } = this.#ctx;
    switch (frame.body) {
      case 'publishVservice': {
        const vservice = readVservice(frame.publishVservice?.vservice);
        await backend.publishVservice(this.session, vservice);
        this.#vserviceIds.add(vservice.id);
        return { accepted: 1, refused: [] };
      }
      case 'withdrawVservice': {
        const id = readVserviceId(frame.withdrawVservice?.id);
        await backend.withdrawVservice(this.session, id);
        this.#vserviceIds.delete(id);
        return { accepted: 1, refused: [] };
      }
      case 'publishEnrollment': {
        const enrollment = readEnrollment(frame.publishEnrollment ?? {});
        return backendAck(await backend.publishEnrollment(this.session, enrollment));
      }
      case 'uploadVcr': {
        const upload = readVcrUpload(frame.uploadVcr ?? {});
        const answer = upload.vcrs.length === 0 ? { accepted: 0, refused: [] } : backendAck(await backend.uploadVcrs(this.session, upload.vcrs));
        return mergeUploadAck(upload, answer);
      }
      default:
        throw new ImeError('E_VAP_UNEXPECTED', `a ${String(frame.body)} frame is not a request`);
    }
  }

  /** ImeError → its code and message; anything else is a bug of ours: logged, never sent. */
  #refusal(err: unknown, body: string): { code: string; message: string } {
    if (isImeError(err) && !(err instanceof BackendAnswerError)) return { code: err.code, message: err.message };
    this.#ctx.log?.error('VAP backend failed', { instance: this.#ctx.instance, handle: this.handle, request: body, err });
    return { code: 'E_INTERNAL', message: 'the peer failed to handle the request' };
  }

  /** An answer with thousands of refusals must still fit in a frame: shorten messages until it does. */
  #sendAck(sequence: number, ack: VapAck): void {
    for (const cut of [Infinity, 80, 0]) {
      const shortened = cut === Infinity ? ack : { ...ack, refused: ack.refused.map((r) => ({ ...r, message: r.message.slice(0, cut) })) };
      let bytes: Uint8Array;
      try {
        bytes = encodeVapFrame({ sequence: this.#nextSequence(), inReplyTo: sequence, ack: writeAck(shortened) }, this.#ctx.maxFrameBytes);
      } catch (err) {
        if (isImeError(err) && err.code === 'E_VAP_FRAME_TOO_LARGE') continue;
        throw err;
      }
      this.#write(bytes);
      return;
    }
    this.#send({ inReplyTo: sequence, error: writeErrorInfo('E_INTERNAL', 'the answer is too large for one frame') });
  }

  // -------------------------------------------------------------------------------------------
  // Output

  #pushRoutes(routes: readonly LearnedRoute[]): boolean {
    if (this.#state !== 'registered') return false;
    const wire = routes.map((r, i) => writeLearnedRoute(checkLearnedRoute(r, i)));
    // Split so that each push fits in a frame whatever the tickets' sizes.
    const budget = this.#ctx.maxFrameBytes - 64;
    let batch: ime.v1.LearnedRoute.$Properties[] = [];
    let size = 0;
    for (const r of wire) {
      const bytes = ime.v1.LearnedRoute.encode(r).finish().length + 6;
      if (batch.length > 0 && size + bytes > budget) {
        if (!this.#send({ learnedRoutes: { routes: batch } })) return false;
        batch = [];
        size = 0;
      }
      batch.push(r);
      size += bytes;
    }
    if (batch.length > 0) return this.#send({ learnedRoutes: { routes: batch } });
    return true;
  }

  #notice(notice: VapNotice): boolean {
    if (this.#state !== 'registered') return false;
    return this.#send({ notice: writeNotice(notice) });
  }

  #send(frame: VapFrameInit): boolean {
    if (this.#state === 'closed') return false;
    return this.#write(encodeVapFrame({ ...frame, sequence: this.#nextSequence() }, this.#ctx.maxFrameBytes));
  }

  #write(bytes: Uint8Array): boolean {
    if (!this.#socket.writable) return false;
    this.#socket.write(bytes);
    this.#packetsSent++;
    if (this.#socket.writableLength > MAX_UNSENT_BYTES) {
      this.close('E_VAP_SLOW_CONSUMER', 'the call manager is not reading what the peer sends');
    }
    return true;
  }

  #nextSequence(): number {
    this.#sequence = this.#sequence >= 0xffffffff ? 1 : this.#sequence + 1;
    return this.#sequence;
  }

  // -------------------------------------------------------------------------------------------
  // Endings

  #protocolError(err: ImeError): void {
    this.#reportProtocolError(err);
    this.close(err.code, err.message);
  }

  #reportProtocolError(err: ImeError): void {
    const event = { instance: this.#ctx.instance, clientAddress: this.clientAddress, code: err.code, message: err.message };
    this.#ctx.log?.info('VAP protocol error', { ...event, handle: this.handle });
    safely(() => this.#ctx.events.onProtocolError?.(event));
  }

  #stopTimers(): void {
    if (this.#handshakeTimer) clearTimeout(this.#handshakeTimer);
    if (this.#keepaliveTimer) clearInterval(this.#keepaliveTimer);
    this.#handshakeTimer = undefined;
    this.#keepaliveTimer = undefined;
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = 'closed';
    this.#stopTimers();
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    this.#ctx.onClosed(this);
    if (this.#wasRegistered) {
      const reason = `${this.#closeReason.code}: ${this.#closeReason.message}`;
      this.#ctx.log?.info('VAP client gone', { instance: this.#ctx.instance, handle: this.handle, reason });
      safely(() => this.#ctx.backend.onClosed?.(this.session, reason));
    }
  }
}

/** A backend that answers with something that is not a VapAck has a bug: E_INTERNAL on the wire. */
class BackendAnswerError extends ImeError {}

function backendAck(answer: unknown): VapAck {
  try {
    return checkAck(answer);
  } catch (err) {
    throw new BackendAnswerError('E_INTERNAL', isImeError(err) ? err.message : 'bad answer');
  }
}

function asImeError(err: unknown): ImeError {
  return isImeError(err) ? err : new ImeError('E_VAP_FRAME_MALFORMED', 'unreadable frame content');
}

/** `::ffff:10.0.0.1` → `10.0.0.1`: operators compare it with the call manager's IPv4 address. */
export function plainAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
