import { describe, expect, it } from '@jest/globals';
import { ringDetails } from '../src/ring/report.js';
import {
  anchorPercentile,
  deal,
  expandPattern,
  latencies,
  numbers,
  parseOpenDhtLine,
  parseProcStatTicks,
  parseProcStatus,
  patterns,
  roles,
  sample,
} from '../src/ring/stats.js';

describe('ring bench helpers', () => {
  it('parses the OpenDHT anchor line, and nothing else', () => {
    const line = 'opendht N=32 ops=200 put p50=1.0ms p95=1.3ms get p50=0.9ms p95=1.3ms fails=7\n';
    expect(parseOpenDhtLine(`noise\n${line}`)).toEqual({ peers: 32, ops: 200, putP50: 1, putP95: 1.3, getP50: 0.9, getP95: 1.3, fails: 7 });
    expect(parseOpenDhtLine('Traceback (most recent call last):\nModuleNotFoundError')).toBeUndefined();
  });

  it('computes percentiles as the anchor does (one rank above nearest-rank)', () => {
    const v = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(anchorPercentile(v, 50)).toBe(101); // sorted[int(0.5 * 200)]
    expect(anchorPercentile(v, 95)).toBe(191);
    expect(anchorPercentile([3, 1, 2], 99)).toBe(3);
    expect(anchorPercentile([], 50)).toBeNaN();
    expect(latencies(v)).toEqual({ p50_ms: 100, p95_ms: 190, p99_ms: 198, n: 200 });
  });

  it('reads VmRSS, VmHWM, RssAnon and RssFile from /proc/<pid>/status', () => {
    const status = 'Name:\tnode\nVmPeak:\t 1000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  153600 kB\nRssAnon:\t  102400 kB\nRssFile:\t   51200 kB\nThreads:\t11\n';
    expect(parseProcStatus(status)).toEqual({ rssMB: 150, hwmMB: 200, anonMB: 100, fileMB: 50 });
    expect(parseProcStatus('VmRSS:\t 1024 kB\n')).toEqual({ rssMB: 1, hwmMB: 1, anonMB: undefined, fileMB: undefined });
    expect(parseProcStatus('Name:\tkthreadd\n')).toBeUndefined();
  });

  it('reads user + system ticks from /proc/<pid>/stat, even with a strange command name', () => {
    const stat = '4242 (node (peer) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 150 25 0 0 20 0 11 0 812371 1 2';
    expect(parseProcStatTicks(stat)).toBe(175);
    expect(parseProcStatTicks('garbage')).toBeUndefined();
  });

  it('gives publishers and readers disjoint peers spread over the ring', () => {
    for (const n of [2, 3, 8, 32, 64]) {
      const { publishers, readers } = roles(n, 4);
      expect(publishers.length).toBe(Math.min(4, Math.floor(n / 2)));
      expect(readers.length).toBe(publishers.length);
      const all = [...publishers, ...readers];
      expect(new Set(all).size).toBe(all.length);
      expect(all.every((i) => i >= 0 && i < n)).toBe(true);
    }
    expect(roles(8, 4)).toEqual({ publishers: [0, 2, 4, 6], readers: [1, 3, 5, 7] });
    expect(() => roles(1, 4)).toThrow(RangeError);
  });

  it('deals items round-robin without losing any', () => {
    expect(deal([1, 2, 3, 4, 5], 2)).toEqual([
      [1, 3, 5],
      [2, 4],
    ]);
    expect(deal([1, 2], 4).flat().sort()).toEqual([1, 2]);
  });

  it('makes distinct valid numbers and patterns of 1 000 DIDs', () => {
    const a = numbers('650', 1, 200);
    const b = numbers('650', 2, 200);
    expect(new Set([...a, ...b]).size).toBe(400);
    expect(a[0]).toBe('+16500010000');
    expect(a.every((x) => /^\+1\d{10}$/.test(x))).toBe(true);
    const p = patterns('212', 100);
    expect(p[0]).toBe('+12120000XXX');
    expect(p[99]).toBe('+12120099XXX');
    expect(patterns('415', 2, 998)).toEqual(['+14150998XXX', '+14150999XXX']);
    const expanded = p.flatMap(expandPattern);
    expect(expanded.length).toBe(100_000);
    expect(new Set(expanded).size).toBe(100_000);
    expect(expandPattern('+12120000XXX').slice(0, 2)).toEqual(['+12120000000', '+12120000001']);
  });

  it('samples deterministically without repeats', () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const s1 = sample(items, 100, 7);
    expect(s1).toEqual(sample(items, 100, 7));
    expect(new Set(s1).size).toBe(100);
    expect(sample(items, 5000, 7).length).toBe(1000);
  });

  it('renders the ring details with peer counts and failures', () => {
    const md = ringDetails([
      { bench: 'ring', system: 'ours', peers: 32, op: 'fetch', via: 'in-peer', p50_ms: 0.7, p95_ms: 1.2, p99_ms: 2, n: 200, errors: 0, not_found: 3, cold_p50_ms: 2 },
      { bench: 'ring', system: 'opendht', peers: 32, op: 'fetch', n: 0, skipped: 'not root' },
      { bench: 'core', system: 'ours', op: 'did-seal', n: 1 },
    ]);
    expect(md).toContain('| ours | 32 | fetch | in-peer | 0.7 | 1.2 | 2 |  | 200 | 3 not found | cold (fresh processes): p50 2');
    expect(md).toContain('skipped: not root');
    expect(md).not.toContain('did-seal');
  });
});
