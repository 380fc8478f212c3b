import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ime } from '@ime/wire';
import { VapClient } from '../src/vap-client.js';
import { readAck } from '../src/vap-codec.js';
import { VapFrameReader, encodeVapFrame, type VapFrameInit } from '../src/vap-frame.js';
import type { VapInstanceServer } from '../src/vap-server.js';
import { PASSWORD, USER, startInstance, type RecordedEvents, type TestBackend } from './fixture.js';
import { prng } from './helpers.js';
import { RawVap } from './raw.js';

/**
 * Thousands of hostile frames against one instance while a well-behaved call manager keeps working.
 * Seeded, so a failure replays. Two kinds of attack:
 *  - content: registered connections pipelining requests whose fields are random (valid framing):
 *    every one must be answered, none with E_INTERNAL, and the connection must stay up;
 *  - framing and state: one connection per burst of bad bytes (random, huge or zero prefixes,
 *    truncated, undecodable, wrong version, no body, bytes flipped in valid frames, frames of the
 *    wrong type or before Register): every such connection must be closed by the server.
 */

const SEED = 0x1a2b3c;
const CONTENT_CONNECTIONS = 24;
const REQUESTS_PER_CONNECTION = 300;
const HOSTILE_CONNECTIONS = 3_000;
const PARALLEL = 32;

const rand = prng(SEED);

function pick<T>(items: readonly T[]): T {
  return items[rand.int(items.length)] as T;
}

const ALPHABETS = ['0123456789', '+0123456789X', 'abcdefghijklmnopqrstuvwxyz.-', ' \n\t\u0000é€😀\u2028', '+1408555XXXX!.-@:;'];

function randomText(max = 40): string {
  const alphabet = pick(ALPHABETS);
  const chars = [...alphabet];
  const n = rand.next() < 0.05 ? 200 + rand.int(600) : rand.int(max);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(chars);
  // Cut by code points: a lone surrogate would be invalid UTF-8, a framing error, not a content one.
  return rand.next() < 0.3 ? `+1408555${[...s].slice(0, 4).join('')}` : s;
}

function randomNumber(): number {
  switch (rand.int(4)) {
    case 0:
      return 0;
    case 1:
      return rand.int(100);
    case 2:
      return 1_700_000_000_000 + rand.int(1_000_000);
    default:
      return Math.floor(rand.next() * Number.MAX_SAFE_INTEGER);
  }
}

function randomList<T>(make: () => T, max: number): T[] {
  return Array.from({ length: rand.int(max) }, make);
}

function randomRequest(): VapFrameInit {
  switch (rand.int(4)) {
    case 0:
      return {
        publishVservice: {
          vservice: rand.next() < 0.1 ? undefined : {
            profileName: randomText(),
            id: randomText(),
            domain: randomText(),
            sipUri: randomText(),
            maxDidCount: rand.int(2 ** 32),
          },
        },
      };
    case 1:
      return { withdrawVservice: { id: randomText() } };
    case 2:
      return {
        publishEnrollment: {
          vserviceId: randomText(),
          groups: randomList(() => ({ name: randomText(), patterns: randomList(() => randomText(16), 6) }), 4),
          exclusions: randomList(() => randomText(16), 6),
          trustGroups: randomList(
            () => ({
              name: randomText(),
              trusted: rand.next() < 0.5,
              description: randomText(),
              elements: randomList(() => ({ kind: rand.int(4), value: randomText() }), 4),
            }),
            3,
          ),
        },
      };
    default:
      return {
        uploadVcr: {
          records: randomList(
            () => ({
              calling: randomText(16),
              called: randomText(16),
              startMs: randomNumber(),
              stopMs: randomNumber(),
              direction: rand.int(4),
              callId: randomText(),
            }),
            12,
          ),
        },
      };
  }
}

function bodyOf(frame: VapFrameInit): Uint8Array {
  return ime.v1.VapFrame.encode({ version: 1, ...frame }).finish();
}

function prefixed(length: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, length >>> 0, false);
  out.set(body, 4);
  return out;
}

const UNEXPECTED_BEFORE_REGISTER: VapFrameInit[] = [
  { challenge: { serverNonce: new Uint8Array(32), algorithm: 'HMAC-SHA256-PBKDF2' } },
  { registered: { peerId: 'x', keepaliveIntervalSec: 1 } },
  { register: { digest: new Uint8Array(32) } },
  { keepalive: { sentAtMs: 1 } },
  { keepaliveAck: {} },
  { ack: { accepted: 1 } },
  { learnedRoutes: { routes: [{ number: '+1' }] } },
  { notice: { kind: 1 } },
  { publishVservice: { vservice: { id: 'x' } } },
  { uploadVcr: { records: [] } },
];

