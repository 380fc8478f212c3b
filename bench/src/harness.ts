import { cpus, totalmem } from 'node:os';

/**
 * The benchmark harness: timing loops, result rows, targets, and their rendering as a table and JSON
 * (INTERFACES.md "Benchmarks"). Suites measure; this module only counts and formats.
 */

export interface Row {
  readonly bench: string;
  /** "ours" for the product, anything else for the baseline measured in the same run. */
  readonly system: string;
  readonly op: string;
  readonly ops_per_sec?: number;
  readonly ms?: number;
  readonly p50_ms?: number;
  readonly p95_ms?: number;
  readonly p99_ms?: number;
  readonly n: number;
  readonly [extra: string]: unknown;
}

export interface Target {
  readonly name: string;
  readonly goal: string;
  readonly value: number;
  readonly met: boolean;
}

export interface SuiteResult {
  readonly rows: Row[];
  readonly targets: Target[];
}

export interface SuiteOptions {
  readonly quick: boolean;
  /** Progress lines for people; benchmarks can run for a while. */
  readonly progress: (line: string) => void;
}

export interface Suite {
  readonly name: string;
  readonly description: string;
  run(options: SuiteOptions): Promise<SuiteResult> | SuiteResult;
}

export interface RateOptions {
  /** How long each round runs. */
  readonly roundMs: number;
  readonly rounds: number;
  /** Calls per timing check, so the clock is not read on every call. */
  readonly batch?: number;
}

/**
 * Rates of several functions measured in interleaved rounds (A B A B …), so that machine noise hits
 * them alike, plus the median per-round ratio of each to the first (the baseline). Each is warmed up
 * first, and the median round is reported so one GC pause or scheduler hiccup does not decide it.
 */
export function measureRates(
  fns: readonly (() => unknown)[],
  options: RateOptions,
): { opsPerSec: number; n: number; ratioToFirst: number }[] {
  const batch = options.batch ?? 64;
  const round = (fn: () => unknown, ms: number): { rate: number; ops: number } => {
    let ops = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < ms) {
      for (let i = 0; i < batch; i++) fn();
      ops += batch;
      elapsed = performance.now() - start;
    }
    return { rate: (ops / elapsed) * 1000, ops };
  };
  for (const fn of fns) round(fn, Math.min(200, options.roundMs));
  const rates: number[][] = fns.map(() => []);
  const ratios: number[][] = fns.map(() => []);
  const counts = fns.map(() => 0);
  for (let r = 0; r < options.rounds; r++) {
    const thisRound = fns.map((fn, i) => {
      const { rate, ops } = round(fn, options.roundMs);
      counts[i] = (counts[i] ?? 0) + ops;
      rates[i]?.push(rate);
      return rate;
    });
    thisRound.forEach((rate, i) => ratios[i]?.push(rate / (thisRound[0] as number)));
  }
  return fns.map((_, i) => ({
    opsPerSec: median(rates[i] ?? []),
    n: counts[i] ?? 0,
    ratioToFirst: median(ratios[i] ?? []),
  }));
}

/** Operations per second of one function: the median of its timed rounds after a warm-up round. */
export function measureRate(fn: () => unknown, options: RateOptions): { opsPerSec: number; n: number } {
  const [only] = measureRates([fn], options);
  return { opsPerSec: only?.opsPerSec ?? Number.NaN, n: only?.n ?? 0 };
}

/** Milliseconds `fn` takes: the median of `runs` runs after one warm-up run. */
export function measureDuration(fn: () => unknown, runs: number): { ms: number; n: number } {
  fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  return { ms: median(times), n: runs };
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function target(name: string, goal: string, value: number, met: boolean): Target {
  return { name, goal, value: round3(value), met };
}

export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

export function machine(): Record<string, unknown> {
  const cpu = cpus();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  };
}

function fmt(v: unknown): string {
  if (typeof v !== 'number') return v === undefined ? '' : String(v);
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  return String(round3(v));
}

/** A plain-text table of rows and targets, for the terminal. */
export function renderTable(rows: readonly Row[], targets: readonly Target[]): string {
  const header = ['bench', 'system', 'op', 'ops/s', 'ms', 'p50 ms', 'p95 ms', 'p99 ms', 'n'];
  const body = rows.map((r) => [r.bench, r.system, r.op, fmt(r.ops_per_sec), fmt(r.ms), fmt(r.p50_ms), fmt(r.p95_ms), fmt(r.p99_ms), fmt(r.n)]);
  const lines = [...grid([header, ...body])];
  if (targets.length > 0) {
    lines.push('');
    lines.push(...grid([['target', 'goal', 'value', 'met'], ...targets.map((t) => [t.name, t.goal, fmt(t.value), t.met ? 'yes' : 'NO'])]));
  }
  return lines.join('\n');
}

/** The same as markdown, for bench/README.md and results/latest.md. */
export function renderMarkdown(rows: readonly Row[], targets: readonly Target[], meta: Record<string, unknown>): string {
  const md = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    `Measured ${String(meta.date)} on ${String((meta.machine as Record<string, unknown>).cpu)} ` +
      `(${String((meta.machine as Record<string, unknown>).cores)} cores), Node ${String((meta.machine as Record<string, unknown>).node)}` +
      `${meta.quick ? ', quick sizes' : ''}.`,
    '',
    md(['bench', 'system', 'op', 'ops/s', 'ms', 'p50 ms', 'p95 ms', 'p99 ms', 'n']),
    md(Array(9).fill('---')),
    ...rows.map((r) => md([r.bench, r.system, r.op, fmt(r.ops_per_sec), fmt(r.ms), fmt(r.p50_ms), fmt(r.p95_ms), fmt(r.p99_ms), fmt(r.n)])),
    '',
    md(['target', 'goal', 'value', 'met']),
    md(['---', '---', '---', '---']),
    ...targets.map((t) => md([t.name, t.goal, fmt(t.value), t.met ? 'yes' : '**no**'])),
    '',
  ].join('\n');
}

function grid(table: readonly (readonly string[])[]): string[] {
  const widths = (table[0] ?? []).map((_, c) => Math.max(...table.map((r) => (r[c] ?? '').length)));
  return table.map((r) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd());
}
