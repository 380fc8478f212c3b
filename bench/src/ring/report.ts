import type { Row } from '../harness.js';

/**
 * The ring rows with what the shared table has no column for (peer count, cold figures, failures,
 * RSS), as markdown: printed at the end of `pnpm bench ring` and pasted into bench/README.md.
 */

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : String(Math.round(v * 1000) / 1000);
  if (typeof v === 'object') return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}: ${String(x)}`).join(', ');
  return String(v);
}

function failures(r: Row): string {
  const parts: string[] = [];
  const add = (label: string, v: unknown) => {
    if (typeof v === 'number' && v > 0) parts.push(`${v} ${label}`);
  };
  add('errors', r.errors);
  add('not found', r.not_found);
  add('failed', r.failed);
  add('put/get failures', r.failures_put_and_get);
  add('cold errors', r.cold_errors);
  add('cold not found', r.cold_not_found);
  if (r.error_codes) parts.push(cell(r.error_codes));
  if (r.failure_codes) parts.push(cell(r.failure_codes));
  add('members started again', r.start_retries);
  if (typeof r.skipped === 'string') parts.push(`skipped: ${r.skipped}`);
  if (typeof r.error === 'string') parts.push(`FAILED: ${r.error}`);
  return parts.length === 0 ? '0' : parts.join('; ');
}

function idle(r: Row): string {
  return typeof r.idle_ring_cpu_cores === 'number' ? `; idle ring: ${cell(r.idle_ring_cpu_cores)} cores busy` : '';
}

function detail(r: Row): string {
  switch (r.op) {
    case 'fetch':
    case 'store':
      if (Array.isArray(r.runs_p50_ms)) return `${cell(r.runs)} runs: p50 ${r.runs_p50_ms.join(' / ')}, p95 ${(r.runs_p95_ms as number[]).join(' / ')} ms`;
      return r.cold_p50_ms === undefined
        ? ''
        : `cold (fresh processes): p50 ${cell(r.cold_p50_ms)}, p95 ${cell(r.cold_p95_ms)}, p99 ${cell(r.cold_p99_ms)} ms${idle(r)}`;
    case 'ping':
    case 'ping-inprocess':
      return `fetch p50 / ping p50 = ${cell(r.fetch_p50_over_rtt_p50)}${idle(r)}`;
    case 'rss':
      return (
        `${cell(r.peer)} (${cell(r.role)}): RSS ${cell(r.rss_mb)} MB (anonymous ${cell(r.rss_anon_mb)}, file-backed ${cell(r.rss_file_mb)}), ` +
        `peak ${cell(r.peak_rss_mb)} MB, ${cell(r.rss_before_publication_mb)} MB before the publication; holding ${cell(r.n)} records`
      );
    case 'bulk-publish':
      return `N = ${cell(r.replication_factor)}; read back ${cell(r.read_back_found)}/${cell(r.read_back_sample)}`;
    case 'admitted-peer-serves':
      return (
        `enrolment ${cell(r.enroll_ms)} ms; fetches ok after ${cell(r.fetch_ok_ms)} ms, handoff done after ${cell(r.handoff_ok_ms)} ms ` +
        `(${cell(r.held_records)}/${cell(r.expected_records)} records)`
      );
    default:
      return '';
  }
}

export function ringDetails(rows: readonly Row[]): string {
  const md = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const ring = rows.filter((r) => r.bench === 'ring');
  return [
    md(['system', 'peers', 'op', 'via', 'p50 ms', 'p95 ms', 'p99 ms', 'ms', 'n', 'failures', 'details']),
    md(Array(11).fill('---')),
    ...ring.map((r) =>
      md([r.system, cell(r.peers), r.op, cell(r.via), cell(r.p50_ms), cell(r.p95_ms), cell(r.p99_ms), cell(r.ms), cell(r.n), failures(r), detail(r)]),
    ),
  ].join('\n');
}
