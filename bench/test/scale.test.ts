import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { expandPattern } from '../src/ring/stats.js';
import { admissionWaves, bytesOnDisk, processGroups, publisherRequests, scaleDetails, spread } from '../src/suites/scale.js';

describe('scale bench helpers', () => {
  it('gives each publisher its own numbers, in requests the admin API accepts', () => {
    const requests = [0, 1, 2].map((j) => publisherRequests(j, 250_000));
    for (const r of requests) {
      expect(r.map((pats) => pats.length)).toEqual([...Array(50).fill(5)]);
      expect(r.flat().every((p) => /^\+1415\d{4}XXX$/.test(p))).toBe(true);
    }
    const numbers = requests.flatMap((r) => r.flat().flatMap(expandPattern));
    expect(numbers).toHaveLength(750_000);
    expect(new Set(numbers).size).toBe(750_000);
    expect(() => publisherRequests(0, 1500)).toThrow(RangeError);
    expect(() => publisherRequests(0, 0)).toThrow(RangeError);
  });

  it('splits the peers into processes of at most the given size, each peer once', () => {
    expect(processGroups(256, 64).map((g) => g.length)).toEqual([64, 64, 64, 64]);
    const uneven = processGroups(10, 4);
    expect(uneven).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    expect(processGroups(3, 256)).toEqual([[0, 1, 2]]);
    expect(() => processGroups(0, 4)).toThrow(RangeError);
    expect(() => processGroups(4, 0)).toThrow(RangeError);
  });

  it('admits the peers in waves spread over every process, each peer once', () => {
    const waves = admissionWaves(256, 32);
    expect(waves).toHaveLength(8);
    expect(waves.every((w) => w.length === 32)).toBe(true);
    expect(new Set(waves.flat()).size).toBe(256);
    // Each wave takes 8 peers from each process of 64.
    for (const w of waves) for (const g of processGroups(256, 64)) expect(w.filter((i) => g.includes(i))).toHaveLength(8);
    expect(admissionWaves(10, 4)).toEqual([
      [0, 3, 6, 9],
      [1, 4, 7],
      [2, 5, 8],
    ]);
    expect(admissionWaves(3, 32)).toEqual([[0, 1, 2]]);
    expect(() => admissionWaves(4, 0)).toThrow(RangeError);
  });

  it('summarises figures as mean, smallest and largest', () => {
    expect(spread([3, 1, 2])).toEqual({ mean: 2, min: 1, max: 3 });
    expect(spread([1, 2])).toEqual({ mean: 1.5, min: 1, max: 2 });
    expect(Number.isNaN(spread([]).mean)).toBe(true);
  });

  it('counts the bytes of every file under a directory, nested ones too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-bench-scale-test-'));
    try {
      writeFileSync(join(dir, '000001.log'), Buffer.alloc(1000));
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'MANIFEST'), Buffer.alloc(24));
      expect(bytesOnDisk(dir)).toBe(1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders the rows with their details, failures included', () => {
    const table = scaleDetails([
      { bench: 'scale', system: 'ours', peers: 256, op: 'publish', ops_per_sec: 12_345.6, ms: 81_000, n: 1_000_000, publishers: 10, published: 999_990, failed: 10, failure_codes: { E_OVER_QUOTA: 10 }, replication_factor: 3, replica_records_stored: 2_999_970, replica_records_expected: 2_999_970 },
      { bench: 'scale', system: 'ours', peers: 256, op: 'fetch', p50_ms: 0.6, p95_ms: 2, p99_ms: 5, n: 2000, readers: 10, found: 1999, not_found: 1, errors: 0, warmup_fetches: 1000 },
      { bench: 'scale', system: 'ours', op: 'memory', n: 0, error: 'E_HARNESS_START: boom' },
      { bench: 'scale', system: 'ours', peers: 256, op: 'fetch-concurrent', n: 2000, readers: 10, concurrency: 80, found: 1500, not_found: 0, errors: 0, not_sent: 500, gave_up_after_ms: 600_000 },
      { bench: 'ring', system: 'ours', op: 'fetch', n: 1 },
    ]);
    const lines = table.split('\n');
    expect(lines).toHaveLength(6); // header, rule and the four scale rows
    expect(lines[2]).toContain('| publish | 256 | 12,346 | 81,000 |');
    expect(lines[2]).toContain('999,990 published, 10 failed (E_OVER_QUOTA: 10)');
    expect(lines[3]).toContain('found 1,999/2,000, 1 not found');
    expect(lines[4]).toContain('FAILED: E_HARNESS_START: boom');
    expect(lines[5]).toContain('found 1,500/2,000, 500 not asked (stopped after 10 minutes)');
  });
});
