import { describe, it, expect } from '@jest/globals';
import {
  type TrustGroup,
  type TrustGroupInput,
  TRUST_DESCRIPTION_MAX,
  TRUST_GROUP_NAME_MAX,
  evaluateTrust,
  parseTrustElement,
  parseTrustGroup,
  trustElementMatches,
} from '../src/trust-list.js';
import { expectSafeMessage, thrown } from './helpers.js';

const whitelist = (name: string, ...elements: string[]): TrustGroup =>
  parseTrustGroup({ name, trusted: true, elements });
const blacklist = (name: string, ...elements: string[]): TrustGroup =>
  parseTrustGroup({ name, trusted: false, elements });

describe('parseTrustElement: domains', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Partner.EXAMPLE.', 'partner.example'],
  ])('parses %s as the domain %s', (input, domain) => {
    expect(parseTrustElement(input)).toEqual({ kind: 'domain', domain });
    expect(parseTrustElement(input, 'domain')).toEqual({ kind: 'domain', domain });
  });

  it('accepts a domain of 128 characters (guide L3031)', () => {
    const d = `${'a'.repeat(63)}.${'b'.repeat(62)}.c`;
    expect(d).toHaveLength(128);
    expect(parseTrustElement(d)).toEqual({ kind: 'domain', domain: d });
  });
});

describe('parseTrustElement: prefixes', () => {
  it.each<[string, string, boolean]>([
    ['+1', '1', false],
    ['+14089021000', '14089021000', false],
    ['+123456789012345', '123456789012345', false], // + and 15 digits
    ['+1!', '1', true],
    ['+1408!', '1408', true],
    ['+12345678901234!', '12345678901234', true], // 14 digits then !
  ])('parses %s', (input, digits, wildcard) => {
    const expected = { kind: 'prefix', digits, wildcard, text: input };
    expect(parseTrustElement(input)).toEqual(expected);
    expect(parseTrustElement(input, 'prefix')).toEqual(expected);
  });
});

