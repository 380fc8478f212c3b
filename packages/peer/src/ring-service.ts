import { type DidRecord, ImeError, decodeWire, isImeError } from '@ime/core';
import { DEFAULT_MAX_FRAME_BYTES, type RpcContext, type RpcHandler } from '@ime/runtime';
import { ime } from '@ime/wire';
import { POSITION_BYTES } from './ring-placement.js';
import { type KeyRange, RING_WIRE_VERSION, type RecordStoreApi, type StoreResult } from './ring-types.js';

/**
 * The server side of /ime/ring/1.0.0 (docs/RING.md "Reads and writes", "Repair"). Everything in a
 * request is untrusted: the request is length-checked before decoding, every count and size is
 * bounded before any work, and each record is then checked by the store on its own.
 *
 * The remote's identity is the PeerId Noise authenticated for the connection, so a `store` or
 * `withdraw` from a peer is known to come from the owner of that peer's Ed25519 key: its own records
 * skip the signature check (≈ 60 µs each). Handoff and repair carry other publishers' records and are
 * always verified.
 */

/** Requests arrive in RPC frames of at most this size. */
export const MAX_RING_REQUEST_BYTES = DEFAULT_MAX_FRAME_BYTES;
/** A response must fit a frame (with the RPC header). */
const MAX_RING_RESPONSE_BYTES = DEFAULT_MAX_FRAME_BYTES - 64;
export const MAX_RECORDS_PER_REQUEST = 1000;
export const MAX_KEYS_PER_FETCH = 1000;
export const MAX_RANGE_FETCH_LIMIT = 1000;
export const DEFAULT_RANGE_FETCH_LIMIT = 500;
export const MAX_DIGEST_BUCKETS = 256;
/**
 * A range-fetch page stops once its records reach this many bytes, so a page of keys that each hold
 * many publishers' records still fits a frame (`more` tells the caller to continue).
 */
const RANGE_FETCH_BYTE_BUDGET = 2 * 1024 * 1024;

export interface RingServiceCounters {
  /** Records accepted by store, withdraw and handoff. */
  stores(n: number): void;
  /** Keys read by fetch. */
  reads(n: number): void;
}

export interface RingServiceOptions {
  readonly store: RecordStoreApi;
  /** An admitted member: on the roster, not banned, certificate valid. */
  isAdmitted(peerId: string): boolean;
  /** A bootstrap of this ring: it may push configurations and ping, nothing else. */
  isBootstrap(peerId: string): boolean;
  onConfigurationPush(push: ime.v1.ConfigurationPush, fromPeerId: string): Promise<ime.v1.IConfigurationAck>;
  /** A neighbour's probe with its configuration sequence; returns ours. */
  onPing?(fromPeerId: string, sequence: number): number;
  /** Every request from an admitted member: it is alive (the failure detector need not probe it). */
  onRequest?(fromPeerId: string): void;
  /** Keys of records a writer's `store` made this peer keep (it may be a fallback for them). */
  onStored?(keys: readonly Uint8Array[]): void;
  readonly counters?: RingServiceCounters;
}

function refuse(message: string): ImeError {
  return new ImeError('E_RING_REQUEST', message);
}

function isPosition(b: unknown): b is Uint8Array {
  return b instanceof Uint8Array && b.length === POSITION_BYTES;
}

function positionOf(b: Uint8Array | null | undefined, what: string): Uint8Array {
  if (!isPosition(b)) throw refuse(`${what} must be exactly ${POSITION_BYTES} bytes`);
  return b;
}

/** The top of the ring minus nothing: `end` is exclusive, so the inclusive upper bound is end − 1 (mod 2^256). */
function previousPosition(p: Uint8Array): Uint8Array {
  const out = Uint8Array.from(p);
  for (let i = out.length - 1; i >= 0; i--) {
    const v = out[i] as number;
    out[i] = (v - 1) & 0xff;
    if (v !== 0) break;
  }
  return out;
}

/**
 * The wire's range — `start` inclusive, `end` exclusive, wrapping past the top when start ≥ end (so
 * start = end is the whole ring) — as the store's KeyRange: { gte: start, lte: end − 1 }, which the
 * store reads as wrapping when its lower bound is above its upper one.
 */
