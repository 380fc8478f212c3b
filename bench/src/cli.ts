import '@ime/core/polyfill';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Row, type Suite, type Target, machine, renderMarkdown, renderTable } from './harness.js';
import { coreSuite } from './suites/core.js';
import { ringSuite } from './suites/ring.js';
import { ticketSuite } from './suites/ticket.js';
import { validationSuite } from './suites/validation.js';
import { vapSuite } from './suites/vap.js';

/**
 * `pnpm bench <name> [--quick] [--json]`: runs suites, prints a table (and with --json one JSON object
 * as the last line), and writes bench/results/latest.{json,md} and <name>.{json,md}.
 */

const SUITES: readonly Suite[] = [ticketSuite, coreSuite, ringSuite, vapSuite, validationSuite];
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
  const rows: Row[] = [];
  const targets: Target[] = [];
  for (const suite of selected) {
    progress(`${suite.name}: ${suite.description}${quick ? ' (quick)' : ''}`);
    const result = await suite.run({ quick, progress });
    rows.push(...result.rows);
    targets.push(...result.targets);
  }
  const skipped = name === 'all' ? Object.entries(NOT_BUILT).map(([n, what]) => ({ bench: n, reason: `${what} is not built yet` })) : [];
  const meta = { date: new Date().toISOString(), quick, machine: machine() };
  const report = { ...meta, bench: name, rows, targets, skipped };

  const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');
  mkdirSync(resultsDir, { recursive: true });
  // latest.* is the last run of anything; <name>.* keeps each benchmark's last run next to the others.
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const markdown = renderMarkdown(rows, targets, meta);
  for (const base of ['latest', name]) {
    writeFileSync(join(resultsDir, `${base}.json`), json);
    writeFileSync(join(resultsDir, `${base}.md`), markdown);
  }

  process.stdout.write(`${renderTable(rows, targets)}\n`);
  for (const s of skipped) process.stdout.write(`skipped ${s.bench}: ${s.reason}\n`);
  if (printJson) process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: E_BENCH_FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
