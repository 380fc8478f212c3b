import { describe, expect, it } from '@jest/globals';
import { PendingWatermark } from '../src/pending-watermark.js';
import { thrown } from '../../core/test/helpers.js';

describe('PendingWatermark', () => {
  it('raises above 100 and clears at 80 or below, only on transitions', () => {
    const w = new PendingWatermark();
    expect([w.high, w.low]).toEqual([100, 80]);
    const seen = [0, 100, 101, 150, 101, 81, 80, 80, 100, 101].map((n) => w.update(n));
    expect(seen).toEqual([undefined, undefined, 'raise', undefined, undefined, undefined, 'clear', undefined, undefined, 'raise']);
    expect(w.raised).toBe(true);
  });

  it('takes configured watermarks, and derives the low one from the high one when only that is given', () => {
    const w = new PendingWatermark({ high: 10, low: 2 });
    expect([w.update(11), w.update(3), w.update(2)]).toEqual(['raise', undefined, 'clear']);
    expect(new PendingWatermark({ high: 50 }).low).toBe(40);
    expect(new PendingWatermark({ low: 0 }).low).toBe(0);
  });

  it.each([
    ['low equal to high', { high: 10, low: 10 }],
    ['low above high', { high: 10, low: 20 }],
    ['low above the default high', { low: 100 }],
    ['a negative high', { high: -1, low: -5 }],
    ['a fractional low', { high: 10, low: 2.5 }],
    ['a high given as text', { high: '100' }],
  ])('refuses %s', (_what, options) => {
    expect(thrown(() => new PendingWatermark(options as never)).code).toBe('E_WATERMARKS');
  });

  it('refuses a count that is not a whole number', () => {
    const w = new PendingWatermark();
    for (const n of [-1, 1.5, Number.NaN]) expect(thrown(() => w.update(n)).code).toBe('E_PENDING_COUNT');
    expect(w.raised).toBe(false);
  });
});
