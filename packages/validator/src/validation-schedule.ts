import { ImeError, describeInput, parseE164 } from '@ime/core';
import { type Database, keyOf } from '@ime/runtime';

/**
 * The one-hour rule (SPEC §6, guide L270–L273): two validations of the same called number must be at
 * least an interval apart (default one hour), so that the VCRs a remote peer is tested on are
 * uncorrelated. When each number was last validated is kept in LevelDB: a restart must not reopen the
 * interval, or restarting would be a way around the rule.
 *
 *   validator/last/<called>   → ms (JSON number)
 */

export const DEFAULT_REVALIDATE_AFTER_MS = 3600_000;

export interface ValidationScheduleOptions {
  readonly db: Database;
  readonly now?: () => number;
  /** Minimum time between two validations of one called number (default one hour). */
  readonly revalidateAfterMs?: number;
}

const PREFIX = 'validator/last/';
/** The first key after every `validator/last/…` key ('0' follows '/'). */
const END = 'validator/last0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isTime(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

export class ValidationSchedule {
  readonly #db: Database;
  readonly #now: () => number;
  readonly #interval: number;
  readonly #last: Map<string, number>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(options: ValidationScheduleOptions, interval: number, last: Map<string, number>) {
    this.#db = options.db;
    this.#now = options.now ?? Date.now;
    this.#interval = interval;
    this.#last = last;
  }

  static async open(options: ValidationScheduleOptions): Promise<ValidationSchedule> {
    const interval = options.revalidateAfterMs ?? DEFAULT_REVALIDATE_AFTER_MS;
    if (!isTime(interval)) {
      throw new ImeError('E_REVALIDATE_INTERVAL', `the revalidation interval must be a whole number of milliseconds, got ${describeInput(interval)}`);
    }
    const last = new Map<string, number>();
    for await (const [k, v] of options.db.iterator({ gte: keyOf(PREFIX), lt: keyOf(END) })) {
      const key = decoder.decode(k);
      let at: unknown;
      try {
        at = JSON.parse(decoder.decode(v));
      } catch {
        at = undefined;
      }
      if (!isTime(at)) throw new ImeError('E_DB_CORRUPT', `the stored value ${describeInput(key)} is not a time`);
      last.set(key.slice(PREFIX.length), at);
    }
    return new ValidationSchedule(options, interval, last);
  }

  get revalidateAfterMs(): number {
    return this.#interval;
  }

  lastValidated(called: string): number | undefined {
    return this.#last.get(called);
  }

  /** false while `called` was validated less than revalidateAfterMs ago. */
  mayValidate(called: string): boolean {
    const last = this.#last.get(called);
    // A validation "in the future" (the clock went back) also blocks: the rule is about real spacing.
    return last === undefined || this.#now() - last >= this.#interval;
  }

  /**
   * Records a validation of `called` (default: now). A mark never moves a number's time back: an
   * out-of-order mark must not let the number be validated again sooner.
   */
  markValidated(called: string, atMs?: number): Promise<void> {
    return this.#serialised(async () => {
      const number = parseE164(called);
      const at = atMs ?? this.#now();
      if (!isTime(at)) throw new ImeError('E_VALIDATION_TIME', `a validation time must be milliseconds, got ${describeInput(at)}`);
      const previous = this.#last.get(number);
      if (previous !== undefined && previous >= at) return;
      await this.#db.put(keyOf(PREFIX + number), encoder.encode(JSON.stringify(at)));
      this.#last.set(number, at);
    });
  }

  /**
   * Takes back the mark made at `atMs` for a validation that could not run, so that its retry is not
   * held off by the one-hour rule; a later mark (another validation since) stays.
   */
  unmark(called: string, atMs: number): Promise<void> {
    return this.#serialised(async () => {
      const number = parseE164(called);
      if (this.#last.get(number) !== atMs) return;
      await this.#db.del(keyOf(PREFIX + number));
      this.#last.delete(number);
    });
  }

  /** Forgets numbers whose interval has passed (they may be validated again); returns how many. */
  sweep(): Promise<number> {
    return this.#serialised(async () => {
      const now = this.#now();
      const old = [...this.#last.entries()].filter(([, at]) => now - at >= this.#interval).map(([n]) => n);
      if (old.length === 0) return 0;
      const batch = this.#db.batch();
      for (const n of old) batch.del(keyOf(PREFIX + n));
      await batch.write();
      for (const n of old) this.#last.delete(n);
      return old.length;
    });
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
