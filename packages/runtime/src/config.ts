import { open } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { ImeError, describeInput } from '@ime/core';
import { parseDocument, stringify as yamlStringify } from 'yaml';

/**
 * Configuration files of every role (`ime peer start --config FILE`). The schema is data — types,
 * defaults, descriptions — so the same object validates a file, prints a commented default file
 * (`--print-default-config`) and generates the README's configuration reference, and the three can
 * never disagree.
 *
 * Refusals, all naming the file and the dotted key:
 *   E_CONFIG_FILE        unreadable, missing, over 1 MB, not UTF-8, unknown extension
 *   E_CONFIG_SYNTAX      not valid YAML/JSON (with line and column), duplicate keys
 *   E_CONFIG_UNKNOWN_KEY a key the schema does not have (with the closest known key)
 *   E_CONFIG_TYPE        a value of the wrong type
 *   E_CONFIG_MISSING     a required key absent
 *   E_CONFIG_RANGE       out of range, not one of the allowed values, not of the expected form
 */

export type ConfigErrorCode =
  | 'E_CONFIG_FILE'
  | 'E_CONFIG_SYNTAX'
  | 'E_CONFIG_UNKNOWN_KEY'
  | 'E_CONFIG_TYPE'
  | 'E_CONFIG_MISSING'
  | 'E_CONFIG_RANGE';

export type ConfigFormat = 'yaml' | 'json';

export const MAX_CONFIG_BYTES = 1024 * 1024;

interface FieldBase {
  readonly description: string;
  /**
   * A required field has no default; it needs an `example`, which the printed default file carries
   * so that file loads as it is.
   */
  readonly required?: boolean;
}

export interface StringFieldSpec extends FieldBase {
  readonly type: 'string';
  readonly default?: string;
  readonly example?: string;
  readonly enum?: readonly string[];
  /** A regular expression the whole value must match (anchored for you). */
  readonly pattern?: string;
  readonly maxLength?: number;
}

export interface IntegerFieldSpec extends FieldBase {
  readonly type: 'integer';
  readonly default?: number;
  readonly example?: number;
  readonly min?: number;
  readonly max?: number;
}

export interface BooleanFieldSpec extends FieldBase {
  readonly type: 'boolean';
  readonly default?: boolean;
  readonly example?: boolean;
}

export interface StringListFieldSpec extends FieldBase {
  readonly type: 'string[]';
  readonly default?: readonly string[];
  readonly example?: readonly string[];
  /** Allowed values of each item. */
  readonly enum?: readonly string[];
  /** A regular expression each item must match (anchored for you). */
  readonly pattern?: string;
  readonly maxItems?: number;
}

/** A file or directory; relative values are resolved against the config file's directory. */
export interface PathFieldSpec extends FieldBase {
  readonly type: 'path';
  readonly default?: string;
  readonly example?: string;
}

export interface ObjectFieldSpec {
  readonly type: 'object';
  readonly description: string;
  readonly fields: ConfigSchema;
}

/** String → string, e.g. per-module log levels. */
export interface MapFieldSpec extends FieldBase {
  readonly type: 'map';
  readonly default?: Readonly<Record<string, string>>;
  readonly example?: Readonly<Record<string, string>>;
  /** Allowed values. */
  readonly values?: readonly string[];
  /** A regular expression every key must match (anchored for you). */
  readonly keyPattern?: string;
}

export type FieldSpec =
  | StringFieldSpec
  | IntegerFieldSpec
  | BooleanFieldSpec
  | StringListFieldSpec
  | PathFieldSpec
  | ObjectFieldSpec
  | MapFieldSpec;

export type ConfigSchema = { readonly [key: string]: FieldSpec };

type FieldValue<F> = F extends { type: 'object'; fields: infer S extends ConfigSchema }
  ? InferConfig<S>
  : F extends { type: 'string'; enum: readonly (infer E extends string)[] }
    ? E
    : F extends { type: 'string' | 'path' }
      ? string
      : F extends { type: 'integer' }
        ? number
        : F extends { type: 'boolean' }
          ? boolean
          : F extends { type: 'string[]'; enum: readonly (infer E extends string)[] }
            ? E[]
            : F extends { type: 'string[]' }
              ? string[]
              : F extends { type: 'map'; values: readonly (infer E extends string)[] }
                ? Record<string, E>
                : F extends { type: 'map' }
                  ? Record<string, string>
                  : never;

