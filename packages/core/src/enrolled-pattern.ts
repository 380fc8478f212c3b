import { E164_MAX_DIGITS, type E164, e164Problem } from './e164.js';
import { ImeError, describeInput } from './errors.js';

/**
 * An enrolled pattern names the DIDs an enterprise publishes: `+`, up to 15 characters, the last up
 * to three of which may be the wildcard `X` standing for any digit (guide L2854–L2862). It always
 * describes numbers of one length, so two patterns overlap only when one contains the other.
 */
export interface EnrolledPattern {
  /** Canonical text, wildcards upper case: `+14089021XXX`. */
  readonly text: string;
  /** The fixed part, `+` included: `+14089021`. */
  readonly prefix: string;
  /** Number of trailing wildcards, 0–3. */
  readonly wildcards: number;
}

export const PATTERN_MAX_WILDCARDS = 3;

export type PatternErrorCode =
  | 'E_PATTERN_NOT_STRING'
  | 'E_PATTERN_EMPTY'
  | 'E_PATTERN_MISSING_PLUS'
  | 'E_PATTERN_NO_DIGITS'
  | 'E_PATTERN_INVALID_CHARACTER'
  | 'E_PATTERN_WILDCARD_NOT_TRAILING'
  | 'E_PATTERN_TOO_MANY_WILDCARDS'
  | 'E_PATTERN_TOO_LONG';

export type ExclusionErrorCode = 'E_EXCLUSION_WILDCARD';

function isWildcard(c: number): boolean {
  return c === 0x58 || c === 0x78; // X or x
}

/** Validates an enrolled pattern, throwing an ImeError with an `E_PATTERN_…` code when malformed. */
export function parseEnrolledPattern(input: unknown): EnrolledPattern {
  if (typeof input !== 'string') {
    throw new ImeError('E_PATTERN_NOT_STRING', `an enrolled pattern must be a string, got ${describeInput(input)}`);
  }
  if (input.length === 0) throw new ImeError('E_PATTERN_EMPTY', 'an enrolled pattern must not be empty');
  if (input[0] !== '+') {
    throw new ImeError('E_PATTERN_MISSING_PLUS', `pattern ${describeInput(input)} must start with "+"`);
  }
  let wildcards = 0;
  for (let i = 1; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (isWildcard(c)) {
      wildcards++;
    } else if (c >= 0x30 && c <= 0x39) {
      if (wildcards > 0) {
        throw new ImeError(
          'E_PATTERN_WILDCARD_NOT_TRAILING',
          `pattern ${describeInput(input)} has a digit after an X; wildcards may only end a pattern`,
          { position: i + 1 },
        );
      }
    } else {
      throw new ImeError(
        'E_PATTERN_INVALID_CHARACTER',
        `pattern ${describeInput(input)}: character ${i + 1} is neither a digit nor X`,
        { position: i + 1 },
      );
    }
  }
  const length = input.length - 1;
  if (length > E164_MAX_DIGITS) {
    throw new ImeError(
      'E_PATTERN_TOO_LONG',
      `pattern ${describeInput(input)} has ${length} characters after "+"; at most ${E164_MAX_DIGITS} are allowed`,
    );
  }
  if (wildcards > PATTERN_MAX_WILDCARDS) {
    throw new ImeError(
      'E_PATTERN_TOO_MANY_WILDCARDS',
      `pattern ${describeInput(input)} has ${wildcards} wildcards; at most ${PATTERN_MAX_WILDCARDS} are allowed`,
    );
  }
  if (wildcards === length) {
    throw new ImeError('E_PATTERN_NO_DIGITS', `pattern ${describeInput(input)} needs at least one digit before the X`);
  }
  const prefix = input.slice(0, input.length - wildcards);
  return { text: prefix + 'X'.repeat(wildcards), prefix, wildcards };
}

/**
 * Validates an exclusion number: an exact +E.164 number (guide L2880–L2944). A wildcard gets its own
 * code because it is the usual mistake (pasting a pattern into the exclusion list).
 */
