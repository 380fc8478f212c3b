import { ImeError, decodeWire, isImeError } from '@ime/core';
import { ime } from '@ime/wire';
import { DEFAULT_MAX_VAP_FRAME_BYTES, VAP_WIRE_VERSION, type VapFrame } from './vap-types.js';

/**
 * VAP framing: each frame is a 4-byte big-endian length followed by that many bytes of an encoded
 * VapFrame. The reader is fed whatever chunks the socket delivers and hands back whole frames; it
 * judges a length prefix as soon as it has its four bytes, so a hostile prefix costs nothing.
 */

export type VapFrameErrorCode =
  | 'E_VAP_FRAME_TOO_LARGE'
  | 'E_VAP_FRAME_EMPTY'
  | 'E_VAP_FRAME_MALFORMED'
  | 'E_VAP_VERSION'
  | 'E_VAP_FRAME_UNKNOWN'
  | 'E_VAP_FRAME_TRUNCATED';

export const VAP_FRAME_HEADER_BYTES = 4;

/** What a sender may pass: `version` is filled in when absent. */
export type VapFrameInit = ime.v1.VapFrame.$Properties;

/** Encodes one frame with its length prefix; refuses a frame the receiver would refuse. */
export function encodeVapFrame(frame: VapFrameInit, maxFrameBytes: number = DEFAULT_MAX_VAP_FRAME_BYTES): Uint8Array {
  const message = frame.version === undefined ? { ...frame, version: VAP_WIRE_VERSION } : frame;
  const body = ime.v1.VapFrame.encode(message).finish();
  if (body.length > maxFrameBytes) {
    throw new ImeError(
      'E_VAP_FRAME_TOO_LARGE',
      `a VAP frame of ${body.length} bytes is over the ${maxFrameBytes}-byte limit`,
      { bytes: body.length, limit: maxFrameBytes },
    );
  }
  const out = new Uint8Array(VAP_FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, VAP_FRAME_HEADER_BYTES);
  return out;
}

/**
 * Decodes the bytes after a length prefix and checks what every frame must have: a known version
 * and a body. Field contents are the codec's business (vap-codec.ts).
 */
export function decodeVapFrameBody(body: Uint8Array, maxFrameBytes: number = DEFAULT_MAX_VAP_FRAME_BYTES): VapFrame {
  if (body.length === 0) throw new ImeError('E_VAP_FRAME_EMPTY', 'a VAP frame must not be empty');
  let frame: VapFrame;
  try {
    frame = decodeWire(ime.v1.VapFrame, body, maxFrameBytes, 'VAP frame');
  } catch (err) {
    if (isImeError(err) && err.code === 'E_WIRE_TOO_LARGE') {
      throw new ImeError('E_VAP_FRAME_TOO_LARGE', err.message, err.details);
    }
    throw new ImeError('E_VAP_FRAME_MALFORMED', isImeError(err) ? err.message : 'VAP frame: not a valid message');
  }
  if (frame.version !== VAP_WIRE_VERSION) {
    throw new ImeError(
      'E_VAP_VERSION',
      `VAP frame version ${frame.version} is not supported; this side speaks version ${VAP_WIRE_VERSION}`,
      { version: frame.version },
    );
  }
  if (frame.body === undefined) {
    throw new ImeError('E_VAP_FRAME_UNKNOWN', 'the VAP frame carries no message this side knows');
  }
  return frame;
}

export interface VapFrameReadResult {
  /** Frames completed by the chunk, in order, all before the error if there is one. */
  readonly frames: readonly VapFrame[];
  /** The first framing error; the reader refuses everything after it. */
  readonly error?: ImeError;
}

export interface VapFrameReaderOptions {
  readonly maxFrameBytes?: number;
}

export class VapFrameReader {
  #maxFrameBytes: number;
  // Chunks are kept as received and joined only once a whole frame is present, so a large frame
  // arriving in many small chunks is copied once, not once per chunk.
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #bodyLength: number | undefined;
  #error: ImeError | undefined;

  constructor(options: VapFrameReaderOptions = {}) {
    this.#maxFrameBytes = checkMax(options.maxFrameBytes ?? DEFAULT_MAX_VAP_FRAME_BYTES);
  }

  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** Applies to the next length prefix read (the server allows small frames only before Register). */
  set maxFrameBytes(value: number) {
    this.#maxFrameBytes = checkMax(value);
  }

  /** Bytes held for a frame not yet complete (header included). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  get error(): ImeError | undefined {
    return this.#error;
  }

  push(chunk: Uint8Array): VapFrameReadResult {
    if (this.#error) return { frames: [], error: this.#error };
    const frames: VapFrame[] = [];
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#bodyLength === undefined) {
        if (this.#buffered < VAP_FRAME_HEADER_BYTES) break;
        const header = this.#take(VAP_FRAME_HEADER_BYTES);
        const length = new DataView(header.buffer, header.byteOffset, header.byteLength).getUint32(0, false);
        if (length === 0) return this.#fail(frames, new ImeError('E_VAP_FRAME_EMPTY', 'a VAP frame must not be empty'));
        if (length > this.#maxFrameBytes) {
          return this.#fail(
            frames,
            new ImeError(
              'E_VAP_FRAME_TOO_LARGE',
              `a VAP frame of ${length} bytes is over the ${this.#maxFrameBytes}-byte limit`,
              { bytes: length, limit: this.#maxFrameBytes },
            ),
          );
        }
        this.#bodyLength = length;
      }
      if (this.#buffered < this.#bodyLength) break;
      const body = this.#take(this.#bodyLength);
      this.#bodyLength = undefined;
      try {
        frames.push(decodeVapFrameBody(body, this.#maxFrameBytes));
      } catch (err) {
        return this.#fail(frames, isImeError(err) ? err : new ImeError('E_VAP_FRAME_MALFORMED', 'unreadable VAP frame'));
      }
    }
    return { frames };
  }

  /** The connection ended: a partial frame left over means the sender stopped mid-frame. */
  end(): ImeError | undefined {
    if (this.#error) return undefined;
    if (this.#buffered === 0 && this.#bodyLength === undefined) return undefined;
    const pending = this.#bodyLength === undefined ? 'a length prefix' : `a ${this.#bodyLength}-byte frame`;
    this.#error = new ImeError('E_VAP_FRAME_TRUNCATED', `the connection ended in the middle of ${pending}`);
    this.#drop();
    return this.#error;
  }

  #fail(frames: VapFrame[], error: ImeError): VapFrameReadResult {
    this.#error = error;
    this.#drop();
    return { frames, error };
  }

  #drop(): void {
    this.#chunks = [];
    this.#buffered = 0;
    this.#bodyLength = undefined;
  }

  /** Removes and returns the first n buffered bytes (the caller checked that n are buffered). */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array;
    this.#buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0] as Uint8Array;
      const part = Math.min(c.length, n - filled);
      out.set(c.subarray(0, part), filled);
      filled += part;
      if (part === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(part);
    }
    return out;
  }
}

function checkMax(value: number): number {
  if (!Number.isSafeInteger(value) || value < 16 || value > 0xffffffff) {
    throw new ImeError('E_VAP_BAD_SETTING', `the VAP frame limit must be an integer from 16 to ${0xffffffff} bytes`);
  }
  return value;
}
