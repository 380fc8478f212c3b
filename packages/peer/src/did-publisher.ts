import {
  type DidRecord,
  type E164,
  ImeError,
  type Publisher,
  parseE164,
  sealDidRecord,
  sealDidTombstone,
} from '@ime/core';
import type { Database } from '@ime/runtime';

/**
 * The peer's own numbers: what its call managers published through it (SPEC §4–§5). Only the
 * publisher knows its numbers, so it keeps them (key 0x03 ‖ number → Vservice, sequence, time) to
 * republish before the TTL and to withdraw. They live in the database only — a full quota is a
 * million numbers, too many to hold in memory — with their count and the oldest publication time
 * kept beside them, written in the same batch. Sequences are max(previous + 1, now), so they keep
 * rising across restarts and restores from old backups.
 */

const OWN_PREFIX = 0x03;
const STATE_KEY = new TextEncoder().encode('meta/own-numbers');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface OwnEntry {
  readonly vserviceId: string;
  readonly sequence: number;
  readonly publishedAtMs: number;
}

interface OwnState {
  count: number;
  /** Oldest publication among the own numbers (or undefined when there are none). */
  oldestPublishedAtMs: number | undefined;
}

export interface WriteOutcome {
  readonly accepted: boolean;
  readonly acks: number;
  readonly code?: string;
  readonly message?: string;
}

/** The part of the coordinator the publisher needs. */
export interface RingWriter {
  store(records: readonly DidRecord[]): Promise<WriteOutcome[]>;
  withdraw(tombstones: readonly DidRecord[]): Promise<WriteOutcome[]>;
}

export interface PublisherContext {
  readonly ringSalt: Uint8Array;
  readonly recordTtlSec: number;
  readonly republishIntervalSec: number;
  readonly storageQuota: number;
}

export interface PublishReport {
  readonly requested: number;
  readonly published: number;
  readonly failed: readonly { number: string; code: string; message: string }[];
}

/** Numbers sealed and stored per step: bounds memory, and yields the event loop between steps. */
const CHUNK = 5000;

/** A number to seal, its Vservice, and what this peer published for it before (if anything). */
type PublishItem = readonly [E164, string, OwnEntry | undefined];
/** Records sealed between yields to the event loop. */
const SEAL_SLICE = 1000;

function ownKey(number: string): Uint8Array {
  const n = encoder.encode(number);
  const k = new Uint8Array(1 + n.length);
  k[0] = OWN_PREFIX;
  k.set(n, 1);
  return k;
}

function decodeEntry(v: Uint8Array): OwnEntry {
  return JSON.parse(decoder.decode(v)) as OwnEntry;
}

export class DidPublisher {
  readonly #db: Database;
  readonly #ring: RingWriter;
  readonly #publisher: Publisher;
  readonly #context: () => PublisherContext | undefined;
  readonly #now: () => number;
  readonly #state: OwnState;
  /** Publications, withdrawals and republishing run one at a time: they read and write the same entries. */
  #queue: Promise<unknown> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;
  #republishing: Promise<PublishReport> | undefined;

  private constructor(db: Database, ring: RingWriter, publisher: Publisher, context: () => PublisherContext | undefined, now: () => number, state: OwnState) {
    this.#db = db;
    this.#ring = ring;
    this.#publisher = publisher;
    this.#context = context;
    this.#now = now;
    this.#state = state;
  }

  static async open(options: {
    db: Database;
    ring: RingWriter;
    publisher: Publisher;
    /** Ring salt and parameters from the current configuration; undefined before the first one. */
    context: () => PublisherContext | undefined;
    now?: () => number;
  }): Promise<DidPublisher> {
    const stored = await options.db.get(STATE_KEY);
    let state: OwnState;
    if (stored !== undefined) {
      state = JSON.parse(decoder.decode(stored)) as OwnState;
    } else {
      // No summary yet (a database from before it was kept): count once.
      state = { count: 0, oldestPublishedAtMs: undefined };
      for await (const v of options.db.values({ gt: Uint8Array.of(OWN_PREFIX), lt: Uint8Array.of(OWN_PREFIX + 1) })) {
        const e = decodeEntry(v);
        state.count++;
        state.oldestPublishedAtMs = Math.min(state.oldestPublishedAtMs ?? e.publishedAtMs, e.publishedAtMs);
      }
    }
    return new DidPublisher(options.db, options.ring, options.publisher, options.context, options.now ?? Date.now, state);
  }

  /** DIDs this peer publishes (IMEDistributedCacheQuotaUsed). */
  get used(): number {
    return this.#state.count;
  }

