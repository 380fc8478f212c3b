import type { DidRecord } from '@ime/core';
import { ImeError, isImeError } from '@ime/core';
import type { ime } from '@ime/wire';
import {
  type RingInterval,
  RING_MAX,
  arcIntervals,
  bigIntToPosition,
  intervalToKeyRange,
  mergeIntervals,
  positionToBigInt,
  storeResults,
} from './handoff.js';
import { recordVersionId } from './record-store.js';
import { MAX_DIGEST_BUCKETS, MAX_RANGE_FETCH_LIMIT, MAX_RECORDS_PER_REQUEST } from './ring-service.js';
import { RING_WIRE_VERSION } from './ring-types.js';
import type { RecordStoreApi, RingLog, RingTransport, RingView, ViewSnapshot } from './ring-types.js';

/**
 * Anti-entropy (RING.md "Repair"): periodically, for each arc this peer replicates, compare per-bucket
 * digests with the arc's other live replicas and exchange the records of the buckets that differ, both
 * ways. It repairs what handoff missed: writes made while a replica was unreachable but not yet seen
 * down, a wiped store, a handoff cut short. Each pair is checked once per round: the lower PeerId starts.
 *
 * Records this peer holds outside the arcs it replicates ("strays") are handed to their replicas too.
 * A writer that saw a key's replicas down wrote to the next peers of the preference list; when this
 * peer was one of those but sees the replicas live, no view change of its own ever moves the records,
 * and a read, which asks the replicas and takes their "not here" as final, would miss an acknowledged
 * write. A store that leaves strays here hands them over within a second; each round does it again for
 * what changed since (and for copies kept from a time this peer was a replica).
 */

export interface AntiEntropyOptions {
  readonly view: RingView;
  readonly store: RecordStoreApi;
  readonly transport: RingTransport;
  readonly self: string;
  readonly intervalMs: number;
  /** Buckets a range is split into for digests. */
  readonly buckets?: number;
  /** Records per range_fetch page and per handoff request. */
  readonly batchSize?: number;
  readonly requestTimeoutMs?: number;
  readonly configurationSequence?: () => number;
  readonly log?: RingLog;
}

export interface AntiEntropySummary {
  /** Arcs this peer replicates that it compared with at least one other live replica. */
  readonly arcsChecked: number;
  /** Buckets whose digests differed (each is then exchanged). */
  readonly bucketsDiffering: number;
  /** Records taken from other replicas and stored here. */
  readonly recordsPulled: number;
  /** Records sent to other replicas that they stored. */
  readonly recordsPushed: number;
  /** Replicas the comparison failed with (unreachable, timeout, refused); retried next round. */
  readonly peersFailed: readonly string[];
}

/** A wire range [start, end) for an inclusive interval; end wraps to 0 past the top of the ring. */
export function wireRange(i: RingInterval): { start: Uint8Array; end: Uint8Array } {
  return { start: bigIntToPosition(i.lo), end: bigIntToPosition(i.hi === RING_MAX ? 0n : i.hi + 1n) };
}

/**
 * Bucket `b` of `buckets` equal parts of an interval, exactly as RecordStore.digest assigns keys to
 * buckets (index = ⌊offset × buckets / width⌋), so a bucket's records are the ones its digest covered:
 * the offsets o with ⌊o·n/W⌋ = b are ⌈W·b/n⌉ … ⌈W·(b+1)/n⌉ − 1.
 */
export function bucketInterval(i: RingInterval, b: number, buckets: number): RingInterval {
  const width = i.hi - i.lo + 1n;
  const n = BigInt(buckets);
  const start = (k: bigint) => (width * k + n - 1n) / n;
  return { lo: i.lo + start(BigInt(b)), hi: i.lo + start(BigInt(b + 1)) - 1n };
}

type Holdings = Map<string, Map<string, DidRecord>>;

/** An arc this peer does not replicate, and its live replicas. */
interface StrayArc {
  readonly intervals: RingInterval[];
  readonly replicas: string[];
}

