import '@ime/core/polyfill';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Row, type Suite, type Target, machine, renderMarkdown, renderTable } from './harness.js';
import { Interrupted } from './ring/cleanup.js';
import { coreSuite } from './suites/core.js';
import { ringSuite } from './suites/ring.js';
import { scaleSuite } from './suites/scale.js';
import { ticketSuite } from './suites/ticket.js';
import { validationSuite } from './suites/validation.js';
import { vapSuite } from './suites/vap.js';

/**
 * `pnpm bench <name> [--quick] [--json]`: runs suites, prints a table (and with --json one JSON object
 * as the last line), and writes bench/results/latest.{json,md} and, for each suite it ran, <suite>.{json,md}
 * (<suite>.quick.{json,md} with --quick, so a quick run during development never replaces the last
 * full-size figures that bench/README.md is generated from). `all` runs every suite, then rewrites the
 * generated section of bench/README.md (scripts/bench-readme.mjs).
 */

const SUITES: readonly Suite[] = [ticketSuite, coreSuite, ringSuite, vapSuite, validationSuite, scaleSuite];
/** Named in INTERFACES.md; their components are built by later issues. */
const NOT_BUILT: Readonly<Record<string, string>> = {
};

function usage(message: string): never {
  process.stderr.write(`bench: E_BENCH_USAGE: ${message}\n`);
  process.stderr.write(`usage: pnpm bench <${[...SUITES.map((s) => s.name), ...Object.keys(NOT_BUILT), 'all'].join('|')}> [--quick] [--json]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const printJson = args.includes('--json');
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const unknownFlags = args.filter((a) => a.startsWith('--') && a !== '--json' && a !== '--quick');
  if (unknownFlags.length > 0) usage(`unknown option ${unknownFlags[0]}`);
  if (names.length !== 1) usage('name one benchmark');
  const name = names[0] as string;
  if (NOT_BUILT[name]) {
    process.stderr.write(`bench: E_BENCH_NOT_BUILT: "${name}" measures ${NOT_BUILT[name]}, which is not built yet\n`);
    process.exit(2);
  }
  const selected = name === 'all' ? SUITES : SUITES.filter((s) => s.name === name);
  if (selected.length === 0) usage(`unknown benchmark "${name}"`);

  const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);
  const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const suffix = quick ? '.quick' : '';
  const write = (base: string, report: Record<string, unknown>, rows: readonly Row[], targets: readonly Target[]) => {
    writeFileSync(join(resultsDir, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(resultsDir, `${base}.md`), renderMarkdown(rows, targets, report));
  };

  const rows: Row[] = [];
  const targets: Target[] = [];
  for (const suite of selected) {
    progress(`${suite.name}: ${suite.description}${quick ? ' (quick)' : ''}`);
    const started = performance.now();
    let result: { rows: Row[]; targets: Target[] };
    try {
      result = await suite.run({ quick, progress });
    } catch (err) {
      // One suite failing does not lose the others' figures in `all`; its own file says it failed.
      if (name !== 'all' || err instanceof Interrupted) throw err;
      const error = `${(err as { code?: string }).code ?? 'E_BENCH_FAILED'}: ${err instanceof Error ? err.message : String(err)}`;
      progress(`${suite.name} FAILED: ${error}`);
      result = { rows: [{ bench: suite.name, system: 'ours', op: 'suite', n: 0, error }], targets: [] };
    }
    const seconds = Math.round((performance.now() - started) / 1000);
    progress(`${suite.name}: done in ${seconds} s`);
    rows.push(...result.rows);
    targets.push(...result.targets);
    // Each suite keeps its last run beside the others' (the README is generated from these).
    const meta = { date: new Date().toISOString(), quick, machine: machine(), duration_sec: seconds };
    write(`${suite.name}${suffix}`, { ...meta, bench: suite.name, rows: result.rows, targets: result.targets }, result.rows, result.targets);
  }
  const skipped = name === 'all' ? Object.entries(NOT_BUILT).map(([n, what]) => ({ bench: n, reason: `${what} is not built yet` })) : [];
  const meta = { date: new Date().toISOString(), quick, machine: machine() };
  const report = { ...meta, bench: name, rows, targets, skipped };
  write('latest', report, rows, targets);
  if (name === 'all') write(`all${suffix}`, report, rows, targets);

  if (name === 'all') {
    // Its lines go to stderr: with --json the last line of stdout is the report.
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'bench-readme.mjs');
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    for (const line of `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => l.length > 0)) progress(line);
    if (r.status !== 0) progress(`E_BENCH_README: node scripts/bench-readme.mjs exited with ${String(r.status)}; bench/README.md was not updated`);
  }

  process.stdout.write(`${renderTable(rows, targets)}\n`);
  for (const s of skipped) process.stdout.write(`skipped ${s.bench}: ${s.reason}\n`);
  if (printJson) process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: E_BENCH_FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