export function parseExclusionNumber(input: unknown): E164 {
  if (typeof input === 'string' && /[Xx]/.test(input)) {
    throw new ImeError(
      'E_EXCLUSION_WILDCARD',
      `exclusion ${describeInput(input)} contains a wildcard; exclusions are exact +E.164 numbers`,
    );
  }
  const problem = e164Problem(input);
  if (problem) throw problem;
  return input as E164;
}

/** How many DIDs a pattern names, without expanding it. */
export function patternSize(pattern: EnrolledPattern): number {
  return 10 ** pattern.wildcards;
}

export function patternMatches(pattern: EnrolledPattern, number: string): boolean {
  if (number.length !== pattern.prefix.length + pattern.wildcards || !number.startsWith(pattern.prefix)) return false;
  // The wildcard positions must hold digits, as in the DIDs expandPatterns produces.
  for (let i = pattern.prefix.length; i < number.length; i++) {
    const c = number.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** True when every DID of `inner` is also a DID of `outer`. */
export function patternContains(outer: EnrolledPattern, inner: EnrolledPattern): boolean {
  return (
    outer.prefix.length + outer.wildcards === inner.prefix.length + inner.wildcards &&
    outer.wildcards >= inner.wildcards &&
    inner.prefix.startsWith(outer.prefix)
  );
}

/**
 * Drops duplicates and patterns contained in another one, so the rest name disjoint sets of DIDs and
 * can be counted or expanded without a set of every number seen. Linear: a pattern with w wildcards
 * can only be contained in the pattern that keeps the first digits and has w+1, w+2 or 3 wildcards,
 * so at most three lookups decide it (a quota of 100 000 exact numbers must not cost n²).
 */
export function disjointPatterns(patterns: readonly EnrolledPattern[]): EnrolledPattern[] {
  const present = new Set(patterns.map((p) => p.text));
  const kept: EnrolledPattern[] = [];
  const seen = new Set<string>();
  for (const p of patterns) {
    if (seen.has(p.text)) continue;
    seen.add(p.text);
    let contained = false;
    for (let w = p.wildcards + 1; w <= PATTERN_MAX_WILDCARDS && !contained; w++) {
      const cut = p.prefix.length - (w - p.wildcards);
      contained = cut > 1 && present.has(p.prefix.slice(0, cut) + 'X'.repeat(w));
    }
    if (!contained) kept.push(p);
  }
  return kept;
}

const suffixTables: string[][] = [];

/** All `10^n` digit strings of length n in order, built once per n. */
function suffixes(n: number): string[] {
  let table = suffixTables[n];
  if (!table) {
    table = [];
    const count = 10 ** n;
    for (let i = 0; i < count; i++) table.push(n === 0 ? '' : String(i).padStart(n, '0'));
    suffixTables[n] = table;
  }
  return table;
}

/**
 * The unique DIDs named by the patterns, minus the exclusion numbers, in a stable order. With 3
 * wildcards per pattern, a million DIDs is a thousand patterns.
 */
export function expandPatterns(
  patterns: readonly EnrolledPattern[],
  exclusions: Iterable<string> = [],
): E164[] {
  const excluded = exclusions instanceof Set ? (exclusions as ReadonlySet<string>) : new Set(exclusions);
  const out: E164[] = [];
  for (const p of disjointPatterns(patterns)) {
    for (const suffix of suffixes(p.wildcards)) {
      const number = p.prefix + suffix;
      if (excluded.size === 0 || !excluded.has(number)) out.push(number as E164);
    }
  }
  return out;
}

/** The number of unique DIDs `expandPatterns` would return, computed without expanding. */
export function countDids(patterns: readonly EnrolledPattern[], exclusions: Iterable<string> = []): number {
  const kept = disjointPatterns(patterns);
  let total = 0;
  for (const p of kept) total += patternSize(p);
  for (const number of new Set(exclusions)) {
    if (kept.some((p) => patternMatches(p, number))) total--;
  }
  return total;
}
