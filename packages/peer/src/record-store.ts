import { createHash } from 'node:crypto';
import { type DidRecord, ImeError, didRecordProblem, isImeError, verifyDidRecord } from '@ime/core';
import type { Database } from '@ime/runtime';
import { ime } from '@ime/wire';
import { POSITION_BYTES, RING_END, RING_START } from './ring-placement.js';
import type { KeyRange, KeyRecords, RecordStoreApi, StoreResult } from './ring-types.js';

/**
 * The peer's DID records in LevelDB (docs/RING.md "Records").
 *
 * Layout (the database is shared with the rest of the peer, so only these two prefixes are ours):
 *   0x01 ‖ key (32 bytes)            → ime.v1.KeyRecords: every publisher's record of the key, sorted by
 *                                      publisher key (so two stores holding the same records digest alike)
 *   0x02 ‖ publisher key (32 bytes)  → u32 BE slots ‖ u32 BE tombstones: the (key, publisher) slots the
 *                                      publisher occupies here, and how many of them are tombstones
 *
 * A key's records live in one value because a read wants all of them at once (one LevelDB get), and
 * records of one key from different publishers are rare. The counts are kept in memory (loaded at
 * open) so the quota check and `recordCount` cost nothing, and written in the same batch as the
 * records so they cannot drift apart after a crash.
 */

const RECORDS_PREFIX = 0x01;
const COUNTS_PREFIX = 0x02;
/** Clocks of the publisher and this replica may differ a little: accept expiries that far beyond the TTL. */
export const TTL_CLOCK_SKEW_MS = 5 * 60 * 1000;
const DEFAULT_SCAN_LIMIT = 500;
/** Entries read per LevelDB iterator step: large enough to amortise the native call, small enough to stop early. */
const ITERATOR_STEP = 256;
/** Keys rewritten per mutation by `sweep`, so a long sweep never holds the mutation queue for long. */
const SWEEP_CHUNK = 512;
const RING_SIZE = 1n << 256n;

export interface RecordStoreOptions {
  readonly db: Database;
  /** Clock in ms since the epoch (tests move it). */
  readonly now?: () => number;
  /** The ring's record TTL in ms; a function when it follows the signed configuration. */
  readonly maxTtlMs: number | (() => number);
  /** The per-publisher cap at this replica, by hex publisher key (default: unlimited). */
  readonly capFor?: (publisherKeyHex: string) => number;
  /**
   * Whether a record's publisher may have records here at all (the peer: an admitted ring member).
   * Asked of every record, whoever sends it: a relayed record of a banned or outside publisher, or
   * one signed with a key no member holds, must not get in through an admitted accomplice (default:
   * every publisher).
   */
  readonly admitsPublisher?: (publisherKey: Uint8Array) => boolean;
  /** Read single keys with LevelDB's synchronous get (default true; see `get`). */
  readonly syncReads?: boolean;
}

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

interface Counts {
  slots: number;
  tombstones: number;
}

/** One key's records while a put is deciding: loaded once per batch, written once if changed. */
interface KeyState {
  readonly key: Uint8Array;
  /** Sorted by publisher key. */
  records: DidRecord[];
  dirty: boolean;
}

function recordsKey(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + key.length);
  out[0] = RECORDS_PREFIX;
  out.set(key, 1);
  return out;
}

function countsKey(publisherKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + publisherKey.length);
  out[0] = COUNTS_PREFIX;
  out.set(publisherKey, 1);
  return out;
}

