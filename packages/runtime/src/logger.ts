import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ImeError } from '@ime/core';

/**
 * Structured logs (SPEC §8): one JSON object per line —
 *   {"time":"2025-01-01T00:00:00.000Z","level":"info","module":"ring","msg":"…","fields":{…}}
 * A default level plus per-module levels; a module `ring.store` falls back to `ring`, then to the
 * default, so an operator can turn up a whole subsystem with one entry.
 */

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * Keys whose values are never written to logs, alerts or the audit log. Wider than the bare words on
 * purpose: `private_key` and `Authorization` headers are secrets too.
 */
export const SECRET_KEY_PATTERN = /password|passwd|secret|token|private_?key|authorization/i;
export const REDACTED = '***';

const MAX_DEPTH = 8;
const MAX_STRING = 8192;
const MAX_ITEMS = 1000;

/**
 * A JSON-safe copy of `value` with every field whose key looks secret replaced by "***", at any
 * depth. Also makes arbitrary values loggable: errors become {name, code, message}, bytes their
 * length, cycles and very deep or wide structures are cut rather than throwing.
 */
export function redactSecrets(value: unknown): unknown {
  return redactValue(value, 0, new WeakSet());
}

function redactValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
      return undefined;
    case 'function':
    case 'symbol':
      return `[${typeof value}]`;
  }
  const obj = value as object;
  if (seen.has(obj)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Too deep]';
  if (obj instanceof Uint8Array) return `<${obj.length} bytes>`;
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
  seen.add(obj);
  try {
    if (obj instanceof Error) return errorFields(obj, depth, seen);
    if (Array.isArray(obj)) {
      const out = obj.slice(0, MAX_ITEMS).map((v) => redactValue(v, depth + 1, seen) ?? null);
      if (obj.length > MAX_ITEMS) out.push(`… ${obj.length - MAX_ITEMS} more`);
      return out;
    }
    if (obj instanceof Map) return redactEntries([...obj.entries()].map(([k, v]) => [String(k), v]), depth, seen);
    if (obj instanceof Set) return redactValue([...obj], depth, seen);
    return redactEntries(Object.entries(obj), depth, seen);
  } finally {
    seen.delete(obj);
  }
}

function redactEntries(entries: [string, unknown][], depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of entries) {
    if (n++ >= MAX_ITEMS) {
      define(out, '…', `${entries.length - MAX_ITEMS} more`);
      break;
    }
    const copy = SECRET_KEY_PATTERN.test(k) ? REDACTED : redactValue(v, depth + 1, seen);
    if (copy !== undefined) define(out, k, copy);
  }
  return out;
}

/** defineProperty, not assignment: a key "__proto__" from outside must stay a plain key. */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function errorFields(err: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') out.code = code;
  // Stacks help whoever reads the log with a bug; an ImeError is an expected refusal and has none.
  if (!(err instanceof ImeError) && typeof err.stack === 'string') out.stack = err.stack;
  if (err.cause !== undefined) out.cause = redactValue(err.cause, depth + 1, seen);
  return out;
}

export interface LogEntry {
  readonly time: string;
  readonly level: LogLevel;
  readonly module: string;
  readonly msg: string;
  readonly fields?: Record<string, unknown>;
}

export type LogSink = 'stderr' | { readonly file: string } | ((line: string, entry: LogEntry) => void);

export interface LoggerOptions {
  /** Default level for modules without their own. Default info. */
  readonly level?: LogLevel;
  /** Per-module levels, e.g. { ring: 'debug', 'vap.server': 'trace' }. */
  readonly modules?: Readonly<Record<string, LogLevel>>;
  /** Where lines go: stderr (default), a file path (appended to), or a function (tests). */
  readonly sink?: LogSink | string;
  /** Module name of the root logger. Default "ime". */
  readonly module?: string;
  /** Clock, for tests. */
  readonly now?: () => Date;
}

/** What children share with their root, so setLevel and close act on the whole tree. */
interface LoggerState {
  level: LogLevel;
  readonly modules: Map<string, LogLevel>;
  readonly write: (line: string, entry: LogEntry) => void;
  readonly close: () => void;
  readonly now: () => Date;
  /** Every module a logger was made for, so an operator can see which names a level can be set on. */
  readonly known: Set<string>;
}

