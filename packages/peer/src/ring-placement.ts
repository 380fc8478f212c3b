import { createHash } from 'node:crypto';

/**
 * Where keys live (SPEC §4): a membership-complete consistent-hash ring. Every admitted peer has
 * `virtualNodes` tokens at SHA-256("ime-vnode-v1\0" || PeerId || "\0" || i) on a 256-bit ring; a key's
 * replicas are the next N distinct live peers clockwise from the key. Every peer computes this
 * locally from the signed roster, so a read or write goes in one hop to the replicas.
 *
 * Positions and keys are 32-byte big-endian numbers, so their byte order is their ring order — the
 * same order LevelDB keeps them in, which lets a ring arc be read as one key range.
 */

export const POSITION_BYTES = 32;
export const RING_START = new Uint8Array(POSITION_BYTES);
export const RING_END = new Uint8Array(POSITION_BYTES).fill(0xff);

export interface PlacementMember {
  readonly peerId: string;
  readonly virtualNodes: number;
}

export interface Token {
  readonly position: Uint8Array;
  readonly peerId: string;
}

/**
 * An arc of the ring: the keys k with `after` < k ≤ `upTo`, wrapping past the top of the ring when
 * `after` ≥ `upTo` (the first arc). Every key of an arc has the same replicas.
 */
export interface Arc {
  readonly after: Uint8Array;
  readonly upTo: Uint8Array;
  /** Index of the token that ends the arc. */
  readonly token: number;
}

export type Liveness = (peerId: string) => boolean;
const everyoneLive: Liveness = () => true;

export function tokenPosition(peerId: string, index: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`ime-vnode-v1\0${peerId}\0${index}`).digest());
}

export function comparePositions(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

export class RingPlacement {
  readonly tokens: readonly Token[];
  readonly members: ReadonlyMap<string, PlacementMember>;

  constructor(members: readonly PlacementMember[]) {
    const tokens: Token[] = [];
    const byId = new Map<string, PlacementMember>();
    for (const m of members) {
      if (byId.has(m.peerId)) continue;
      byId.set(m.peerId, m);
      for (let i = 0; i < m.virtualNodes; i++) tokens.push({ position: tokenPosition(m.peerId, i), peerId: m.peerId });
    }
    tokens.sort((a, b) => comparePositions(a.position, b.position) || a.peerId.localeCompare(b.peerId));
    this.tokens = tokens;
    this.members = byId;
  }

  get size(): number {
    return this.members.size;
  }

  /** Index of the first token at or after `key` (clockwise successor), wrapping to 0. */
  successorToken(key: Uint8Array): number {
    let lo = 0;
    let hi = this.tokens.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comparePositions((this.tokens[mid] as Token).position, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.tokens.length ? 0 : lo;
  }

  /**
   * Distinct peers clockwise from token `start`, skipping those `live` rejects, at most `count`.
   * The first `n` of them are the replicas of every key in the arc ending at `start`.
   */
  walk(start: number, count: number, live: Liveness = everyoneLive): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    const total = this.tokens.length;
    for (let i = 0; i < total && out.length < count; i++) {
      const { peerId } = this.tokens[(start + i) % total] as Token;
      if (seen.has(peerId)) continue;
      seen.add(peerId);
      if (live(peerId)) out.push(peerId);
    }
    return out;
  }

  /** The N live replicas of a key, in preference order. */
  replicasFor(key: Uint8Array, n: number, live: Liveness = everyoneLive): string[] {
    if (this.tokens.length === 0) return [];
    return this.walk(this.successorToken(key), n, live);
  }

  /** Every live peer in preference order for a key: replicas first, then fallbacks. */
  preferenceList(key: Uint8Array, live: Liveness = everyoneLive): string[] {
    if (this.tokens.length === 0) return [];
    return this.walk(this.successorToken(key), this.members.size, live);
  }

  /** The arcs of the ring in token order; the first one wraps around the top. */
  arcs(): Arc[] {
    const t = this.tokens;
    return t.map((tok, i) => ({
      after: (t[(i - 1 + t.length) % t.length] as Token).position,
      upTo: tok.position,
      token: i,
    }));
  }

  /**
   * The peers whose neighbourhood overlaps ours: for each of `peerId`'s tokens, the distinct peers
   * among the `n` before and the `n` after it. They share replica ranges with it, so they are the
   * ones that must notice when it goes down or comes back.
   */
  neighbours(peerId: string, n: number): string[] {
    const t = this.tokens;
    const out = new Set<string>();
    t.forEach((tok, i) => {
      if (tok.peerId !== peerId) return;
      for (const p of this.walk(i, n + 1)) if (p !== peerId) out.add(p);
      let found = 0;
      const seen = new Set<string>([peerId]);
      for (let j = 1; j < t.length && found < n; j++) {
        const p = (t[(i - j + t.length) % t.length] as Token).peerId;
        if (seen.has(p)) continue;
        seen.add(p);
        out.add(p);
        found++;
      }
    });
    return [...out].sort();
  }

  /** The fraction of the key space (0–N) for which `peerId` is one of the N live replicas. */
  replicaShare(peerId: string, n: number, live: Liveness = everyoneLive): number {
    if (this.tokens.length === 0) return 0;
    let share = 0;
    for (const arc of this.arcs()) {
      if (this.walk(arc.token, n, live).includes(peerId)) share += arcFraction(arc);
    }
    return share;
  }
}

/** The share of the whole ring an arc covers, from its two end positions (first 6 bytes suffice). */
export function arcFraction(arc: Arc): number {
  const head = (p: Uint8Array) => Buffer.from(p).readUIntBE(0, 6) / 2 ** 48;
  const d = head(arc.upTo) - head(arc.after);
  return d > 0 ? d : d + 1;
}

/** True when `key` lies in the arc. */
export function arcContains(arc: Arc, key: Uint8Array): boolean {
  const afterStart = comparePositions(key, arc.after) > 0;
  const beforeEnd = comparePositions(key, arc.upTo) <= 0;
  return comparePositions(arc.after, arc.upTo) < 0 ? afterStart && beforeEnd : afterStart || beforeEnd;
}

/**
 * The arc as one or two plain key ranges (gt, lte) for LevelDB iteration: a wrapping arc is the range
 * above `after` to the top of the ring plus the range from the bottom up to `upTo`.
 */
export function arcRanges(arc: Arc): { gt?: Uint8Array; lte: Uint8Array; gte?: Uint8Array }[] {
  if (comparePositions(arc.after, arc.upTo) < 0) return [{ gt: arc.after, lte: arc.upTo }];
  return [
    { gt: arc.after, lte: RING_END },
    { gte: RING_START, lte: arc.upTo },
  ];
}