describe('parseTrustElement: malformed input', () => {
  it.each<[string, string, unknown, 'domain' | 'prefix' | undefined]>([
    ['E_TRUST_ELEMENT_NOT_STRING', 'a number', 1408, undefined],
    ['E_TRUST_ELEMENT_NOT_STRING', 'null', null, undefined],
    ['E_TRUST_ELEMENT_NOT_STRING', 'an object', { domain: 'example.com' }, 'domain'],
    ['E_TRUST_PREFIX_NO_DIGITS', '+ alone', '+', undefined],
    ['E_TRUST_PREFIX_NO_DIGITS', '+! alone', '+!', undefined],
    ['E_TRUST_PREFIX_INVALID_CHARACTER', 'a letter in a prefix', '+1408a', undefined],
    ['E_TRUST_PREFIX_INVALID_CHARACTER', 'an X in a prefix', '+1408XXX', undefined],
    ['E_TRUST_PREFIX_INVALID_CHARACTER', 'a space in a prefix', '+1 408', undefined],
    ['E_TRUST_PREFIX_INVALID_CHARACTER', 'a second + in a prefix', '++1408', undefined],
    ['E_TRUST_PREFIX_WILDCARD_NOT_LAST', '! in the middle', '+14!08', undefined],
    ['E_TRUST_PREFIX_WILDCARD_NOT_LAST', 'two !', '+1408!!', undefined],
    ['E_TRUST_PREFIX_TOO_LONG', '16 digits', '+1234567890123456', undefined],
    ['E_TRUST_PREFIX_TOO_LONG', '15 digits then !', '+123456789012345!', undefined],
    ['E_TRUST_ELEMENT_KIND', 'a domain given as a prefix', 'example.com', 'prefix'],
    ['E_TRUST_ELEMENT_KIND', 'a prefix given as a domain', '+1408', 'domain'],
    ['E_DOMAIN_EMPTY', 'an empty domain', '', undefined],
    ['E_DOMAIN_INVALID_CHARACTER', 'a domain with a space', 'exa mple.com', undefined],
    ['E_DOMAIN_EMPTY_LABEL', 'a domain with an empty label', 'example..com', 'domain'],
    ['E_DOMAIN_TOO_LONG', 'a domain over 128 characters', `${'a'.repeat(63)}.${'b'.repeat(63)}.c`, undefined],
    ['E_DOMAIN_LABEL_TOO_LONG', 'a domain with a 64-character label', `${'a'.repeat(64)}.com`, undefined],
    ['E_DOMAIN_HYPHEN', 'a domain with a leading hyphen', '-example.com', undefined],
    ['E_TRUST_ELEMENT_NOT_STRING', 'a number given as a domain', 42, 'domain'],
  ])('%s: refuses %s', (code, _label, input, kind) => {
    const err = thrown(() => parseTrustElement(input, kind));
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('shortens a long prefix in the message', () => {
    const err = thrown(() => parseTrustElement('+' + '9'.repeat(500)));
    expect(err.code).toBe('E_TRUST_PREFIX_TOO_LONG');
    expect(err.message).toContain('500 digits');
    expect(err.message).not.toContain('9'.repeat(41));
  });

  it('reports where a bad prefix character is', () => {
    const err = thrown(() => parseTrustElement('+1408a'));
    expect(err.details).toEqual({ position: 6 });
  });
});

describe('parseTrustGroup', () => {
  it('parses a whitelist of mixed elements', () => {
    const g = parseTrustGroup({ name: 'partners', trusted: true, description: 'who we trust', elements: ['Example.com', '+1408!'] });
    expect(g).toEqual({
      name: 'partners',
      trusted: true,
      description: 'who we trust',
      elements: [
        { kind: 'domain', domain: 'example.com' },
        { kind: 'prefix', digits: '1408', wildcard: true, text: '+1408!' },
      ],
    });
  });

  it('defaults the description to empty and allows an empty element list', () => {
    expect(parseTrustGroup({ name: 'b', trusted: false, elements: [] })).toEqual({
      name: 'b',
      trusted: false,
      description: '',
      elements: [],
    });
  });

  it(`accepts a ${TRUST_GROUP_NAME_MAX}-character name and a ${TRUST_DESCRIPTION_MAX}-character description`, () => {
    expect(TRUST_GROUP_NAME_MAX).toBe(32);
    expect(TRUST_DESCRIPTION_MAX).toBe(128);
    const g = parseTrustGroup({ name: 'n'.repeat(32), trusted: true, description: 'd'.repeat(128), elements: [] });
    expect(g.name).toHaveLength(32);
    expect(g.description).toHaveLength(128);
  });

  const ok: TrustGroupInput = { name: 'g', trusted: true, description: '', elements: ['example.com'] };
  it.each<[string, string, TrustGroupInput]>([
    ['E_TRUST_GROUP_NAME', 'a missing name', { ...ok, name: undefined }],
    ['E_TRUST_GROUP_NAME', 'an empty name', { ...ok, name: '' }],
    ['E_TRUST_GROUP_NAME', 'a 33-character name', { ...ok, name: 'n'.repeat(33) }],
    ['E_TRUST_GROUP_NAME', 'a numeric name', { ...ok, name: 7 }],
    ['E_TRUST_GROUP_TRUSTED', 'no trusted flag (the guide has no default)', { ...ok, trusted: undefined }],
    ['E_TRUST_GROUP_TRUSTED', 'a string trusted flag', { ...ok, trusted: 'yes' }],
    ['E_TRUST_GROUP_TRUSTED', 'a numeric trusted flag', { ...ok, trusted: 1 }],
    ['E_TRUST_GROUP_DESCRIPTION', 'a 129-character description', { ...ok, description: 'd'.repeat(129) }],
    ['E_TRUST_GROUP_DESCRIPTION', 'a non-string description', { ...ok, description: 5 }],
    ['E_TRUST_GROUP_DESCRIPTION', 'a null description', { ...ok, description: null }],
    ['E_TRUST_GROUP_ELEMENTS', 'elements that are not a list', { ...ok, elements: 'example.com' }],
    ['E_TRUST_GROUP_ELEMENTS', 'no elements', { ...ok, elements: undefined }],
    ['E_TRUST_PREFIX_WILDCARD_NOT_LAST', 'a malformed prefix element', { ...ok, elements: ['example.com', '+14!08'] }],
    ['E_DOMAIN_INVALID_CHARACTER', 'a malformed domain element', { ...ok, elements: ['bad domain'] }],
    ['E_TRUST_ELEMENT_NOT_STRING', 'a non-string element', { ...ok, elements: [null] }],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => parseTrustGroup(input));
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('shortens a long group name in the message', () => {
    const err = thrown(() => parseTrustGroup({ ...ok, name: 'n'.repeat(10_000) }));
    expect(err.code).toBe('E_TRUST_GROUP_NAME');
    expectSafeMessage(err);
  });
});

describe('trustElementMatches', () => {
  const exact = parseTrustElement('+14089021000');
  const wild = parseTrustElement('+1408!');
  const dom = parseTrustElement('example.com');

  it.each<[string, { domain?: string; number?: string }, boolean]>([
    ['the exact number', { number: '+14089021000' }, true],
    ['a longer number', { number: '+140890210001' }, false],
    ['a shorter number', { number: '+1408902100' }, false],
    ['a number without +', { number: '14089021000' }, false],
    ['only a domain', { domain: 'example.com' }, false],
  ])('an exact prefix element vs %s: %s', (_label, subject, match) => {
    expect(trustElementMatches(exact, subject)).toBe(match);
  });

  it.each<[string, { domain?: string; number?: string }, boolean]>([
    ['a number under the prefix', { number: '+14085551234' }, true],
    ['one more digit', { number: '+14085' }, true],
    ['the prefix itself (! needs at least one more digit)', { number: '+1408' }, false],
    ['another prefix', { number: '+14095551234' }, false],
    ['no number', { domain: 'example.com' }, false],
  ])('a ! prefix element vs %s: %s', (_label, subject, match) => {
    expect(trustElementMatches(wild, subject)).toBe(match);
  });

  it.each<[string, { domain?: string; number?: string }, boolean]>([
    ['the same domain', { domain: 'example.com' }, true],
    ['different case and a trailing dot', { domain: 'EXAMPLE.com.' }, true],
    ['a subdomain', { domain: 'sip.example.com' }, false],
    ['a parent domain', { domain: 'com' }, false],
    ['a lookalike', { domain: 'example.com.evil' }, false],
    ['only a number', { number: '+14089021000' }, false],
  ])('a domain element vs %s: %s', (_label, subject, match) => {
    expect(trustElementMatches(dom, subject)).toBe(match);
  });
});

describe('evaluateTrust', () => {
  it('trusts everyone when no trust group is configured', () => {
    expect(evaluateTrust([], { domain: 'anyone.example' })).toEqual({ trusted: true, reason: 'no-trust-groups' });
    expect(evaluateTrust([], { number: '+14089021000' })).toEqual({ trusted: true, reason: 'no-trust-groups' });
    expect(evaluateTrust([], {})).toEqual({ trusted: true, reason: 'no-trust-groups' });
  });

  describe('whitelist', () => {
    const groups = [whitelist('partners', 'partner.example', '+1408!')];

    it('trusts a listed domain and names the group and element', () => {
      expect(evaluateTrust(groups, { domain: 'Partner.Example' })).toEqual({
        trusted: true,
        reason: 'whitelisted',
        group: 'partners',
        element: 'partner.example',
      });
    });

    it('trusts a number under a listed prefix', () => {
      expect(evaluateTrust(groups, { number: '+14085551234' })).toEqual({
        trusted: true,
        reason: 'whitelisted',
        group: 'partners',
        element: '+1408!',
      });
    });

    it('refuses everyone else', () => {
      expect(evaluateTrust(groups, { domain: 'stranger.example' })).toEqual({ trusted: false, reason: 'not-whitelisted' });
      expect(evaluateTrust(groups, { number: '+19195551234' })).toEqual({ trusted: false, reason: 'not-whitelisted' });
      expect(evaluateTrust(groups, {})).toEqual({ trusted: false, reason: 'not-whitelisted' });
    });

    it('trusts a route when either its domain or its number is listed', () => {
      expect(evaluateTrust(groups, { domain: 'stranger.example', number: '+14085551234' }).trusted).toBe(true);
      expect(evaluateTrust(groups, { domain: 'partner.example', number: '+19195551234' }).trusted).toBe(true);
    });

    it('an empty whitelist trusts no one', () => {
      expect(evaluateTrust([whitelist('empty')], { domain: 'partner.example' })).toEqual({
        trusted: false,
        reason: 'not-whitelisted',
      });
    });

    it('any of several whitelists is enough', () => {
      const two = [whitelist('a', 'a.example'), whitelist('b', 'b.example')];
      expect(evaluateTrust(two, { domain: 'b.example' })).toMatchObject({ trusted: true, group: 'b' });
    });
  });

  describe('blacklist', () => {
    const groups = [blacklist('blocked', 'spam.example', '+1900!')];

    it('refuses a listed domain and names the group and element', () => {
      expect(evaluateTrust(groups, { domain: 'spam.example' })).toEqual({
        trusted: false,
        reason: 'blacklisted',
        group: 'blocked',
        element: 'spam.example',
      });
    });

    it('refuses a number under a listed prefix', () => {
      expect(evaluateTrust(groups, { number: '+19005550000' })).toMatchObject({ trusted: false, reason: 'blacklisted' });
    });

    it('trusts everyone else', () => {
      expect(evaluateTrust(groups, { domain: 'partner.example' })).toEqual({ trusted: true, reason: 'not-blacklisted' });
      expect(evaluateTrust(groups, { number: '+14085551234' })).toEqual({ trusted: true, reason: 'not-blacklisted' });
    });

    it('refuses a route when either its domain or its number is listed', () => {
      expect(evaluateTrust(groups, { domain: 'partner.example', number: '+19005550000' }).trusted).toBe(false);
      expect(evaluateTrust(groups, { domain: 'spam.example', number: '+14085551234' }).trusted).toBe(false);
    });
  });

  describe('whitelists and blacklists together', () => {
    it('a blacklist match wins over a whitelist match, whatever the order', () => {
      const w = whitelist('partners', '+1408!');
      const b = blacklist('blocked', '+14085550000');
      for (const groups of [[w, b], [b, w]]) {
        expect(evaluateTrust(groups, { number: '+14085550000' })).toEqual({
          trusted: false,
          reason: 'blacklisted',
          group: 'blocked',
          element: '+14085550000',
        });
        expect(evaluateTrust(groups, { number: '+14085550001' })).toMatchObject({ trusted: true, reason: 'whitelisted' });
      }
    });

    it('with a whitelist present, a subject in neither list is refused', () => {
      const groups = [blacklist('blocked', 'spam.example'), whitelist('partners', 'partner.example')];
      expect(evaluateTrust(groups, { domain: 'stranger.example' })).toEqual({ trusted: false, reason: 'not-whitelisted' });
    });
  });
});
