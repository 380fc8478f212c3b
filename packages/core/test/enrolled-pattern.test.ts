import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import {
  type EnrolledPattern,
  PATTERN_MAX_WILDCARDS,
  countDids,
  disjointPatterns,
  expandPatterns,
  parseEnrolledPattern,
  parseExclusionNumber,
  patternContains,
  patternMatches,
  patternSize,
} from '../src/enrolled-pattern.js';
import { isE164 } from '../src/e164.js';
import { expectSafeMessage, thrown } from './helpers.js';

const P = (text: string): EnrolledPattern => parseEnrolledPattern(text);

/** Independent oracle: every number a pattern text names, by replacing each X with each digit. */
function namesOf(text: string): string[] {
  const at = text.search(/[Xx]/);
  if (at < 0) return [text];
  const out: string[] = [];
  for (const d of '0123456789') out.push(...namesOf(text.slice(0, at) + d + text.slice(at + 1)));
  return out;
}

describe('parseEnrolledPattern: valid patterns', () => {
  it.each<[string, string, string, number]>([
    // the guide's examples (L2861–L2863)
    ['+14089021xxx', '+14089021XXX', '+14089021', 3],
    ['+191937611xx', '+191937611XX', '+191937611', 2],
    ['+14089523513', '+14089523513', '+14089523513', 0],
    ['+1408902100X', '+1408902100X', '+1408902100', 1],
    ['+1408902100x', '+1408902100X', '+1408902100', 1],
    ['+1xX', '+1XX', '+1', 2],
    ['+1', '+1', '+1', 0],
    ['+1X', '+1X', '+1', 1],
    ['+123456789012345', '+123456789012345', '+123456789012345', 0], // 15 digits
    ['+123456789012XXX', '+123456789012XXX', '+123456789012', 3], // 15 characters
  ])('parses %s', (input, text, prefix, wildcards) => {
    expect(parseEnrolledPattern(input)).toEqual({ text, prefix, wildcards });
  });

  it('allows at most 3 wildcards', () => {
    expect(PATTERN_MAX_WILDCARDS).toBe(3);
  });
});

describe('parseEnrolledPattern: malformed input', () => {
  it.each<[string, string, unknown]>([
    ['E_PATTERN_NOT_STRING', 'a number', 14089021000],
    ['E_PATTERN_NOT_STRING', 'null', null],
    ['E_PATTERN_NOT_STRING', 'undefined', undefined],
    ['E_PATTERN_EMPTY', 'the empty string', ''],
    ['E_PATTERN_MISSING_PLUS', 'no plus', '14089021XXX'],
    ['E_PATTERN_MISSING_PLUS', 'a leading X', 'X4089021000'],
    ['E_PATTERN_NO_DIGITS', '+ alone', '+'],
    ['E_PATTERN_NO_DIGITS', 'only wildcards', '+XXX'],
    ['E_PATTERN_NO_DIGITS', 'one wildcard only', '+x'],
    ['E_PATTERN_INVALID_CHARACTER', 'a letter other than X', '+1408902100Y'],
    ['E_PATTERN_INVALID_CHARACTER', 'a space', '+1408 9021XXX'],
    ['E_PATTERN_INVALID_CHARACTER', 'a ! wildcard', '+14089021!'],
    ['E_PATTERN_INVALID_CHARACTER', 'a * wildcard', '+14089021*'],
    ['E_PATTERN_INVALID_CHARACTER', 'a second +', '+1+4089021XXX'],
    ['E_PATTERN_WILDCARD_NOT_TRAILING', 'a digit after X', '+1408902X1'],
    ['E_PATTERN_WILDCARD_NOT_TRAILING', 'an X in the middle', '+14X89021000'],
    ['E_PATTERN_WILDCARD_NOT_TRAILING', 'a leading X after +', '+X1'],
    ['E_PATTERN_TOO_MANY_WILDCARDS', '4 wildcards', '+1408902XXXX'],
    ['E_PATTERN_TOO_MANY_WILDCARDS', '4 wildcards, no digit', '+XXXX'],
    ['E_PATTERN_TOO_LONG', '16 digits', '+1234567890123456'],
    ['E_PATTERN_TOO_LONG', '16 characters with X', '+1234567890123XXX'],
    ['E_PATTERN_TOO_LONG', 'a 1000-character pattern', '+' + '1'.repeat(1000)],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => parseEnrolledPattern(input));
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('reports where a misplaced digit is', () => {
    const err = thrown(() => parseEnrolledPattern('+1408902X1'));
    expect(err.details).toEqual({ position: 10 });
  });

  it('shortens long patterns in the message', () => {
    const err = thrown(() => parseEnrolledPattern('+' + '1'.repeat(1000)));
    expect(err.message).not.toContain('1'.repeat(41));
    expect(err.message).toContain('1000 characters');
  });
});

describe('parseExclusionNumber', () => {
  it('accepts an exact +E.164 number', () => {
    expect(parseExclusionNumber('+14089021001')).toBe('+14089021001');
  });

  it.each<[string, string, unknown]>([
    ['E_EXCLUSION_WILDCARD', 'a pattern (upper-case X)', '+14089021XXX'],
    ['E_EXCLUSION_WILDCARD', 'a pattern (lower-case x)', '+1408902100x'],
    ['E_E164_NOT_STRING', 'a number value', 14089021001],
    ['E_E164_NOT_STRING', 'null', null],
    ['E_E164_EMPTY', 'the empty string', ''],
    ['E_E164_MISSING_PLUS', 'no plus', '14089021001'],
    ['E_E164_NO_DIGITS', '+ alone', '+'],
    ['E_E164_INVALID_CHARACTER', 'a ! wildcard', '+1408!'],
    ['E_E164_TOO_LONG', '16 digits', '+1234567890123456'],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => parseExclusionNumber(input));
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });
});

