import { ImeError, type Vcr, type VcrDirection, parseE164 } from '@ime/core';
import type { Database } from '@ime/runtime';

/**
 * Voice call records a peer's call managers uploaded (SPEC §5, §6), in the peer's LevelDB.
 *
 * Terminating VCRs (calls this enterprise received) are kept for the retention window so a remote
 * originator can validate against them; originating VCRs (calls it placed) wait to be validated.
 * Keys are derived from the call itself, so a call manager that retries an upload stores nothing
 * twice, and the terminating index is ordered by called number then start time — the validator's
 * lookup ("this number, around this time") is one range read.
 *
 *   0x20 ‖ called ‖ 0x00 ‖ start (u64 BE) ‖ callId   → terminating VCR (JSON)
 *   0x21 ‖ start (u64 BE) ‖ called ‖ 0x00 ‖ callId   → originating VCR (JSON), oldest first
 *   0x22                                              → counts (JSON), written with every batch
 *
 * A terminating VCR that a successful validation used is marked (`usedAtMs`) and not offered again:
 * one call proves one validation. An originating VCR is a pending validation: it is removed once
 * validated (or skipped), so the originating count is the validator's backlog (ValidationsPending).
 */

export type { VcrDirection };

/** What a call manager uploaded, before it is checked and stored. */
export type VcrInput = Vcr;

export interface StoredVcr extends VcrInput {
  /** When this peer received it. */
  readonly receivedAtMs: number;
  /** Who uploaded it (VAP instance and user), for operators. */
  readonly source: string;
  /** Terminating only: when a successful validation used it (it is then no longer a candidate). */
  readonly usedAtMs?: number;
  /** Originating only: a validation that could not run is tried again at this time … */
  readonly retryAtMs?: number;
  /** … and has been tried this many times without running. */
  readonly retries?: number;
}

