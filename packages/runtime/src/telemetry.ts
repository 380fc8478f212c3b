import type { Logger } from './logger.js';
import { redactSecrets } from './logger.js';

/**
 * Counters and alerts under the guide's names (SPEC §8): `IMEDistributedCacheHealth`,
 * `ValidationAttempts`, … Names are kept exactly as the guide spells them, so an operator who knows
 * the guide finds them in `ime show counters` and in the Prometheus exposition on `/metrics`.
 */

export type CounterKind = 'counter' | 'gauge';

export interface CounterInfo {
  readonly name: string;
  readonly help: string;
  readonly kind: CounterKind;
  readonly value: number;
}

interface Metric {
  readonly help: string;
  readonly kind: CounterKind;
  value: number;
  readonly compute: (() => number) | undefined;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export class Counters {
  readonly #metrics = new Map<string, Metric>();

  /**
   * Declares a counter (only goes up) or a gauge (set to any value). Declaring the same name again
   * with the same kind is allowed, so two modules can share one; a different kind is a bug.
   */
  define(name: string, help: string, kind: CounterKind = 'counter'): this {
    this.#declare(name, help, kind, undefined);
    return this;
  }

  /** A gauge whose value is computed when read (store size, days until the certificate expires). */
  gauge(name: string, help: string, compute: () => number): this {
    if (typeof compute !== 'function') throw new TypeError(`gauge ${name}: compute must be a function`);
    this.#declare(name, help, 'gauge', compute);
    return this;
  }

  #declare(name: string, help: string, kind: CounterKind, compute: (() => number) | undefined): void {
    if (!METRIC_NAME.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`);
    if (kind !== 'counter' && kind !== 'gauge') throw new TypeError(`metric ${name}: kind must be counter or gauge`);
    const existing = this.#metrics.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind || (existing.compute !== undefined) !== (compute !== undefined)) {
        throw new TypeError(`metric ${name} is already defined differently`);
      }
      if (compute === undefined) return;
    }
    this.#metrics.set(name, { help, kind, value: 0, compute });
  }

  #metric(name: string): Metric {
    const m = this.#metrics.get(name);
    // A typo in a counter name must fail loudly in tests, not silently count nothing.
    if (m === undefined) throw new Error(`metric ${name} is not defined`);
    return m;
  }

  has(name: string): boolean {
    return this.#metrics.has(name);
  }

  inc(name: string, by = 1): void {
    const m = this.#metric(name);
    if (m.compute !== undefined) throw new Error(`metric ${name} is computed and cannot be incremented`);
    if (!Number.isFinite(by) || (m.kind === 'counter' && by < 0)) {
      throw new RangeError(`metric ${name}: cannot add ${by}`);
    }
    m.value += by;
  }

  set(name: string, value: number): void {
    const m = this.#metric(name);
    if (m.compute !== undefined) throw new Error(`metric ${name} is computed and cannot be set`);
    if (m.kind === 'counter') throw new Error(`metric ${name} is a counter; use inc`);
    if (typeof value !== 'number' || Number.isNaN(value)) throw new RangeError(`metric ${name}: not a number`);
    m.value = value;
  }

  get(name: string): number {
    return valueOf(this.#metric(name));
  }

  /** Every metric by name, in definition order (NaN when a computed gauge failed). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, m] of this.#metrics) out[name] = valueOf(m);
    return out;
  }

  list(): CounterInfo[] {
    return [...this.#metrics].map(([name, m]) => ({ name, help: m.help, kind: m.kind, value: valueOf(m) }));
  }

  /** Prometheus text exposition format 0.0.4. */
  renderPrometheus(): string {
    let out = '';
    for (const [name, m] of this.#metrics) {
      out += `# HELP ${name} ${escapeHelp(m.help)}\n# TYPE ${name} ${m.kind}\n${name} ${formatValue(valueOf(m))}\n`;
    }
    return out;
  }
}

/** The content type of `renderPrometheus()` output, for the `/metrics` route. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function valueOf(m: Metric): number {
  if (m.compute === undefined) return m.value;
  try {
    const v = m.compute();
    return typeof v === 'number' ? v : Number.NaN;
  } catch {
    // One broken gauge must not take the whole exposition down; NaN shows which one.
    return Number.NaN;
  }
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

export const ALERT_SEVERITIES = ['critical', 'error', 'warning', 'notice', 'info'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

export interface AlertEntry {
  readonly time: string;
  readonly name: string;
  readonly severity: AlertSeverity;
  /** Tells apart instances of one alert (a certificate, a peer); absent for one-of-a-kind alerts. */
  readonly key?: string;
  readonly details: Record<string, unknown>;
}