describe('pattern size and matching', () => {
  it.each<[string, number]>([
    ['+14089523513', 1],
    ['+1408952351X', 10],
    ['+140895235XX', 100],
    ['+14089523XXX', 1000],
  ])('%s names %i DIDs', (text, size) => {
    expect(patternSize(P(text))).toBe(size);
    expect(countDids([P(text)])).toBe(size);
    expect(expandPatterns([P(text)])).toHaveLength(size);
  });

  it('matches only numbers of the pattern length that start with its prefix', () => {
    const p = P('+14089021XXX');
    expect(patternMatches(p, '+14089021000')).toBe(true);
    expect(patternMatches(p, '+14089021999')).toBe(true);
    expect(patternMatches(p, '+14089022000')).toBe(false);
    expect(patternMatches(p, '+1408902100')).toBe(false);
    expect(patternMatches(p, '+140890210000')).toBe(false);
  });

  it('does not match a string with non-digits where the wildcards are', () => {
    const p = P('+14089021XXX');
    expect(patternMatches(p, '+14089021abc')).toBe(false);
    expect(patternMatches(p, '+14089021XXX')).toBe(false);
  });

  it('containment requires the same length and a shorter or equal prefix', () => {
    expect(patternContains(P('+14089021XXX'), P('+140890211XX'))).toBe(true);
    expect(patternContains(P('+14089021XXX'), P('+14089021123'))).toBe(true);
    expect(patternContains(P('+14089021XXX'), P('+14089021XXX'))).toBe(true);
    expect(patternContains(P('+140890211XX'), P('+14089021XXX'))).toBe(false);
    expect(patternContains(P('+14089021XXX'), P('+1408902XXX'))).toBe(false); // different length
    expect(patternContains(P('+14089021XXX'), P('+140890221XX'))).toBe(false);
  });
});