/** Objects are always present (filled from their fields' defaults); others when required or defaulted. */
type AlwaysPresent<F> = F extends { type: 'object' } ? true : F extends { required: true } ? true : F extends { default: unknown } ? true : false;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The type of a loaded configuration: `InferConfig<typeof peerConfigSchema>`. */
export type InferConfig<S extends ConfigSchema> = Simplify<
  { -readonly [K in keyof S as AlwaysPresent<S[K]> extends true ? K : never]: FieldValue<S[K]> } & {
    -readonly [K in keyof S as AlwaysPresent<S[K]> extends true ? never : K]?: FieldValue<S[K]>;
  }
>;

const KEY_RE = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Checks a schema once, when the module defining it loads: bad patterns, defaults that would not
 * pass their own field, required fields without an example. These are programming errors, so they
 * throw plain errors. Returns the schema with its literal type kept for `InferConfig`.
 */
export function defineConfigSchema<const S extends ConfigSchema>(spec: S): S {
  checkSchema(spec, '');
  return spec;
}

function checkSchema(schema: ConfigSchema, prefix: string): void {
  for (const [key, field] of Object.entries(schema)) {
    const name = prefix + key;
    if (!KEY_RE.test(key)) throw new TypeError(`config schema: invalid key ${JSON.stringify(name)}`);
    if (typeof field.description !== 'string' || field.description.trim() === '') {
      throw new TypeError(`config schema: ${name} needs a description`);
    }
    if (field.type === 'object') {
      checkSchema(field.fields, `${name}.`);
      continue;
    }
    for (const p of [field.type === 'string' || field.type === 'string[]' ? field.pattern : undefined, field.type === 'map' ? field.keyPattern : undefined]) {
      if (p !== undefined) {
        try {
          anchored(p);
        } catch {
          throw new TypeError(`config schema: ${name} has an invalid pattern`);
        }
      }
    }
    if (!['string', 'integer', 'boolean', 'string[]', 'path', 'map'].includes(field.type)) {
      throw new TypeError(`config schema: ${name} has an unknown type`);
    }
    if (field.required === true) {
      if (field.default !== undefined) throw new TypeError(`config schema: ${name} is required and cannot have a default`);
      if (field.example === undefined) throw new TypeError(`config schema: ${name} is required and needs an example`);
    }
    for (const [what, v] of [['default', field.default], ['example', field.example]] as const) {
      if (v === undefined) continue;
      try {
        checkValue(field, v, name.split('.'), { baseDir: '/', source: 'schema', locate: () => undefined });
      } catch (err) {
        throw new TypeError(`config schema: the ${what} of ${name} is invalid: ${(err as Error).message}`);
      }
    }
  }
}

export interface ParseConfigOptions {
  /** Directory that relative `path` values are resolved against. Default: the working directory. */
  readonly baseDir?: string;
  /** Name of the text's origin in messages (the file name). */
  readonly source?: string;
}

interface Context {
  readonly baseDir: string;
  readonly source: string;
  /** Line of a key in the text, when the format can tell. */
  readonly locate: (path: readonly string[]) => number | undefined;
}

/** `.yaml`/`.yml` → yaml, `.json` → json. */
export function configFormatOf(path: string): ConfigFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  throw new ImeError('E_CONFIG_FILE', `${path}: a configuration file must end in .yaml, .yml or .json`, { file: path });
}

/** Reads, parses and validates a configuration file; the format follows the extension. */
export async function loadConfigFile<S extends ConfigSchema>(path: string, schema: S): Promise<InferConfig<S>> {
  const format = configFormatOf(path);
  const text = await readConfigText(path);
  return parseConfigText(text, format, schema, { baseDir: dirname(resolve(path)), source: path });
}

async function readConfigText(path: string): Promise<string> {
  const fail = (why: string): ImeError => new ImeError('E_CONFIG_FILE', `${path}: ${why}`, { file: path });
  let file;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw fail(fileErrorText(err));
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw fail('not a regular file');
    if (stat.size > MAX_CONFIG_BYTES) throw fail(`larger than ${MAX_CONFIG_BYTES} bytes`);
    // Read one byte past the limit: the file may have grown since stat.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await file.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_CONFIG_BYTES) throw fail(`larger than ${MAX_CONFIG_BYTES} bytes`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, n));
    } catch {
      throw fail('not UTF-8 text');
    }
  } catch (err) {
    if (err instanceof ImeError) throw err;
    throw fail(fileErrorText(err));
  } finally {
    await file.close();
  }
}

