import { randomBytes } from 'node:crypto';

/** A source of uniform numbers in [0, 1); seeded when a run must be reproducible. */
export interface RandomSource {
  next(): number;
}

/**
 * mulberry32: tiny, fast and good enough to spread clock skews; not for secrets. A seed makes a
 * whole run (skews and call ids) repeat exactly.
 */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return {
    next(): number {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    },
  };
}

export function cryptoRandom(): RandomSource {
  return { next: () => randomBytes(4).readUInt32BE(0) / 4_294_967_296 };
}

/** An integer in [-bound, +bound], every value equally likely. */
export function randomSkew(random: RandomSource, bound: number): number {
  if (bound <= 0) return 0;
  return Math.floor(random.next() * (2 * bound + 1)) - bound;
}

/** 16 hex characters drawn from the source. */
export function randomHex16(random: RandomSource): string {
  const part = (): string => Math.floor(random.next() * 4_294_967_296).toString(16).padStart(8, '0');
  return part() + part();
}