/** One burst of hostile bytes for a fresh connection, and how many frames it holds. */
function hostileBurst(): { bytes: Uint8Array[]; frames: number; answered?: false } {
  const valid = () => bodyOf(randomRequest());
  switch (rand.int(11)) {
    case 0: // random bytes (may be an incomplete frame: then the end of the connection is the error)
      return { bytes: [rand.bytes(1 + rand.int(300))], frames: 1, answered: false };
    case 1: // a huge length prefix, then some bytes
      return { bytes: [prefixed(4097 + rand.int(0xfffff000), rand.bytes(rand.int(64)))], frames: 1 };
    case 2: {
      // a valid frame cut short, then the connection ends
      const body = bodyOf({ hello: { username: USER, clientNonce: rand.bytes(32) } });
      const frame = prefixed(body.length, body);
      return { bytes: [frame.subarray(0, 1 + rand.int(frame.length - 1))], frames: 1, answered: false };
    }
    case 3: {
      // a right length with garbage inside, several in one write
      const n = 1 + rand.int(3);
      const parts = Array.from({ length: n }, () => {
        const body = rand.bytes(1 + rand.int(200));
        return prefixed(body.length, body);
      });
      return { bytes: parts, frames: n };
    }
    case 4: {
      // wrong version
      const body = ime.v1.VapFrame.encode({ version: 2 + rand.int(1000), hello: { username: USER } }).finish();
      return { bytes: [prefixed(body.length, body)], frames: 1 };
    }
    case 5: {
      // no body, or one from a future protocol (unknown field)
      const body = rand.next() < 0.5 ? bodyOf({ sequence: 5 }) : Uint8Array.from([0x08, 0x01, 0x9a, 0x06, 0x01, 0x00]);
      return { bytes: [prefixed(body.length, body)], frames: 1 };
    }
    case 6: // zero length
      return { bytes: [Uint8Array.from([0, 0, 0, 0])], frames: 1 };
    case 7: {
      // bytes flipped inside valid frames
      const n = 1 + rand.int(3);
      const parts = Array.from({ length: n }, () => {
        const body = valid().slice();
        for (let k = 0; k < 1 + rand.int(4); k++) body[rand.int(body.length)] = rand.int(256);
        return prefixed(body.length, body);
      });
      return { bytes: parts, frames: n };
    }
    case 8: {
      // frames of the wrong type before Register
      const n = 1 + rand.int(3);
      return { bytes: Array.from({ length: n }, () => encodeVapFrame({ sequence: 1, ...pick(UNEXPECTED_BEFORE_REGISTER) })), frames: n };
    }
    case 9: {
      // Hello with bad fields
      const body = bodyOf({ hello: { username: randomText(100), clientNonce: rand.bytes(rand.int(40)), clientSoftware: randomText(300) } });
      return { bytes: [prefixed(body.length, body)], frames: 1 };
    }
    default: {
      // Hello, then a Register with a wrong digest (without waiting for the Challenge)
      const hello = encodeVapFrame({ sequence: 1, hello: { username: rand.next() < 0.5 ? USER : randomText(20) || 'x', clientNonce: rand.bytes(32) } });
      const register = encodeVapFrame({ sequence: 2, register: { digest: rand.bytes(32) } });
      return { bytes: [hello, register], frames: 2 };
    }
  }
}

/**
 * Sends a burst, half-closes, and resolves once the connection closed with the server's error codes
 * and whether it answered at all.
 */
function attack(port: number, bytes: Uint8Array[]): Promise<{ codes: string[]; answered: boolean; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const reader = new VapFrameReader();
    const codes: string[] = [];
    let answered = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ codes, answered, closed: false });
    }, 8_000);
    socket.on('connect', () => {
      for (const b of bytes) socket.write(b);
      socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk).frames) {
        answered = true;
        if (f.error) codes.push(f.error.code);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ codes, answered, closed: true });
    });
  });
}

let server: VapInstanceServer;
let backend: TestBackend;
let events: RecordedEvents;
let port: number;
const crashes: unknown[] = [];
const onCrash = (err: unknown) => crashes.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  ({ server, backend, events, port } = await startInstance({ maxConnectionsAllowed: 1_000 }));
});

afterAll(async () => {
  await server.stop();
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
});