export function wireRangeToKeyRange(start: Uint8Array, end: Uint8Array): KeyRange {
  return { gte: start, lte: previousPosition(end) };
}

/** The inverse of wireRangeToKeyRange for an arc (after, upTo]: start = after + 1, end = upTo + 1. */
export function keyRangeToWireRange(range: KeyRange): { start: Uint8Array; end: Uint8Array } {
  const next = (p: Uint8Array) => {
    const out = Uint8Array.from(p);
    for (let i = out.length - 1; i >= 0; i--) {
      const v = out[i] as number;
      out[i] = (v + 1) & 0xff;
      if (v !== 0xff) break;
    }
    return out;
  };
  const start = range.gt !== undefined ? next(range.gt) : (range.gte ?? new Uint8Array(POSITION_BYTES));
  return { start, end: next(range.lte) };
}

function recordBytes(r: DidRecord): number {
  return 64 + r.nonce.length + r.sealedClaim.length + r.signature.length + r.key.length + r.publisherKey.length;
}

function results(list: readonly StoreResult[]): ime.v1.StoreResponse.$Properties {
  return {
    results: list.map((r, index) =>
      r.accepted ? { index, accepted: true } : { index, accepted: false, error: { code: r.code ?? 'E_RING_REFUSED', message: r.message ?? '' } },
    ),
  };
}

