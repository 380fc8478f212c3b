import type { DidRecord } from '@ime/core';
import { ImeError, isImeError } from '@ime/core';
import type { ime } from '@ime/wire';
import { POSITION_BYTES, type RingPlacement } from './ring-placement.js';
import { MAX_RECORDS_PER_REQUEST } from './ring-service.js';
import { RING_WIRE_VERSION } from './ring-types.js';
import type { KeyRange, RecordStoreApi, RingTransport, RingView, ViewSnapshot } from './ring-types.js';
import type { RingLog } from './ring-types.js';

/**
 * Handoff (RING.md "Repair"): when this peer's view changes, records move to the peers that became
 * their replicas. For every part of the ring whose live replica set gained peers, this peer sends the
 * records it holds there to the new peers; the receivers verify every signature.
 */

/** The view handoff and anti-entropy need: the RingView contract plus an immutable snapshot. */


// ---------------------------------------------------------------------------------------------------
// Ring intervals. Arcs are half-open (after, upTo] and may wrap; as inclusive [lo, hi] intervals of
// 256-bit integers they merge and split without off-by-one care, and map back to a store KeyRange.

/** An inclusive interval of ring positions. */
export interface RingInterval {
  readonly lo: bigint;
  readonly hi: bigint;
}

export const RING_MAX = (1n << BigInt(POSITION_BYTES * 8)) - 1n;

export function positionToBigInt(p: Uint8Array): bigint {
  return p.length === 0 ? 0n : BigInt(`0x${Buffer.from(p).toString('hex')}`);
}

export function bigIntToPosition(n: bigint): Uint8Array {
  return new Uint8Array(Buffer.from(n.toString(16).padStart(POSITION_BYTES * 2, '0'), 'hex'));
}

/** The keys k with after < k ≤ upTo (wrapping when after ≥ upTo, the whole ring when equal). */
export function arcIntervals(after: Uint8Array, upTo: Uint8Array): RingInterval[] {
  const a = positionToBigInt(after);
  const u = positionToBigInt(upTo);
  if (a < u) return [{ lo: a + 1n, hi: u }];
  const out: RingInterval[] = [];
  if (a < RING_MAX) out.push({ lo: a + 1n, hi: RING_MAX });
  out.push({ lo: 0n, hi: u });
  return out;
}

/** Sorted, with overlapping and touching intervals joined. */
export function mergeIntervals(list: readonly RingInterval[]): RingInterval[] {
  const sorted = [...list].sort((x, y) => (x.lo < y.lo ? -1 : x.lo > y.lo ? 1 : 0));
  const out: { lo: bigint; hi: bigint }[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.lo <= last.hi + 1n) {
      if (i.hi > last.hi) last.hi = i.hi;
    } else {
      out.push({ lo: i.lo, hi: i.hi });
    }
  }
  return out;
}

export function intervalToKeyRange(i: RingInterval): KeyRange {
  return { gte: bigIntToPosition(i.lo), lte: bigIntToPosition(i.hi) };
}

function liveIn(snapshot: ViewSnapshot, alsoDown?: ReadonlySet<string>): (peerId: string) => boolean {
  return (peerId) => snapshot.live.has(peerId) && !alsoDown?.has(peerId);
}

/**
 * For each peer, the parts of the ring where it is a live replica after but was not before (self
 * excluded). Both placements' tokens cut the ring into pieces on which both replica sets are constant,
 * so comparing at every token position of both compares every key. `alsoDown`: peers to count as down
 * before (they went down and came back within the burst, missing writes meanwhile).
 */
export function gainedIntervals(
  before: ViewSnapshot,
  after: ViewSnapshot,
  self: string,
  alsoDown?: ReadonlySet<string>,
): Map<string, RingInterval[]> {
  const out = new Map<string, RingInterval[]>();
  if (after.placement.tokens.length === 0) return out;
  const cuts = new Map<string, Uint8Array>();
  for (const p of [before.placement, after.placement]) {
    for (const t of p.tokens) cuts.set(Buffer.from(t.position).toString('hex'), t.position);
  }
  const positions = [...cuts.keys()].sort().map((h) => cuts.get(h) as Uint8Array);
  const liveBefore = liveIn(before, alsoDown);
  const liveAfter = liveIn(after);
  positions.forEach((upTo, i) => {
    // Every key of (previous cut, upTo] has the replicas of upTo itself, in both placements.
    const wasReplica = new Set(replicasAt(before.placement, upTo, before.replicationFactor, liveBefore));
    for (const peerId of replicasAt(after.placement, upTo, after.replicationFactor, liveAfter)) {
      if (peerId === self || wasReplica.has(peerId)) continue;
      const prev = positions[(i - 1 + positions.length) % positions.length] as Uint8Array;
      const list = out.get(peerId) ?? [];
      list.push(...arcIntervals(prev, upTo));
      out.set(peerId, list);
    }
  });
  for (const [peerId, list] of out) out.set(peerId, mergeIntervals(list));
  return out;
}

