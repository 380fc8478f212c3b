import type { RingParameters as AdmissionRingParameters } from '@ime/admission';
import type { DidRecord } from '@ime/core';
import type { ime } from '@ime/wire';
import type { RingPlacement } from './ring-placement.js';

/**
 * The contracts between the parts of a ring peer. Each part is built and tested on its own against
 * these; peer-node.ts wires the real ones together.
 */

export { RING_PROTOCOL, WIRE_VERSION as RING_WIRE_VERSION } from '@ime/admission';

/** Ring parameters from the signed configuration (SPEC §3), as the data plane needs them. */
export type RingParameters = Omit<AdmissionRingParameters, 'pollIntervalSec'>;

/**
 * The ring as this peer sees it: membership from the signed roster (admitted, not banned, certificate
 * valid) and liveness from its own probes. Placement is over members; replica sets skip peers seen down.
 */
export interface RingView {
  readonly self: string;
  readonly parameters: RingParameters;
  /** Placement over every member, live or not; changes with the roster. */
  readonly placement: RingPlacement;
  /** Increases on every membership or liveness change. */
  readonly version: number;
  isMember(peerId: string): boolean;
  isLive(peerId: string): boolean;
  /** The N live replicas of a key, in preference order. */
  replicasFor(key: Uint8Array): string[];
  /** Every live member in preference order for a key (replicas first, then fallbacks). */
  preferenceList(key: Uint8Array): string[];
  /** What the data plane tells the view when a peer could not be reached (it marks it down). */
  reportUnreachable(peerId: string, reason: string): void;
  /**
   * A request to the peer timed out: on a loaded machine that is a slow peer more often than a dead
   * one, so it counts as a missed probe (down after the configured misses) rather than marking it down.
   */
  reportTimeout(peerId: string, reason: string): void;
  /** Called on every change, with the view before and after (placement and liveness). */
  onChange(listener: (change: RingViewChange) => void): () => void;
  /** The view as it is now, immutable: handoff compares snapshots before and after a change. */
  snapshot(): ViewSnapshot;
}

/** Where the ring's parts write their log lines (the peer maps it onto its module logger). */
export type RingLog = (level: 'debug' | 'info' | 'warn', message: string, details?: Readonly<Record<string, unknown>>) => void;

export interface RingViewChange {
  readonly before: ViewSnapshot;
  readonly after: ViewSnapshot;
}

/** An immutable picture of the view, so handoff can compare replica sets before and after. */
export interface ViewSnapshot {
  readonly version: number;
  readonly placement: RingPlacement;
  readonly live: ReadonlySet<string>;
  readonly replicationFactor: number;
}

/** Sends ring requests to other peers; the real one is an RpcClient on RING_PROTOCOL. */
export interface RingTransport {
  request(peerId: string, request: ime.v1.IRingRequest, options?: { timeoutMs?: number }): Promise<ime.v1.RingResponse>;
}

/** Outcome of one record in a store, withdraw or handoff batch, at one replica. */
export interface StoreResult {
  readonly accepted: boolean;
  /** Set when refused: E_OVER_QUOTA, E_STALE_SEQUENCE, E_DID_RECORD_SIGNATURE, E_RECORD_EXPIRED, … */
  readonly code?: string;
  readonly message?: string;
}

/**
 * A key range: gt/gte lower bound, lte upper bound (32-byte positions). When the lower bound is above
 * `lte` the range wraps past the top of the ring, so `{ gt: arc.after, lte: arc.upTo }` is exactly an
 * arc. (On the wire, ranges are [start, end) and start ≥ end wraps: see ring-service.ts.)
 */
export interface KeyRange {
  readonly gt?: Uint8Array;
  readonly gte?: Uint8Array;
  readonly lte: Uint8Array;
}

export interface KeyRecords {
  readonly key: Uint8Array;
  readonly records: readonly DidRecord[];
}

/**
 * The peer's LevelDB store of DID records (all publishers' records for a key under that key).
 * It never sees a number: keys are salted hashes and claims are sealed.
 */
export interface RecordStoreApi {
  /**
   * Stores records, each checked on its own: shape, expiry (expired or beyond TTL refused), signature
   * (skipped for records whose publisher key equals `authenticatedPublisher`: the Noise channel already
   * proves the sender is the publisher), sequence (only a higher sequence replaces a publisher's
   * record; the same record again is accepted), and the publisher's quota at this replica.
   */
  put(records: readonly DidRecord[], options?: { authenticatedPublisher?: Uint8Array }): Promise<StoreResult[]>;
  /** The unexpired records of a key (every publisher's), or [] when none. */
  get(key: Uint8Array): Promise<DidRecord[]>;
  /** Records in key order within a range, a page at a time. */
  scan(range: KeyRange, options?: { after?: Uint8Array; limit?: number }): Promise<{ entries: KeyRecords[]; more: boolean }>;
  /** Per-bucket digests of a range split into `buckets` equal parts (anti-entropy). */
  digest(range: KeyRange, buckets: number): Promise<{ digests: Uint8Array[]; counts: number[] }>;
  /** Deletes these records where the store still holds exactly them (same key, publisher, sequence); returns how many. */
  discard(records: readonly DidRecord[]): Promise<number>;
  /** (key, publisher) slots held that are not tombstones (the StoredData counter); expired ones count until swept. */
  readonly recordCount: number;
}
