import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { E164_MAX_DIGITS, e164Problem, isE164, parseE164 } from '../src/e164.js';
import { ImeError, describeInput, isImeError, remoteErrorCode } from '../src/errors.js';
import { expectSafeMessage, thrown } from './helpers.js';

describe('parseE164: valid numbers', () => {
  it.each([
    ['+1'],
    ['+0'],
    ['+14089021000'],
    ['+441632960000'],
    ['+123456789012345'], // exactly 15 digits
  ])('accepts %s and returns it unchanged', (input) => {
    expect(parseE164(input)).toBe(input);
    expect(isE164(input)).toBe(true);
    expect(e164Problem(input)).toBeUndefined();
  });

  it('accepts every length from 1 to 15 digits', () => {
    for (let n = 1; n <= E164_MAX_DIGITS; n++) {
      const input = '+' + '9'.repeat(n);
      expect(parseE164(input)).toBe(input);
    }
    expect(E164_MAX_DIGITS).toBe(15);
  });

  it('accepts any + followed by 1-15 ASCII digits (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 15 }), (digits) => {
        expect(parseE164('+' + digits)).toBe('+' + digits);
      }),
    );
  });
});

describe('parseE164: malformed input', () => {
  it.each<[string, string, unknown]>([
    ['E_E164_NOT_STRING', 'a number value', 14089021000],
    ['E_E164_NOT_STRING', 'null', null],
    ['E_E164_NOT_STRING', 'undefined', undefined],
    ['E_E164_NOT_STRING', 'an object', { number: '+1' }],
    ['E_E164_NOT_STRING', 'a String object', new String('+1')],
    ['E_E164_EMPTY', 'the empty string', ''],
    ['E_E164_MISSING_PLUS', 'digits without +', '14089021000'],
    ['E_E164_MISSING_PLUS', 'a leading space', ' +14089021000'],
    ['E_E164_MISSING_PLUS', '00 international prefix', '0014089021000'],
    ['E_E164_MISSING_PLUS', 'a fullwidth plus', '\uFF0B14089021000'],
    ['E_E164_NO_DIGITS', '+ alone', '+'],
    ['E_E164_INVALID_CHARACTER', 'a letter', '+1408902100a'],
    ['E_E164_INVALID_CHARACTER', 'a space', '+1 408 902 1000'],
    ['E_E164_INVALID_CHARACTER', 'a dash', '+1-408-902-1000'],
    ['E_E164_INVALID_CHARACTER', 'a second +', '++14089021000'],
    ['E_E164_INVALID_CHARACTER', 'a trailing newline', '+14089021000\n'],
    ['E_E164_INVALID_CHARACTER', 'a wildcard', '+1408902100X'],
    ['E_E164_INVALID_CHARACTER', 'Arabic-Indic digits', '+\u0661\u0662\u0663'],
    ['E_E164_INVALID_CHARACTER', 'fullwidth digits', '+\uFF11\uFF12'],
    ['E_E164_TOO_LONG', '16 digits', '+1234567890123456'],
    ['E_E164_TOO_LONG', '100 digits', '+' + '1'.repeat(100)],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => parseE164(input));
    expect(err.code).toBe(code);
    expect(isE164(input)).toBe(false);
    expect(e164Problem(input)?.code).toBe(code);
    expectSafeMessage(err);
  });

  it('reports the 1-based position of the first bad character', () => {
    const err = thrown(() => parseE164('+1408x021000'));
    expect(err.code).toBe('E_E164_INVALID_CHARACTER');
    expect(err.details).toEqual({ position: 6 });
    expect(err.message).toContain('character 6');
  });

  it('reports the digit count of an overlong number', () => {
    const err = thrown(() => parseE164('+1234567890123456'));
    expect(err.details).toEqual({ digits: 16 });
    expect(err.message).toContain('16 digits');
    expect(err.message).toContain('15');
  });

  it('rejects every string whose first character is not + (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((s) => s[0] !== '+'),
        (s) => {
          expect(e164Problem(s)?.code).toBe('E_E164_MISSING_PLUS');
        },
      ),
    );
  });

  it('rejects every + string with a non-digit character (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 7 }),
        fc.string({ minLength: 1, maxLength: 1 }).filter((c) => c < '0' || c > '9'),
        fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 7 }),
        (a, bad, b) => {
          expect(e164Problem(`+${a}${bad}${b}`)?.code).toBe('E_E164_INVALID_CHARACTER');
        },
      ),
    );
  });
});

describe('E.164 error messages', () => {
  it('are informative and carry no stack trace', () => {
    const err = thrown(() => parseE164('14089021000'));
    expect(err.name).toBe('ImeError');
    expect(err.message).toContain('"14089021000"');
    expect(err.message).toContain('+');
    expect(err.message).not.toMatch(/\n\s+at /);
    expect(JSON.stringify(err)).not.toContain('stack');
    expect(err.toJSON()).toEqual({ code: 'E_E164_MISSING_PLUS', message: err.message });
  });

  it('truncate long untrusted input', () => {
    const long = '+' + 'a'.repeat(5000);
    const err = thrown(() => parseE164(long));
    expect(err.code).toBe('E_E164_INVALID_CHARACTER');
    expect(err.message.length).toBeLessThan(200);
    expect(err.message).toContain('…');
    expect(err.message).not.toContain('a'.repeat(41));
  });

  it('escape control characters from the input', () => {
    const err = thrown(() => parseE164('\u001b[31mred'));
    expect(err.message).not.toContain('\u001b');
    expect(err.message).toContain('\\u001b');
  });

  it('describe a non-string by its type, not its contents', () => {
    const err = thrown(() => parseE164({ secret: 'hunter2' }));
    expect(err.message).toContain('object');
    expect(err.message).not.toContain('hunter2');
  });
});

describe('errors helpers', () => {
  it('isImeError tells ImeErrors from other errors', () => {
    expect(isImeError(new ImeError('E_X', 'x'))).toBe(true);
    expect(isImeError(new Error('x'))).toBe(false);
    expect(isImeError({ code: 'E_X', message: 'x' })).toBe(false);
  });

  it('toJSON includes details only when present', () => {
    expect(new ImeError('E_X', 'm').toJSON()).toEqual({ code: 'E_X', message: 'm' });
    expect(new ImeError('E_X', 'm', { a: 1 }).toJSON()).toEqual({ code: 'E_X', message: 'm', details: { a: 1 } });
  });

  it.each<[unknown, string]>([
    ['abc', '"abc"'],
    ['x'.repeat(40), JSON.stringify('x'.repeat(40))],
    ['x'.repeat(41), JSON.stringify('x'.repeat(40) + '…')],
    [null, 'null'],
    [undefined, 'undefined'],
    [42, 'number'],
    [{ a: 1 }, 'object'],
  ])('describeInput(%p) is %s', (value, shown) => {
    expect(describeInput(value)).toBe(shown);
  });
});

describe('remoteErrorCode', () => {
  it.each([
    ['E_OVER_QUOTA', 'E_OVER_QUOTA'],
    ['', 'E_INTERNAL'],
    [undefined, 'E_INTERNAL'],
    ['E_OVER\u007fQUOTA', 'E_X_MALFORMED'],
    ['\b\u0002E_', 'E_X_MALFORMED'],
    ['e_lower', 'E_X_MALFORMED'],
    [`E_${'A'.repeat(61)}`, 'E_X_MALFORMED'],
  ])('passes %p on as %s', (code, expected) => {
    expect(remoteErrorCode(code, 'E_X_MALFORMED')).toBe(expected);
  });
});