export interface VcrRefusal {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

export interface VcrAddResult {
  /** Stored now, or already stored by an earlier upload of the same call. */
  readonly accepted: number;
  readonly duplicates: number;
  readonly refused: readonly VcrRefusal[];
}

export interface VcrCounts {
  readonly terminating: number;
  readonly originating: number;
}

export interface VcrStoreOptions {
  readonly db: Database;
  readonly now?: () => number;
  /** How long terminating VCRs are kept (default 48 h, SPEC §6). */
  readonly retentionMs?: number;
}

export const DEFAULT_VCR_RETENTION_MS = 48 * 3600 * 1000;
/** A call longer than a day is not a call record we believe. */
const MAX_CALL_MS = 24 * 3600 * 1000;
/** Call managers' clocks may run a little ahead of ours. */
const FUTURE_SLACK_MS = 5 * 60 * 1000;
const MAX_CALL_ID = 128;
const TERMINATING = 0x20;
const ORIGINATING = 0x21;
const COUNTS_KEY = Uint8Array.of(0x22);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function terminatingKey(v: VcrInput): Uint8Array {
  return Buffer.concat([Uint8Array.of(TERMINATING), encoder.encode(v.called), Uint8Array.of(0), u64(v.startMs), encoder.encode(v.callId)]);
}

function originatingKey(v: VcrInput): Uint8Array {
  return Buffer.concat([Uint8Array.of(ORIGINATING), u64(v.startMs), encoder.encode(v.called), Uint8Array.of(0), encoder.encode(v.callId)]);
}

function keyOf(v: VcrInput): Uint8Array {
  return v.direction === 'terminating' ? terminatingKey(v) : originatingKey(v);
}

function isTime(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function decodeVcr(value: Uint8Array): StoredVcr {
  try {
    return JSON.parse(decoder.decode(value)) as StoredVcr;
  } catch {
    throw new ImeError('E_DB_CORRUPT', 'a stored VCR cannot be read');
  }
}

/** Why a VCR cannot be stored, or undefined. Pure, so the rules are tested without a database. */
export function vcrProblem(v: VcrInput, nowMs: number, retentionMs: number): { code: string; message: string } | undefined {
  if (v === null || typeof v !== 'object') return { code: 'E_VCR_MALFORMED', message: 'not a VCR' };
  if (v.direction !== 'originating' && v.direction !== 'terminating') return { code: 'E_VCR_MALFORMED', message: 'direction must be originating or terminating' };
  for (const [what, n] of [['calling', v.calling], ['called', v.called]] as const) {
    try {
      parseE164(n);
    } catch {
      // The guide: numbers that are not +E.164 after transformation cannot be validated (L3273).
      return { code: 'E_VCR_NOT_E164', message: `the ${what} number is not +E.164` };
    }
  }
  if (typeof v.callId !== 'string' || v.callId.length === 0 || v.callId.length > MAX_CALL_ID || v.callId.includes('\u0000')) {
    return { code: 'E_VCR_MALFORMED', message: `callId must be 1–${MAX_CALL_ID} characters` };
  }
  if (!isTime(v.startMs) || !isTime(v.stopMs)) return { code: 'E_VCR_MALFORMED', message: 'start and stop must be times in milliseconds' };
  if (v.stopMs < v.startMs) return { code: 'E_VCR_TIMES', message: 'the call stops before it starts' };
  if (v.stopMs - v.startMs > MAX_CALL_MS) return { code: 'E_VCR_TIMES', message: 'a call record longer than a day' };
  if (v.startMs > nowMs + FUTURE_SLACK_MS) return { code: 'E_VCR_TIMES', message: 'the call starts in the future' };
  if (v.stopMs < nowMs - retentionMs) return { code: 'E_VCR_STALE', message: 'the call ended before the retention window' };
  return undefined;
}

export class VcrStore {
  readonly #db: Database;
  readonly #now: () => number;
  readonly #retentionMs: number;
  #counts: { terminating: number; originating: number };
  /** Writes one after another: each reads which keys exist before deciding what is new. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(options: VcrStoreOptions, counts: { terminating: number; originating: number }) {
    this.#db = options.db;
    this.#now = options.now ?? Date.now;
    this.#retentionMs = options.retentionMs ?? DEFAULT_VCR_RETENTION_MS;
    this.#counts = counts;
  }

  static async open(options: VcrStoreOptions): Promise<VcrStore> {
    const stored = await options.db.get(COUNTS_KEY);
    let counts = { terminating: 0, originating: 0 };
    if (stored !== undefined) {
      try {
        const c = JSON.parse(decoder.decode(stored)) as { terminating: unknown; originating: unknown };
        if (!isTime(c.terminating) || !isTime(c.originating)) throw new Error('bad counts');
        counts = { terminating: c.terminating, originating: c.originating };
      } catch {
        throw new ImeError('E_DB_CORRUPT', 'the stored VCR counts cannot be read');
      }
    }
    return new VcrStore(options, counts);
  }

  get retentionMs(): number {
    return this.#retentionMs;
  }

  counts(): VcrCounts {
    return { ...this.#counts };
  }

  /** Stores a batch; each VCR is accepted, a duplicate of one already stored, or refused with a code. */
  add(vcrs: readonly VcrInput[], source: string): Promise<VcrAddResult> {
    return this.#serialised(async () => {
      const now = this.#now();
      const refused: VcrRefusal[] = [];
      const candidates: { key: Uint8Array; vcr: StoredVcr }[] = [];
      const seen = new Set<string>();
      let duplicates = 0;
      vcrs.forEach((v, index) => {
        const problem = vcrProblem(v, now, this.#retentionMs);
        if (problem) {
          refused.push({ index, ...problem });
          return;
        }
        const key = keyOf(v);
        const id = Buffer.from(key).toString('latin1');
        if (seen.has(id)) {
          duplicates++;
          return;
        }
        seen.add(id);
        const vcr: StoredVcr = { calling: v.calling, called: v.called, startMs: v.startMs, stopMs: v.stopMs, direction: v.direction, callId: v.callId, receivedAtMs: now, source };
        candidates.push({ key, vcr });
      });
      if (candidates.length === 0) return { accepted: vcrs.length - refused.length, duplicates, refused };
      const existing = await this.#db.getMany(candidates.map((c) => c.key));
      const next = { ...this.#counts };
      const batch = this.#db.batch();
      candidates.forEach((c, j) => {
        if (existing[j] !== undefined) {
          duplicates++;
          return;
        }
        batch.put(c.key, encoder.encode(JSON.stringify(c.vcr)));
        next[c.vcr.direction]++;
      });
      batch.put(COUNTS_KEY, encoder.encode(JSON.stringify(next)));
      await batch.write();
      this.#counts = next;
      return { accepted: vcrs.length - refused.length, duplicates, refused };
    });
  }

  /** Terminating VCRs of a called number whose call started within [fromMs, toMs]. */
  async terminatingFor(called: string, fromMs: number, toMs: number, limit = 100): Promise<StoredVcr[]> {
    const prefix = Buffer.concat([Uint8Array.of(TERMINATING), encoder.encode(called), Uint8Array.of(0)]);
    const out: StoredVcr[] = [];
    for await (const v of this.#db.values({ gte: Buffer.concat([prefix, u64(Math.max(0, fromMs))]), lt: Buffer.concat([prefix, u64(toMs + 1)]), limit })) {
      out.push(decodeVcr(v));
    }
    return out;
  }

  /**
   * Terminating VCRs of `called` starting within [fromMs, toMs] that no successful validation has
   * used yet, oldest start first, at most `limit`.
   */
  async candidatesFor(called: string, fromMs: number, toMs: number, limit: number): Promise<StoredVcr[]> {
    const prefix = Buffer.concat([Uint8Array.of(TERMINATING), encoder.encode(called), Uint8Array.of(0)]);
    const wanted = Math.max(1, Math.min(limit, 10_000));
    const out: StoredVcr[] = [];
    if (toMs < fromMs) return out;
    for await (const v of this.#db.values({ gte: Buffer.concat([prefix, u64(Math.max(0, fromMs))]), lt: Buffer.concat([prefix, u64(toMs + 1)]) })) {
      const vcr = decodeVcr(v);
      if (vcr.usedAtMs !== undefined) continue;
      out.push(vcr);
      if (out.length >= wanted) break;
    }
    return out;
  }

  /**
   * Marks a terminating VCR as used by a successful validation (default: now). A VCR already marked
   * keeps its first mark; one no longer stored (swept) is not written back.
   */
  markUsed(vcr: StoredVcr, atMs?: number): Promise<void> {
    return this.#serialised(async () => {
      if (vcr.direction !== 'terminating') throw new ImeError('E_VCR_DIRECTION', 'only a terminating VCR is used by a validation');
      const at = atMs ?? this.#now();
      if (!isTime(at)) throw new ImeError('E_VCR_TIMES', 'the time a VCR was used must be milliseconds');
      const key = terminatingKey(vcr);
      const stored = await this.#db.get(key);
      if (stored === undefined) return;
      const current = decodeVcr(stored);
      if (current.usedAtMs !== undefined) return;
      await this.#db.put(key, encoder.encode(JSON.stringify({ ...current, usedAtMs: at })));
    });
  }

