import { percentile, round3 } from '../harness.js';

/**
 * Pure helpers of the ring benchmark: latency summaries, the OpenDHT anchor's output line, /proc
 * status, and which peers play which part. No I/O here, so bench/test can check them.
 */

export interface Latencies {
  readonly p50_ms: number;
  readonly p95_ms: number;
  readonly p99_ms: number;
  readonly n: number;
}

/** p50/p95/p99 (nearest rank, as every other suite reports them) of latency samples in ms. */
export function latencies(samples: readonly number[]): Latencies {
  return {
    p50_ms: round3(percentile(samples, 50)),
    p95_ms: round3(percentile(samples, 95)),
    p99_ms: round3(percentile(samples, 99)),
    n: samples.length,
  };
}

/**
 * The percentile as the OpenDHT anchor script computes it (`sorted(a)[min(len - 1, int(p / 100 *
 * len))]`): one rank above nearest-rank for most sizes. Comparisons with the anchor use this on both
 * sides, so neither system gets the other's rounding.
 */
export function anchorPercentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export interface OpenDhtResult {
  readonly peers: number;
  readonly ops: number;
  readonly putP50: number;
  readonly putP95: number;
  readonly getP50: number;
  readonly getP95: number;
  /** Failed puts plus failed gets (the anchor counts them together). */
  readonly fails: number;
}

const ANCHOR_LINE =
  /opendht N=(\d+) ops=(\d+) put p50=([\d.]+)ms p95=([\d.]+)ms get p50=([\d.]+)ms p95=([\d.]+)ms fails=(\d+)/;

/** The anchor's one result line, e.g. `opendht N=32 ops=200 put p50=1.0ms p95=1.3ms get p50=0.9ms p95=1.3ms fails=0`. */
export function parseOpenDhtLine(output: string): OpenDhtResult | undefined {
  const m = ANCHOR_LINE.exec(output);
  if (!m) return undefined;
  const num = (i: number) => Number(m[i]);
  return { peers: num(1), ops: num(2), putP50: num(3), putP95: num(4), getP50: num(5), getP95: num(6), fails: num(7) };
}

export interface ProcessMemory {
  /** Resident set now (VmRSS), MB of 2^20 bytes. */
  readonly rssMB: number;
  /** Peak resident set (VmHWM), MB. */
  readonly hwmMB: number;
  /** The anonymous part of the resident set (heap, malloc), MB; undefined on kernels without it. */
  readonly anonMB: number | undefined;
  /** The file-backed part (the node binary, mmap'd database files), MB. */
  readonly fileMB: number | undefined;
}

/** VmRSS, VmHWM, RssAnon and RssFile from the text of /proc/<pid>/status (kB there). */
export function parseProcStatus(text: string): ProcessMemory | undefined {
  const kB = (field: string): number | undefined => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const mb = (v: number | undefined) => (v === undefined ? undefined : round3(v / 1024));
  const rss = kB('VmRSS');
  if (rss === undefined) return undefined;
  return { rssMB: round3(rss / 1024), hwmMB: round3((kB('VmHWM') ?? rss) / 1024), anonMB: mb(kB('RssAnon')), fileMB: mb(kB('RssFile')) };
}

/** CPU time (user + system, in clock ticks) from the text of /proc/<pid>/stat. */
export function parseProcStatTicks(text: string): number | undefined {
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

/**
 * Which peers publish and which read, out of `peers`: `count` of each, spread around the list and
 * disjoint, so every fetch reads numbers another peer published.
 */
export function roles(peers: number, count: number): { publishers: number[]; readers: number[] } {
  if (peers < 2) throw new RangeError('a ring benchmark needs at least two peers');
  const k = Math.max(1, Math.min(count, Math.floor(peers / 2)));
  const step = peers / (2 * k);
  const publishers: number[] = [];
  const readers: number[] = [];
  for (let i = 0; i < k; i++) {
    publishers.push(Math.floor(2 * i * step));
    readers.push(Math.floor((2 * i + 1) * step));
  }
  return { publishers, readers };
}

/** `items` dealt round-robin into `ways` lists (item i to list i mod ways). */
export function deal<T>(items: readonly T[], ways: number): T[][] {
  const out: T[][] = Array.from({ length: Math.max(1, ways) }, () => []);
  items.forEach((item, i) => out[i % out.length]?.push(item));
  return out;
}

/** `count` distinct E.164 numbers `+1<area><block><0000…>` for one benchmark step. */
export function numbers(area: string, block: number, count: number): string[] {
  if (!/^\d{3}$/.test(area) || block < 0 || block > 999 || count > 10_000) throw new RangeError('numbers: area is 3 digits, block 0–999, count ≤ 10 000');
  return Array.from({ length: count }, (_, i) => `+1${area}${String(block).padStart(3, '0')}${String(i).padStart(4, '0')}`);
}

/** Patterns of three wildcards (1 000 DIDs each): `+1<area><i, 4 digits>XXX`, i from `first`. */
export function patterns(area: string, count: number, first = 0): string[] {
  if (!/^\d{3}$/.test(area) || first + count > 10_000) throw new RangeError('patterns: area is 3 digits, at most 10 000 patterns');
  return Array.from({ length: count }, (_, i) => `+1${area}${String(first + i).padStart(4, '0')}XXX`);
}

/** The numbers a pattern of `patterns()` stands for. */
export function expandPattern(pattern: string): string[] {
  const stem = pattern.replace(/X+$/, '');
  const width = pattern.length - stem.length;
  return Array.from({ length: 10 ** width }, (_, i) => `${stem}${String(i).padStart(width, '0')}`);
}

/** A deterministic sample of `count` items (a fixed-seed shuffle), so runs are comparable. */
export function sample<T>(items: readonly T[], count: number, seed = 1): T[] {
  const a = [...items];
  let s = seed >>> 0 || 1;
  const next = () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  const n = Math.min(count, a.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(next() * (a.length - i));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a.slice(0, n);
}

/** The code of a failed operation, for counting failures by kind. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

/** How many times each code occurs. */
export function histogram(codes: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of codes) out[c] = (out[c] ?? 0) + 1;
  return out;
}
