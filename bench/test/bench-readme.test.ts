import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

interface Run {
  bench: string;
  date: string;
  quick: boolean;
  machine: Record<string, unknown>;
  duration_sec?: number;
  rows: Record<string, unknown>[];
  targets: { name: string; goal: string; value: number | null; met: boolean }[];
}
interface Generator {
  BEGIN_MARKER: string;
  END_MARKER: string;
  pickRuns(files: Record<string, string>): { suite: string; run: Run | undefined }[];
  targetsTable(runs: { suite: string; run: Run | undefined }[]): string;
  resultsSection(runs: { suite: string; run: Run | undefined }[], renderers?: Record<string, (rows: unknown[]) => string>): string;
  withSection(readme: string, section: string): string;
}

const load = async () => (await import(join(root, 'scripts/bench-readme.mjs'))) as Generator;

const machine = { cpu: 'AMD EPYC', cores: 2, memoryGiB: 24, node: 'v20.20.2' };
function run(bench: string, quick: boolean, targets: Run['targets'], rows: Run['rows'] = []): Run {
  return { bench, date: '2026-11-24T18:49:46.514Z', quick, machine, rows, targets };
}
const json = (r: Run) => JSON.stringify(r);

describe('scripts/bench-readme.mjs', () => {
  it("prefers a suite's full-size run to its quick one, and lists every suite in the order of `bench all`", async () => {
    const g = await load();
    const files = {
      'ticket.json': json(run('ticket', false, [{ name: 'ticket verify / bare HMAC-SHA256', goal: '>= 0.5', value: 0.672, met: true }])),
      'ticket.quick.json': json(run('ticket', true, [{ name: 'ticket verify / bare HMAC-SHA256', goal: '>= 0.5', value: 0.1, met: false }])),
      // A quick run from before quick runs had their own file name.
      'validation.json': json(run('validation', true, [{ name: 'validations per second', goal: '>= 500', value: 29.563, met: false }])),
      'latest.json': json(run('ticket', false, [])),
      'all.json': json(run('all', false, [])),
      'latest.md': 'not JSON',
    };
    const runs = g.pickRuns(files);
    expect(runs.map((r) => r.suite)).toEqual(['ticket', 'core', 'ring', 'vap', 'validation', 'scale']);
    expect(runs[0]?.run?.quick).toBe(false);
    expect(runs[4]?.run?.quick).toBe(true);
    expect(runs[1]?.run).toBeUndefined();
  });

  it('puts every target in one table with when and where it was measured, and says what was never measured', async () => {
    const g = await load();
    const runs = g.pickRuns({
      'ticket.json': json(run('ticket', false, [{ name: 'ticket verify / bare HMAC-SHA256', goal: '>= 0.5', value: 0.672, met: true }])),
      'ring.json': json(run('ring', false, [{ name: 'ring bulk publish of 100,000 DIDs into 16 peers, all stored (ms)', goal: '<= 5000', value: 9294.448, met: false }, { name: 'ring RSS per peer', goal: '<= 150', value: null, met: false }])),
      'scale.quick.json': json(run('scale', true, [{ name: 'scale: DIDs published', goal: '= 100000', value: 100000, met: true }])),
    });
    const table = g.targetsTable(runs);
    expect(table).toContain('| target | goal | result | met | measured (date, machine) |');
    expect(table).toContain('| ticket verify / bare HMAC-SHA256 | >= 0.5 | 0.672 | yes | 2026-11-24 18:49 UTC, AMD EPYC, 2 cores, 24 GiB, Node v20.20.2 |');
    expect(table).toContain('| ring bulk publish of 100,000 DIDs into 16 peers, all stored (ms) | <= 5000 | 9,294 | **no** |');
    expect(table).toContain('| ring RSS per peer | <= 150 | not measured (see its rows) | **no** |');
    expect(table).toContain('| scale: DIDs published | = 100000 | 100,000 | yes | 2026-11-24 18:49 UTC, AMD EPYC, 2 cores, 24 GiB, Node v20.20.2, **quick sizes** |');
    for (const suite of ['core', 'vap', 'validation']) expect(table).toContain(`| ${suite}: every target |  | not measured yet | — | run \`pnpm bench ${suite}\` |`);
  });

  it("renders each suite's rows, with a suite's own detail table when it has one, and a failed suite as failed", async () => {
    const g = await load();
    const runs = g.pickRuns({
      'vap.json': json(run('vap', false, [], [{ bench: 'vap', system: 'ours', op: 'vcr-ingest', ops_per_sec: 135421.2, ms: 1477, n: 200000, refused: 0, note: 'how', note_x: 'a|b' }])),
      'scale.json': json(run('scale', false, [], [{ bench: 'scale', system: 'ours', op: 'suite', n: 0, error: 'E_HARNESS_START: no' }])),
      'ring.json': json(run('ring', false, [], [{ bench: 'ring', system: 'ours', op: 'fetch', n: 600 }])),
    });
    const section = g.resultsSection(runs, { ring: () => 'RING DETAILS', scale: () => 'SCALE DETAILS' });
    expect(section.startsWith(g.BEGIN_MARKER)).toBe(true);
    expect(section.endsWith(g.END_MARKER)).toBe(true);
    expect(section).toContain('| ours | vcr-ingest | 135,421 | 1,477 |  |  |  | 200,000 | refused: 0; note x: a\\|b |');
    expect(section).toContain('RING DETAILS');
    // The failed suite gets the generic table (its one row says why), and a failed line among the targets.
    expect(section).not.toContain('SCALE DETAILS');
    expect(section).toContain('FAILED: E_HARNESS_START: no');
    expect(section).toContain('| scale: the suite |  | FAILED: E_HARNESS_START: no | **no** |');
  });

  it('replaces only the text between the markers, and refuses a file without them', async () => {
    const g = await load();
    const readme = `# Benchmarks\n\nby hand\n\n${g.BEGIN_MARKER}\nold numbers\n${g.END_MARKER}\n\n## After\nalso by hand\n`;
    const section = `${g.BEGIN_MARKER}\nnew numbers\n${g.END_MARKER}`;
    const out = g.withSection(readme, section);
    expect(out).toBe(`# Benchmarks\n\nby hand\n\n${g.BEGIN_MARKER}\nnew numbers\n${g.END_MARKER}\n\n## After\nalso by hand\n`);
    expect(g.withSection(out, section)).toBe(out);
    expect(() => g.withSection('# no markers\n', section)).toThrow(/no <!-- bench-results:begin -->/);
  });
});
