import { describe, expect, it } from '@jest/globals';
import { RateLimiter } from '../src/rate-limiter.js';
import { thrown } from '../../core/test/helpers.js';

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);

describe('RateLimiter', () => {
  it('allows a burst, refuses beyond it, and refills at the configured rate', () => {
    let now = T0;
    // 6 a minute: one token every 10 s.
    const r = new RateLimiter({ perMinute: 6, burst: 3, now: () => now });
    expect(r.remaining('p')).toBe(3);
    expect([r.take('p'), r.take('p'), r.take('p'), r.take('p')]).toEqual([true, true, true, false]);
    expect(r.remaining('p')).toBe(0);
    now += 9_999;
    expect(r.take('p')).toBe(false);
    now += 1;
    expect(r.take('p')).toBe(true);
    now += 3_600_000;
    expect(r.remaining('p')).toBe(3);
  });

  it('takes nothing when it refuses, and keeps keys apart', () => {
    const now = T0;
    const r = new RateLimiter({ perMinute: 1, burst: 5, now: () => now });
    expect(r.take('a', 3)).toBe(true);
    expect(r.take('a', 3)).toBe(false);
    expect(r.remaining('a')).toBe(2);
    expect(r.take('a', 2)).toBe(true);
    expect(r.take('b', 5)).toBe(true);
    expect(r.take('c', 6)).toBe(false);
    expect(r.remaining('c')).toBe(5);
  });

  it('refills nothing when the clock goes back', () => {
    let now = T0;
    const r = new RateLimiter({ perMinute: 60, burst: 2, now: () => now });
    r.take('p', 2);
    now = T0 - 60_000;
    expect(r.remaining('p')).toBe(0);
    expect(r.take('p')).toBe(false);
    now = T0 + 1000;
    expect(r.take('p')).toBe(true);
  });

  it('drops full buckets first when it tracks too many keys', () => {
    let now = T0;
    const r = new RateLimiter({ perMinute: 6, burst: 2, maxKeys: 3, now: () => now });
    r.take('a');
    now += 10_000; // 'a' is full again
    r.take('b', 2);
    r.take('c', 2);
    r.take('d', 2);
    expect(r.size).toBe(3);
    // b, c and d are still limited; a was forgotten, which costs nothing since it was full.
    expect(['b', 'c', 'd'].map((k) => r.remaining(k))).toEqual([0, 0, 0]);
  });

  it('drops the least recently used key when no bucket is full', () => {
    const now = T0;
    const r = new RateLimiter({ perMinute: 1, burst: 2, maxKeys: 3, now: () => now });
    for (const k of ['a', 'b', 'c']) r.take(k, 2);
    expect(r.take('a')).toBe(false); // refused: 'a' is not touched, so it stays the least recently used
    r.take('d', 2);
    expect(r.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((k) => r.remaining(k))).toEqual([2, 0, 0, 0]);
    for (let i = 0; i < 1000; i++) r.take(`k${i}`);
    expect(r.size).toBe(3);
  });

  it.each([
    ['perMinute 0', { perMinute: 0, burst: 1 }],
    ['perMinute Infinity', { perMinute: Infinity, burst: 1 }],
    ['perMinute as text', { perMinute: '6', burst: 1 }],
    ['burst 0', { perMinute: 6, burst: 0 }],
    ['burst 1.5', { perMinute: 6, burst: 1.5 }],
    ['maxKeys 0', { perMinute: 6, burst: 1, maxKeys: 0 }],
    ['now not a function', { perMinute: 6, burst: 1, now: 5 }],
  ])('refuses %s', (_what, options) => {
    expect(thrown(() => new RateLimiter(options as never)).code).toBe('E_RATE_LIMIT_CONFIG');
  });

  it('refuses to take a number of tokens that is not a whole number from 1', () => {
    const r = new RateLimiter({ perMinute: 6, burst: 2 });
    for (const n of [0, -1, 0.5, Number.NaN]) expect(thrown(() => r.take('p', n)).code).toBe('E_RATE_LIMIT_TAKE');
    expect(r.remaining('p')).toBe(2);
  });
});
