import { describe, expect, it } from '@jest/globals';
import { ime } from '@ime/wire';
import { VAP_FRAME_HEADER_BYTES, VapFrameReader, decodeVapFrameBody, encodeVapFrame } from '../src/vap-frame.js';
import { DEFAULT_MAX_VAP_FRAME_BYTES, VAP_WIRE_VERSION } from '../src/vap-types.js';
import { thrown } from './helpers.js';

function prefixed(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const keepalive = (n: number) => encodeVapFrame({ sequence: n, keepalive: { sentAtMs: 1_700_000_000_000 + n } });

describe('encodeVapFrame', () => {
  it('writes a big-endian length, then the frame with the current version', () => {
    const bytes = keepalive(7);
    const length = new DataView(bytes.buffer).getUint32(0, false);
    expect(length).toBe(bytes.length - VAP_FRAME_HEADER_BYTES);
    const frame = ime.v1.VapFrame.decode(bytes.subarray(4));
    expect(frame.version).toBe(VAP_WIRE_VERSION);
    expect(frame.sequence).toBe(7);
    expect(frame.keepalive?.sentAtMs).toBe(1_700_000_000_007);
  });

  it('refuses to send a frame the other side would refuse', () => {
    const err = thrown(() => encodeVapFrame({ notice: { kind: 1, detail: 'x'.repeat(200) } }, 100));
    expect(err.code).toBe('E_VAP_FRAME_TOO_LARGE');
  });
});

describe('VapFrameReader', () => {
  it('reassembles a frame split byte by byte', () => {
    const reader = new VapFrameReader();
    const bytes = keepalive(1);
    const frames = [];
    for (let i = 0; i < bytes.length; i++) {
      const r = reader.push(bytes.subarray(i, i + 1));
      expect(r.error).toBeUndefined();
      frames.push(...r.frames);
      if (i < bytes.length - 1) expect(frames).toHaveLength(0);
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]?.sequence).toBe(1);
    expect(reader.bufferedBytes).toBe(0);
    expect(reader.end()).toBeUndefined();
  });

  it('returns every frame of a chunk, in order, and keeps the rest for later', () => {
    const reader = new VapFrameReader();
    const all = concat(keepalive(1), keepalive(2), keepalive(3));
    const cut = all.length - 3;
    const first = reader.push(all.subarray(0, cut));
    expect(first.frames.map((f) => f.sequence)).toEqual([1, 2]);
    expect(reader.bufferedBytes).toBeGreaterThan(0);
    const second = reader.push(all.subarray(cut));
    expect(second.frames.map((f) => f.sequence)).toEqual([3]);
  });

  it('joins a large frame that arrives in many chunks', () => {
    const reader = new VapFrameReader();
    const routes = Array.from({ length: 2000 }, (_, i) => ({
      number: `+1408555${String(i).padStart(4, '0')}`,
      domain: 'example.com',
      sipUri: 'sip:x@example.com',
      ticket: 'A'.repeat(200),
      learnedOnMs: 1,
      expiresOnMs: 2,
    }));
    const bytes = encodeVapFrame({ learnedRoutes: { routes } });
    expect(bytes.length).toBeGreaterThan(400_000);
    let frames = 0;
    for (let o = 0; o < bytes.length; o += 1000) frames += reader.push(bytes.subarray(o, o + 1000)).frames.length;
    expect(frames).toBe(1);
  });

  it('refuses an oversize length prefix as soon as it has the four bytes, before any body', () => {
    const reader = new VapFrameReader({ maxFrameBytes: 1024 });
    const r = reader.push(Uint8Array.from([0x00, 0x00, 0x04, 0x01]));
    expect(r.error?.code).toBe('E_VAP_FRAME_TOO_LARGE');
    expect(r.error?.details).toEqual({ bytes: 1025, limit: 1024 });
    expect(reader.bufferedBytes).toBe(0);
    // the default limit is 1 MiB: 0xffffffff is refused without buffering 4 GiB
    const big = new VapFrameReader().push(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    expect(big.error?.code).toBe('E_VAP_FRAME_TOO_LARGE');
    expect(DEFAULT_MAX_VAP_FRAME_BYTES).toBe(1024 * 1024);
  });

  it('accepts a frame of exactly the limit', () => {
    const frame = encodeVapFrame({ notice: { kind: 1, detail: 'x'.repeat(100) } });
    const limit = frame.length - 4;
    expect(new VapFrameReader({ maxFrameBytes: limit }).push(frame).frames).toHaveLength(1);
    expect(new VapFrameReader({ maxFrameBytes: limit - 1 }).push(frame).error?.code).toBe('E_VAP_FRAME_TOO_LARGE');
  });

  it('delivers the frames before an error, then refuses everything after it', () => {
    const reader = new VapFrameReader();
    const r = reader.push(concat(keepalive(1), Uint8Array.from([0, 0, 0, 0]), keepalive(2)));
    expect(r.frames.map((f) => f.sequence)).toEqual([1]);
    expect(r.error?.code).toBe('E_VAP_FRAME_EMPTY');
    expect(reader.push(keepalive(3)).error?.code).toBe('E_VAP_FRAME_EMPTY');
    expect(reader.end()).toBeUndefined(); // already reported
  });

  it('reports a connection that ended mid-frame as truncated', () => {
    const bytes = keepalive(1);
    const inBody = new VapFrameReader();
    expect(inBody.push(bytes.subarray(0, bytes.length - 1)).frames).toHaveLength(0);
    expect(inBody.end()?.code).toBe('E_VAP_FRAME_TRUNCATED');
    const inPrefix = new VapFrameReader();
    inPrefix.push(bytes.subarray(0, 2));
    expect(inPrefix.end()?.code).toBe('E_VAP_FRAME_TRUNCATED');
    expect(new VapFrameReader().end()).toBeUndefined();
  });

  it('refuses bytes that are not a protobuf message', () => {
    // field 1 with wire type 7 (invalid)
    const r = new VapFrameReader().push(prefixed(Uint8Array.from([0x0f, 0x01])));
    expect(r.error?.code).toBe('E_VAP_FRAME_MALFORMED');
    // a length-delimited field running past the end
    const r2 = new VapFrameReader().push(prefixed(Uint8Array.from([0x08, 0x01, 0x52, 0x7f, 0x01])));
    expect(r2.error?.code).toBe('E_VAP_FRAME_MALFORMED');
  });

  it('refuses another version, and a frame without a version', () => {
    const v2 = ime.v1.VapFrame.encode({ version: 2, keepalive: {} }).finish();
    expect(new VapFrameReader().push(prefixed(v2)).error?.code).toBe('E_VAP_VERSION');
    const none = ime.v1.VapFrame.encode({ keepalive: {} }).finish();
    expect(new VapFrameReader().push(prefixed(none)).error?.code).toBe('E_VAP_VERSION');
  });

  it('refuses a frame whose body this side does not know (or that has none)', () => {
    const empty = ime.v1.VapFrame.encode({ version: 1, sequence: 3 }).finish();
    expect(new VapFrameReader().push(prefixed(empty)).error?.code).toBe('E_VAP_FRAME_UNKNOWN');
    // version 1 plus an unknown field 99 (a body from a newer protocol): skipped by protobuf, so no body
    const future = concat(ime.v1.VapFrame.encode({ version: 1 }).finish(), Uint8Array.from([0x9a, 0x06, 0x00]));
    expect(new VapFrameReader().push(prefixed(future)).error?.code).toBe('E_VAP_FRAME_UNKNOWN');
  });

  it('checks its own limit setting', () => {
    expect(thrown(() => new VapFrameReader({ maxFrameBytes: 0 })).code).toBe('E_VAP_BAD_SETTING');
  });
});

describe('decodeVapFrameBody', () => {
  it('decodes a body and refuses an empty one', () => {
    expect(decodeVapFrameBody(keepalive(5).subarray(4)).sequence).toBe(5);
    expect(thrown(() => decodeVapFrameBody(new Uint8Array(0))).code).toBe('E_VAP_FRAME_EMPTY');
  });
});
