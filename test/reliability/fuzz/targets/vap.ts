import { connect } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { ImeError } from '@ime/core';
import {
  DEFAULT_MAX_VAP_FRAME_BYTES,
  VAP_HANDSHAKE_MAX_FRAME_BYTES,
  VapClient,
  type VapFrame,
  VapFrameReader,
  readAck,
  readChallenge,
  readEnrollment,
  readErrorInfo,
  readHello,
  readLearnedRoutes,
  readNotice,
  readRegister,
  readRegistered,
  readVcr,
  readVcrUpload,
  readVservice,
  readVserviceId,
  writeAck,
  writeChallenge,
  writeEnrollment,
  writeHello,
  writeLearnedRoute,
  writeNotice,
  writeRegistered,
  writeVcr,
  writeVservice,
} from '@ime/vap';
import { ime } from '@ime/wire';
import { PASSWORD, USER, startInstance } from '../../../../packages/vap/test/fixture.js';
import { RawVap } from '../../../../packages/vap/test/raw.js';
import { ACCEPTED, type FuzzOptions, type FuzzReport, type FuzzTarget, Mutator, checkCode, checkRemoteCode, inputHash, newReport, oracle, prng, runOne } from '../engine.js';

/**
 * VAP frames: the frame reader (vap-frame.ts) fed the input in a few chunks, then every frame it
 * completes handed to the codec's reader for its body (vap-codec.ts), as the server (requests) and
 * the client (answers and pushes) do. What a reader accepts must survive its writer: written, encoded,
 * decoded and read again, it must come back the same.
 */

/** Encodes with the wire type and decodes again: what the other side would read. */
function overTheWire<T>(type: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, message: T): T {
  return type.decode(type.encode(message).finish());
}

/** Bytes by content (a decoded field is a Buffer view, a written one may be a plain Uint8Array). */
function comparable(value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (Array.isArray(value)) return value.map(comparable);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]));
  return value;
}

function roundTrip<T>(what: string, first: T, again: T): void {
  oracle(isDeepStrictEqual(comparable(first), comparable(again)), `${what}: reading what the writer wrote from an accepted value gives another value`);
}

/** Reads one frame's body as its receiver would; throws the codec's ImeError on a refusal. */
function readBody(frame: VapFrame): void {
  switch (frame.body) {
    case 'hello': {
      const v = readHello(frame.hello ?? {});
      roundTrip('Hello', v, readHello(overTheWire(ime.v1.Hello, writeHello(v))));
      return;
    }
    case 'challenge': {
      const v = readChallenge(frame.challenge ?? {});
      roundTrip('Challenge', v, readChallenge(overTheWire(ime.v1.Challenge, writeChallenge(v))));
      return;
    }
    case 'register':
      readRegister(frame.register ?? {});
      return;
    case 'registered': {
      const v = readRegistered(frame.registered ?? {});
      roundTrip('Registered', v, readRegistered(overTheWire(ime.v1.Registered, writeRegistered(v))));
      return;
    }
    case 'keepalive':
    case 'keepaliveAck':
      return;
    case 'publishVservice': {
      const v = readVservice(frame.publishVservice?.vservice);
      roundTrip('Vservice', v, readVservice(overTheWire(ime.v1.Vservice, writeVservice(v))));
      return;
    }
    case 'withdrawVservice':
      readVserviceId(frame.withdrawVservice?.id);
      return;
    case 'publishEnrollment': {
      const v = readEnrollment(frame.publishEnrollment ?? {});
      roundTrip('PublishEnrollment', v, readEnrollment(overTheWire(ime.v1.PublishEnrollment, writeEnrollment(v))));
      return;
    }
    case 'uploadVcr': {
      const upload = readVcrUpload(frame.uploadVcr ?? {});
      for (const r of upload.refused) checkCode(r.code, `VCR ${r.index}`);
      oracle(upload.vcrs.length + upload.refused.length === (frame.uploadVcr?.records ?? []).length, 'UploadVcr: a VCR was neither accepted nor refused');
      for (const v of upload.vcrs) roundTrip('Vcr', v, readVcr(overTheWire(ime.v1.Vcr, writeVcr(v))));
      return;
    }
    case 'ack': {
      const v = readAck(frame.ack ?? {});
      // Codes inside an Ack are the other side's; the reader must still only pass well-formed ones.
      for (const r of v.refused) checkRemoteCode(r.code, 'Ack');
      roundTrip('Ack', v, readAck(overTheWire(ime.v1.Ack, writeAck(v))));
      return;
    }
    case 'learnedRoutes': {
      const v = readLearnedRoutes(frame.learnedRoutes ?? {});
      roundTrip('LearnedRoutePush', v, readLearnedRoutes(overTheWire(ime.v1.LearnedRoutePush, { routes: v.map(writeLearnedRoute) })));
      return;
    }
    case 'notice': {
      const v = readNotice(frame.notice ?? {});
      roundTrip('Notice', v, readNotice(overTheWire(ime.v1.Notice, writeNotice(v))));
      return;
    }
    case 'error': {
      checkRemoteCode(readErrorInfo(frame.error).code, 'ErrorInfo');
      return;
    }
    default:
      throw new Error(`the frame decoder passed a frame without a known body (${String(frame.body)})`);
  }
}

