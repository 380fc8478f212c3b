import { type DidRecord, ImeError, isImeError, remoteErrorCode, verifyDidRecord } from '@ime/core';
import type { ime } from '@ime/wire';
import { POSITION_BYTES } from './ring-placement.js';
import type { RecordStoreApi, RingLog, RingTransport, RingView, StoreResult } from './ring-types.js';
import { sameRecord } from './record-store.js';

/**
 * The coordinator of reads and writes (docs/RING.md "Reads and writes"): the publishing peer writes
 * its records to their N replicas itself, and a reader asks the replicas itself — one hop, in
 * parallel, over kept streams. When this peer is one of the replicas it uses its own store directly.
 */

/** Records per store/withdraw/handoff request (the service's limit). */
export const MAX_BATCH = 1000;
/** Batches in flight per replica: enough to hide a round trip, few enough not to queue at the remote. */
const DEFAULT_PIPELINE = 4;
/** Verified records remembered across reads (by content), so a hot key costs no Ed25519 verification. */
const VERIFIED_CACHE_MAX = 16384;

/**
 * A read asks R replicas first; when they have not agreed after HEDGE_FACTOR × the usual time of a
 * read (kept between the two bounds), the other replicas are asked too, so one slow replica costs a
 * little latency rather than a timeout.
 */
const HEDGE_FACTOR = 4;
const HEDGE_MIN_MS = 20;
const HEDGE_MAX_MS = 250;

/** RPC failures that mean the peer did not answer (as opposed to answering with a refusal). */
const UNREACHABLE_CODES = new Set(['E_RPC_UNREACHABLE', 'E_RPC_TIMEOUT', 'E_RPC_CLOSED']);


export interface RingCoordinatorOptions {
  readonly view: RingView;
  readonly transport: RingTransport;
  readonly localStore: RecordStoreApi;
  /** This peer's Ed25519 public key: its own records skip the signature check in its own store. */
  readonly localPublisherKey?: Uint8Array;
  readonly log?: RingLog;
  /** Clock for dropping expired records from answers (default Date.now). */
  readonly now?: () => number;
  /** Per-request timeout passed to the transport (default: the transport's). */
  readonly requestTimeoutMs?: number;
  /** Batches in flight per replica (default 4). */
  readonly pipeline?: number;
  /**
   * Whether a publisher is admitted now. Records of one that is not (banned, taken off the roster,
   * certificate expired) are left out of every answer, this peer's own store included: replicas drop
   * them at their next sweep, and until then no reader sees them as claims.
   */
  readonly admitsPublisher?: (publisherKey: Uint8Array) => boolean;
}

/** What became of one record of a store or withdraw. */
export interface WriteOutcome {
  /** W replicas (or fallbacks) accepted it. */
  readonly accepted: boolean;
  readonly acks: number;
  /** The peers that accepted it. */
  readonly replicas: string[];
  /** When not accepted: a definitive refusal's code (E_OVER_QUOTA, E_STALE_SEQUENCE, E_DID_RECORD_…) or E_RING_WRITE_QUORUM. */
  readonly code?: string;
  readonly message?: string;
}

export interface FetchOutcome {
  /** Verified, unexpired, the highest sequence per publisher; tombstones included. */
  readonly records: DidRecord[];
  /** Some publisher holds a live (non-tombstone) record. */
  readonly found: boolean;
  readonly replicasAsked: string[];
  /** Replicas (or fallbacks) that answered before the result was decided. */
  readonly answered: number;
  /** R replicas gave the same answer (same publishers and sequences). */
  readonly agreed: boolean;
}

interface WriteState {
  acks: number;
  readonly replicas: string[];
  readonly tried: Set<string>;
  refusal?: { code: string; message: string };
  failure?: { code: string; message: string };
}

type WriteKind = 'store' | 'withdraw';