function openSink(sink: LogSink | string | undefined): Pick<LoggerState, 'write' | 'close'> {
  if (sink === undefined || sink === 'stderr') {
    return { write: (line) => void process.stderr.write(`${line}\n`), close: () => {} };
  }
  if (typeof sink === 'function') return { write: sink, close: () => {} };
  const file = typeof sink === 'string' ? sink : sink.file;
  let fd: number;
  try {
    mkdirSync(dirname(file), { recursive: true });
    fd = openSync(file, 'a', 0o600);
  } catch (err) {
    throw new ImeError('E_LOG_FILE', `cannot open the log file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let open = true;
  return {
    // Synchronous on purpose: a crash right after a log call must not lose the line explaining it.
    write: (line) => {
      if (!open) return;
      try {
        writeSync(fd, `${line}\n`);
      } catch {
        // A full disk must not take the component down through its logger.
      }
    },
    close: () => {
      if (open) {
        open = false;
        closeSync(fd);
      }
    },
  };
}

function checkLevel(level: unknown, what: string): LogLevel {
  if (!isLogLevel(level)) {
    throw new ImeError('E_LOG_LEVEL', `${what}: unknown log level (use one of ${LOG_LEVELS.join(', ')})`);
  }
  return level;
}

function checkModule(module: unknown): string {
  if (typeof module !== 'string' || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(module) || module.length > 100) {
    throw new ImeError('E_LOG_MODULE', 'a log module name is letters, digits, "_" and "-", with "." between parts');
  }
  return module;
}

export class Logger {
  readonly module: string;
  readonly #state: LoggerState;
  readonly #root: boolean;

  /** `parent` is for `child()`; components create a root logger with options only. */
  constructor(options: LoggerOptions = {}, parent?: Logger) {
    this.module = checkModule(options.module ?? 'ime');
    this.#root = parent === undefined;
    if (parent !== undefined) {
      this.#state = parent.#state;
      this.#state.known.add(this.module);
      return;
    }
    const modules = new Map<string, LogLevel>();
    for (const [m, l] of Object.entries(options.modules ?? {})) modules.set(checkModule(m), checkLevel(l, `log level of ${m}`));
    this.#state = {
      level: checkLevel(options.level ?? 'info', 'log level'),
      modules,
      now: options.now ?? (() => new Date()),
      known: new Set([this.module]),
      ...openSink(options.sink),
    };
  }

  /**
   * A logger for a part of the component. Children of the root are named as given (so the levels
   * map reads `ring: debug`, not `ime.ring: debug`); deeper ones are dotted: `ring` → `ring.store`.
   */
  child(module: string): Logger {
    checkModule(module);
    return new Logger({ module: this.#root ? module : `${this.module}.${module}` }, this);
  }

  /** Changes the default level, or one module's level, while running. */
  setLevel(level: LogLevel): void;
  setLevel(module: string, level: LogLevel | undefined): void;
  setLevel(a: string, b?: LogLevel): void {
    if (arguments.length < 2) {
      this.#state.level = checkLevel(a, 'log level');
    } else if (b === undefined) {
      this.#state.modules.delete(checkModule(a));
    } else {
      this.#state.modules.set(checkModule(a), checkLevel(b, `log level of ${a}`));
    }
  }

  /** The effective level of a module (default: this logger's). */
  levelOf(module: string = this.module): LogLevel {
    let m: string = module;
    for (;;) {
      const l = this.#state.modules.get(m);
      if (l !== undefined) return l;
      const dot = m.lastIndexOf('.');
      if (dot < 0) return this.#state.level;
      m = m.slice(0, dot);
    }
  }

  /** The default level and every module level, for `show` commands. */
  levels(): { level: LogLevel; modules: Record<string, LogLevel> } {
    return { level: this.#state.level, modules: Object.fromEntries(this.#state.modules) };
  }

  /** The modules of this logger's tree (sorted) with the level each logs at now. */
  knownModules(): { module: string; level: LogLevel }[] {
    return [...this.#state.known].sort().map((module) => ({ module, level: this.levelOf(module) }));
  }

  isEnabled(level: LogLevel): boolean {
    return RANK[level] <= RANK[this.levelOf()];
  }

  log(level: LogLevel, msg: string, fields?: Readonly<Record<string, unknown>>): void {
    if (!this.isEnabled(level)) return;
    const entry: { -readonly [K in keyof LogEntry]: LogEntry[K] } = {
      time: this.#state.now().toISOString(),
      level,
      module: this.module,
      msg,
    };
    if (fields !== undefined) {
      const safe = redactSecrets(fields) as Record<string, unknown>;
      if (Object.keys(safe).length > 0) entry.fields = safe;
    }
    this.#state.write(JSON.stringify(entry), entry);
  }

  error(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.log('error', msg, fields);
  }
  warn(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.log('warn', msg, fields);
  }
  info(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.log('info', msg, fields);
  }
  debug(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.log('debug', msg, fields);
  }
  trace(msg: string, fields?: Readonly<Record<string, unknown>>): void {
    this.log('trace', msg, fields);
  }

  /** Closes a file sink (for the whole tree). Later lines are dropped. */
  close(): void {
    this.#state.close();
  }
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return new Logger(options);
}

/** A logger that writes nothing: the default where a component is given none. */
export function silentLogger(): Logger {
  return new Logger({ sink: () => {}, level: 'error' });
}