function replicasAt(placement: RingPlacement, key: Uint8Array, n: number, live: (p: string) => boolean): string[] {
  return placement.tokens.length === 0 ? [] : placement.replicasFor(key, n, live);
}

// ---------------------------------------------------------------------------------------------------

export interface HandoffOptions {
  readonly view: RingView;
  readonly store: RecordStoreApi;
  readonly transport: RingTransport;
  readonly self: string;
  /** Records per handoff request. */
  readonly batchSize?: number;
  /** How long a burst of view changes is collected before it is handled once. */
  readonly debounceMs?: number;
  /** When sending to a peer that is still live failed, try again after this long. */
  readonly retryMs?: number;
  /** Per-request timeout for handoff batches. */
  readonly requestTimeoutMs?: number;
  /** The configuration sequence to put in requests (the receiver may log it). */
  readonly configurationSequence?: () => number;
  readonly log?: RingLog;
  /** Called after each batch a peer took, with the number of records in it (the counters). */
  readonly onSent?: (records: number) => void;
}

export interface HandoffStats {
  /** Handoff passes run (one per burst of view changes, plus retries). */
  readonly runs: number;
  /** Records sent in batches the receiver answered. */
  readonly recordsSent: number;
  /** Of those, records the receiver stored (the rest it already had, or refused). */
  readonly recordsAccepted: number;
  /** Batches that failed (the peer owes a retry). */
  readonly batchesFailed: number;
}

export class Handoff {
  readonly #view: RingView;
  readonly #store: RecordStoreApi;
  readonly #transport: RingTransport;
  readonly #self: string;
  readonly #batchSize: number;
  readonly #debounceMs: number;
  readonly #retryMs: number;
  readonly #requestTimeoutMs: number | undefined;
  readonly #configurationSequence: () => number;
  readonly #log: RingLog | undefined;
  readonly #onSent: ((records: number) => void) | undefined;
  readonly #unsubscribe: () => void;

  /** The view as of the last pass: the "before" of the next one. */
  #processed: ViewSnapshot;
  /** Peers seen down at some point since the last pass (a flap must still count as a gain). */
  #seenDown = new Set<string>();
  /** What peers still have to receive, from passes that failed part-way. */
  #owed = new Map<string, RingInterval[]>();
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #waiters: (() => void)[] = [];
  #stats = { runs: 0, recordsSent: 0, recordsAccepted: 0, batchesFailed: 0 };