  async owns(number: string): Promise<boolean> {
    return (await this.#db.get(ownKey(number))) !== undefined;
  }

  /** The numbers of one Vservice (or all), read from the database. */
  async numbers(vserviceId?: string): Promise<string[]> {
    const out: string[] = [];
    for await (const [k, v] of this.#db.iterator({ gt: Uint8Array.of(OWN_PREFIX), lt: Uint8Array.of(OWN_PREFIX + 1) })) {
      if (vserviceId === undefined || decodeEntry(v).vserviceId === vserviceId) out.push(decoder.decode(k.subarray(1)));
    }
    return out;
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #requireContext(): PublisherContext {
    const c = this.#context();
    if (!c) throw new ImeError('E_RING_INACTIVE', 'this peer has no ring configuration yet (not enrolled or not admitted)');
    return c;
  }

  async #existing(numbers: readonly string[]): Promise<(OwnEntry | undefined)[]> {
    const values = await this.#db.getMany(numbers.map((n) => ownKey(n)));
    return values.map((v) => (v === undefined ? undefined : decodeEntry(v)));
  }

  /**
   * Publishes numbers for a Vservice, all or nothing against the quota: a publication that would take
   * this peer over its quota is refused whole with E_OVER_QUOTA (the call manager's IMEOverQuota).
   */
  publish(vserviceId: string, numbers: readonly string[]): Promise<PublishReport> {
    const unique = [...new Set(numbers.map((n) => parseE164(n)))];
    return this.#serialised(async () => {
      const context = this.#requireContext();
      // What is already published, read once: for the quota here, and for the sequences when sealing.
      const known: (OwnEntry | undefined)[][] = [];
      let added = 0;
      for (let i = 0; i < unique.length; i += CHUNK) {
        const existing = await this.#existing(unique.slice(i, i + CHUNK));
        known.push(existing);
        added += existing.filter((e) => e === undefined).length;
      }
      if (this.#state.count + added > context.storageQuota) {
        throw new ImeError(
          'E_OVER_QUOTA',
          `publishing ${added} more DIDs would use ${this.#state.count + added} of this peer's quota of ${context.storageQuota}`,
          { quota: context.storageQuota, used: this.#state.count, requested: added },
        );
      }
      return this.#publishAll(unique.length, async function* () {
        for (let i = 0, c = 0; i < unique.length; i += CHUNK, c++) {
          const existing = known[c] as (OwnEntry | undefined)[];
          yield unique.slice(i, i + CHUNK).map((n, j) => [n, vserviceId, existing[j]] as const);
        }
      }, context);
    });
  }

  /**
   * Seals and stores chunk after chunk; the next chunk is sealed while the previous one is on its way
   * to the replicas, so the CPU and the network overlap.
   */
  async #publishAll(
    requested: number,
    chunks: () => AsyncGenerator<readonly PublishItem[]>,
    context: PublisherContext,
  ): Promise<PublishReport> {
    const failed: { number: string; code: string; message: string }[] = [];
    let published = 0;
    let inFlight: Promise<void> | undefined;
    for await (const chunk of chunks()) {
      const sealed = await this.#seal(chunk, context);
      await inFlight;
      inFlight = this.#storeChunk(chunk, sealed, failed).then((n) => {
        published += n;
      });
    }
    await inFlight;
    return { requested, published, failed };
  }

  async #seal(chunk: readonly PublishItem[], context: PublisherContext): Promise<{ records: DidRecord[]; entries: OwnEntry[]; isNew: boolean[] }> {
    // Chunks never share a number (publications are de-duplicated, republishing reads each once), and
    // publications are serialised, so what was read before sealing still holds when the chunk is written.
    const existing = chunk.map((item) => item[2]);
    const nowMs = this.#now();
    const records: DidRecord[] = [];
    const entries: OwnEntry[] = [];
    for (let j = 0; j < chunk.length; j++) {
      const [number, vserviceId] = chunk[j] as PublishItem;
      const sequence = Math.max((existing[j]?.sequence ?? 0) + 1, nowMs);
      entries.push({ vserviceId, sequence, publishedAtMs: nowMs });
      records.push(
        sealDidRecord({
          ringSalt: context.ringSalt,
          number,
          publisher: this.#publisher,
          claim: { vserviceId, publishedAtMs: nowMs },
          sequence,
          expiresAtMs: nowMs + context.recordTtlSec * 1000,
        }),
      );
      if ((j + 1) % SEAL_SLICE === 0) await new Promise((r) => setImmediate(r));
    }
    return { records, entries, isNew: existing.map((e) => e === undefined) };
  }

  async #storeChunk(
    chunk: readonly PublishItem[],
    sealed: { records: DidRecord[]; entries: OwnEntry[]; isNew: boolean[] },
    failed: { number: string; code: string; message: string }[],
  ): Promise<number> {
    const outcomes = await this.#ring.store(sealed.records);
    const batch = this.#db.batch();
    let published = 0;
    outcomes.forEach((o, j) => {
      const [number] = chunk[j] as PublishItem;
      const entry = sealed.entries[j] as OwnEntry;
      if (o.accepted) {
        if (sealed.isNew[j]) this.#state.count++;
        this.#state.oldestPublishedAtMs = Math.min(this.#state.oldestPublishedAtMs ?? entry.publishedAtMs, entry.publishedAtMs);
        batch.put(ownKey(number), encoder.encode(JSON.stringify(entry)));
        published++;
      } else {
        failed.push({ number, code: o.code ?? 'E_RING_WRITE_QUORUM', message: o.message ?? 'not stored' });
      }
    });
    batch.put(STATE_KEY, encoder.encode(JSON.stringify(this.#state)));
    await batch.write();
    return published;
  }

  /** Withdraws numbers with signed tombstones; numbers this peer does not publish are reported as failed. */
  withdraw(numbers: readonly string[]): Promise<PublishReport> {
    const unique = [...new Set(numbers.map((n) => parseE164(n)))];
    return this.#serialised(async () => {
      const context = this.#requireContext();
      const failed: { number: string; code: string; message: string }[] = [];
      let withdrawn = 0;
      for (let i = 0; i < unique.length; i += CHUNK) {
        const slice = unique.slice(i, i + CHUNK);
        const existing = await this.#existing(slice);
        const mine: { number: E164; entry: OwnEntry }[] = [];
        slice.forEach((number, j) => {
          const entry = existing[j];
          if (entry) mine.push({ number, entry });
          else failed.push({ number, code: 'E_NOT_PUBLISHED', message: 'this peer does not publish this number' });
        });
        const nowMs = this.#now();
        const tombstones = mine.map(({ number, entry }) =>
          sealDidTombstone({
            ringSalt: context.ringSalt,
            number,
            publisher: this.#publisher,
            sequence: Math.max(entry.sequence + 1, nowMs),
            expiresAtMs: nowMs + context.recordTtlSec * 1000,
          }),
        );
        const outcomes = tombstones.length > 0 ? await this.#ring.withdraw(tombstones) : [];
        const batch = this.#db.batch();
        outcomes.forEach((o, j) => {
          const { number } = mine[j] as { number: E164 };
          if (o.accepted) {
            batch.del(ownKey(number));
            this.#state.count--;
            withdrawn++;
          } else {
            failed.push({ number, code: o.code ?? 'E_RING_WRITE_QUORUM', message: o.message ?? 'not withdrawn' });
          }
        });
        if (this.#state.count === 0) this.#state.oldestPublishedAtMs = undefined;
        batch.put(STATE_KEY, encoder.encode(JSON.stringify(this.#state)));
        await batch.write();
      }
      return { requested: unique.length, published: withdrawn, failed };
    });
  }

  /** Re-seals every own number with a new sequence and expiry (before the TTL runs out). */
  republish(): Promise<PublishReport> {
    if (this.#republishing) return this.#republishing;
    this.#republishing = this.#serialised(async () => {
      const context = this.#context();
      if (!context || this.#state.count === 0) return { requested: 0, published: 0, failed: [] };
      const startedMs = this.#now();
      const db = this.#db;
      const report = await this.#publishAll(this.#state.count, async function* () {
        let chunk: PublishItem[] = [];
        for await (const [k, v] of db.iterator({ gt: Uint8Array.of(OWN_PREFIX), lt: Uint8Array.of(OWN_PREFIX + 1) })) {
          const entry = decodeEntry(v);
          chunk.push([decoder.decode(k.subarray(1)) as E164, entry.vserviceId, entry]);
          if (chunk.length === CHUNK) {
            yield chunk;
            chunk = [];
          }
        }
        if (chunk.length > 0) yield chunk;
      }, context);
      // Numbers that failed keep their old time: the next tick retries them with everything else.
      if (report.failed.length === 0) {
        this.#state.oldestPublishedAtMs = startedMs;
        await this.#db.put(STATE_KEY, encoder.encode(JSON.stringify(this.#state)));
      }
      return report;
    }).finally(() => (this.#republishing = undefined));
    return this.#republishing;
  }

  /** Republishes once the oldest publication is a republish interval old (checked every minute). */
  start(onError: (err: unknown) => void): void {
    const tick = () => {
      const context = this.#context();
      const oldest = this.#state.oldestPublishedAtMs;
      if (!context || oldest === undefined) return;
      if (this.#now() - oldest >= context.republishIntervalSec * 1000) this.republish().catch(onError);
    };
    tick();
    this.#timer = setInterval(tick, 60_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
