import type { Vcr } from '@ime/vap';

/**
 * VCRs waiting for the IME server: kept while it is unreachable and sent on reconnection. Bounded —
 * a call manager cut off for days must not grow without limit — by dropping the oldest, whose
 * validation windows are the first to close anyway. A VCR already queued (same call and direction)
 * is not queued twice.
 */
export class VcrQueue {
  readonly #max: number;
  readonly #items: Vcr[] = [];
  #dropped = 0;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('the VCR queue needs room for at least one VCR');
    this.#max = max;
  }

  get size(): number {
    return this.#items.length;
  }

  /** VCRs dropped because the queue was full, since the start. */
  get dropped(): number {
    return this.#dropped;
  }

  has(vcr: Vcr): boolean {
    return this.#items.some((v) => v.callId === vcr.callId && v.direction === vcr.direction);
  }

  /** Adds at the back; returns how many old VCRs were dropped to make room. */
  push(vcr: Vcr): number {
    if (this.has(vcr)) return 0;
    this.#items.push(vcr);
    const over = this.#items.length - this.#max;
    if (over <= 0) return 0;
    this.#items.splice(0, over);
    this.#dropped += over;
    return over;
  }

  /** Takes up to `n` VCRs from the front. */
  take(n: number): Vcr[] {
    return this.#items.splice(0, n);
  }

  /** Puts back VCRs that could not be sent, ahead of the rest, within the bound. */
  requeue(vcrs: readonly Vcr[]): number {
    this.#items.unshift(...vcrs);
    const over = this.#items.length - this.#max;
    if (over <= 0) return 0;
    this.#items.splice(0, over);
    this.#dropped += over;
    return over;
  }
}