  constructor(options: HandoffOptions) {
    this.#view = options.view;
    this.#store = options.store;
    this.#transport = options.transport;
    this.#self = options.self;
    // A replica's ring service refuses larger requests.
    this.#batchSize = Math.min(MAX_RECORDS_PER_REQUEST, Math.max(1, Math.floor(options.batchSize ?? 500)));
    this.#debounceMs = options.debounceMs ?? 100;
    this.#retryMs = options.retryMs ?? 5000;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#configurationSequence = options.configurationSequence ?? (() => 0);
    this.#log = options.log;
    this.#onSent = options.onSent;
    this.#processed = this.#view.snapshot();
    this.#unsubscribe = this.#view.onChange((change) => {
      for (const peerId of change.after.placement.members.keys()) {
        if (!change.after.live.has(peerId)) this.#seenDown.add(peerId);
      }
      this.#schedule();
    });
  }

  get stats(): HandoffStats {
    return { ...this.#stats };
  }

  /**
   * Resolves when no handoff is running or waiting for its burst to end. A retry scheduled for a peer
   * that failed does not count: it is like a future view change.
   */
  async idle(): Promise<void> {
    // Let queued view events (delivered in a microtask) reach us first.
    await new Promise<void>((r) => setImmediate(r));
    if (this.#isIdle()) return;
    await new Promise<void>((r) => this.#waiters.push(r));
  }

  /** Stops reacting to the view; a pass in progress ends after its current batch. */
  stop(): void {
    this.#stopped = true;
    this.#unsubscribe();
    if (this.#debounce) clearTimeout(this.#debounce);
    if (this.#retry) clearTimeout(this.#retry);
    this.#debounce = undefined;
    this.#retry = undefined;
    this.#again = false;
    this.#wake();
  }

  #isIdle(): boolean {
    return this.#stopped || (!this.#debounce && !this.#running);
  }

  #wake(): void {
    if (!this.#isIdle()) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #schedule(): void {
    if (this.#stopped || this.#debounce) return;
    // Not reset by later events: a steady stream of changes must not postpone handoff forever.
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.#kick();
    }, this.#debounceMs);
  }

  #kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#pass()
      .catch((err: unknown) => {
        this.#log?.('warn', 'handoff pass failed', { error: err instanceof Error ? err.message : String(err) });
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          this.#kick();
        }
        this.#wake();
      });
  }

  async #pass(): Promise<void> {
    this.#stats.runs++;
    const before = this.#processed;
    const after = this.#view.snapshot();
    // Only those live again at the end flapped; one still down must not hide its replacements' gain.
    const flapped = new Set([...this.#seenDown].filter((p) => after.live.has(p)));
    this.#seenDown = new Set();
    this.#processed = after;

    const plan = gainedIntervals(before, after, this.#self, flapped);
    for (const [peerId, owed] of this.#owed) {
      if (!after.placement.members.has(peerId)) this.#owed.delete(peerId);
      else if (after.live.has(peerId)) {
        plan.set(peerId, mergeIntervals([...(plan.get(peerId) ?? []), ...owed]));
        this.#owed.delete(peerId);
      }
      // A peer still down keeps what it is owed: it gets it when it comes back.
    }
    if (plan.size === 0) return;
    this.#log?.('info', 'handoff', { peers: [...plan.keys()], version: after.version });

    await Promise.all(
      [...plan].map(async ([peerId, intervals]) => {
        const remaining = await this.#sendTo(peerId, intervals, after);
        if (remaining.length > 0) {
          this.#owed.set(peerId, mergeIntervals([...(this.#owed.get(peerId) ?? []), ...remaining]));
        }
      }),
    );
    this.#scheduleRetry();
  }

  /** Retries peers still live that could not take everything (a down one waits for its return). */
  #scheduleRetry(): void {
    if (this.#stopped || this.#retry) return;
    const live = [...this.#owed.keys()].some((p) => this.#view.isLive(p));
    if (!live) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#kick();
    }, this.#retryMs);
    this.#retry.unref?.();
  }

  /** Sends the peer its records in the intervals; returns the intervals it did not get in full. */
  async #sendTo(peerId: string, intervals: readonly RingInterval[], after: ViewSnapshot): Promise<RingInterval[]> {
    const isReplica = (key: Uint8Array) =>
      after.placement.replicasFor(key, after.replicationFactor, (p) => after.live.has(p)).includes(peerId);
    for (let i = 0; i < intervals.length; i++) {
      const interval = intervals[i] as RingInterval;
      try {
        await this.#sendInterval(peerId, interval, isReplica);
      } catch (err) {
        if (this.#stopped) return intervals.slice(i);
        this.#stats.batchesFailed++;
        const code = isImeError(err) ? err.code : 'E_INTERNAL';
        const message = err instanceof Error ? err.message : String(err);
        if (code === 'E_RPC_UNREACHABLE') this.#view.reportUnreachable(peerId, message);
        this.#log?.('warn', 'handoff to a peer failed; it will be retried', { peerId, code, message });
        return intervals.slice(i);
      }
      if (this.#stopped) return intervals.slice(i + 1);
    }
    return [];
  }

  async #sendInterval(peerId: string, interval: RingInterval, isReplica: (key: Uint8Array) => boolean): Promise<void> {
    const range = intervalToKeyRange(interval);
    let cursor: Uint8Array | undefined;
    let pending: DidRecord[] = [];
    for (;;) {
      const page = await this.#store.scan(range, { ...(cursor ? { after: cursor } : {}), limit: this.#batchSize });
      for (const entry of page.entries) {
        // Records of an interval carried over from an older pass may no longer belong to the peer.
        if (entry.records.length > 0 && isReplica(entry.key)) pending.push(...entry.records);
      }
      const last = page.entries[page.entries.length - 1];
      const more = page.more && last !== undefined;
      while (pending.length >= this.#batchSize && (more || pending.length > this.#batchSize)) {
        await this.#sendBatch(peerId, pending.slice(0, this.#batchSize), false);
        pending = pending.slice(this.#batchSize);
      }
      if (!more) break;
      if (this.#stopped) throw new ImeError('E_HANDOFF_STOPPED', 'handoff stopped');
      cursor = last.key;
    }
    if (pending.length > 0) await this.#sendBatch(peerId, pending, true);
  }

  async #sendBatch(peerId: string, records: DidRecord[], done: boolean): Promise<void> {
    const request: ime.v1.IRingRequest = {
      version: RING_WIRE_VERSION,
      handoff: { configurationSequence: this.#configurationSequence(), records, done },
    };
    const response = await this.#transport.request(
      peerId,
      request,
      this.#requestTimeoutMs === undefined ? undefined : { timeoutMs: this.#requestTimeoutMs },
    );
    const results = storeResults(response, 'handoff');
    this.#stats.recordsSent += records.length;
    this.#stats.recordsAccepted += results.filter((r) => r.accepted).length;
    this.#onSent?.(records.length);
  }
}

/** The per-record results of a store-like answer, or the error the peer answered with. */
export function storeResults(response: ime.v1.RingResponse, body: 'handoff' | 'store'): ime.v1.IStoreResult[] {
  if (response.error) throw new ImeError(response.error.code || 'E_INTERNAL', response.error.message ?? '');
  const answer = response[body];
  if (!answer) throw new ImeError('E_RPC_PROTOCOL', `the peer answered a ${body} request with something else`);
  return answer.results ?? [];
}