/** After a store that left strays here, they are handed over this much later (a burst of writes at once). */
const STRAY_HANDOVER_DELAY_MS = 1000;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function add(holdings: Holdings, key: Uint8Array, records: readonly DidRecord[]): void {
  const k = hex(key);
  let byPublisher = holdings.get(k);
  if (!byPublisher) holdings.set(k, (byPublisher = new Map()));
  for (const r of records) {
    const p = hex(r.publisherKey);
    const held = byPublisher.get(p);
    if (!held || held.sequence < r.sequence) byPublisher.set(p, r);
  }
}

/** The records of `from` that `to` lacks or holds with a lower sequence. */
function newer(from: Holdings, to: Holdings): DidRecord[] {
  const out: DidRecord[] = [];
  for (const [k, byPublisher] of from) {
    const other = to.get(k);
    for (const [p, r] of byPublisher) {
      const held = other?.get(p);
      if (!held || held.sequence < r.sequence) out.push(r);
    }
  }
  return out;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}

/** Records as they travel: DidRecord's fields, with protobuf's number-typed 64-bit fields. */
function fromWire(r: ime.v1.IDidRecord): DidRecord {
  const empty = new Uint8Array(0);
  return {
    key: r.key ?? empty,
    publisherKey: r.publisherKey ?? empty,
    sequence: Number(r.sequence ?? 0),
    expiresAtMs: Number(r.expiresAtMs ?? 0),
    tombstone: r.tombstone ?? false,
    nonce: r.nonce ?? empty,
    sealedClaim: r.sealedClaim ?? empty,
    signature: r.signature ?? empty,
  };
}

interface Tally {
  arcs: number;
  buckets: number;
  pulled: number;
  pushed: number;
}

export class AntiEntropy {
  readonly #view: RingView;
  readonly #store: RecordStoreApi;
  readonly #transport: RingTransport;
  readonly #self: string;
  readonly #intervalMs: number;
  readonly #buckets: number;
  readonly #batchSize: number;
  readonly #requestTimeoutMs: number | undefined;
  readonly #configurationSequence: () => number;
  readonly #log: RingLog | undefined;
  #running: Promise<AntiEntropySummary> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #started = false;
  /** Stray buckets already handed over, by replica and bucket, with the content they had then. */
  readonly #straysSent = new Map<string, { content: string; stale: ReadonlySet<string> }>();
  /** The placement #straysSent refers to: arcs, and so buckets, move when it changes. */
  #strayPlacement: ViewSnapshot['placement'] | undefined;
  #strayTimer: ReturnType<typeof setTimeout> | undefined;
  /** Handovers run one at a time (a round's and a store's). */
  #strayWork: Promise<unknown> = Promise.resolve();

  constructor(options: AntiEntropyOptions) {
    this.#view = options.view;
    this.#store = options.store;
    this.#transport = options.transport;
    this.#self = options.self;
    this.#intervalMs = options.intervalMs;
    // Within what a replica's ring service accepts, or every comparison would be refused.
    this.#buckets = Math.min(MAX_DIGEST_BUCKETS, Math.max(1, Math.floor(options.buckets ?? 16)));
    this.#batchSize = Math.min(MAX_RANGE_FETCH_LIMIT, MAX_RECORDS_PER_REQUEST, Math.max(1, Math.floor(options.batchSize ?? 500)));
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#configurationSequence = options.configurationSequence ?? (() => 0);
    this.#log = options.log;
  }

