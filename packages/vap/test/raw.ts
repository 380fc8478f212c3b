import { randomBytes } from 'node:crypto';
import { type Socket, connect } from 'node:net';
import { readChallenge } from '../src/vap-codec.js';
import { computeVapDigest, deriveVapKey } from '../src/vap-digest.js';
import { VapFrameReader, encodeVapFrame, type VapFrameInit } from '../src/vap-frame.js';
import type { VapFrame } from '../src/vap-types.js';

/**
 * A call manager that does exactly what the test says, for sending what VapClient never would. It
 * collects every frame the server sends and notes when the server closes.
 */
export class RawVap {
  readonly socket: Socket;
  readonly frames: VapFrame[] = [];
  readonly closed: Promise<void>;
  #waiters: (() => void)[] = [];
  #sequence = 0;
  isClosed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    const reader = new VapFrameReader();
    socket.on('data', (chunk: Buffer) => {
      const { frames } = reader.push(chunk);
      this.frames.push(...frames);
      this.#wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.#wake();
        resolve();
      }),
    );
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawVap> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once('connect', () => resolve(new RawVap(socket)));
      socket.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  send(frame: VapFrameInit): number {
    const sequence = frame.sequence ?? ++this.#sequence;
    this.socket.write(encodeVapFrame({ ...frame, sequence }));
    return sequence;
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The next frame not yet taken, waiting for it up to timeoutMs. */
  async next(timeoutMs = 5000): Promise<VapFrame> {
    const end = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.isClosed) throw new Error('closed without a frame');
      if (Date.now() > end) throw new Error('no frame in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, end - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.frames.shift() as VapFrame;
  }

  /** The frame answering `sequence`, skipping others (keepalive answers, pushes). */
  async reply(sequence: number, timeoutMs = 5000): Promise<VapFrame> {
    for (;;) {
      const f = await this.next(timeoutMs);
      if (f.inReplyTo === sequence) return f;
      if (f.error && f.inReplyTo === 0) throw new Error(`the server closed the connection: ${f.error.code} ${f.error.message}`);
    }
  }

  /** Registers with the digest; returns what a replay needs. */
  async register(username: string, password: string, clientNonce = new Uint8Array(randomBytes(32))): Promise<{ digest: Uint8Array; frame: VapFrame }> {
    this.send({ hello: { username, clientNonce, clientSoftware: 'raw' } });
    const challengeFrame = await this.next();
    if (!challengeFrame.challenge) throw new Error(`expected a Challenge, got ${String(challengeFrame.body)} ${challengeFrame.error?.code ?? ''}`);
    const challenge = readChallenge(challengeFrame.challenge);
    const key = deriveVapKey(password, challenge.salt, challenge.iterations);
    const digest = computeVapDigest(key, username, clientNonce, challenge.serverNonce);
    this.send({ register: { digest } });
    return { digest, frame: await this.next() };
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