function encodeCounts(c: Counts): Uint8Array {
  const out = Buffer.alloc(8);
  out.writeUInt32BE(c.slots, 0);
  out.writeUInt32BE(c.tombstones, 4);
  return out;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** Byte-for-byte the same record (the key and publisher are already known to match). */
/** One version of one publisher's record of a key: key, publisher and sequence. */
export function recordVersionId(r: DidRecord): string {
  return `${hex(r.key)}|${hex(r.publisherKey)}|${r.sequence}`;
}

export function sameRecord(a: DidRecord, b: DidRecord): boolean {
  return (
    a.sequence === b.sequence &&
    a.expiresAtMs === b.expiresAtMs &&
    a.tombstone === b.tombstone &&
    bytesEqual(a.signature, b.signature) &&
    bytesEqual(a.nonce, b.nonce) &&
    bytesEqual(a.sealedClaim, b.sealedClaim) &&
    bytesEqual(a.key, b.key) &&
    bytesEqual(a.publisherKey, b.publisherKey)
  );
}

/**
 * The record's eight fields in a plain object: a record decoded from a request may carry unknown
 * fields, which the signature does not cover and which must not be stored. The bytes are not copied:
 * they are encoded into the stored value before the put returns, and nothing keeps the object.
 */
function plainRecord(r: DidRecord): DidRecord {
  return {
    key: r.key,
    publisherKey: r.publisherKey,
    sequence: r.sequence,
    expiresAtMs: r.expiresAtMs,
    tombstone: r.tombstone,
    nonce: r.nonce,
    sealedClaim: r.sealedClaim,
    signature: r.signature,
  };
}

/** Encodes each key's records into one buffer (one allocation per batch, not per key); LevelDB copies values. */
function encodeValues(list: readonly { key: Uint8Array; records: DidRecord[] }[]): Uint8Array[] {
  // Encoding an empty message writes nothing and hands back a fresh writer to append to.
  const writer = ime.v1.KeyRecords.encode({ records: [] });
  const ends: number[] = [];
  for (const entry of list) {
    ime.v1.KeyRecords.encode(entry, writer);
    ends.push(writer.len);
  }
  const all = writer.finish();
  let start = 0;
  return ends.map((end) => {
    const v = all.subarray(start, end);
    start = end;
    return v;
  });
}

function decodeStored(value: Uint8Array): DidRecord[] {
  try {
    return ime.v1.KeyRecords.decode(value).records;
  } catch {
    throw new ImeError('E_DB_CORRUPT', 'a stored DID record entry cannot be read');
  }
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${hex(bytes)}`);
}

function toPosition(n: bigint): Uint8Array {
  return Buffer.from(n.toString(16).padStart(POSITION_BYTES * 2, '0'), 'hex');
}

function checkPosition(p: Uint8Array | undefined, what: string): void {
  if (p !== undefined && (!(p instanceof Uint8Array) || p.length !== POSITION_BYTES)) {
    throw new ImeError('E_RING_RANGE', `${what} must be a ${POSITION_BYTES}-byte ring position`);
  }
}

/** A plain (non-wrapping) inclusive interval of keys, as LevelDB bounds will read it. */
interface Segment {
  readonly from: Uint8Array;
  readonly fromInclusive: boolean;
  readonly to: Uint8Array;
}

/**
 * A key range resolved: its lower bound L (inclusive, as a number) and upper bound U (inclusive).
 * When L > U the range wraps around the top of the ring, as the first arc of the ring does: it is
 * the keys ≥ L together with the keys ≤ U. So `{ gt: after, lte: upTo }` is exactly an Arc.
 */
interface ResolvedRange {
  readonly lower: bigint;
  readonly upper: bigint;
  readonly wraps: boolean;
  /** Number of positions in the range (1 … 2^256). */
  readonly size: bigint;
}

function resolveRange(range: KeyRange): ResolvedRange {
  checkPosition(range.lte, 'the range end');
  checkPosition(range.gt, 'the range start');
  checkPosition(range.gte, 'the range start');
  if (range.gt !== undefined && range.gte !== undefined) {
    throw new ImeError('E_RING_RANGE', 'a range has one lower bound: gt or gte, not both');
  }
  const upper = toBigInt(range.lte);
  // gt = the top of the ring means "from the bottom" (an arc that starts at the very top).
  const lower = range.gt !== undefined ? (toBigInt(range.gt) + 1n) % RING_SIZE : range.gte !== undefined ? toBigInt(range.gte) : 0n;
  const wraps = lower > upper;
  const size = wraps ? RING_SIZE - lower + upper + 1n : upper - lower + 1n;
  return { lower, upper, wraps, size };
}

/** The plain segments of a range in ring order from its start, continuing after `after` if given. */
function segmentsOf(r: ResolvedRange, after?: Uint8Array): Segment[] {
  const top = toPosition(RING_SIZE - 1n);
  const bottom = toPosition(0n);
  const lowerPos = toPosition(r.lower);
  const upperPos = toPosition(r.upper);
  const all: Segment[] = r.wraps
    ? [
        { from: lowerPos, fromInclusive: true, to: top },
        { from: bottom, fromInclusive: true, to: upperPos },
      ]
    : [{ from: lowerPos, fromInclusive: true, to: upperPos }];
  if (after === undefined) return all;
  // Continue strictly after `after`: drop the segments wholly before it, start the one holding it there.
  const out: Segment[] = [];
  let found = false;
  for (const s of all) {
    if (found) {
      out.push(s);
      continue;
    }
    const inSegment = compareBytes(after, s.from) >= 0 && compareBytes(after, s.to) <= 0;
    if (!inSegment) continue;
    found = true;
    if (compareBytes(after, s.to) < 0) out.push({ from: after, fromInclusive: false, to: s.to });
  }
  // An `after` outside the range: nothing follows it inside the range.
  return out;
}

export class RecordStore implements RecordStoreApi {
  readonly #db: Database;
  readonly #now: () => number;
  readonly #maxTtlMs: () => number;
  readonly #capFor: (publisherKeyHex: string) => number;
  readonly #admitsPublisher: ((publisherKey: Uint8Array) => boolean) | undefined;
  readonly #counts: Map<string, Counts>;
  readonly #syncReads: boolean;
  #recordCount: number;
  /** Mutations run one after another: a put reads, decides and writes, and must see the previous put's writes. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(options: RecordStoreOptions, counts: Map<string, Counts>) {
    this.#db = options.db;
    this.#now = options.now ?? Date.now;
    const ttl = options.maxTtlMs;
    this.#maxTtlMs = typeof ttl === 'function' ? ttl : () => ttl;
    this.#capFor = options.capFor ?? (() => Number.POSITIVE_INFINITY);
    this.#admitsPublisher = options.admitsPublisher;
    this.#counts = counts;
    this.#syncReads = options.syncReads ?? typeof options.db.getSync === 'function';
    let total = 0;
    for (const c of counts.values()) total += c.slots - c.tombstones;
    this.#recordCount = total;
  }

  /** Opens the store on a database, loading the per-publisher counts. */
  static async open(options: RecordStoreOptions): Promise<RecordStore> {
    const counts = new Map<string, Counts>();
    for await (const [k, v] of options.db.iterator({ gt: Uint8Array.of(COUNTS_PREFIX), lt: Uint8Array.of(COUNTS_PREFIX + 1) })) {
      if (k.length !== 33 || v.length !== 8) throw new ImeError('E_DB_CORRUPT', 'a stored publisher count cannot be read');
      const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      counts.set(hex(k.subarray(1)), { slots: b.readUInt32BE(0), tombstones: b.readUInt32BE(4) });
    }
    return new RecordStore(options, counts);
  }

  /** Stored (key, publisher) slots that are not tombstones (expired ones count until swept or rewritten). */
  get recordCount(): number {
    return this.#recordCount;
  }

  /** The (key, publisher) slots a publisher holds here, tombstones included (what the cap limits). */
  publisherSlots(publisherKey: Uint8Array): number {
    return this.#counts.get(hex(publisherKey))?.slots ?? 0;
  }

  put(records: readonly DidRecord[], options: { authenticatedPublisher?: Uint8Array } = {}): Promise<StoreResult[]> {
    return this.#serialised(() => this.#put(records, options.authenticatedPublisher));
  }

  async get(key: Uint8Array): Promise<DidRecord[]> {
    if (!(key instanceof Uint8Array) || key.length !== POSITION_BYTES) {
      throw new ImeError('E_RING_KEY', `a record key must be ${POSITION_BYTES} bytes`);
    }
    // A synchronous get (≈ 2 µs on a warm database) rather than an awaited one (≈ 30–40 µs through
    // the thread pool): reads are the latency-critical path and a key's value is small.
    const value = this.#syncReads ? this.#db.getSync(recordsKey(key)) : await this.#db.get(recordsKey(key));
    if (value === undefined) return [];
    const now = this.#now();
    return decodeStored(value).filter((r) => r.expiresAtMs > now);
  }

  async scan(range: KeyRange, options: { after?: Uint8Array; limit?: number } = {}): Promise<{ entries: KeyRecords[]; more: boolean }> {
    checkPosition(options.after, 'the scan position');
    const limit = Math.max(1, Math.floor(options.limit ?? DEFAULT_SCAN_LIMIT));
    const now = this.#now();
    const entries: KeyRecords[] = [];
    for (const segment of segmentsOf(resolveRange(range), options.after)) {
      let more = false;
      await this.#iterate(segment, (key, value) => {
        const records = decodeStored(value).filter((r) => r.expiresAtMs > now);
        if (records.length === 0) return true;
        if (entries.length === limit) {
          more = true;
          return false;
        }
        entries.push({ key: Uint8Array.from(key), records });
        return true;
      });
      if (more) return { entries, more: true };
    }
    return { entries, more: false };
  }

  async digest(range: KeyRange, buckets: number): Promise<{ digests: Uint8Array[]; counts: number[] }> {
    if (!Number.isInteger(buckets) || buckets < 1 || buckets > 65536) {
      throw new ImeError('E_RING_RANGE', 'a digest needs 1–65536 buckets');
    }
    const resolved = resolveRange(range);
    // Bucket i holds the keys whose distance from the range start is at least ceil(i × size / buckets)
    // (so a key's bucket is floor(distance × buckets / size)). The boundaries are computed once as
    // (segment, position) pairs; keys arrive in ring order, so a byte comparison per key advances
    // the bucket, without 256-bit arithmetic per key.
    const b = BigInt(buckets);
    const boundarySegment: number[] = [];
    const boundaryPosition: Uint8Array[] = [];
    for (let i = 0n; i < b; i++) {
      const at = resolved.lower + (i * resolved.size + b - 1n) / b;
      boundarySegment.push(at >= RING_SIZE ? 1 : 0);
      boundaryPosition.push(toPosition(at % RING_SIZE));
    }
    const hashes = Array.from({ length: buckets }, () => createHash('sha256'));
    const counts = new Array<number>(buckets).fill(0);
    const now = this.#now();
    const seq = Buffer.alloc(8);
    const flag = Buffer.alloc(1);
    let index = 0;
    const segments = segmentsOf(resolved);
    for (let s = 0; s < segments.length; s++) {
      await this.#iterate(segments[s] as Segment, (key, value) => {
        while (
          index + 1 < buckets &&
          ((boundarySegment[index + 1] as number) < s ||
            ((boundarySegment[index + 1] as number) === s && compareBytes(boundaryPosition[index + 1] as Uint8Array, key) <= 0))
        ) {
          index++;
        }
        const hash = hashes[index] as ReturnType<typeof createHash>;
        for (const r of decodeStored(value)) {
          if (r.expiresAtMs <= now) continue;
          seq.writeUInt32BE(Math.floor(r.sequence / 0x1_0000_0000), 0);
          seq.writeUInt32BE(r.sequence >>> 0, 4);
          flag[0] = r.tombstone ? 1 : 0;
          hash.update(key).update(r.publisherKey).update(seq).update(flag);
          counts[index] = (counts[index] as number) + 1;
        }
        return true;
      });
    }
    return { digests: hashes.map((h) => new Uint8Array(h.digest())), counts };
  }

  /**
   * Drops expired records and, with `admitted`, the records of publishers it no longer admits (a ban,
   * a peer taken off the roster): a banned publisher's records go at once rather than at their expiry.
   * Returns how many records went.
   */
  async sweep(options: { admitted?: (publisherKey: Uint8Array) => boolean } = {}): Promise<number> {
    // Find the keys holding such records without holding the queue, then rewrite them a chunk at a
    // time inside it (each chunk re-reads its keys, so a put that ran in between is respected).
    const now = this.#now();
    const admitted = options.admitted;
    const gone = (r: DidRecord) => r.expiresAtMs <= now || (admitted !== undefined && !admitted(r.publisherKey));
    const chunks: Uint8Array[][] = [[]];
    const whole: Segment = { from: RING_START, fromInclusive: true, to: RING_END };
    await this.#iterate(whole, (key, value) => {
      if (decodeStored(value).some(gone)) {
        let chunk = chunks[chunks.length - 1] as Uint8Array[];
        if (chunk.length >= SWEEP_CHUNK) chunks.push((chunk = []));
        chunk.push(Uint8Array.from(key));
      }
      return true;
    });
    let dropped = 0;
    for (const chunk of chunks) dropped += await this.#serialised(() => this.#drop(chunk, gone));
    return dropped;
  }

  discard(records: readonly DidRecord[]): Promise<number> {
    const ids = new Set(records.map(recordVersionId));
    const keys = new Map(records.map((r) => [hex(r.key), r.key]));
    return this.#serialised(() => this.#drop([...keys.values()], (r) => ids.has(recordVersionId(r))));
  }

  /** Runs one mutation after the previous ones; a failed mutation does not stop the next. */
  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Walks a segment's entries (key without prefix, value) in key order until `visit` returns false. */
  async #iterate(segment: Segment, visit: (key: Uint8Array, value: Uint8Array) => boolean): Promise<void> {
    const from = recordsKey(segment.from);
    const to = recordsKey(segment.to);
    const it = this.#db.iterator(segment.fromInclusive ? { gte: from, lte: to } : { gt: from, lte: to });
    try {
      for (;;) {
        const step = await it.nextv(ITERATOR_STEP);
        if (step.length === 0) return;
        for (const [k, v] of step) {
          if (!visit(k.subarray(1), v)) return;
        }
      }
    } finally {
      await it.close();
    }
  }

  async #put(input: readonly DidRecord[], authenticatedPublisher: Uint8Array | undefined): Promise<StoreResult[]> {
    const now = this.#now();
    const latestExpiry = now + this.#maxTtlMs() + TTL_CLOCK_SKEW_MS;
    const results: StoreResult[] = new Array<StoreResult>(input.length);
    const pending: number[] = [];

    // Cheap checks first, without touching the database.
    for (let i = 0; i < input.length; i++) {
      const r = input[i] as DidRecord;
      const problem = r === null || typeof r !== 'object' ? new ImeError('E_DID_RECORD_MALFORMED', 'DID record: not a record') : didRecordProblem(r);
      if (problem) results[i] = { accepted: false, code: problem.code, message: problem.message };
      else if (r.expiresAtMs <= now) results[i] = { accepted: false, code: 'E_RECORD_EXPIRED', message: 'the record has expired' };
      else if (r.expiresAtMs > latestExpiry) {
        results[i] = { accepted: false, code: 'E_RECORD_TTL', message: 'the record expires later than the ring TTL allows' };
      } else if (this.#admitsPublisher !== undefined && !this.#admitsPublisher(r.publisherKey)) {
        results[i] = { accepted: false, code: 'E_PUBLISHER_NOT_ADMITTED', message: "the record's publisher is not an admitted member of the ring" };
      } else pending.push(i);
    }
    if (pending.length === 0) return results;

    // One read for every key of the batch.
    const states = new Map<string, KeyState>();
    const order: KeyState[] = [];
    for (const i of pending) {
      const key = (input[i] as DidRecord).key;
      const id = hex(key);
      if (!states.has(id)) {
        const state: KeyState = { key, records: [], dirty: false };
        states.set(id, state);
        order.push(state);
      }
    }
    const stored = await this.#db.getMany(order.map((s) => recordsKey(s.key)));
    order.forEach((s, j) => {
      const v = stored[j];
      if (v !== undefined) s.records = decodeStored(v);
    });

    // Count changes of this batch, applied to memory only once the batch is written.
    const delta = new Map<string, Counts & { publisherKey: Uint8Array }>();
    const change = (publisherKey: Uint8Array, id: string, slots: number, tombstones: number) => {
      let d = delta.get(id);
      if (!d) {
        d = { publisherKey, slots: 0, tombstones: 0 };
        delta.set(id, d);
      }
      d.slots += slots;
      d.tombstones += tombstones;
    };

    const caps = new Map<string, number>();
    for (const i of pending) {
      const r = input[i] as DidRecord;
      const state = states.get(hex(r.key)) as KeyState;
      const at = state.records.findIndex((h) => bytesEqual(h.publisherKey, r.publisherKey));
      const held = at >= 0 ? (state.records[at] as DidRecord) : undefined;
      // An expired record is as good as absent: it is ignored on read and dropped on rewrite.
      const live = held !== undefined && held.expiresAtMs > now ? held : undefined;
      if (live && sameRecord(live, r)) {
        // The same record again (a retry, a repair): already verified when it was stored.
        results[i] = { accepted: true };
        continue;
      }
      if (live && live.sequence >= r.sequence) {
        results[i] = {
          accepted: false,
          code: 'E_STALE_SEQUENCE',
          message:
            live.sequence > r.sequence
              ? 'a record with a higher sequence is held for this key and publisher'
              : 'a different record with the same sequence is held for this key and publisher',
        };
        continue;
      }
      if (!(authenticatedPublisher !== undefined && bytesEqual(authenticatedPublisher, r.publisherKey))) {
        try {
          verifyDidRecord(r);
        } catch (err) {
          const e = isImeError(err) ? err : new ImeError('E_DID_RECORD_SIGNATURE', 'DID record: the signature cannot be checked');
          results[i] = { accepted: false, code: e.code, message: e.message };
          continue;
        }
      }
      const publisherId = hex(r.publisherKey);
      if (held === undefined) {
        const slots = (this.#counts.get(publisherId)?.slots ?? 0) + (delta.get(publisherId)?.slots ?? 0);
        // The cap may be costly to compute (the replica's share of the ring): once per publisher per batch.
        let cap = caps.get(publisherId);
        if (cap === undefined) caps.set(publisherId, (cap = this.#capFor(publisherId)));
        if (slots + 1 > cap) {
          results[i] = { accepted: false, code: 'E_OVER_QUOTA', message: 'the publisher is over its quota at this replica' };
          continue;
        }
      }
      const record = plainRecord(r);
      if (held === undefined) {
        change(record.publisherKey, publisherId, 1, record.tombstone ? 1 : 0);
        // Keep the key's records sorted by publisher.
        let pos = 0;
        while (pos < state.records.length && compareBytes((state.records[pos] as DidRecord).publisherKey, record.publisherKey) < 0) pos++;
        state.records.splice(pos, 0, record);
      } else {
        change(record.publisherKey, publisherId, 0, (record.tombstone ? 1 : 0) - (held.tombstone ? 1 : 0));
        state.records[at] = record;
      }
      state.dirty = true;
      results[i] = { accepted: true };
    }

    const written: { key: Uint8Array; records: DidRecord[] }[] = [];
    for (const s of order) {
      if (!s.dirty) continue;
      // Rewriting the key: its expired records go now.
      const kept: DidRecord[] = [];
      for (const r of s.records) {
        if (r.expiresAtMs > now) kept.push(r);
        else change(r.publisherKey, hex(r.publisherKey), -1, r.tombstone ? -1 : 0);
      }
      written.push({ key: s.key, records: kept });
    }
    const values = encodeValues(written);
    const ops: BatchOp[] = written.map((w, j) => ({ type: 'put', key: recordsKey(w.key), value: values[j] as Uint8Array }));
    if (ops.length === 0) return results;
    const next = this.#countOps(delta, ops);
    await this.#db.batch(ops);
    this.#commitCounts(next);
    return results;
  }

  /** Re-reads keys and drops their records that are `gone`; returns how many records went. */
  async #drop(keys: readonly Uint8Array[], gone: (r: DidRecord) => boolean): Promise<number> {
    if (keys.length === 0) return 0;
    const values = await this.#db.getMany(keys.map(recordsKey));
    const ops: BatchOp[] = [];
    const delta = new Map<string, Counts & { publisherKey: Uint8Array }>();
    let dropped = 0;
    keys.forEach((key, j) => {
      const v = values[j];
      if (v === undefined) return;
      const records = decodeStored(v);
      const kept = records.filter((r) => !gone(r));
      if (kept.length === records.length) return;
      for (const r of records) {
        if (!gone(r)) continue;
        dropped++;
        const id = hex(r.publisherKey);
        let d = delta.get(id);
        if (!d) {
          d = { publisherKey: Uint8Array.from(r.publisherKey), slots: 0, tombstones: 0 };
          delta.set(id, d);
        }
        d.slots -= 1;
        d.tombstones -= r.tombstone ? 1 : 0;
      }
      const k = recordsKey(key);
      if (kept.length === 0) ops.push({ type: 'del', key: k });
      else ops.push({ type: 'put', key: k, value: ime.v1.KeyRecords.encode({ key, records: kept }).finish() });
    });
    if (ops.length === 0) return 0;
    const next = this.#countOps(delta, ops);
    await this.#db.batch(ops);
    this.#commitCounts(next);
    return dropped;
  }

  /** Adds the writes of the new counts to `ops`; returns them to apply in memory after the write. */
  #countOps(delta: Map<string, Counts & { publisherKey: Uint8Array }>, ops: BatchOp[]): Map<string, Counts> {
    const next = new Map<string, Counts>();
    for (const [id, d] of delta) {
      if (d.slots === 0 && d.tombstones === 0) continue;
      const before = this.#counts.get(id) ?? { slots: 0, tombstones: 0 };
      const after = { slots: Math.max(0, before.slots + d.slots), tombstones: Math.max(0, before.tombstones + d.tombstones) };
      next.set(id, after);
      if (after.slots === 0) ops.push({ type: 'del', key: countsKey(d.publisherKey) });
      else ops.push({ type: 'put', key: countsKey(d.publisherKey), value: encodeCounts(after) });
    }
    return next;
  }

  #commitCounts(next: Map<string, Counts>): void {
    for (const [id, after] of next) {
      const before = this.#counts.get(id) ?? { slots: 0, tombstones: 0 };
      this.#recordCount += after.slots - after.tombstones - (before.slots - before.tombstones);
      if (after.slots === 0) this.#counts.delete(id);
      else this.#counts.set(id, after);
    }
  }
}