export function vapTarget(seeds: readonly Uint8Array[]): FuzzTarget {
  return {
    name: 'vap',
    seeds,
    run(input) {
      const h = inputHash(input);
      // The server reads with the small handshake limit until Register, then the full one.
      const reader = new VapFrameReader({ maxFrameBytes: h & 1 ? VAP_HANDSHAKE_MAX_FRAME_BYTES : DEFAULT_MAX_VAP_FRAME_BYTES });
      // Split where the hash says, so frames straddle chunk boundaries as they do on a socket.
      const cuts = [0, ...[(h >>> 1) % (input.length + 1), (h >>> 12) % (input.length + 1)].sort((a, b) => a - b), input.length];
      const frames: VapFrame[] = [];
      let error: ImeError | undefined;
      for (let i = 0; i + 1 < cuts.length && !error; i++) {
        const r = reader.push(input.subarray(cuts[i], cuts[i + 1]));
        frames.push(...r.frames);
        error = r.error;
      }
      error ??= reader.end();
      for (const f of frames) readBody(f);
      if (error) throw error;
      return frames.length === 0 ? ACCEPTED : { accepted: true, note: frames.map((f) => f.body).join(',') };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Over a real socket

interface Exchange {
  /** Codes of the error frames the server sent. */
  readonly codes: string[];
  readonly closed: boolean;
}

/** Sends bytes on a fresh connection, half-closes, and waits for the server to close it. */
function sendRaw(port: number, bytes: Uint8Array, limitMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const reader = new VapFrameReader();
    const codes: string[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ codes, closed: false });
    }, limitMs);
    socket.on('connect', () => socket.end(bytes));
    socket.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk).frames) if (f.error) codes.push(f.error.code);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ codes, closed: true });
    });
  });
}

/** Registers first (digest and all), then sends the bytes as a registered call manager and half-closes. */
async function sendRegistered(port: number, bytes: Uint8Array, limitMs: number): Promise<Exchange> {
  const raw = await RawVap.open(port);
  try {
    const { frame } = await raw.register(USER, PASSWORD);
    oracle(frame.body === 'registered', `registration failed: ${frame.error?.code ?? String(frame.body)}`);
    raw.sendBytes(bytes);
    raw.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([raw.closed.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), limitMs)))]);
    clearTimeout(timer);
    return { codes: raw.frames.flatMap((f) => (f.error ? [f.error.code] : [])), closed };
  } finally {
    raw.destroy();
  }
}

export interface VapNetworkReport extends FuzzReport {
  goodAcks: number;
}

/**
 * A slice of mutated inputs over TCP to a real VAP server instance, half on fresh connections and
 * half after a real registration, while a registered call manager keeps uploading VCRs and must get
 * every answer. Each connection must be closed by the server (no hang), every error frame must carry
 * a code, never E_INTERNAL.
 */
export async function fuzzVapOverTcp(seeds: readonly Uint8Array[], options: FuzzOptions & { parallel: number }): Promise<VapNetworkReport> {
  const report: VapNetworkReport = { ...newReport('vap-tcp', options.seed), goodAcks: 0 };
  const { server, backend, port } = await startInstance({ maxConnectionsAllowed: 1_000 });
  const started = performance.now();
  try {
    const good = await VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: USER, password: PASSWORD });
    let stop = false;
    let goodFailure: unknown;
    const goodLoop = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const ack = await good.uploadVcrs([
            { calling: '+14085550100', called: '+12125550100', startMs: 1_700_000_000_000, stopMs: 1_700_000_060_000, direction: 'originating', callId: `good-${i}` },
          ]);
          if (ack.accepted !== 1 || ack.refused.length !== 0) throw new Error(`unexpected answer ${JSON.stringify(ack)}`);
          report.goodAcks++;
        } catch (err) {
          goodFailure = err;
          return;
        }
      }
    })();

    const mutator = new Mutator(prng(options.seed ^ 0x7c9), seeds);
    const inputs = Array.from({ length: options.count }, () => mutator.next());
    let next = 0;
    const limitMs = Math.max(10_000, 5 * options.hangMs);
    await Promise.all(
      Array.from({ length: options.parallel }, async () => {
        while (next < inputs.length) {
          const index = next++;
          const input = inputs[index] as Uint8Array;
          await runOne(report, options, index, input, async () => {
            const registered = (inputHash(input) & 1) === 1;
            const x = registered ? await sendRegistered(port, input, limitMs) : await sendRaw(port, input, limitMs);
            oracle(x.closed, 'the server did not close the connection after the call manager half-closed it');
            for (const code of x.codes) checkCode(code, 'error frame from the VAP server');
            return x.codes.length === 0 ? ACCEPTED : { refused: x.codes[0] as string };
          });
          if ((index + 1) % Math.max(1, Math.floor(inputs.length / 5)) === 0) {
            options.log?.(`fuzz vap-tcp: ${index + 1}/${inputs.length} connections, good call manager ${report.goodAcks} acks`);
          }
        }
      }),
    );
    stop = true;
    await goodLoop;
    oracle(goodFailure === undefined, `the registered call manager failed during the attack: ${String((goodFailure as Error | undefined)?.message)}`);
    oracle(!good.closed, 'the registered call manager was disconnected during the attack');
    // Still served after the attack, and every good VCR reached the backend exactly once.
    oracle((await good.uploadVcrs([])).accepted === 0, 'the registered call manager got no answer after the attack');
    oracle(backend.vcrs.filter((v) => v.callId.startsWith('good-')).length === report.goodAcks, 'good VCRs were lost or duplicated');
    await good.close();
  } finally {
    await server.stop();
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
