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
 * publisher knows its numbers, so it keeps them (key 0x03 ‖ number) to republish before the TTL
 * and to withdraw. Sequences are max(previous + 1, now), so they keep rising across restarts and
 * restores from old backups.
 */

const OWN_PREFIX = 0x03;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface OwnEntry {
  readonly vserviceId: string;
  readonly sequence: number;
  readonly publishedAtMs: number;
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

/** Records sealed per step, so a 100 000-number publication does not hold the event loop for seconds. */
const SEAL_CHUNK = 2000;

function ownKey(number: string): Uint8Array {
  const n = encoder.encode(number);
  const k = new Uint8Array(1 + n.length);
  k[0] = OWN_PREFIX;
  k.set(n, 1);
  return k;
}

export class DidPublisher {
  readonly #db: Database;
  readonly #ring: RingWriter;
  readonly #publisher: Publisher;
  readonly #context: () => PublisherContext | undefined;
  readonly #now: () => number;
  readonly #own = new Map<string, OwnEntry>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #republishing: Promise<PublishReport> | undefined;

  private constructor(db: Database, ring: RingWriter, publisher: Publisher, context: () => PublisherContext | undefined, now: () => number) {
    this.#db = db;
    this.#ring = ring;
    this.#publisher = publisher;
    this.#context = context;
    this.#now = now;
  }

  static async open(options: {
    db: Database;
    ring: RingWriter;
    publisher: Publisher;
    /** Ring salt and parameters from the current configuration; undefined before the first one. */
    context: () => PublisherContext | undefined;
    now?: () => number;
  }): Promise<DidPublisher> {
    const p = new DidPublisher(options.db, options.ring, options.publisher, options.context, options.now ?? Date.now);
    for await (const [k, v] of options.db.iterator({ gt: Uint8Array.of(OWN_PREFIX), lt: Uint8Array.of(OWN_PREFIX + 1) })) {
      p.#own.set(decoder.decode(k.subarray(1)), JSON.parse(decoder.decode(v)) as OwnEntry);
    }
    return p;
  }

  /** DIDs this peer publishes (IMEDistributedCacheQuotaUsed). */
  get used(): number {
    return this.#own.size;
  }

  owns(number: string): boolean {
    return this.#own.has(number);
  }

  /** The numbers of one Vservice (or all), for the admin API and for withdrawing a Vservice. */
  numbers(vserviceId?: string): string[] {
    return [...this.#own].filter(([, e]) => vserviceId === undefined || e.vserviceId === vserviceId).map(([n]) => n);
  }

  #requireContext(): PublisherContext {
    const c = this.#context();
    if (!c) throw new ImeError('E_RING_INACTIVE', 'this peer has no ring configuration yet (not enrolled or not admitted)');
    return c;
  }

  #sequence(number: string): number {
    return Math.max((this.#own.get(number)?.sequence ?? 0) + 1, this.#now());
  }

  /**
   * Publishes numbers for a Vservice, all or nothing against the quota: a publication that would take
   * this peer over its quota is refused whole with E_OVER_QUOTA (the call manager's IMEOverQuota).
   */
  async publish(vserviceId: string, numbers: readonly string[]): Promise<PublishReport> {
    const context = this.#requireContext();
    const unique = [...new Set(numbers.map((n) => parseE164(n)))];
    const added = unique.filter((n) => !this.#own.has(n)).length;
    if (this.#own.size + added > context.storageQuota) {
      throw new ImeError(
        'E_OVER_QUOTA',
        `publishing ${added} more DIDs would use ${this.#own.size + added} of this peer's quota of ${context.storageQuota}`,
        { quota: context.storageQuota, used: this.#own.size, requested: added },
      );
    }
    return this.#publish(unique.map((n) => [n, vserviceId] as const), context);
  }

  async #publish(items: readonly (readonly [E164, string])[], context: PublisherContext): Promise<PublishReport> {
    const failed: { number: string; code: string; message: string }[] = [];
    let published = 0;
    for (let i = 0; i < items.length; i += SEAL_CHUNK * 5) {
      const slice = items.slice(i, i + SEAL_CHUNK * 5);
      const nowMs = this.#now();
      const records: DidRecord[] = [];
      const sequences: number[] = [];
      for (let j = 0; j < slice.length; j++) {
        const [number, vserviceId] = slice[j] as readonly [E164, string];
        const sequence = this.#sequence(number);
        sequences.push(sequence);
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
        if ((j + 1) % SEAL_CHUNK === 0) await new Promise((r) => setImmediate(r));
      }
      const outcomes = await this.#ring.store(records);
      const batch = this.#db.batch();
      outcomes.forEach((o, j) => {
        const [number, vserviceId] = slice[j] as readonly [E164, string];
        if (o.accepted) {
          const entry: OwnEntry = { vserviceId, sequence: sequences[j] as number, publishedAtMs: nowMs };
          this.#own.set(number, entry);
          batch.put(ownKey(number), encoder.encode(JSON.stringify(entry)));
          published++;
        } else {
          failed.push({ number, code: o.code ?? 'E_RING_WRITE_QUORUM', message: o.message ?? 'not stored' });
        }
      });
      await batch.write();
    }
    return { requested: items.length, published, failed };
  }

  /** Withdraws numbers with signed tombstones; numbers this peer does not publish are reported as failed. */
  async withdraw(numbers: readonly string[]): Promise<PublishReport> {
    const context = this.#requireContext();
    const unique = [...new Set(numbers.map((n) => parseE164(n)))];
    const failed: { number: string; code: string; message: string }[] = [];
    const mine = unique.filter((n) => {
      if (this.#own.has(n)) return true;
      failed.push({ number: n, code: 'E_NOT_PUBLISHED', message: 'this peer does not publish this number' });
      return false;
    });
    const nowMs = this.#now();
    const tombstones = mine.map((number) =>
      sealDidTombstone({
        ringSalt: context.ringSalt,
        number,
        publisher: this.#publisher,
        sequence: this.#sequence(number),
        expiresAtMs: nowMs + context.recordTtlSec * 1000,
      }),
    );
    const outcomes = tombstones.length > 0 ? await this.#ring.withdraw(tombstones) : [];
    const batch = this.#db.batch();
    let withdrawn = 0;
    outcomes.forEach((o, j) => {
      const number = mine[j] as string;
      if (o.accepted) {
        this.#own.delete(number);
        batch.del(ownKey(number));
        withdrawn++;
      } else {
        failed.push({ number, code: o.code ?? 'E_RING_WRITE_QUORUM', message: o.message ?? 'not withdrawn' });
      }
    });
    await batch.write();
    return { requested: unique.length, published: withdrawn, failed };
  }

  /** Re-seals every own number with a new sequence and expiry (before the TTL runs out). */
  async republish(): Promise<PublishReport> {
    if (this.#republishing) return this.#republishing;
    const context = this.#context();
    if (!context || this.#own.size === 0) return { requested: 0, published: 0, failed: [] };
    const items = [...this.#own].map(([n, e]) => [n as E164, e.vserviceId] as const);
    this.#republishing = this.#publish(items, context).finally(() => (this.#republishing = undefined));
    return this.#republishing;
  }

  /** Republishes every republish interval, and at once when the oldest publication is already due. */
  start(onError: (err: unknown) => void): void {
    const tick = () => {
      const context = this.#context();
      if (!context) return;
      const due = this.#now() - context.republishIntervalSec * 1000;
      const stale = [...this.#own.values()].some((e) => e.publishedAtMs <= due);
      if (stale) this.republish().catch(onError);
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

