import { describe, expect, it } from '@jest/globals';
import { measureDuration, measureRate, percentile, renderMarkdown, renderTable, target } from '../src/harness.js';

describe('bench harness', () => {
  it('computes nearest-rank percentiles', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(v, 95)).toBe(95);
    expect(percentile(v, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('counts the calls it makes', () => {
    let calls = 0;
    const r = measureRate(() => calls++, { roundMs: 5, rounds: 2, batch: 10 });
    expect(r.n % 10).toBe(0);
    expect(calls).toBeGreaterThanOrEqual(r.n);
    expect(r.opsPerSec).toBeGreaterThan(0);
    let runs = 0;
    expect(measureDuration(() => runs++, 3).n).toBe(3);
    expect(runs).toBe(4); // one warm-up
  });

  it('renders rows and targets, flagging a missed target', () => {
    const rows = [{ bench: 'ticket', system: 'ours', op: 'verify', ops_per_sec: 123456.7, n: 10 }];
    const targets = [target('ratio', '>= 0.5', 0.25, false)];
    const table = renderTable(rows, targets);
    expect(table).toContain('123,457');
    expect(table).toMatch(/ratio\s+>= 0.5\s+0.25\s+NO/);
    const md = renderMarkdown(rows, targets, { date: 'd', quick: true, machine: { cpu: 'x', cores: 2, node: 'v20' } });
    expect(md).toContain('| ratio | >= 0.5 | 0.25 | **no** |');
  });
});
