import { createHash, hash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isImeError } from '@ime/core';
import { prng } from '../../../packages/vap/test/helpers.js';

/**
 * A small deterministic mutation fuzzer (jazzer.js would need native prebuilds this machine cannot
 * download). Inputs are valid seeds from the corpus, mutated by stacked byte-level and
 * protobuf-aware operators, plus now and then a purely random buffer. Everything comes from one
 * seeded PRNG, so a run is replayed by its seed; a failing input is also written to a file so it can
 * be replayed on its own.
 *
 * The oracle is the same for every target: an input is accepted, or refused with an ImeError whose
 * code looks like /^E_[A-Z0-9_]+$/. Anything else thrown (TypeError, RangeError, a protobufjs error
 * that escaped) is a crash; a target may also throw FuzzOracleError when a result breaks one of its
 * own rules (a forged ticket accepted, an error frame without a code). An input that takes longer
 * than `hangMs` is a hang.
 */

export type Rand = ReturnType<typeof prng>;
export { prng };

export const ERROR_CODE = /^E_[A-Z0-9_]+$/;
/** Inputs larger than this are cut: repeated duplication must not grow them without bound. */
export const MAX_INPUT_BYTES = 16 * 1024;
const RANDOM_BUFFER_MAX = 4096;
/** Inputs whose outcome was never seen before join the pool mutations start from (at most this many). */
const POOL_MAX = 512;
const CRASHES_KEPT = 20;

/** What a target made of one input: accepted, or refused with a code (a thrown ImeError counts too). */
export type FuzzOutcome = { readonly accepted: true; readonly note?: string } | { readonly refused: string; readonly note?: string };

export const ACCEPTED: FuzzOutcome = { accepted: true };

export function refusedWith(code: string, note?: string): FuzzOutcome {
  return note === undefined ? { refused: code } : { refused: code, note };
}

/** A rule of the target broken by the product's answer (not by the input). */
export class FuzzOracleError extends Error {
  override readonly name = 'FuzzOracleError';
}

export function oracle(condition: unknown, message: string): asserts condition {
  if (!condition) throw new FuzzOracleError(message);
}

/** Checks a refusal code that came back in an answer rather than as a thrown ImeError. */
export function checkCode(code: unknown, where: string): string {
  if (typeof code !== 'string' || !ERROR_CODE.test(code)) throw new FuzzOracleError(`${where}: refusal without an error code (${JSON.stringify(code)})`);
  if (code === 'E_INTERNAL') throw new FuzzOracleError(`${where}: E_INTERNAL (an unexpected exception inside the product)`);
  return code;
}

/**
 * Checks a code the other side of a protocol sent (a remote refusal passed through a reader): it must
 * be well formed; E_INTERNAL is a legitimate thing for a remote to say.
 */
export function checkRemoteCode(code: unknown, where: string): string {
  if (typeof code !== 'string' || !ERROR_CODE.test(code)) throw new FuzzOracleError(`${where}: a reader passed a malformed code (${JSON.stringify(code)})`);
  return code;
}

/** Where a protobuf message sits inside an input that is not one (a ticket: 2-byte header, MAC after). */
export type Envelope = (input: Uint8Array) => { readonly head: number; readonly tail: number } | undefined;

export interface FuzzTarget {
  readonly name: string;
  readonly seeds: readonly Uint8Array[];
  readonly envelope?: Envelope;
  run(input: Uint8Array): FuzzOutcome | Promise<FuzzOutcome>;
}

export interface FuzzOptions {
  readonly count: number;
  readonly seed: number;
  /** An input slower than this is a hang. */
  readonly hangMs: number;
  /** Where failing inputs are written. */
  readonly crashDir: string;
  /** Progress lines go here (a watcher sees the run advance). */
  readonly log?: (line: string) => void;
}

export interface FuzzFailure {
  readonly kind: 'crash' | 'hang';
  readonly index: number;
  readonly message: string;
  readonly file: string;
}

export interface FuzzReport {
  readonly target: string;
  readonly seed: number;
  inputs: number;
  accepted: number;
  readonly refused: Map<string, number>;
  readonly failures: FuzzFailure[];
  crashes: number;
  hangs: number;
  maxMs: number;
  seconds: number;
}

