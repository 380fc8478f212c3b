#!/usr/bin/env node
// Writes the results section of bench/README.md — between its bench-results markers; the rest of the
// file is written by hand and left alone — from each suite's last run in bench/results/<suite>.json:
//  - one table of every target of every suite (goal, result, met, and when and on which machine it
//    was measured), with a line for each suite that has no result yet;
//  - each suite's rows (the ring's and the scale suite's with their own detail tables).
// A full-size run (<suite>.json) is preferred; a suite measured only with --quick
// (<suite>.quick.json) is shown marked "quick sizes", since its figures are not at the targets' sizes.
// `pnpm bench all` runs this at its end; alone, after any `pnpm bench <suite>`:
//   node scripts/bench-readme.mjs
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const README = join(root, 'bench', 'README.md');
const RESULTS = join(root, 'bench', 'results');

export const BEGIN_MARKER = '<!-- bench-results:begin -->';
export const END_MARKER = '<!-- bench-results:end -->';
/** The suites of `pnpm bench all`, in its order (bench/src/cli.ts); others found in results/ follow. */
export const SUITE_ORDER = ['ticket', 'core', 'ring', 'vap', 'validation', 'scale'];
/** Files of results/ that are not one suite's run. */
const NOT_A_SUITE = new Set(['latest', 'all']);
const STANDARD = new Set(['bench', 'system', 'op', 'ops_per_sec', 'ms', 'p50_ms', 'p95_ms', 'p99_ms', 'n', 'note']);

/** A figure as the bench tables print it: thousands grouped from 1 000, else three decimals. */
export function fmt(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(Math.round(v * 1000) / 1000);
  }
  if (Array.isArray(v)) return v.map(fmt).join(' / ');
  if (typeof v === 'object') return Object.entries(v).map(([k, x]) => `${k}: ${fmt(x)}`).join(', ');
  return String(v);
}

/** Markdown cell text: no pipes or line breaks from the data can break the table. */
function cell(text) {
  return String(text).replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function md(cells) {
  return `| ${cells.map(cell).join(' | ')} |`;
}

/** "2026-11-24 18:49 UTC" */
export function when(date) {
  const d = new Date(date);
  if (Number.isNaN(d.getTime())) return 'unknown date';
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)} UTC`;
}

/** "AMD EPYC, 2 cores, 24 GiB, Node v20.20.2" */
export function machineOf(m) {
  if (!m || typeof m !== 'object') return 'unknown machine';
  const parts = [m.cpu ?? 'unknown CPU'];
  if (m.cores !== undefined) parts.push(`${m.cores} cores`);
  if (m.memoryGiB !== undefined) parts.push(`${m.memoryGiB} GiB`);
  if (m.node !== undefined) parts.push(`Node ${m.node}`);
  return parts.join(', ');
}

function measured(run) {
  return `${when(run.date)}, ${machineOf(run.machine)}${run.quick ? ', **quick sizes**' : ''}`;
}

/**
 * Each suite's last run from the files of a results directory ({ name → JSON text }): the full-size
 * run when there is one, else the quick one. Returns [{ suite, run | undefined }] in SUITE_ORDER, then
 * any other suite found.
 */
export function pickRuns(files) {
  const full = new Map();
  const quick = new Map();
  for (const [file, text] of Object.entries(files)) {
    const m = /^([a-z0-9-]+)(\.quick)?\.json$/.exec(file);
    if (!m || NOT_A_SUITE.has(m[1])) continue;
    let run;
    try {
      run = JSON.parse(text);
    } catch (err) {
      throw new Error(`bench/results/${file} is not valid JSON: ${err.message}`);
    }
    if (!run || !Array.isArray(run.rows) || !Array.isArray(run.targets)) throw new Error(`bench/results/${file} has no rows and targets`);
    const suite = typeof run.bench === 'string' ? run.bench : m[1];
    // A run written before quick runs had their own file may still be a quick one.
    (run.quick === true ? quick : full).set(suite, run);
  }
  const names = [...SUITE_ORDER, ...[...new Set([...full.keys(), ...quick.keys()])].filter((s) => !SUITE_ORDER.includes(s)).sort()];
  return names.map((suite) => ({ suite, run: full.get(suite) ?? quick.get(suite) }));
}

function genericDetails(row) {
  const parts = [];
  for (const [k, v] of Object.entries(row)) {
    if (STANDARD.has(k) || k === 'error' || v === undefined || v === null) continue;
    parts.push(`${k.replace(/_/g, ' ')}: ${fmt(v)}`);
  }
  if (typeof row.error === 'string') parts.unshift(`FAILED: ${row.error}`);
  return parts.join('; ');
}

/** A suite's rows: the standard columns and every other figure of the row under "details". */
export function rowsTable(rows) {
  return [
    md(['system', 'op', 'ops/s', 'ms', 'p50 ms', 'p95 ms', 'p99 ms', 'n', 'details']),
    md(Array(9).fill('---')),
    ...rows.map((r) => md([r.system, r.op, fmt(r.ops_per_sec), fmt(r.ms), fmt(r.p50_ms), fmt(r.p95_ms), fmt(r.p99_ms), fmt(r.n), genericDetails(r)])),
  ].join('\n');
}

/** Every target of every suite, and a line for each suite without a result. */
export function targetsTable(runs) {
  const lines = [md(['target', 'goal', 'result', 'met', 'measured (date, machine)']), md(Array(5).fill('---'))];
  for (const { suite, run } of runs) {
    if (!run) {
      lines.push(md([`${suite}: every target`, '', 'not measured yet', '—', `run \`pnpm bench ${suite}\``]));
      continue;
    }
    const failed = run.rows.filter((r) => typeof r.error === 'string' && r.op === 'suite');
    if (failed.length > 0) lines.push(md([`${suite}: the suite`, '', `FAILED: ${failed[0].error}`, '**no**', measured(run)]));
    if (run.targets.length === 0 && failed.length === 0) lines.push(md([`${suite}: (no target; figures below)`, '', '', '—', measured(run)]));
    for (const t of run.targets) {
      const value = t.value === null || t.value === undefined ? 'not measured (see its rows)' : fmt(t.value);
      lines.push(md([t.name, t.goal, value, t.met ? 'yes' : '**no**', measured(run)]));
    }
  }
  return lines.join('\n');
}