function fileErrorText(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'not a regular file';
    default:
      return `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}

/** Parses and validates configuration text: defaults filled, paths resolved. */
export function parseConfigText<S extends ConfigSchema>(
  text: string,
  format: ConfigFormat,
  schema: S,
  options: ParseConfigOptions = {},
): InferConfig<S> {
  const source = options.source ?? 'configuration';
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ImeError('E_CONFIG_FILE', `${source}: larger than ${MAX_CONFIG_BYTES} bytes`, { file: source });
  }
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const { value, locate } = format === 'json' ? parseJson(body, source) : parseYaml(body, source);
  const ctx: Context = { baseDir: resolve(options.baseDir ?? process.cwd()), source, locate };
  return checkObject(schema, value ?? {}, [], ctx, schema) as InferConfig<S>;
}

function syntaxError(source: string, text: string, offset: number, why: string): ImeError {
  // "Unexpected end" is found past the last line; the operator needs the last line with text on it.
  const end = text.trimEnd().length;
  const { line, column } = lineColumn(text, offset >= end ? Math.max(0, end - 1) : offset);
  return new ImeError('E_CONFIG_SYNTAX', `${source}: line ${line}, column ${column}: ${why}`, { file: source, line, column });
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: end - start + 1 };
}

function parseYaml(text: string, source: string): { value: unknown; locate: Context['locate'] } {
  // prettyErrors off: its messages quote the offending source line, which may hold anything.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  // Warnings too (an unknown tag, a collection used as a key): a config file should be plain data.
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const why = problem.message.split('\n')[0]?.slice(0, 160) ?? 'invalid YAML';
    throw syntaxError(source, text, problem.pos[0], why);
  }
  let value: unknown;
  try {
    // The alias limit stops "billion laughs" documents from expanding into gigabytes.
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ImeError('E_CONFIG_SYNTAX', `${source}: ${(err as Error).message.split('\n')[0]?.slice(0, 160)}`, { file: source });
  }
  const locate = (path: readonly string[]): number | undefined => {
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const start = node?.range?.[0];
    return start === undefined ? undefined : lineColumn(text, start).line;
  };
  return { value, locate };
}

function parseJson(text: string, source: string): { value: unknown; locate: Context['locate'] } {
  // JSON.parse's messages vary, often lack a position and quote the input; our own checker gives
  // a line and column, and refuses duplicate keys, which JSON.parse would silently collapse.
  const problem = checkJsonText(text);
  if (problem !== undefined) throw syntaxError(source, text, problem.offset, problem.why);
  return { value: JSON.parse(text) as unknown, locate: () => undefined };
}

const MAX_JSON_DEPTH = 64;

/** Strict RFC 8259 check; the first problem's offset, or undefined when the text is valid JSON. */
export function checkJsonText(text: string): { offset: number; why: string } | undefined {
  let i = 0;
  class Bad {
    constructor(
      readonly offset: number,
      readonly why: string,
    ) {}
  }
  const ws = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const unexpected = (what: string): Bad =>
    i >= text.length ? new Bad(i, `unexpected end of input, expected ${what}`) : new Bad(i, `unexpected character, expected ${what}`);
  const str = (): string => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) throw new Bad(start, 'unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return JSON.parse(text.slice(start, i)) as string;
      }
      if (c < 0x20) throw new Bad(i, 'control character in a string (escape it)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else throw new Bad(i, 'invalid escape in a string');
      } else {
        i++;
      }
    }
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (depth: number): void => {
    if (depth > MAX_JSON_DEPTH) throw new Bad(i, 'nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      const keys = new Set<string>();
      for (;;) {
        ws();
        if (text[i] !== '"') throw unexpected('a double-quoted key');
        const keyAt = i;
        const key = str();
        if (keys.has(key)) throw new Bad(keyAt, 'duplicate key');
        keys.add(key);
        ws();
        if (text[i] !== ':') throw unexpected('":"');
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        throw unexpected('"," or "}"');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        throw unexpected('"," or "]"');
      }
    }
    if (c === '"') {
      str();
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    NUMBER.lastIndex = i;
    if (NUMBER.test(text)) {
      i = NUMBER.lastIndex;
      return;
    }
    throw unexpected('a value');
  };
  try {
    ws();
    if (i >= text.length) return { offset: 0, why: 'empty document' };
    value(0);
    ws();
    if (i < text.length) throw new Bad(i, 'unexpected text after the document');
    return undefined;
  } catch (err) {
    if (err instanceof Bad) return { offset: err.offset, why: err.why };
    throw err;
  }
}

function dotted(path: readonly string[]): string {
  return path.join('.');
}

function where(path: readonly string[], ctx: Context): string {
  const line = ctx.locate(path);
  return line === undefined ? `${ctx.source}: ${dotted(path)}` : `${ctx.source}: ${dotted(path)} (line ${line})`;
}

function configError(code: ConfigErrorCode, path: readonly string[], ctx: Context, why: string, extra: Record<string, unknown> = {}): ImeError {
  const line = ctx.locate(path);
  return new ImeError(code, `${where(path, ctx)}: ${why}`, {
    file: ctx.source,
    key: dotted(path),
    ...(line === undefined ? {} : { line }),
    ...extra,
  });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function checkObject(
  schema: ConfigSchema,
  raw: unknown,
  path: readonly string[],
  ctx: Context,
  root: ConfigSchema,
): Record<string, unknown> {
  if (!isPlainObject(raw)) {
    const what = path.length === 0 ? `${ctx.source}: the top level` : where(path, ctx);
    throw new ImeError('E_CONFIG_TYPE', `${what}: expected a mapping of keys, got ${typeName(raw)}`, {
      file: ctx.source,
      key: dotted(path),
    });
  }
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(schema, key)) {
      const keyPath = [...path, key];
      const hint = suggestKey(key, schema, path, root);
      throw configError('E_CONFIG_UNKNOWN_KEY', keyPath, ctx, `unknown key${hint === undefined ? '' : ` (did you mean ${hint}?)`}`, {
        ...(hint === undefined ? {} : { suggestion: hint }),
      });
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema)) {
    const keyPath = [...path, key];
    const given = raw[key];
    if (field.type === 'object') {
      // An empty `admin:` in YAML is null: the same as leaving it out.
      setOwn(out, key, checkObject(field.fields, given ?? {}, keyPath, ctx, root));
      continue;
    }
    if (given === undefined || given === null) {
      if (field.default !== undefined) setOwn(out, key, checkValue(field, field.default, keyPath, ctx));
      else if (field.required === true) throw configError('E_CONFIG_MISSING', keyPath, { ...ctx, locate: () => undefined }, 'required key missing');
      continue;
    }
    setOwn(out, key, checkValue(field, given, keyPath, ctx));
  }
  return out;
}

type LeafSpec = Exclude<FieldSpec, ObjectFieldSpec>;

function checkValue(field: LeafSpec, v: unknown, path: readonly string[], ctx: Context): unknown {
  const typeError = (expected: string): ImeError => configError('E_CONFIG_TYPE', path, ctx, `expected ${expected}, got ${typeName(v)}`);
  const rangeError = (why: string): ImeError => configError('E_CONFIG_RANGE', path, ctx, why);
  switch (field.type) {
    case 'string': {
      if (typeof v !== 'string') throw typeError('a string');
      checkString(v, field, rangeError);
      return v;
    }
    case 'integer': {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw typeError('an integer');
      if (!Number.isSafeInteger(v)) throw rangeError('too large');
      if (field.min !== undefined && v < field.min) throw rangeError(rangeText(field));
      if (field.max !== undefined && v > field.max) throw rangeError(rangeText(field));
      return v;
    }
    case 'boolean': {
      if (typeof v !== 'boolean') throw typeError('true or false');
      return v;
    }
    case 'path': {
      if (typeof v !== 'string') throw typeError('a path (string)');
      if (v === '') throw rangeError('must not be empty');
      if (v.includes('\u0000')) throw rangeError('must not contain a NUL character');
      return resolve(ctx.baseDir, v);
    }
    case 'string[]': {
      if (!Array.isArray(v)) throw typeError('a list of strings');
      if (field.maxItems !== undefined && v.length > field.maxItems) throw rangeError(`at most ${field.maxItems} items`);
      return v.map((item: unknown, n) => {
        if (typeof item !== 'string') {
          throw configError('E_CONFIG_TYPE', [...path, String(n)], ctx, `expected a string, got ${typeName(item)}`);
        }
        checkString(item, field, (why) => configError('E_CONFIG_RANGE', [...path, String(n)], ctx, why));
        return item;
      });
    }
    case 'map': {
      if (!isPlainObject(v)) throw typeError('a mapping of strings');
      const keyRe = field.keyPattern === undefined ? undefined : anchored(field.keyPattern);
      const out: Record<string, string> = {};
      for (const [k, item] of Object.entries(v)) {
        const itemPath = [...path, k];
        if (keyRe !== undefined && !keyRe.test(k)) {
          throw configError('E_CONFIG_RANGE', itemPath, ctx, `key does not match ${field.keyPattern}`);
        }
        if (typeof item !== 'string') throw configError('E_CONFIG_TYPE', itemPath, ctx, `expected a string, got ${typeName(item)}`);
        if (field.values !== undefined && !field.values.includes(item)) {
          throw configError('E_CONFIG_RANGE', itemPath, ctx, `must be one of ${field.values.join(', ')} (got ${describeInput(item)})`);
        }
        setOwn(out, k, item);
      }
      return out;
    }
  }
}

function checkString(v: string, field: StringFieldSpec | StringListFieldSpec, rangeError: (why: string) => ImeError): void {
  if (field.enum !== undefined && !field.enum.includes(v)) {
    throw rangeError(`must be one of ${field.enum.join(', ')} (got ${describeInput(v)})`);
  }
  if (field.type === 'string' && field.maxLength !== undefined && v.length > field.maxLength) {
    throw rangeError(`at most ${field.maxLength} characters`);
  }
  // The value itself is not echoed: a mistyped value may be a secret pasted into the wrong key.
  if (field.pattern !== undefined && !anchored(field.pattern).test(v)) throw rangeError(`does not match ${field.pattern}`);
}

const anchoredCache = new Map<string, RegExp>();
function anchored(pattern: string): RegExp {
  let re = anchoredCache.get(pattern);
  if (re === undefined) {
    re = new RegExp(`^(?:${pattern})$`, 'u');
    anchoredCache.set(pattern, re);
  }
  return re;
}

function rangeText(field: IntegerFieldSpec): string {
  if (field.min !== undefined && field.max !== undefined) return `must be between ${field.min} and ${field.max}`;
  if (field.min !== undefined) return `must be at least ${field.min}`;
  return `must be at most ${field.max}`;
}

/** Levenshtein distance, case-insensitive (keys differ in case more than anything). */
function distance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[t.length] ?? 0;
}

/**
 * The known key an unknown one was probably meant to be: a near spelling at the same level, else
 * the same name elsewhere in the schema (a key put at the wrong nesting level).
 */
function suggestKey(key: string, schema: ConfigSchema, path: readonly string[], root: ConfigSchema): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const known of Object.keys(schema)) {
    const d = distance(key, known);
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3))) return dotted([...path, best]);
  const elsewhere: string[] = [];
  const walk = (s: ConfigSchema, prefix: readonly string[]): void => {
    for (const [k, f] of Object.entries(s)) {
      if (k.toLowerCase() === key.toLowerCase()) elsewhere.push(dotted([...prefix, k]));
      if (f.type === 'object') walk(f.fields, [...prefix, k]);
    }
  };
  walk(root, []);
  return elsewhere[0];
}

/** Default (or, for required keys, example) values as written in a file: paths not resolved. */
function exampleValues(schema: ConfigSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema)) {
    if (field.type === 'object') out[key] = exampleValues(field.fields);
    else {
      const v = field.default ?? field.example;
      if (v !== undefined) out[key] = v;
    }
  }
  return out;
}

export interface RenderDefaultConfigOptions {
  /** Comment lines at the top of a YAML file (ignored for JSON, which has no comments). */
  readonly header?: string;
}

/**
 * The default configuration as a file: YAML with each key's description as a comment (keys without
 * a default are shown commented out), or JSON. Either loads back as it is.
 */
export function renderDefaultConfig(schema: ConfigSchema, format: ConfigFormat, options: RenderDefaultConfigOptions = {}): string {
  if (format === 'json') return `${JSON.stringify(exampleValues(schema), null, 2)}\n`;
  const lines: string[] = [];
  if (options.header !== undefined) {
    for (const l of options.header.split('\n')) lines.push(l === '' ? '#' : `# ${l}`);
    lines.push('');
  }
  renderYamlFields(schema, 0, lines);
  return `${lines.join('\n')}\n`;
}