/**
 * A stable hash of an input, for choices a target derives from the input alone (so that a saved
 * input replays them). Native SHA-1: a JavaScript byte loop here was, measured, the fuzzer's largest
 * cost under jest.
 */
export function inputHash(input: Uint8Array): number {
  return hash('sha1', input, 'buffer').readUInt32BE(0);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

// ---------------------------------------------------------------------------------------------
// Mutation

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x7e, 0xfe, 0x40, 0x20, 0x0a];
const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x1_0000, 4096, 4097, 0x10_0000, 0x10_0001, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
const INTERESTING_VARINTS: readonly bigint[] = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffn,
  0x3fffn,
  0x4000n,
  0x7fff_ffffn,
  0x8000_0000n,
  0xffff_ffffn,
  0x1_0000_0000n,
  (1n << 53n) - 1n,
  1n << 53n,
  (1n << 63n) - 1n,
  1n << 63n,
  (1n << 64n) - 1n,
];

function encodeVarint(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

interface VarintSpot {
  /** Offset of the varint and its length in bytes. */
  readonly at: number;
  readonly length: number;
  /** A length prefix of a length-delimited field (rather than a tag or a value). */
  readonly isLength: boolean;
}

function readVarint(buf: Uint8Array, at: number, end: number): { value: number; length: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && at + i < end; i++) {
    const b = buf[at + i] as number;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return { value, length: i + 1 };
  }
  return undefined;
}

/**
 * Where the varints of a protobuf message are (tags, values and length prefixes), recursing into
 * length-delimited fields that themselves parse as messages. Best effort: scanning stops at the
 * first thing that is not protobuf, which for a mutated input is often early.
 */