export function createRingHandler(options: RingServiceOptions): RpcHandler {
  const { store, counters } = options;

  /** Store, withdraw or handoff: bounded, the wrong kind of record refused per record, the rest to the store. */
  async function put(
    records: readonly DidRecord[] | null | undefined,
    kind: 'store' | 'withdraw' | 'handoff',
    authenticatedPublisher: Uint8Array | undefined,
  ): Promise<ime.v1.StoreResponse.$Properties> {
    const list = records ?? [];
    if (list.length > MAX_RECORDS_PER_REQUEST) {
      throw refuse(`a ${kind} request carries at most ${MAX_RECORDS_PER_REQUEST} records (got ${list.length})`);
    }
    const out = new Array<StoreResult>(list.length);
    const passed: DidRecord[] = [];
    const at: number[] = [];
    list.forEach((r, i) => {
      if (kind === 'store' && r.tombstone) out[i] = { accepted: false, code: 'E_RING_REQUEST', message: 'a tombstone must be sent as a withdrawal' };
      else if (kind === 'withdraw' && !r.tombstone) out[i] = { accepted: false, code: 'E_RING_REQUEST', message: 'a withdrawal carries tombstones only' };
      else {
        passed.push(r);
        at.push(i);
      }
    });
    if (passed.length > 0) {
      const stored = await store.put(passed, authenticatedPublisher ? { authenticatedPublisher } : {});
      let accepted = 0;
      const keys: Uint8Array[] = [];
      stored.forEach((res, j) => {
        out[at[j] as number] = res;
        if (res.accepted) {
          accepted++;
          if (kind === 'store') keys.push((passed[j] as DidRecord).key);
        }
      });
      counters?.stores(accepted);
      if (keys.length > 0) options.onStored?.(keys);
    }
    return results(out);
  }

  async function dispatch(request: ime.v1.RingRequest, context: RpcContext): Promise<ime.v1.RingResponse.$Properties> {
    const from = context.remotePeer.toString();
    const body = request.body;
    if (!options.isAdmitted(from)) {
      const bootstrapMayAsk = body === 'configuration' || body === 'ping';
      if (!(bootstrapMayAsk && options.isBootstrap(from))) {
        throw new ImeError('E_NOT_ADMITTED', 'this peer is not an admitted member of the ring');
      }
    } else {
      options.onRequest?.(from);
    }
    switch (body) {
      case 'store':
      case 'withdraw': {
        // Noise proved the remote holds this key, so its own records need no signature check.
        const publisherKey = context.remotePeer.publicKey?.raw;
        const records = body === 'store' ? request.store?.records : request.withdraw?.tombstones;
        const response = await put(records, body, publisherKey);
        return body === 'store' ? { store: response } : { withdraw: response };
      }
      case 'handoff':
        return { handoff: await put(request.handoff?.records, 'handoff', undefined) };
      case 'fetch': {
        const keys = request.fetch?.keys ?? [];
        if (keys.length > MAX_KEYS_PER_FETCH) throw refuse(`a fetch asks for at most ${MAX_KEYS_PER_FETCH} keys (got ${keys.length})`);
        keys.forEach((k) => positionOf(k, 'a fetch key'));
        // One key is the common case: skip Promise.all's bookkeeping.
        const entries =
          keys.length === 1
            ? [{ key: keys[0] as Uint8Array, records: await store.get(keys[0] as Uint8Array) }]
            : await Promise.all(keys.map(async (key) => ({ key, records: await store.get(key) })));
        counters?.reads(keys.length);
        return { fetch: { entries } };
      }
      case 'rangeDigest': {
        const m = request.rangeDigest as ime.v1.RangeDigestRequest;
        const start = positionOf(m.start, 'a range start');
        const end = positionOf(m.end, 'a range end');
        const buckets = m.buckets === 0 ? 1 : m.buckets;
        if (buckets > MAX_DIGEST_BUCKETS) throw refuse(`a range digest has at most ${MAX_DIGEST_BUCKETS} buckets (got ${buckets})`);
        const d = await store.digest(wireRangeToKeyRange(start, end), buckets);
        return { rangeDigest: { digests: d.digests, counts: d.counts } };
      }
      case 'rangeFetch': {
        const m = request.rangeFetch as ime.v1.RangeFetchRequest;
        const start = positionOf(m.start, 'a range start');
        const end = positionOf(m.end, 'a range end');
        const after = m.after.length === 0 ? undefined : positionOf(m.after, 'a range fetch position');
        if (m.limit > MAX_RANGE_FETCH_LIMIT) throw refuse(`a range fetch returns at most ${MAX_RANGE_FETCH_LIMIT} keys (asked ${m.limit})`);
        const limit = m.limit === 0 ? DEFAULT_RANGE_FETCH_LIMIT : m.limit;
        const page = await store.scan(wireRangeToKeyRange(start, end), after ? { after, limit } : { limit });
        // Cut the page at the byte budget; the caller continues after the last key it got.
        let bytes = 0;
        let cut = page.entries.length;
        for (let i = 0; i < page.entries.length; i++) {
          for (const r of (page.entries[i] as { records: readonly DidRecord[] }).records) bytes += recordBytes(r);
          if (bytes > RANGE_FETCH_BYTE_BUDGET && i > 0) {
            cut = i;
            break;
          }
        }
        const entries = cut === page.entries.length ? page.entries : page.entries.slice(0, cut);
        return { rangeFetch: { entries: entries as ime.v1.KeyRecords.$Properties[], more: page.more || cut < page.entries.length } };
      }
      case 'ping': {
        const ours = options.onPing?.(from, request.ping?.configurationSequence ?? 0) ?? 0;
        return { pong: { configurationSequence: ours } };
      }
      case 'configuration': {
        const push = request.configuration as ime.v1.ConfigurationPush;
        if (!push.configuration) throw refuse('a configuration push carries a signed configuration');
        return { configuration: await options.onConfigurationPush(push, from) };
      }
      default:
        throw refuse('the request has no body');
    }
  }

  return async (payload: Uint8Array, context: RpcContext): Promise<Uint8Array> => {
    let response: ime.v1.RingResponse.$Properties;
    try {
      const request = decodeWire(ime.v1.RingRequest, payload, MAX_RING_REQUEST_BYTES, 'ring request');
      if (request.version !== RING_WIRE_VERSION) {
        throw new ImeError('E_WIRE_VERSION', `ring protocol version ${request.version} is not supported (this peer speaks ${RING_WIRE_VERSION})`);
      }
      response = { version: RING_WIRE_VERSION, ...(await dispatch(request, context)) };
    } catch (err) {
      // A bug (not an ImeError) goes to the RPC layer, which logs it and answers E_INTERNAL.
      if (!isImeError(err)) throw err;
      response = { version: RING_WIRE_VERSION, error: { code: err.code, message: err.message } };
    }
    const bytes = ime.v1.RingResponse.encode(response).finish();
    if (bytes.length > MAX_RING_RESPONSE_BYTES) {
      const error = { code: 'E_RING_RESPONSE_TOO_LARGE', message: 'the answer would not fit one frame; ask for fewer keys' };
      return ime.v1.RingResponse.encode({ version: RING_WIRE_VERSION, error }).finish();
    }
    return bytes;
  };
}