describe('expandPatterns', () => {
  it('expands a pattern into its DIDs in order', () => {
    expect(expandPatterns([P('+1408902100X')])).toEqual([
      '+14089021000',
      '+14089021001',
      '+14089021002',
      '+14089021003',
      '+14089021004',
      '+14089021005',
      '+14089021006',
      '+14089021007',
      '+14089021008',
      '+14089021009',
    ]);
  });

  it('expands 3 wildcards into 1 000 valid, distinct +E.164 DIDs', () => {
    const dids = expandPatterns([P('+14089021XXX')]);
    expect(dids).toHaveLength(1000);
    expect(new Set(dids).size).toBe(1000);
    expect(dids[0]).toBe('+14089021000');
    expect(dids[999]).toBe('+14089021999');
    expect(dids.every((d) => isE164(d) && d.startsWith('+14089021') && d.length === 12)).toBe(true);
  });

  it('removes exclusion numbers', () => {
    const dids = expandPatterns([P('+1408902100X')], ['+14089021003', '+14089021007']);
    expect(dids).toHaveLength(8);
    expect(dids).not.toContain('+14089021003');
    expect(dids).not.toContain('+14089021007');
    expect(dids).toContain('+14089021000');
  });

  it('accepts exclusions as a Set', () => {
    const dids = expandPatterns([P('+1408902100X')], new Set(['+14089021000']));
    expect(dids).toHaveLength(9);
    expect(dids).not.toContain('+14089021000');
  });

  it('ignores exclusions outside every pattern', () => {
    expect(expandPatterns([P('+1408902100X')], ['+19195550000', '+1408902100'])).toHaveLength(10);
    expect(countDids([P('+1408902100X')], ['+19195550000', '+1408902100'])).toBe(10);
  });

  it('expands overlapping patterns to unique DIDs', () => {
    const patterns = ['+14089021XXX', '+140890211XX', '+14089021123', '+14089021XXX'].map(P);
    const dids = expandPatterns(patterns);
    expect(dids).toHaveLength(1000);
    expect(new Set(dids).size).toBe(1000);
    expect(countDids(patterns)).toBe(1000);
  });

  it('keeps patterns of different lengths apart (they never overlap)', () => {
    const patterns = ['+1408902XXX', '+14089021XXX'].map(P);
    expect(countDids(patterns)).toBe(2000);
    expect(new Set(expandPatterns(patterns)).size).toBe(2000);
  });

  it('counts an exclusion inside overlapping patterns once', () => {
    const patterns = ['+14089021XXX', '+140890211XX'].map(P);
    expect(countDids(patterns, ['+14089021100', '+14089021100'])).toBe(999);
    expect(expandPatterns(patterns, ['+14089021100', '+14089021100'])).toHaveLength(999);
  });

  it('gives nothing for no patterns', () => {
    expect(expandPatterns([])).toEqual([]);
    expect(countDids([], ['+14089021000'])).toBe(0);
  });

  it('does not count a non-digit exclusion that expandPatterns cannot exclude', () => {
    const patterns = [P('+14089021XXX')];
    const exclusions = ['+14089021abc', '+14089021XXX', '+14089021001'];
    expect(expandPatterns(patterns, exclusions)).toHaveLength(999);
    expect(countDids(patterns, exclusions)).toBe(999);
  });
});

describe('countDids without expanding', () => {
  it('counts a pattern with 3 X as 1 000 DIDs', () => {
    expect(countDids([P('+14089021XXX')])).toBe(1000);
  });

  it('counts a million DIDs from a thousand 3-X patterns, minus exclusions', () => {
    const patterns: EnrolledPattern[] = [];
    for (let i = 0; i < 1000; i++) patterns.push(P(`+1408${String(i).padStart(3, '0')}1XXX`));
    expect(countDids(patterns)).toBe(1_000_000);
    expect(countDids(patterns, ['+14080001000', '+14089991999', '+19999999999'])).toBe(999_998);
  });

  it('drops duplicates and contained patterns', () => {
    const kept = disjointPatterns(['+140890211XX', '+14089021XXX', '+14089021123', '+14089021XXX', '+1555'].map(P));
    expect(kept.map((p) => p.text).sort()).toEqual(['+14089021XXX', '+1555']);
  });
});

describe('countDids equals expandPatterns(...).length (property)', () => {
  // Small patterns over the digits 0 and 1 so that overlaps and duplicates are frequent.
  const patternArb = fc
    .tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }))
    .filter(([len, x]) => x < len)
    .chain(([len, x]) =>
      fc
        .string({ unit: fc.constantFrom('0', '1'), minLength: len - x, maxLength: len - x })
        .map((digits) => `+${digits}${'X'.repeat(x)}`),
    );
  const exclusionArb = fc
    .string({ unit: fc.constantFrom('0', '1', '2'), minLength: 1, maxLength: 5 })
    .map((digits) => `+${digits}`);

  it('holds for random small patterns and exclusions', () => {
    fc.assert(
      fc.property(fc.array(patternArb, { maxLength: 8 }), fc.array(exclusionArb, { maxLength: 12 }), (texts, exclusions) => {
        const patterns = texts.map(P);
        const dids = expandPatterns(patterns, exclusions.map(parseExclusionNumber));
        expect(countDids(patterns, exclusions)).toBe(dids.length);

        // and the expansion is exactly the union of the patterns minus the exclusions, without duplicates
        const excluded = new Set(exclusions);
        const expected = new Set(texts.flatMap(namesOf).filter((n) => !excluded.has(n)));
        expect(new Set(dids).size).toBe(dids.length);
        expect(new Set(dids)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('oracle sanity: namesOf expands wildcards', () => {
    expect(namesOf('+1X')).toHaveLength(10);
    expect(namesOf('+1XX')).toHaveLength(100);
    expect(namesOf('+12')).toEqual(['+12']);
  });
});