/** Detail tables some suites render themselves (bench/dist), keyed by suite. */
export async function loadRenderers() {
  const renderers = {};
  const load = async (file, name) => {
    const path = join(root, 'bench', 'dist', file);
    if (!existsSync(path)) return undefined;
    try {
      return (await import(pathToFileURL(path).href))[name];
    } catch {
      return undefined;
    }
  };
  const ring = await load('ring/report.js', 'ringDetails');
  const scale = await load('suites/scale.js', 'scaleDetails');
  if (typeof ring === 'function') renderers.ring = ring;
  if (typeof scale === 'function') renderers.scale = scale;
  return renderers;
}

/** The whole generated section, markers included. */
export function resultsSection(runs, renderers = {}) {
  const out = [
    BEGIN_MARKER,
    '<!-- generated by `node scripts/bench-readme.mjs` from bench/results/<suite>.json (run at the end of `pnpm bench all`); do not edit by hand -->',
    '',
    '## Results',
    '',
    "Each suite's last full-size run (a suite measured only with `--quick` is marked so). The rows and",
    "their fields are explained in each suite's section above; the raw figures are in `bench/results/<suite>.json`.",
    '',
    '### Targets',
    '',
    targetsTable(runs),
  ];
  for (const { suite, run } of runs) {
    if (!run) continue;
    const duration = typeof run.duration_sec === 'number' ? `, ran ${fmt(run.duration_sec)} s` : '';
    out.push('', `### ${suite}`, '', `\`pnpm bench ${suite}${run.quick ? ' --quick' : ''}\`, ${measured(run)}${duration}.`, '');
    const render = renderers[suite];
    out.push(render && run.rows.every((r) => r.op !== 'suite') ? render(run.rows) : rowsTable(run.rows));
  }
  out.push('', END_MARKER);
  return out.join('\n');
}

/** `readme` with its generated section replaced by `section` (which carries the markers). */
export function withSection(readme, section) {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error(`bench/README.md has no ${BEGIN_MARKER} … ${END_MARKER} section`);
  return `${readme.slice(0, begin)}${section}${readme.slice(end + END_MARKER.length)}`;
}

export function readResults(dir = RESULTS) {
  const files = {};
  if (!existsSync(dir)) return files;
  for (const f of readdirSync(dir)) if (f.endsWith('.json')) files[f] = readFileSync(join(dir, f), 'utf8');
  return files;
}

async function main() {
  const runs = pickRuns(readResults());
  const section = resultsSection(runs, await loadRenderers());
  const before = readFileSync(README, 'utf8');
  const after = withSection(before, section);
  if (after !== before) writeFileSync(README, after);
  const shown = runs.filter((r) => r.run).map((r) => `${r.suite}${r.run.quick ? ' (quick)' : ''}`);
  const missing = runs.filter((r) => !r.run).map((r) => r.suite);
  process.stdout.write(
    `bench/README.md ${after === before ? 'already up to date' : 'updated'}: ${shown.join(', ') || 'no results'}` +
      `${missing.length > 0 ? `; not measured yet: ${missing.join(', ')}` : ''}\n`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    process.stderr.write(`bench-readme: E_BENCH_README: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