function renderYamlFields(schema: ConfigSchema, indent: number, lines: string[]): void {
  const pad = ' '.repeat(indent);
  let first = true;
  for (const [key, field] of Object.entries(schema)) {
    if (!first && indent === 0) lines.push('');
    first = false;
    for (const l of wrap(field.description, 96 - indent)) lines.push(`${pad}# ${l}`);
    const constraint = constraintText(field);
    if (constraint !== '') lines.push(`${pad}# (${constraint}${field.type !== 'object' && field.required === true ? '; required' : ''})`);
    else if (field.type !== 'object' && field.required === true) lines.push(`${pad}# (required)`);
    const k = yamlScalar(key);
    if (field.type === 'object') {
      lines.push(`${pad}${k}:`);
      renderYamlFields(field.fields, indent + 2, lines);
      continue;
    }
    const v = field.default ?? field.example;
    if (v === undefined) {
      lines.push(`${pad}# ${k}:`);
    } else if (Array.isArray(v)) {
      if (v.length === 0) lines.push(`${pad}${k}: []`);
      else {
        lines.push(`${pad}${k}:`);
        for (const item of v) lines.push(`${pad}  - ${yamlScalar(item)}`);
      }
    } else if (typeof v === 'object') {
      const entries = Object.entries(v);
      if (entries.length === 0) lines.push(`${pad}${k}: {}`);
      else {
        lines.push(`${pad}${k}:`);
        for (const [mk, mv] of entries) lines.push(`${pad}  ${yamlScalar(mk)}: ${yamlScalar(mv)}`);
      }
    } else {
      lines.push(`${pad}${k}: ${yamlScalar(v)}`);
    }
  }
}