export interface RaiseOptions {
  readonly severity: AlertSeverity;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly key?: string;
  /** Not recorded again for the same name and key within this time (e.g. once a day). */
  readonly throttleMs?: number;
}

export interface AlertsOptions {
  readonly log?: Logger;
  /** Entries kept; older ones are dropped. Default 1000. */
  readonly max?: number;
  /** Clock in ms, for tests. */
  readonly now?: () => number;
}

const ALERT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,99}$/;
/** Throttle records kept; more distinct keys than this are unusual and must not grow memory. */
const MAX_THROTTLE_KEYS = 10_000;

export class Alerts {
  readonly #entries: AlertEntry[] = [];
  readonly #max: number;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  readonly #lastRecorded = new Map<string, number>();
  readonly #active = new Map<string, AlertEntry>();

  constructor(options: AlertsOptions = {}) {
    this.#max = options.max ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
  }

  /**
   * Raises an alert; returns whether it was recorded (false when throttled). The alert also
   * becomes active until `clear`, even when throttled: the condition still holds.
   */
  raise(name: string, options: RaiseOptions): boolean {
    if (!ALERT_NAME.test(name)) throw new TypeError(`invalid alert name ${JSON.stringify(name)}`);
    if (!(ALERT_SEVERITIES as readonly string[]).includes(options.severity)) {
      throw new TypeError(`alert ${name}: unknown severity ${String(options.severity)}`);
    }
    const now = this.#now();
    const id = alertId(name, options.key);
    const entry: AlertEntry = {
      time: new Date(now).toISOString(),
      name,
      severity: options.severity,
      ...(options.key === undefined ? {} : { key: options.key }),
      details: redactSecrets(options.details ?? {}) as Record<string, unknown>,
    };
    // Re-inserted so the map's order is the order of the latest raises.
    this.#active.delete(id);
    this.#active.set(id, entry);
    const last = this.#lastRecorded.get(id);
    if (options.throttleMs !== undefined && last !== undefined && now - last < options.throttleMs) return false;

    this.#lastRecorded.delete(id);
    this.#lastRecorded.set(id, now);
    if (this.#lastRecorded.size > MAX_THROTTLE_KEYS) {
      const oldest = this.#lastRecorded.keys().next().value;
      if (oldest !== undefined) this.#lastRecorded.delete(oldest);
    }
    this.#entries.push(entry);
    if (this.#entries.length > this.#max) this.#entries.splice(0, this.#entries.length - this.#max);
    const level = options.severity === 'critical' || options.severity === 'error' ? 'error' : 'warn';
    this.#log?.log(level, `alert ${name}`, {
      alert: name,
      severity: options.severity,
      ...(options.key === undefined ? {} : { key: options.key }),
      details: entry.details,
    });
    return true;
  }

  /** Recorded alerts, newest first. */
  list(): AlertEntry[] {
    return [...this.#entries].reverse();
  }

  /** Alerts whose condition still holds (raised and not cleared), newest first. */
  active(): AlertEntry[] {
    return [...this.#active.values()].reverse();
  }

  isActive(name: string, key?: string): boolean {
    return this.#active.has(alertId(name, key));
  }

  /**
   * Ends a condition: the alert is no longer active and its throttle is reset, so the condition
   * coming back is recorded at once. Without a key, every instance of the alert is cleared.
   * Returns whether anything was active.
   */
  clear(name: string, key?: string): boolean {
    let cleared = false;
    for (const id of [...this.#active.keys()]) {
      if (key === undefined ? id === name || id.startsWith(`${name}\u0000`) : id === alertId(name, key)) {
        this.#active.delete(id);
        this.#lastRecorded.delete(id);
        cleared = true;
      }
    }
    if (key === undefined) {
      for (const id of [...this.#lastRecorded.keys()]) {
        if (id === name || id.startsWith(`${name}\u0000`)) this.#lastRecorded.delete(id);
      }
    } else {
      this.#lastRecorded.delete(alertId(name, key));
    }
    return cleared;
  }
}

function alertId(name: string, key: string | undefined): string {
  return key === undefined ? name : `${name}\u0000${key}`;
}