  /** Runs a round every `intervalMs` (the next one starts after the previous ended). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#arm();
  }

  stop(): void {
    this.#started = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#strayTimer) clearTimeout(this.#strayTimer);
    this.#strayTimer = undefined;
  }

  /** A store made this peer keep records of keys it does not replicate: hand them over shortly. */
  handOverStraysSoon(): void {
    if (!this.#started || this.#strayTimer !== undefined) return;
    this.#strayTimer = setTimeout(() => {
      this.#strayTimer = undefined;
      const snap = this.#view.snapshot();
      this.#handOver(this.#strayArcs(snap), snap.placement, []).catch((err: unknown) =>
        this.#log?.('warn', 'handing stray records over failed', { error: err instanceof Error ? err.message : String(err) }),
      );
    }, STRAY_HANDOVER_DELAY_MS);
    this.#strayTimer.unref?.();
  }

  /** One round over every arc this peer replicates; joins the round in progress, if any. */
  runOnce(): Promise<AntiEntropySummary> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #arm(): void {
    if (!this.#started) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.runOnce()
        .then((s) => {
          if (s.bucketsDiffering > 0 || s.peersFailed.length > 0) this.#log?.('info', 'anti-entropy round', { ...s });
        })
        .catch((err: unknown) => this.#log?.('warn', 'anti-entropy round failed', { error: err instanceof Error ? err.message : String(err) }))
        .finally(() => this.#arm());
    }, this.#intervalMs);
    this.#timer.unref?.();
  }

  async #round(): Promise<AntiEntropySummary> {
    const snap = this.#view.snapshot();
    const live = (p: string) => snap.live.has(p);
    const work = new Map<string, RingInterval[]>();
    const tally: Tally = { arcs: 0, buckets: 0, pulled: 0, pushed: 0 };
    if (snap.placement.tokens.length > 0) {
      for (const arc of snap.placement.arcs()) {
        const replicas = snap.placement.walk(arc.token, snap.replicationFactor, live);
        if (!replicas.includes(this.#self)) continue;
        // Code-unit order, the same on every peer, so exactly one of a pair starts.
        const partners = replicas.filter((p) => p !== this.#self && this.#self < p);
        if (partners.length === 0) continue;
        tally.arcs++;
        for (const p of partners) work.set(p, [...(work.get(p) ?? []), ...arcIntervals(arc.after, arc.upTo)]);
      }
    }
    const failed: string[] = [];
    await Promise.all(
      [...work].map(async ([peerId, intervals]) => {
        // Adjacent arcs shared with the same partner are compared as one range.
        for (const interval of mergeIntervals(intervals)) {
          try {
            await this.#compare(peerId, interval, tally);
          } catch (err) {
            const code = isImeError(err) ? err.code : 'E_INTERNAL';
            const message = err instanceof Error ? err.message : String(err);
            if (code === 'E_RPC_UNREACHABLE') this.#view.reportUnreachable(peerId, message);
            this.#log?.('warn', 'anti-entropy with a replica failed', { peerId, code, message });
            failed.push(peerId);
            return;
          }
        }
      }),
    );
    await this.#handOver(this.#strayArcs(snap), snap.placement, failed);
    return {
      arcsChecked: tally.arcs,
      bucketsDiffering: tally.buckets,
      recordsPulled: tally.pulled,
      recordsPushed: tally.pushed,
      peersFailed: failed.sort(),
    };
  }

  /** The arcs with live replicas that this peer is not one of. */
  #strayArcs(snap: ViewSnapshot): StrayArc[] {
    const out: StrayArc[] = [];
    if (snap.placement.tokens.length === 0) return out;
    const live = (p: string) => snap.live.has(p);
    for (const arc of snap.placement.arcs()) {
      const replicas = snap.placement.walk(arc.token, snap.replicationFactor, live);
      if (replicas.length > 0 && !replicas.includes(this.#self)) out.push({ intervals: arcIntervals(arc.after, arc.upTo), replicas });
    }
    return out;
  }

  #handOver(strays: readonly StrayArc[], placement: ViewSnapshot['placement'], failed: string[]): Promise<number> {
    const run = this.#strayWork.then(() => this.#handOverNow(strays, placement, failed));
    this.#strayWork = run.catch(() => undefined);
    return run;
  }

  /**
   * Sends every replica of a stray arc the records held here in it, bucket by bucket; a bucket sent
   * before with the same content is not sent again. Replicas keep what is newer than theirs (and verify
   * every signature: these are handoff requests). A record every replica refused as older than its own
   * is dropped here: it can never be served again, and kept it would come back as a stale value if this
   * peer became a replica while they were all down (e.g. an old record replayed to a non-replica).
   * Returns how many records the replicas stored.
   */
  async #handOverNow(strays: readonly StrayArc[], placement: ViewSnapshot['placement'], failed: string[]): Promise<number> {
    if (placement !== this.#strayPlacement) {
      this.#strayPlacement = placement;
      this.#straysSent.clear();
    }
    const unreachable = new Set<string>();
    let sent = 0;
    let stored = 0;
    let dropped = 0;
    for (const arc of strays) {
      for (const interval of arc.intervals) {
        const local = await this.#store.digest(intervalToKeyRange(interval), this.#buckets);
        for (let b = 0; b < this.#buckets; b++) {
          const count = local.counts[b] ?? 0;
          if (count === 0) continue;
          const bucket = bucketInterval(interval, b, this.#buckets);
          const content = `${hex(local.digests[b] ?? new Uint8Array(0))}:${count}`;
          // Which records each replica refused as older than its own (now, or when it was last sent
          // this same content); a record is obsolete here once every replica of the arc refused it.
          const staleBy: ReadonlySet<string>[] = [];
          const records = new Map<string, DidRecord>();
          for (const peerId of arc.replicas) {
            const id = `${peerId}|${bucket.lo}|${bucket.hi}`;
            if (unreachable.has(peerId)) continue;
            const before = this.#straysSent.get(id);
            if (before?.content === content) {
              staleBy.push(before.stale);
              continue;
            }
            try {
              const r = await this.#sendBucket(peerId, bucket);
              sent += r.sent;
              stored += r.stored;
              const stale = new Set<string>();
              for (const record of r.stale) {
                const recordId = recordVersionId(record);
                stale.add(recordId);
                records.set(recordId, record);
              }
              staleBy.push(stale);
              this.#straysSent.set(id, { content, stale });
            } catch (err) {
              unreachable.add(peerId);
              if (!failed.includes(peerId)) failed.push(peerId);
              const code = isImeError(err) ? err.code : 'E_INTERNAL';
              const message = err instanceof Error ? err.message : String(err);
              if (code === 'E_RPC_UNREACHABLE') this.#view.reportUnreachable(peerId, message);
              this.#log?.('warn', 'handing stray records to a replica failed; the next round tries again', { peerId, code, message });
            }
          }
          if (arc.replicas.length > 0 && staleBy.length === arc.replicas.length) {
            const obsolete = [...records].filter(([recordId]) => staleBy.every((stale) => stale.has(recordId))).map(([, record]) => record);
            if (obsolete.length > 0) dropped += await this.#store.discard(obsolete);
          }
        }
      }
    }
    if (sent > 0) this.#log?.('info', 'stray records handed to their replicas', { sent, stored, ...(dropped > 0 ? { droppedStale: dropped } : {}) });
    return stored;
  }

  async #sendBucket(peerId: string, bucket: RingInterval): Promise<{ sent: number; stored: number; stale: DidRecord[] }> {
    const range = intervalToKeyRange(bucket);
    let cursor: Uint8Array | undefined;
    let sent = 0;
    let stored = 0;
    const stale: DidRecord[] = [];
    for (;;) {
      const page = await this.#store.scan(range, { ...(cursor ? { after: cursor } : {}), limit: this.#batchSize });
      const records = page.entries.flatMap((e) => e.records);
      const last = page.entries[page.entries.length - 1];
      const more = page.more && last !== undefined;
      for (let i = 0; i < records.length; i += this.#batchSize) {
        const batch = records.slice(i, i + this.#batchSize);
        const done = !more && i + this.#batchSize >= records.length;
        const response = await this.#request(peerId, { handoff: { configurationSequence: this.#configurationSequence(), records: batch, done } });
        sent += batch.length;
        for (const r of storeResults(response, 'handoff')) {
          if (r.accepted) stored++;
          else if (r.error?.code === 'E_STALE_SEQUENCE' && batch[r.index ?? -1]) stale.push(batch[r.index ?? -1] as DidRecord);
        }
      }
      if (!more) break;
      cursor = last.key;
    }
    return { sent, stored, stale };
  }

  async #request(peerId: string, request: ime.v1.IRingRequest): Promise<ime.v1.RingResponse> {
    const response = await this.#transport.request(
      peerId,
      { version: RING_WIRE_VERSION, ...request },
      this.#requestTimeoutMs === undefined ? undefined : { timeoutMs: this.#requestTimeoutMs },
    );
    if (response.error) throw new ImeError(response.error.code || 'E_INTERNAL', response.error.message ?? '');
    return response;
  }

  async #compare(peerId: string, interval: RingInterval, tally: Tally): Promise<void> {
    const buckets = this.#buckets;
    const response = await this.#request(peerId, { rangeDigest: { ...wireRange(interval), buckets } });
    const remote = response.rangeDigest;
    const remoteDigests = remote?.digests ?? [];
    if (!remote || remoteDigests.length !== buckets) {
      throw new ImeError('E_RPC_PROTOCOL', `${peerId} answered a range digest with ${remoteDigests.length} buckets, not ${buckets}`);
    }
    const local = await this.#store.digest(intervalToKeyRange(interval), buckets);
    for (let b = 0; b < buckets; b++) {
      const same =
        sameBytes(local.digests[b], remoteDigests[b]) && (local.counts[b] ?? 0) === Number(remote.counts?.[b] ?? 0);
      if (same) continue;
      tally.buckets++;
      await this.#exchange(peerId, bucketInterval(interval, b, buckets), tally);
    }
  }

  /** Both sides' records of one bucket; each side gets what is newer on the other. */
  async #exchange(peerId: string, bucket: RingInterval, tally: Tally): Promise<void> {
    const theirs: Holdings = new Map();
    const range = wireRange(bucket);
    let after: Uint8Array | undefined;
    for (;;) {
      const response = await this.#request(peerId, {
        rangeFetch: { ...range, after: after ?? new Uint8Array(0), limit: this.#batchSize },
      });
      const page = response.rangeFetch;
      if (!page) throw new ImeError('E_RPC_PROTOCOL', `${peerId} answered a range fetch with something else`);
      const entries = page.entries ?? [];
      for (const e of entries) {
        const key = e.key ?? new Uint8Array(0);
        // Only what lies in the bucket: a confused or hostile peer must not make us scan elsewhere.
        const k = positionToBigInt(key);
        if (k < bucket.lo || k > bucket.hi) continue;
        add(theirs, key, (e.records ?? []).map(fromWire));
      }
      const last = entries[entries.length - 1];
      if (!page.more || !last?.key || last.key.length === 0) break;
      if (after && Buffer.compare(last.key, after) <= 0) {
        throw new ImeError('E_RPC_PROTOCOL', `${peerId} paged a range fetch backwards`);
      }
      after = last.key;
    }

    const ours: Holdings = new Map();
    const keyRange = intervalToKeyRange(bucket);
    let cursor: Uint8Array | undefined;
    for (;;) {
      const page = await this.#store.scan(keyRange, { ...(cursor ? { after: cursor } : {}), limit: this.#batchSize });
      for (const e of page.entries) add(ours, e.key, e.records);
      const last = page.entries[page.entries.length - 1];
      if (!page.more || !last) break;
      cursor = last.key;
    }

    const pull = newer(theirs, ours);
    for (let i = 0; i < pull.length; i += this.#batchSize) {
      // No authenticatedPublisher: records from another replica always have their signatures checked.
      const results = await this.#store.put(pull.slice(i, i + this.#batchSize));
      tally.pulled += results.filter((r) => r.accepted).length;
    }
    const push = newer(ours, theirs);
    for (let i = 0; i < push.length; i += this.#batchSize) {
      const batch = push.slice(i, i + this.#batchSize);
      const done = i + this.#batchSize >= push.length;
      const response = await this.#request(peerId, {
        handoff: { configurationSequence: this.#configurationSequence(), records: batch, done },
      });
      tally.pushed += storeResults(response, 'handoff').filter((r) => r.accepted).length;
    }
  }
}
