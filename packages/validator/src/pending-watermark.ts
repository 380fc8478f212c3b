import { ImeError, describeInput } from '@ime/core';

/**
 * When the `ValidationsPendingExceeded` alert fires and clears (SPEC §6, guide L9527: pending
 * validations above 100). Two watermarks instead of one threshold, so a backlog hovering around 100
 * does not raise and clear the alert on every validation. Pure: the caller raises and clears.
 */

export const DEFAULT_PENDING_HIGH = 100;
export const DEFAULT_PENDING_LOW = 80;

export interface PendingWatermarkOptions {
  /** Raise when pending exceeds this (default 100). */
  readonly high?: number;
  /** Clear when pending is at or below this (default 80, or 80 % of `high` when only `high` is given). */
  readonly low?: number;
}

export type WatermarkChange = 'raise' | 'clear';

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function shown(value: unknown): string {
  return typeof value === 'number' ? String(value) : describeInput(value);
}

export class PendingWatermark {
  readonly high: number;
  readonly low: number;
  #raised = false;

  constructor(options: PendingWatermarkOptions = {}) {
    const high = options.high ?? DEFAULT_PENDING_HIGH;
    if (!isCount(high)) throw new ImeError('E_WATERMARKS', `the high watermark must be a whole number from 0, got ${shown(high)}`);
    const low = options.low ?? (options.high === undefined ? DEFAULT_PENDING_LOW : Math.floor(high * 0.8));
    if (!isCount(low)) throw new ImeError('E_WATERMARKS', `the low watermark must be a whole number from 0, got ${shown(low)}`);
    if (low >= high) throw new ImeError('E_WATERMARKS', `the low watermark (${low}) must be below the high watermark (${high})`);
    this.high = high;
    this.low = low;
  }

  /** Whether the alert is up (as of the last update). */
  get raised(): boolean {
    return this.#raised;
  }

  /** Feeds the current backlog; returns 'raise' or 'clear' only when the alert changes. */
  update(count: number): WatermarkChange | undefined {
    if (!isCount(count)) throw new ImeError('E_PENDING_COUNT', `a pending count must be a whole number from 0, got ${shown(count)}`);
    if (!this.#raised && count > this.high) {
      this.#raised = true;
      return 'raise';
    }
    if (this.#raised && count <= this.low) {
      this.#raised = false;
      return 'clear';
    }
    return undefined;
  }
}