function varintSpots(buf: Uint8Array, start = 0, end = buf.length, depth = 0, out: VarintSpot[] = []): VarintSpot[] {
  let at = start;
  while (at < end && out.length < 256) {
    const tag = readVarint(buf, at, end);
    if (!tag || tag.value === 0) return out;
    out.push({ at, length: tag.length, isLength: false });
    at += tag.length;
    const wireType = tag.value % 8;
    if (wireType === 0) {
      const v = readVarint(buf, at, end);
      if (!v) return out;
      out.push({ at, length: v.length, isLength: false });
      at += v.length;
    } else if (wireType === 1) {
      at += 8;
    } else if (wireType === 5) {
      at += 4;
    } else if (wireType === 2) {
      const len = readVarint(buf, at, end);
      if (!len || at + len.length + len.value > end) return out;
      out.push({ at, length: len.length, isLength: true });
      at += len.length;
      if (depth < 6 && len.value > 0) varintSpots(buf, at, at + len.value, depth + 1, out);
      at += len.value;
    } else {
      return out;
    }
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Mutation = (input: Uint8Array, rand: Rand, other: () => Uint8Array) => Uint8Array;

/** n random bytes, four per PRNG step (the helper's byte-at-a-time version dominated the run's time). */
function randomBytes(rand: Rand, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = Math.floor(rand.next() * 0x1_0000_0000);
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = v >>> 24;
  }
  return out;
}

function position(rand: Rand, length: number): number {
  return rand.int(length + 1);
}

/** A short range, biased to small lengths (most interesting edits are small). */
function rangeLength(rand: Rand, max: number): number {
  if (max <= 0) return 0;
  const cap = rand.next() < 0.8 ? Math.min(max, 8) : max;
  return 1 + rand.int(cap);
}

const MUTATIONS: readonly (readonly [string, Mutation])[] = [
  [
    'flip-bit',
    (b, rand) => {
      if (b.length === 0) return b;
      const out = b.slice();
      const i = rand.int(out.length);
      out[i] = (out[i] as number) ^ (1 << rand.int(8));
      return out;
    },
  ],
  [
    'interesting-byte',
    (b, rand) => {
      if (b.length === 0) return Uint8Array.of(INTERESTING_BYTES[rand.int(INTERESTING_BYTES.length)] as number);
      const out = b.slice();
      out[rand.int(out.length)] = INTERESTING_BYTES[rand.int(INTERESTING_BYTES.length)] as number;
      return out;
    },
  ],
  [
    'random-bytes',
    (b, rand) => {
      if (b.length === 0) return b;
      const out = b.slice();
      const n = rangeLength(rand, out.length);
      const at = rand.int(out.length - n + 1);
      out.set(randomBytes(rand, n), at);
      return out;
    },
  ],
  [
    'insert',
    (b, rand) => {
      const at = position(rand, b.length);
      const n = rangeLength(rand, 64);
      const fill = rand.next() < 0.5 ? randomBytes(rand, n) : new Uint8Array(n).fill(INTERESTING_BYTES[rand.int(INTERESTING_BYTES.length)] as number);
      return concat(b.subarray(0, at), fill, b.subarray(at));
    },
  ],
  [
    'delete',
    (b, rand) => {
      if (b.length === 0) return b;
      const n = rangeLength(rand, b.length);
      const at = rand.int(b.length - n + 1);
      return concat(b.subarray(0, at), b.subarray(at + n));
    },
  ],
  [
    'duplicate',
    (b, rand) => {
      if (b.length === 0) return b;
      const n = rangeLength(rand, b.length);
      const from = rand.int(b.length - n + 1);
      const to = position(rand, b.length);
      return concat(b.subarray(0, to), b.subarray(from, from + n), b.subarray(to));
    },
  ],
  ['truncate', (b, rand) => b.subarray(0, rand.int(b.length + 1))],
  [
    'extend',
    (b, rand) => {
      const n = rangeLength(rand, 256);
      const tail = rand.next() < 0.5 ? randomBytes(rand, n) : b.subarray(0, Math.min(n, b.length));
      return concat(b, tail);
    },
  ],
  [
    'splice',
    (b, rand, other) => {
      const o = other();
      const cut = position(rand, b.length);
      const from = position(rand, o.length);
      return concat(b.subarray(0, cut), o.subarray(from));
    },
  ],
  [
    'varint',
    (b, rand) => {
      const spots = varintSpots(b);
      const spot = spots[rand.int(spots.length)];
      if (!spot) return b;
      const value = INTERESTING_VARINTS[rand.int(INTERESTING_VARINTS.length)] as bigint;
      // Now and then an overlong encoding (a value padded with continuation bytes), which a strict
      // decoder may treat differently from the short one.
      let bytes = encodeVarint(value);
      if (rand.next() < 0.15 && bytes.length < 10) {
        const padded = new Uint8Array(bytes.length + 1);
        padded.set(bytes);
        padded[bytes.length - 1] = (padded[bytes.length - 1] as number) | 0x80;
        padded[bytes.length] = 0;
        bytes = padded;
      }
      return concat(b.subarray(0, spot.at), bytes, b.subarray(spot.at + spot.length));
    },
  ],
  [
    'length-prefix',
    (b, rand) => {
      const spots = varintSpots(b).filter((s) => s.isLength);
      const spot = spots[rand.int(spots.length)];
      if (!spot) return b;
      const current = readVarint(b, spot.at, b.length)?.value ?? 0;
      const choices = [0n, 1n, BigInt(Math.max(0, current - 1)), BigInt(current + 1), BigInt(current * 2), 0x7fff_ffffn, 0xffff_ffffn, (1n << 64n) - 1n];
      const bytes = encodeVarint(choices[rand.int(choices.length)] as bigint);
      return concat(b.subarray(0, spot.at), bytes, b.subarray(spot.at + spot.length));
    },
  ],
  [
    'u32-be',
    (b, rand) => {
      // 4-byte big-endian integers: the VAP length prefix and any fixed-width count.
      const out = b.length >= 4 ? b.slice() : concat(b, new Uint8Array(4 - b.length));
      const at = rand.next() < 0.5 ? 0 : rand.int(out.length - 3);
      new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(at, INTERESTING_U32[rand.int(INTERESTING_U32.length)] as number, false);
      return out;
    },
  ],
];

// ---------------------------------------------------------------------------------------------
// Protobuf-aware edits: parse the message into a tree, change one field, write it back with every
// enclosing length prefix recomputed. Byte-level edits break the framing of most messages; these
// keep it, so the input reaches the field checks behind the decoder.

interface PbField {
  head: Uint8Array;
  wireType: number;
  value: Uint8Array;
  children: PbField[] | undefined;
}

const PB_MAX_DEPTH = 8;
const PB_MAX_FIELDS = 4096;

function parsePb(buf: Uint8Array, depth: number): PbField[] | undefined {
  const out: PbField[] = [];
  let at = 0;
  while (at < buf.length) {
    const tag = readVarint(buf, at, buf.length);
    if (!tag || tag.value === 0 || tag.value >= 2 ** 32) return undefined;
    const head = buf.subarray(at, at + tag.length);
    at += tag.length;
    const wireType = tag.value % 8;
    let value: Uint8Array;
    let children: PbField[] | undefined;
    if (wireType === 0) {
      const v = readVarint(buf, at, buf.length);
      if (!v) return undefined;
      value = buf.subarray(at, at + v.length);
      at += v.length;
    } else if (wireType === 1 || wireType === 5) {
      const n = wireType === 1 ? 8 : 4;
      if (at + n > buf.length) return undefined;
      value = buf.subarray(at, at + n);
      at += n;
    } else if (wireType === 2) {
      const len = readVarint(buf, at, buf.length);
      if (!len || at + len.length + len.value > buf.length) return undefined;
      at += len.length;
      value = buf.subarray(at, at + len.value);
      at += len.value;
      children = depth < PB_MAX_DEPTH && value.length > 0 ? parsePb(value, depth + 1) : undefined;
    } else {
      return undefined;
    }
    out.push({ head, wireType, value, children });
    if (out.length > PB_MAX_FIELDS) return undefined;
  }
  return out;
}

function serializePb(fields: readonly PbField[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    parts.push(f.head);
    if (f.wireType === 2) {
      const content = f.children ? serializePb(f.children) : f.value;
      parts.push(encodeVarint(BigInt(content.length)), content);
    } else {
      parts.push(f.value);
    }
  }
  return concat(...parts);
}

const encoder = new TextEncoder();
const INTERESTING_TEXT: readonly Uint8Array[] = [
  '',
  'a',
  '+',
  '+1',
  '+12125551001',
  '+1212555100X',
  '12125551001',
  'acme.example',
  'ACME.EXAMPLE.',
  'sip:x@y',
  'E_',
  'E_INTERNAL',
  ' ',
  '\u0000',
  '\u00e9',
  '\u2028',
  '\u001b[31m',
  '\ud834\udd1e',
  '..',
  '-',
  '0'.repeat(300),
  'x'.repeat(5000),
].map((t) => encoder.encode(t));
const INVALID_UTF8: readonly Uint8Array[] = [Uint8Array.of(0xff), Uint8Array.of(0xc0, 0x80), Uint8Array.of(0xed, 0xa0, 0x80), Uint8Array.of(0xe2, 0x82)];
const INTERESTING_LENGTHS = [0, 1, 11, 12, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 97];

/** A new content for a length-delimited field (a string, bytes or a message). */
function newContent(value: Uint8Array, rand: Rand, other: () => Uint8Array): Uint8Array {
  switch (rand.int(6)) {
    case 0:
      return INTERESTING_TEXT[rand.int(INTERESTING_TEXT.length)] as Uint8Array;
    case 1: {
      const at = position(rand, value.length);
      return concat(value.subarray(0, at), INVALID_UTF8[rand.int(INVALID_UTF8.length)] as Uint8Array, value.subarray(at));
    }
    case 2:
      return randomBytes(rand, INTERESTING_LENGTHS[rand.int(INTERESTING_LENGTHS.length)] as number);
    case 3:
      return concat(value, value);
    default: {
      // A byte-level edit of the content alone: the framing around it stays right.
      const [, mutate] = MUTATIONS[rand.int(MUTATIONS.length)] as (typeof MUTATIONS)[number];
      return mutate(value, rand, other);
    }
  }
}

/** Bodies of a stream of 4-byte big-endian length-prefixed frames (VAP), if that is what the input is. */
function splitFrames(input: Uint8Array): Uint8Array[] | undefined {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const bodies: Uint8Array[] = [];
  let at = 0;
  while (at + 4 <= input.length) {
    const n = view.getUint32(at, false);
    if (at + 4 + n > input.length) return undefined;
    bodies.push(input.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return at === input.length && bodies.length > 0 ? bodies : undefined;
}

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

function pbFieldEdit(input: Uint8Array, rand: Rand, other: () => Uint8Array, envelope?: Envelope): Uint8Array {
  const tree = parsePb(input, 0);
  if (!tree || tree.length === 0) {
    const inner = envelope?.(input);
    if (inner && inner.head + inner.tail <= input.length) {
      const body = input.subarray(inner.head, input.length - inner.tail);
      const edited = pbFieldEdit(body, rand, other);
      return edited === body ? input : concat(input.subarray(0, inner.head), edited, input.subarray(input.length - inner.tail));
    }
    // Length-prefixed frames: edit one frame's message and fix its prefix.
    const bodies = splitFrames(input);
    if (!bodies) return input;
    const i = rand.int(bodies.length);
    const edited = pbFieldEdit(bodies[i] as Uint8Array, rand, other);
    if (edited === bodies[i]) return input;
    bodies[i] = edited;
    return concat(...bodies.map(frame));
  }
  const spots: { list: PbField[]; index: number }[] = [];
  const walk = (list: PbField[]) =>
    list.forEach((f, index) => {
      spots.push({ list, index });
      if (f.children) walk(f.children);
    });
  walk(tree);
  const { list, index } = spots[rand.int(spots.length)] as { list: PbField[]; index: number };
  const field = list[index] as PbField;
  switch (rand.int(8)) {
    case 0:
      list.splice(index, 1);
      break;
    case 1:
      // A repeated field gets another element; a singular one appears twice (the last one wins).
      list.splice(index + rand.int(2), 0, { ...field });
      break;
    case 2: {
      const j = rand.int(list.length);
      list[index] = list[j] as PbField;
      list[j] = field;
      break;
    }
    case 3: {
      // Same field number, another wire type: a decoder must not read it as the declared type.
      const tag = readVarint(field.head, 0, field.head.length)?.value ?? 8;
      list[index] = { ...field, head: encodeVarint(BigInt(tag - (tag % 8) + ([0, 1, 2, 5][rand.int(4)] as number))), children: undefined };
      break;
    }
    default:
      if (field.wireType === 0) field.value = encodeVarint(INTERESTING_VARINTS[rand.int(INTERESTING_VARINTS.length)] as bigint);
      else if (field.wireType === 2) {
        field.value = newContent(field.children ? serializePb(field.children) : field.value, rand, other);
        field.children = undefined;
      } else field.value = rand.next() < 0.5 ? new Uint8Array(field.value.length).fill(0xff) : randomBytes(rand, field.value.length);
  }
  return serializePb(tree);
}

/** One edit: the protobuf-aware one half the time (when the input parses), a byte-level one otherwise. */
function mutateOnce(input: Uint8Array, rand: Rand, other: () => Uint8Array, envelope?: Envelope): Uint8Array {
  if (rand.next() < 0.5) {
    const edited = pbFieldEdit(input, rand, other, envelope);
    if (edited !== input) return edited;
  }
  const [, mutate] = MUTATIONS[rand.int(MUTATIONS.length)] as (typeof MUTATIONS)[number];
  return mutate(input, rand, other);
}

/** Produces inputs: corpus entries (and novel inputs found on the way) with 1–8 stacked mutations. */
export class Mutator {
  readonly #rand: Rand;
  readonly #seeds: readonly Uint8Array[];
  readonly #envelope: Envelope | undefined;
  readonly #pool: Uint8Array[] = [];

  constructor(rand: Rand, seeds: readonly Uint8Array[], envelope?: Envelope) {
    if (seeds.length === 0) throw new Error('a fuzz target needs at least one seed');
    this.#rand = rand;
    this.#seeds = seeds;
    this.#envelope = envelope;
  }

  get poolSize(): number {
    return this.#pool.length;
  }

  /** Keeps an input whose outcome no earlier input had, so later mutations start from it too. */
  keep(input: Uint8Array): void {
    if (this.#pool.length < POOL_MAX) this.#pool.push(input);
    else this.#pool[this.#rand.int(POOL_MAX)] = input;
  }

  #parent(): Uint8Array {
    const rand = this.#rand;
    if (this.#pool.length > 0 && rand.next() < 0.25) return this.#pool[rand.int(this.#pool.length)] as Uint8Array;
    return this.#seeds[rand.int(this.#seeds.length)] as Uint8Array;
  }

  next(): Uint8Array {
    const rand = this.#rand;
    if (rand.next() < 0.02) return randomBytes(rand, rand.int(RANDOM_BUFFER_MAX + 1));
    let input = this.#parent();
    // Mostly one or two edits, so many inputs stay close to valid and reach deep code; sometimes
    // four or eight, for inputs far from anything an encoder writes.
    const stack = rand.next() < 0.5 ? 1 : 1 << (1 + rand.int(3));
    for (let i = 0; i < stack; i++) {
      input = mutateOnce(input, rand, () => this.#parent(), this.#envelope);
      if (input.length > MAX_INPUT_BYTES) input = input.subarray(0, MAX_INPUT_BYTES);
    }
    // A copy: targets may keep views of what they decode, and mutations share buffers with parents.
    return Uint8Array.from(input);
  }
}

// ---------------------------------------------------------------------------------------------
// Running

/** Counts and checks one input's outcome; returns the failure message when it is a crash. */
function classify(result: { outcome?: FuzzOutcome; error?: unknown }): { signature: string; code?: string; accepted?: true; crash?: string } {
  if (result.error !== undefined) {
    const err = result.error;
    if (err instanceof FuzzOracleError) return { signature: 'oracle', crash: `oracle: ${err.message}` };
    if (isImeError(err)) {
      if (!ERROR_CODE.test(err.code)) return { signature: 'bad-code', crash: `ImeError with a malformed code ${JSON.stringify(err.code)}: ${err.message}` };
      return { signature: `refused:${err.code}`, code: err.code };
    }
    const e = err as { name?: string; message?: string; stack?: string };
    return { signature: 'crash', crash: `${e?.name ?? typeof err}: ${e?.message ?? String(err)}\n${e?.stack ?? ''}` };
  }
  const outcome = result.outcome as FuzzOutcome;
  if ('accepted' in outcome) return { signature: `accepted:${outcome.note ?? ''}`, accepted: true };
  if (!ERROR_CODE.test(outcome.refused)) return { signature: 'bad-code', crash: `refusal without an error code: ${JSON.stringify(outcome.refused)}` };
  return { signature: `refused:${outcome.refused}:${outcome.note ?? ''}`, code: outcome.refused };
}

export function saveFailure(crashDir: string, target: string, seed: number, index: number, kind: string, input: Uint8Array, message: string): string {
  mkdirSync(crashDir, { recursive: true });
  const digest = createHash('sha256').update(input).digest('hex').slice(0, 12);
  const base = join(crashDir, `${target}-${kind}-seed${seed}-${index}-${digest}`);
  writeFileSync(`${base}.bin`, input);
  writeFileSync(`${base}.txt`, `${kind} in target ${target}, seed ${seed}, input #${index} (${input.length} bytes)\n\n${message}\n`);
  return `${base}.bin`;
}

function settleWithin<T>(work: () => T | Promise<T>, limitMs: number): Promise<{ outcome?: T; error?: unknown; timedOut?: true }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<{ timedOut: true }>((resolve) => {
    timer = setTimeout(() => resolve({ timedOut: true }), limitMs);
  });
  const run = (async () => {
    try {
      return { outcome: await work() };
    } catch (error) {
      return { error: error ?? new Error('undefined was thrown') };
    }
  })();
  return Promise.race([run, timeout]).finally(() => clearTimeout(timer));
}

/** Creates an empty report for a target; `record` fills it one input at a time. */
export function newReport(target: string, seed: number): FuzzReport {
  return { target, seed, inputs: 0, accepted: 0, refused: new Map(), failures: [], crashes: 0, hangs: 0, maxMs: 0, seconds: 0 };
}

/**
 * Runs one input through `work` and records what happened: counts, the slowest time, and any crash
 * or hang (written to the crash directory). Returns the outcome's signature, or undefined on failure.
 */
export async function runOne(
  report: FuzzReport,
  options: Pick<FuzzOptions, 'hangMs' | 'crashDir' | 'seed'>,
  index: number,
  input: Uint8Array,
  work: () => FuzzOutcome | Promise<FuzzOutcome>,
): Promise<string | undefined> {
  const started = performance.now();
  // A promise that never settles would stop the run: give up on it after a generous multiple.
  const result = await settleWithin(work, Math.max(10_000, 5 * options.hangMs));
  const ms = performance.now() - started;
  report.inputs++;
  if (ms > report.maxMs) report.maxMs = ms;
  const fail = (kind: 'crash' | 'hang', message: string) => {
    if (kind === 'crash') report.crashes++;
    else report.hangs++;
    if (report.failures.length < CRASHES_KEPT) {
      const file = saveFailure(options.crashDir, report.target, options.seed, index, kind, input, message);
      report.failures.push({ kind, index, message: message.split('\n')[0] as string, file });
    }
  };
  if (result.timedOut) {
    fail('hang', `no answer after ${Math.round(ms)} ms`);
    return undefined;
  }
  const c = classify(result);
  if (c.crash !== undefined) {
    fail('crash', c.crash);
    return undefined;
  }
  if (ms > options.hangMs) {
    // The machine may have stalled (other processes on the same cores, a collection): a slow input
    // is timed once more, and is a hang only if it is slow again.
    const again = performance.now();
    await settleWithin(work, Math.max(10_000, 5 * options.hangMs));
    const ms2 = performance.now() - again;
    if (ms2 > options.hangMs) fail('hang', `took ${Math.round(ms)} ms, then ${Math.round(ms2)} ms again (limit ${options.hangMs} ms)`);
  }
  if (c.accepted) report.accepted++;
  else if (c.code !== undefined) report.refused.set(c.code, (report.refused.get(c.code) ?? 0) + 1);
  return c.signature;
}

/** Fuzzes one target: `count` mutated inputs, one at a time. */
export async function fuzzTarget(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const report = newReport(target.name, options.seed);
  const rand = prng(options.seed ^ inputHash(new TextEncoder().encode(target.name)));
  const mutator = new Mutator(rand, target.seeds, target.envelope);
  const seen = new Set<string>();
  const started = performance.now();
  const step = Math.max(1, Math.floor(options.count / 10));
  for (let i = 0; i < options.count; i++) {
    const input = mutator.next();
    const signature = await runOne(report, options, i, input, () => target.run(input));
    if (signature !== undefined && !seen.has(signature)) {
      seen.add(signature);
      mutator.keep(input);
    }
    if ((i + 1) % step === 0) {
      const s = (performance.now() - started) / 1000;
      options.log?.(`fuzz ${target.name}: ${i + 1}/${options.count} inputs, ${report.accepted} accepted, ${report.crashes} crashes, ${report.hangs} hangs, ${s.toFixed(1)} s`);
    }
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

// ---------------------------------------------------------------------------------------------
// Reporting

export function topCodes(report: FuzzReport, n = 4): string {
  return [...report.refused.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([code, count]) => `${code} ${count}`)
    .join(', ');
}

export function reportTable(reports: readonly FuzzReport[]): string {
  const header = ['target', 'inputs', 'accepted', 'refused', 'crashes', 'hangs', 'max ms', 'seconds', 'top refusal codes'];
  const rows = reports.map((r) => [
    r.target,
    String(r.inputs),
    String(r.accepted),
    String([...r.refused.values()].reduce((a, b) => a + b, 0)),
    String(r.crashes),
    String(r.hangs),
    r.maxMs.toFixed(1),
    r.seconds.toFixed(1),
    topCodes(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
