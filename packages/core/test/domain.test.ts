import { describe, it, expect } from '@jest/globals';
import { DOMAIN_MAX_LENGTH, domainProblem, parseDomain, sameDomain } from '../src/domain.js';
import { expectSafeMessage, thrown } from './helpers.js';

const label63 = 'a'.repeat(63);
/** Valid-looking domains of 128 and 129 characters, every label within 63. */
const domain128 = `${'a'.repeat(63)}.${'b'.repeat(62)}.c`;
const domain129 = `${'a'.repeat(63)}.${'b'.repeat(63)}.c`;

describe('parseDomain: valid domains', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['EXAMPLE.com.', 'example.com'],
    ['localhost', 'localhost'],
    ['a-b.example', 'a-b.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['123.example', '123.example'],
    [`${label63}.com`, `${label63}.com`],
  ])('parses %s as %s', (input, expected) => {
    expect(parseDomain(input)).toBe(expected);
    expect(domainProblem(input)).toBeUndefined();
  });

  it(`accepts exactly ${DOMAIN_MAX_LENGTH} characters, and that plus a trailing dot`, () => {
    const d = domain128;
    expect(d).toHaveLength(DOMAIN_MAX_LENGTH);
    expect(DOMAIN_MAX_LENGTH).toBe(128);
    expect(domain129).toHaveLength(129);
    expect(parseDomain(d)).toBe(d);
    expect(parseDomain(d + '.')).toBe(d);
  });
});

describe('parseDomain: malformed input', () => {
  it.each<[string, string, unknown]>([
    ['E_DOMAIN_NOT_STRING', 'a number', 42],
    ['E_DOMAIN_NOT_STRING', 'null', null],
    ['E_DOMAIN_NOT_STRING', 'an array', ['example.com']],
    ['E_DOMAIN_EMPTY', 'the empty string', ''],
    ['E_DOMAIN_EMPTY', 'a lone dot', '.'],
    ['E_DOMAIN_TOO_LONG', '129 characters', domain129],
    ['E_DOMAIN_EMPTY_LABEL', 'a leading dot', '.example.com'],
    ['E_DOMAIN_EMPTY_LABEL', 'two dots', 'example..com'],
    ['E_DOMAIN_EMPTY_LABEL', 'two trailing dots', 'example.com..'],
    ['E_DOMAIN_LABEL_TOO_LONG', 'a 64-character label', `${'a'.repeat(64)}.com`],
    ['E_DOMAIN_INVALID_CHARACTER', 'an underscore', 'my_host.example'],
    ['E_DOMAIN_INVALID_CHARACTER', 'a space', 'exa mple.com'],
    ['E_DOMAIN_INVALID_CHARACTER', 'a port', 'example.com:5060'],
    ['E_DOMAIN_INVALID_CHARACTER', 'an @', 'user@example.com'],
    ['E_DOMAIN_INVALID_CHARACTER', 'non-ASCII letters', 'bücher.example'],
    ['E_DOMAIN_HYPHEN', 'a leading hyphen', '-example.com'],
    ['E_DOMAIN_HYPHEN', 'a trailing hyphen', 'example-.com'],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => parseDomain(input));
    expect(err.code).toBe(code);
    expect(domainProblem(input)?.code).toBe(code);
    expectSafeMessage(err);
  });

  it('shortens a long domain in the message', () => {
    const err = thrown(() => parseDomain('x'.repeat(1000)));
    expect(err.code).toBe('E_DOMAIN_TOO_LONG');
    expect(err.message).toContain('1000 characters');
    expect(err.message).not.toContain('x'.repeat(41));
    expectSafeMessage(err);
  });
});

describe('sameDomain', () => {
  it.each([
    ['example.com', 'example.com', true],
    ['Example.COM', 'example.com', true],
    ['example.com.', 'EXAMPLE.com', true],
    ['example.com', 'example.org', false],
    ['a.example.com', 'example.com', false],
    ['example.com', 'example.co', false],
  ])('sameDomain(%s, %s) is %s', (a, b, same) => {
    expect(sameDomain(a, b)).toBe(same);
    expect(sameDomain(b, a)).toBe(same);
  });
});