  /**
   * Originating VCRs (pending validations) received at or before `receivedBeforeMs`, oldest start
   * first, at most `limit`. The delay lets the callee's call manager upload its side of the call.
   */
  async dueOriginating(limit: number, receivedBeforeMs: number, nowMs = this.#now()): Promise<StoredVcr[]> {
    const wanted = Math.max(1, Math.min(limit, 10_000));
    const out: StoredVcr[] = [];
    for await (const v of this.#db.values({ gte: Uint8Array.of(ORIGINATING), lt: Uint8Array.of(ORIGINATING + 1) })) {
      const vcr = decodeVcr(v);
      if (vcr.receivedAtMs > receivedBeforeMs) continue;
      if (vcr.retryAtMs !== undefined && vcr.retryAtMs > nowMs) continue;
      out.push(vcr);
      if (out.length >= wanted) break;
    }
    return out;
  }

  /**
   * Keeps a pending validation that could not run for another try at `retryAtMs`, counting the try;
   * the stored VCR, or undefined when it was already gone.
   */
  postponeOriginating(vcr: StoredVcr, retryAtMs: number): Promise<StoredVcr | undefined> {
    return this.#serialised(async () => {
      if (vcr.direction !== 'originating') throw new ImeError('E_VCR_DIRECTION', 'only an originating VCR is a pending validation');
      if (!isTime(retryAtMs)) throw new ImeError('E_VCR_TIMES', 'a retry time must be milliseconds');
      const key = originatingKey(vcr);
      const stored = await this.#db.get(key);
      if (stored === undefined) return undefined;
      const current = decodeVcr(stored);
      const next: StoredVcr = { ...current, retryAtMs, retries: (current.retries ?? 0) + 1 };
      await this.#db.put(key, encoder.encode(JSON.stringify(next)));
      return next;
    });
  }

  /** Deletes a pending validation's VCR and counts it out; false when it was already gone. */
  removeOriginating(vcr: StoredVcr): Promise<boolean> {
    return this.#serialised(async () => {
      if (vcr.direction !== 'originating') throw new ImeError('E_VCR_DIRECTION', 'only an originating VCR is a pending validation');
      const key = originatingKey(vcr);
      if ((await this.#db.get(key)) === undefined) return false;
      const next = { ...this.#counts, originating: Math.max(0, this.#counts.originating - 1) };
      const batch = this.#db.batch();
      batch.del(key);
      batch.put(COUNTS_KEY, encoder.encode(JSON.stringify(next)));
      await batch.write();
      this.#counts = next;
      return true;
    });
  }

  /** Newest last, at most `limit` of one direction (operators' view, `GET /v1/vcrs`). */
  async list(direction: VcrDirection, limit = 100): Promise<StoredVcr[]> {
    const prefix = direction === 'terminating' ? TERMINATING : ORIGINATING;
    const out: StoredVcr[] = [];
    for await (const v of this.#db.values({ gte: Uint8Array.of(prefix), lt: Uint8Array.of(prefix + 1), limit: Math.max(1, Math.min(limit, 10_000)), reverse: true })) {
      out.push(decodeVcr(v));
    }
    return out.reverse();
  }

  /** Deletes terminating VCRs whose call ended before the retention window; returns how many. */
  sweepExpired(): Promise<number> {
    return this.#serialised(async () => {
      const cutoff = this.#now() - this.#retentionMs;
      const batch = this.#db.batch();
      let dropped = 0;
      for await (const [k, v] of this.#db.iterator({ gte: Uint8Array.of(TERMINATING), lt: Uint8Array.of(TERMINATING + 1) })) {
        if (decodeVcr(v).stopMs < cutoff) {
          batch.del(k);
          dropped++;
        }
      }
      if (dropped === 0) {
        await batch.close();
        return 0;
      }
      const next = { ...this.#counts, terminating: Math.max(0, this.#counts.terminating - dropped) };
      batch.put(COUNTS_KEY, encoder.encode(JSON.stringify(next)));
      await batch.write();
      this.#counts = next;
      return dropped;
    });
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