describe('robustness', () => {
  it('survives 10 000 hostile frames while a registered call manager keeps getting answers', async () => {
    const started = Date.now();
    const good = await VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: USER, password: PASSWORD });
    let goodAcks = 0;
    let goodFailure: unknown;
    let stop = false;
    const goodLoop = (async () => {
      let i = 0;
      while (!stop) {
        try {
          const ack = await good.uploadVcrs([
            { calling: '+14085550100', called: '+12125550100', startMs: 1_700_000_000_000, stopMs: 1_700_000_060_000, direction: 'originating', callId: `good-${i++}` },
          ]);
          if (ack.accepted !== 1 || ack.refused.length !== 0) throw new Error(`unexpected answer ${JSON.stringify(ack)}`);
          goodAcks++;
        } catch (err) {
          goodFailure = err;
          return;
        }
      }
    })();

    // Content attacks: registered connections, every request answered, none with E_INTERNAL.
    let framesSent = 0;
    const contentCodes = new Map<string, number>();
    let acks = 0;
    const itemCodes = new Set<string>();
    await Promise.all(
      Array.from({ length: CONTENT_CONNECTIONS }, async () => {
        const r = await RawVap.open(port);
        expect((await r.register(USER, PASSWORD)).frame.body).toBe('registered');
        const sequences = Array.from({ length: REQUESTS_PER_CONNECTION }, () => r.send(randomRequest()));
        framesSent += sequences.length;
        for (const sequence of sequences) {
          const answer = await r.reply(sequence, 10_000);
          if (answer.ack) {
            acks++;
            for (const r of readAck(answer.ack).refused) itemCodes.add(r.code);
          }
          else contentCodes.set(answer.error?.code ?? 'none', (contentCodes.get(answer.error?.code ?? 'none') ?? 0) + 1);
        }
        expect(r.isClosed).toBe(false);
        r.destroy();
      }),
    );
    // Whole requests refused for their content; VCRs are refused one by one inside Acks.
    expect([...contentCodes.keys()].sort()).toEqual(['E_VAP_BAD_ENROLLMENT', 'E_VAP_BAD_VSERVICE']);
    expect([...itemCodes].sort()).toEqual(['E_VAP_BAD_VCR', 'E_VCR_NOT_E164']);
    expect(acks).toBeGreaterThan(0);

    // Framing and state attacks: each connection must be closed by the server.
    const framingCodes = new Map<string, number>();
    let notClosed = 0;
    let unanswered = 0;
    let next = 0;
    const bursts = Array.from({ length: HOSTILE_CONNECTIONS }, hostileBurst);
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < bursts.length) {
          const burst = bursts[next++] as ReturnType<typeof hostileBurst>;
          framesSent += burst.frames;
          const { codes, answered, closed } = await attack(port, burst.bytes);
          if (!closed) notClosed++;
          if (!answered && burst.answered !== false) unanswered++;
          for (const c of codes) framingCodes.set(c, (framingCodes.get(c) ?? 0) + 1);
        }
      }),
    );
    stop = true;
    await goodLoop;
    expect(goodFailure).toBeUndefined();

    expect(notClosed).toBe(0);
    expect(unanswered).toBe(0);
    expect(framesSent).toBeGreaterThanOrEqual(10_000);
    for (const code of [
      'E_VAP_FRAME_TOO_LARGE',
      'E_VAP_FRAME_EMPTY',
      'E_VAP_FRAME_MALFORMED',
      'E_VAP_VERSION',
      'E_VAP_FRAME_UNKNOWN',
      'E_VAP_UNEXPECTED',
      'E_VAP_BAD_HELLO',
      'E_VAP_AUTH',
    ]) {
      expect(framingCodes.get(code) ?? 0).toBeGreaterThan(0);
    }
    expect(framingCodes.has('E_INTERNAL')).toBe(false);
    expect(events.protocol.some((e) => e.code === 'E_VAP_FRAME_TRUNCATED')).toBe(true);

    // The good call manager was served throughout and is still registered.
    expect(goodAcks).toBeGreaterThan(10);
    expect(good.closed).toBe(false);
    expect((await good.uploadVcrs([])).accepted).toBe(0);
    expect(crashes).toEqual([]);
    expect(backend.vcrs.filter((v) => v.callId.startsWith('good-'))).toHaveLength(goodAcks);
    await good.close();
    const seconds = (Date.now() - started) / 1000;
    expect(seconds).toBeLessThan(30);
    console.log(`robustness: ${framesSent} random or malformed frames, ${acks} content acks, good client ${goodAcks} acks, ${seconds.toFixed(1)} s`);
  }, 60_000);
});