function yamlScalar(v: unknown): string {
  if (typeof v !== 'string') return String(v);
  // yaml picks plain or quoted style as needed ("08", "yes", "a: b"); a multi-line result (block
  // scalar) would need re-indenting, so fall back to JSON's quoting, which YAML reads too.
  const out = yamlStringify(v, { lineWidth: 0 }).trimEnd();
  return out.includes('\n') ? JSON.stringify(v) : out;
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(/\s+/).filter((w) => w !== '')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    out.push(line);
  }
  return out;
}

function constraintText(field: FieldSpec, quote: (text: string) => string = (t) => t): string {
  switch (field.type) {
    case 'string':
      if (field.enum !== undefined) return `one of ${field.enum.join(', ')}`;
      return field.pattern !== undefined ? `matching ${quote(field.pattern)}` : '';
    case 'integer':
      if (field.min !== undefined && field.max !== undefined) return `${field.min}–${field.max}`;
      if (field.min !== undefined) return `at least ${field.min}`;
      return field.max !== undefined ? `at most ${field.max}` : '';
    case 'path':
      return 'relative to this file';
    case 'string[]':
      if (field.enum !== undefined) return `each one of ${field.enum.join(', ')}`;
      return field.pattern !== undefined ? `each matching ${quote(field.pattern)}` : '';
    case 'map':
      return field.values !== undefined ? `values one of ${field.values.join(', ')}` : '';
    default:
      return '';
  }
}

function typeText(field: FieldSpec): string {
  const c = constraintText(field, code);
  const base = field.type === 'map' ? 'map (string → string)' : field.type;
  return c === '' || field.type === 'path' ? base : `${base}, ${c}`;
}

function code(v: unknown): string {
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

/** A markdown table of every key (dotted), its type, default and description, under a heading. */
export function renderConfigReference(schema: ConfigSchema, title: string): string {
  const rows: string[] = [];
  const walk = (s: ConfigSchema, prefix: readonly string[]): void => {
    for (const [key, field] of Object.entries(s)) {
      const name = dotted([...prefix, key]);
      let def: string;
      if (field.type === 'object') def = '';
      else if (field.required === true) def = `*required*, e.g. ${code(field.example)}`;
      else if (field.default === undefined) def = '—';
      else def = code(field.default);
      rows.push(`| ${cell(code(name))} | ${cell(typeText(field))} | ${cell(def)} | ${cell(field.description)} |`);
      if (field.type === 'object') walk(field.fields, [...prefix, key]);
    }
  };
  walk(schema, []);
  return `### ${title}\n\n| key | type | default | description |\n|---|---|---|---|\n${rows.join('\n')}\n`;
}