interface Answer {
  readonly peer: string;
  readonly records: readonly DidRecord[];
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function errorInfo(err: unknown): { code: string; message: string } {
  if (isImeError(err)) return { code: err.code, message: err.message };
  return { code: 'E_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

/** What replicas must share to agree: the set of (publisher, sequence). */
function agreementOf(records: readonly DidRecord[]): string {
  if (records.length === 0) return '';
  if (records.length === 1) {
    const r = records[0] as DidRecord;
    return `${hex(r.publisherKey)}:${r.sequence}`;
  }
  return records
    .map((r) => `${hex(r.publisherKey)}:${r.sequence}`)
    .sort()
    .join(',');
}

/** The highest sequence per publisher over several answers (the first seen wins a tie). */
function mergeAnswers(answers: readonly Answer[]): DidRecord[] {
  if (answers.length === 1) return [...(answers[0] as Answer).records];
  const best = new Map<string, DidRecord>();
  for (const a of answers) {
    for (const r of a.records) {
      const id = hex(r.publisherKey);
      const held = best.get(id);
      if (!held || held.sequence < r.sequence) best.set(id, r);
    }
  }
  return [...best.values()].sort((x, y) => Buffer.compare(x.publisherKey, y.publisherKey));
}

/** Records of `result` the answer lacks or holds an older sequence of: what read repair sends it. */
function missingFrom(answer: readonly DidRecord[], result: readonly DidRecord[]): DidRecord[] {
  return result.filter((r) => !answer.some((a) => bytesEqual(a.publisherKey, r.publisherKey) && a.sequence >= r.sequence));
}

export class RingCoordinator {
  readonly #view: RingView;
  readonly #transport: RingTransport;
  readonly #store: RecordStoreApi;
  readonly #admitsPublisher: ((publisherKey: Uint8Array) => boolean) | undefined;
  readonly #localPublisherKey: Uint8Array | undefined;
  readonly #log: RingLog;
  readonly #now: () => number;
  readonly #requestOptions: { timeoutMs?: number };
  readonly #pipeline: number;
  /** Verified records by signature (hex); a hit counts only when the whole record is the same. */
  readonly #verified = new Map<string, DidRecord>();
  /** Moving average of the time reads take to reach agreement (ms), for the hedge. */
  #readMsAverage: number | undefined;
  /** Background work (read repair), so tests and shutdown can wait for it. */
  readonly #background = new Set<Promise<unknown>>();

  constructor(options: RingCoordinatorOptions) {
    this.#view = options.view;
    this.#transport = options.transport;
    this.#store = options.localStore;
    this.#localPublisherKey = options.localPublisherKey;
    this.#log = options.log ?? (() => undefined);
    this.#now = options.now ?? Date.now;
    this.#requestOptions = options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs };
    this.#pipeline = Math.max(1, options.pipeline ?? DEFAULT_PIPELINE);
    this.#admitsPublisher = options.admitsPublisher;
  }

  /** Stores records (not tombstones) on W of their replicas each. */
  store(records: readonly DidRecord[]): Promise<WriteOutcome[]> {
    return this.#write('store', records);
  }

  /** Withdraws with signed tombstones, written like records. */
  withdraw(tombstones: readonly DidRecord[]): Promise<WriteOutcome[]> {
    return this.#write('withdraw', tombstones);
  }

  /** Resolves when the background work started so far (read repair) has finished. */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  /**
   * Reads a key: all live replicas at once, answering as soon as R agree; otherwise the merge of every
   * answer; if no replica answers, the next peers of the preference list. Throws E_RING_UNAVAILABLE
   * when nobody answers.
   */
  /**
   * A quorum no larger than the membership: a ring of one or two peers cannot hold more copies than it
   * has members, so W (or R) is capped there, as N is. Peers that are down still count as members:
   * a ring of three with two down cannot reach W = 2, and must say so.
   */
  #quorum(configured: number): number {
    return Math.max(1, Math.min(configured, this.#view.placement.size));
  }

  async fetch(key: Uint8Array): Promise<FetchOutcome> {
    if (!(key instanceof Uint8Array) || key.length !== POSITION_BYTES) {
      throw new ImeError('E_RING_REQUEST', `a record key must be ${POSITION_BYTES} bytes`);
    }
    const replicas = this.#view.replicasFor(key);
    const readQuorum = this.#quorum(this.#view.parameters.readQuorum);
    const asked = [...replicas];
    let first: Omit<FetchOutcome, 'replicasAsked'> | undefined;
    if (replicas.length > 0) {
      const outcome = await this.#ask(key, replicas, readQuorum, true);
      // Every replica answered: their word is final, found or not.
      if (outcome.found || outcome.answered === replicas.length) return { ...outcome, replicasAsked: asked };
      if (outcome.answered > 0) first = outcome;
    }
    // Some replica did not answer and none that did holds the key: the next peers of the preference
    // list may (hinted writes, or copies not yet handed off to a replica that just took over).
    const group = Math.max(1, this.#view.parameters.replicationFactor);
    const fallbacks = this.#view.preferenceList(key).filter((p) => !replicas.includes(p));
    for (let i = 0; i < fallbacks.length; i += group) {
      const peers = fallbacks.slice(i, i + group);
      asked.push(...peers);
      const outcome = await this.#ask(key, peers, readQuorum, false);
      if (outcome.found || (first === undefined && outcome.answered > 0)) return { ...outcome, replicasAsked: asked };
      // A replica answered "not here": a miss costs one more group of peers, not a walk of the ring.
      if (first !== undefined) break;
    }
    if (first) return { ...first, replicasAsked: asked };
    throw new ImeError('E_RING_UNAVAILABLE', `no replica of the key answered (asked ${asked.length})`, { asked: asked.length });
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  async #write(kind: WriteKind, records: readonly DidRecord[]): Promise<WriteOutcome[]> {
    const writeQuorum = this.#quorum(this.#view.parameters.writeQuorum);
    const states: WriteState[] = records.map(() => ({ acks: 0, replicas: [], tried: new Set<string>() }));
    let assignments = new Map<string, number[]>();
    const assign = (peer: string, i: number) => {
      let list = assignments.get(peer);
      if (!list) assignments.set(peer, (list = []));
      list.push(i);
    };

    records.forEach((r, i) => {
      const state = states[i] as WriteState;
      if (r === null || typeof r !== 'object' || !(r.key instanceof Uint8Array) || r.key.length !== POSITION_BYTES) {
        state.refusal = { code: 'E_DID_RECORD_MALFORMED', message: `DID record: key must be ${POSITION_BYTES} bytes` };
        return;
      }
      if (kind === 'store' && r.tombstone) {
        state.refusal = { code: 'E_RING_REQUEST', message: 'a tombstone must be written with withdraw' };
        return;
      }
      if (kind === 'withdraw' && !r.tombstone) {
        state.refusal = { code: 'E_RING_REQUEST', message: 'withdraw takes tombstones only' };
        return;
      }
      for (const peer of this.#view.replicasFor(r.key)) {
        state.tried.add(peer);
        assign(peer, i);
      }
    });

    // Rounds: the replicas first; then, for records still short of W acknowledgements without a
    // definitive refusal, the next untried live peers of their preference lists.
    while (assignments.size > 0) {
      const round = assignments;
      await Promise.all([...round].map(([peer, indices]) => this.#writeTo(peer, kind, records, indices, states)));
      assignments = new Map();
      records.forEach((r, i) => {
        const state = states[i] as WriteState;
        if (state.refusal || state.acks >= writeQuorum) return;
        let need = writeQuorum - state.acks;
        for (const peer of this.#view.preferenceList(r.key)) {
          if (need === 0) break;
          if (state.tried.has(peer)) continue;
          state.tried.add(peer);
          assign(peer, i);
          need--;
        }
      });
    }

    return states.map((s): WriteOutcome => {
      if (s.acks >= writeQuorum) return { accepted: true, acks: s.acks, replicas: s.replicas };
      if (s.refusal) return { accepted: false, acks: s.acks, replicas: s.replicas, code: s.refusal.code, message: s.refusal.message };
      const why = s.failure ? `: ${s.failure.code} ${s.failure.message}` : s.tried.size === 0 ? ': no live replica' : '';
      return {
        accepted: false,
        acks: s.acks,
        replicas: s.replicas,
        code: 'E_RING_WRITE_QUORUM',
        message: `${s.acks} of the ${writeQuorum} acknowledgements needed${why}`,
      };
    });
  }

  /** Sends one replica its records in batches, a few in flight at once. */
  async #writeTo(peer: string, kind: WriteKind, records: readonly DidRecord[], indices: readonly number[], states: WriteState[]): Promise<void> {
    const batches: number[][] = [];
    for (let i = 0; i < indices.length; i += MAX_BATCH) batches.push(indices.slice(i, i + MAX_BATCH));
    let next = 0;
    let down: { code: string; message: string } | undefined;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++] as number[];
        if (down) {
          // The peer already failed to answer: do not wait for it again in this write.
          for (const i of batch) (states[i] as WriteState).failure = down;
          continue;
        }
        const list = batch.map((i) => records[i] as DidRecord);
        let results: readonly (StoreResult | undefined)[];
        try {
          results = await this.#putAt(peer, kind, list);
        } catch (err) {
          const info = errorInfo(err);
          for (const i of batch) (states[i] as WriteState).failure = info;
          if (this.#failed(peer, err)) down = info;
          continue;
        }
        batch.forEach((i, j) => {
          const state = states[i] as WriteState;
          const res = results[j];
          if (!res) state.failure = { code: 'E_RING_RESPONSE', message: `${peer} did not answer for every record` };
          else if (res.accepted) {
            state.acks++;
            state.replicas.push(peer);
          } else if (!state.refusal) {
            // A refusal about the record itself (quota, sequence, signature, expiry) is the same anywhere.
            state.refusal = { code: res.code ?? 'E_RING_REFUSED', message: res.message ?? '' };
          }
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#pipeline, batches.length) }, worker));
  }

  /** One batch at one peer: the local store directly, others over the transport. Results by position. */
  async #putAt(peer: string, kind: WriteKind, list: DidRecord[]): Promise<(StoreResult | undefined)[]> {
    if (peer === this.#view.self) {
      return this.#store.put(list, this.#localPublisherKey ? { authenticatedPublisher: this.#localPublisherKey } : {});
    }
    const request: ime.v1.IRingRequest = kind === 'store' ? { store: { records: list } } : { withdraw: { tombstones: list } };
    const response = await this.#transport.request(peer, request, this.#requestOptions);
    const body = kind === 'store' ? response.store : response.withdraw;
    const out = new Array<StoreResult | undefined>(list.length);
    for (const r of body?.results ?? []) {
      if (r.index >= list.length) continue;
      out[r.index] = r.accepted ? { accepted: true } : { accepted: false, code: remoteErrorCode(r.error?.code, 'E_RING_RESPONSE', 'E_RING_REFUSED'), message: r.error?.message ?? '' };
    }
    return out;
  }

  /** Reports a peer that did not answer; true when it was that kind of failure. */
  #failed(peer: string, err: unknown): boolean {
    const info = errorInfo(err);
    if (peer === this.#view.self) {
      // Our own store failed (the database): nothing for the view to learn.
      this.#log('warn', 'local record store failed', info);
      return false;
    }
    if (isImeError(err) && !UNREACHABLE_CODES.has(err.code)) {
      this.#log('warn', 'ring request refused', { peer, code: info.code, message: info.message });
      return false;
    }
    if (info.code === 'E_RPC_TIMEOUT') this.#view.reportTimeout(peer, `${info.code}: ${info.message}`);
    else this.#view.reportUnreachable(peer, `${info.code}: ${info.message}`);
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  /**
   * Asks `peers` for the key: the first R of them (this peer first when it is one: its own store costs
   * no round trip), and the others only when those disagree, one fails, or they are slower than the
   * hedge — so an ordinary read costs R requests, not N. Resolves when R answers agree (with the merge
   * of the answers so far, so a newer record one replica already returned is not lost) or, failing
   * that, when every peer asked has answered or failed. The rest finishes in the background and, when
   * `repair`, fixes stale replicas among those asked (anti-entropy repairs the others).
   */
  #ask(key: Uint8Array, peers: readonly string[], readQuorum: number, repair: boolean): Promise<Omit<FetchOutcome, 'replicasAsked'>> {
    if (peers.length === 0) return Promise.resolve({ records: [], found: false, answered: 0, agreed: false });
    const ordered = peers.includes(this.#view.self) ? [this.#view.self, ...peers.filter((p) => p !== this.#view.self)] : peers;
    const startedMs = performance.now();
    return new Promise((resolve) => {
      const answers: Answer[] = [];
      const tally = new Map<string, number>();
      let asked = 0;
      let pending = 0;
      let decided = false;
      let hedge: ReturnType<typeof setTimeout> | undefined;
      const decide = (agreed: boolean) => {
        decided = true;
        if (hedge) clearTimeout(hedge);
        if (agreed) this.#noteReadMs(performance.now() - startedMs);
        const records = mergeAnswers(answers);
        resolve({ records, found: records.some((r) => !r.tombstone), answered: answers.length, agreed });
      };
      let finished!: () => void;
      const all = new Promise<void>((r) => (finished = r));
      const askMore = (count: number) => {
        const next = ordered.slice(asked, asked + count);
        asked += next.length;
        pending += next.length;
        for (const peer of next) {
          this.#readFrom(peer, key)
            .then(
              (records) => {
                answers.push({ peer, records });
                const agreement = agreementOf(records);
                const n = (tally.get(agreement) ?? 0) + 1;
                tally.set(agreement, n);
                if (!decided && n >= readQuorum) decide(true);
              },
              (err: unknown) => {
                this.#failed(peer, err);
                // One fewer answer to count on: the next peer takes its place at once.
                if (!decided && asked < ordered.length) askMore(1);
              },
            )
            .finally(() => {
              pending--;
              // Those asked disagree or one failed: ask the rest now.
              if (!decided && pending === 0 && asked < ordered.length) askMore(ordered.length - asked);
              if (pending > 0 || (asked < ordered.length && !decided)) return;
              if (!decided) {
                if (answers.length === 0) resolve({ records: [], found: false, answered: 0, agreed: false });
                else decide(false);
              }
              finished();
            });
        }
      };
      askMore(readQuorum);
      if (asked < ordered.length) {
        hedge = setTimeout(() => {
          hedge = undefined;
          if (!decided && asked < ordered.length) askMore(ordered.length - asked);
        }, this.#hedgeMs());
        hedge.unref?.();
      }
      if (repair) this.#inBackground(all.then(() => this.#repair(key, answers)));
    });
  }

  /** Reads that reached agreement: a moving average of their time sets when the rest are asked too. */
  #noteReadMs(ms: number): void {
    this.#readMsAverage = this.#readMsAverage === undefined ? ms : this.#readMsAverage * 0.9 + ms * 0.1;
  }

  #hedgeMs(): number {
    const average = this.#readMsAverage ?? HEDGE_MAX_MS;
    return Math.min(HEDGE_MAX_MS, Math.max(HEDGE_MIN_MS, HEDGE_FACTOR * average));
  }

  /** One peer's answer for the key: verified, of this key, unexpired, one record per publisher. */
  async #readFrom(peer: string, key: Uint8Array): Promise<DidRecord[]> {
    if (peer === this.#view.self) {
      // Our own store verified every record it holds, or had it from its authenticated publisher: the
      // same bytes from another replica need no verification either.
      const records = (await this.#store.get(key)).filter((r) => this.#admits(r));
      for (const r of records) this.#remember(r);
      return records;
    }
    const response = await this.#transport.request(peer, { fetch: { keys: [key] } }, this.#requestOptions);
    const entry = response.fetch?.entries.find((e) => bytesEqual(e.key, key));
    if (!entry || entry.records.length === 0) return [];
    const now = this.#now();
    const out: DidRecord[] = [];
    for (const r of entry.records) {
      if (!(r.key instanceof Uint8Array) || !bytesEqual(r.key, key) || r.expiresAtMs <= now) continue;
      if (!this.#admits(r) || !this.#valid(r, peer)) continue;
      const at = out.findIndex((o) => bytesEqual(o.publisherKey, r.publisherKey));
      if (at < 0) out.push(r);
      else if ((out[at] as DidRecord).sequence < r.sequence) out[at] = r;
    }
    return out;
  }

  #admits(r: DidRecord): boolean {
    return this.#admitsPublisher === undefined || (r.publisherKey instanceof Uint8Array && this.#admitsPublisher(r.publisherKey));
  }

  /** Verifies a record once: a record byte-for-byte equal to one verified before is valid. */
  #valid(r: DidRecord, peer: string): boolean {
    if (!(r.signature instanceof Uint8Array)) return false;
    const id = hex(r.signature);
    const known = this.#verified.get(id);
    if (known && sameRecord(known, r)) return true;
    try {
      verifyDidRecord(r);
    } catch (err) {
      this.#log('warn', 'a replica returned a record that does not verify', { peer, code: errorInfo(err).code });
      return false;
    }
    this.#remember(r, id);
    return true;
  }

  #remember(r: DidRecord, id = hex(r.signature)): void {
    if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
    this.#verified.set(id, r);
  }

  /** Read repair: every replica that answered with less than the merge of all answers gets the difference. */
  async #repair(key: Uint8Array, answers: readonly Answer[]): Promise<void> {
    if (answers.length === 0) return;
    const result = mergeAnswers(answers);
    if (result.length === 0) return;
    await Promise.all(
      answers.map(async ({ peer, records }) => {
        const missing = missingFrom(records, result);
        if (missing.length === 0) return;
        this.#log('debug', 'read repair', { peer, key: hex(key), records: missing.length });
        try {
          if (peer === this.#view.self) await this.#store.put(missing);
          else await this.#transport.request(peer, { handoff: { records: missing, done: true } }, this.#requestOptions);
        } catch (err) {
          this.#failed(peer, err);
        }
      }),
    );
  }

  #inBackground(work: Promise<unknown>): void {
    const p = work.catch((err: unknown) => this.#log('warn', 'background ring work failed', errorInfo(err)));
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p));
  }
}
