import { type Domain, parseDomain } from './domain.js';
import { E164_MAX_DIGITS } from './e164.js';
import { ImeError, describeInput } from './errors.js';

/**
 * Trust lists (guide L2967–L3053). A trust group is a whitelist (trusted) or a blacklist (untrusted) of
 * elements; an element is a domain or a number prefix. Configuring no trust group trusts everyone.
 *
 * Prefix elements: `+` and up to 15 digits names exactly that number; up to 14 digits followed by the
 * wildcard `!` names every number that starts with those digits and has at least one more digit (the
 * call manager's `!` means "one or more digits").
 */
export type TrustElement =
  | { readonly kind: 'domain'; readonly domain: Domain }
  | { readonly kind: 'prefix'; readonly digits: string; readonly wildcard: boolean; readonly text: string };

export interface TrustGroup {
  readonly name: string;
  /** true: whitelist, false: blacklist. The guide gives no default, so neither do we. */
  readonly trusted: boolean;
  readonly description: string;
  readonly elements: readonly TrustElement[];
}

export const TRUST_GROUP_NAME_MAX = 32;
export const TRUST_DESCRIPTION_MAX = 128;

export type TrustErrorCode =
  | 'E_TRUST_ELEMENT_NOT_STRING'
  | 'E_TRUST_PREFIX_NO_DIGITS'
  | 'E_TRUST_PREFIX_INVALID_CHARACTER'
  | 'E_TRUST_PREFIX_WILDCARD_NOT_LAST'
  | 'E_TRUST_PREFIX_TOO_LONG'
  | 'E_TRUST_ELEMENT_KIND'
  | 'E_TRUST_GROUP_NAME'
  | 'E_TRUST_GROUP_TRUSTED'
  | 'E_TRUST_GROUP_DESCRIPTION'
  | 'E_TRUST_GROUP_ELEMENTS';

function parsePrefix(input: string): TrustElement {
  const wildcard = input.endsWith('!');
  const digits = wildcard ? input.slice(1, -1) : input.slice(1);
  const max = wildcard ? E164_MAX_DIGITS - 1 : E164_MAX_DIGITS;
  if (digits.length === 0) {
    throw new ImeError('E_TRUST_PREFIX_NO_DIGITS', `prefix ${describeInput(input)} needs at least one digit`);
  }
  for (let i = 0; i < digits.length; i++) {
    const c = digits[i];
    if (c === '!') {
      throw new ImeError('E_TRUST_PREFIX_WILDCARD_NOT_LAST', `prefix ${describeInput(input)}: "!" may only end a prefix`);
    }
    if (c === undefined || c < '0' || c > '9') {
      throw new ImeError(
        'E_TRUST_PREFIX_INVALID_CHARACTER',
        `prefix ${describeInput(input)}: character ${i + 2} is not a digit`,
        { position: i + 2 },
      );
    }
  }
  if (digits.length > max) {
    throw new ImeError(
      'E_TRUST_PREFIX_TOO_LONG',
      wildcard
        ? `prefix ${describeInput(input)} has ${digits.length} digits before "!"; at most ${max} are allowed`
        : `prefix ${describeInput(input)} has ${digits.length} digits; at most ${max} are allowed`,
    );
  }
  return { kind: 'prefix', digits, wildcard, text: `+${digits}${wildcard ? '!' : ''}` };
}

/**
 * Parses a trust element. Without `kind`, text starting with `+` is a prefix and anything else a
 * domain; with `kind`, the text must be of that kind.
 */
export function parseTrustElement(input: unknown, kind?: 'domain' | 'prefix'): TrustElement {
  if (typeof input !== 'string') {
    throw new ImeError('E_TRUST_ELEMENT_NOT_STRING', `a trust element must be a string, got ${describeInput(input)}`);
  }
  const looksLikePrefix = input.startsWith('+');
  const resolved = kind ?? (looksLikePrefix ? 'prefix' : 'domain');
  if (resolved === 'prefix') {
    if (!looksLikePrefix) {
      throw new ImeError('E_TRUST_ELEMENT_KIND', `prefix element ${describeInput(input)} must start with "+"`);
    }
    return parsePrefix(input);
  }
  if (looksLikePrefix) {
    throw new ImeError('E_TRUST_ELEMENT_KIND', `domain element ${describeInput(input)} looks like a prefix`);
  }
  return { kind: 'domain', domain: parseDomain(input) };
}

export interface TrustGroupInput {
  readonly name: unknown;
  readonly trusted: unknown;
  readonly description?: unknown;
  readonly elements: unknown;
}

export function parseTrustGroup(input: TrustGroupInput): TrustGroup {
  const { name, trusted, description = '', elements } = input;
  if (typeof name !== 'string' || name.length === 0 || name.length > TRUST_GROUP_NAME_MAX) {
    throw new ImeError(
      'E_TRUST_GROUP_NAME',
      `a trust group name must be 1–${TRUST_GROUP_NAME_MAX} characters, got ${describeInput(name)}`,
    );
  }
  if (typeof trusted !== 'boolean') {
    throw new ImeError(
      'E_TRUST_GROUP_TRUSTED',
      `trust group ${describeInput(name)} must say whether it is trusted (whitelist) or not (blacklist)`,
    );
  }
  if (typeof description !== 'string' || description.length > TRUST_DESCRIPTION_MAX) {
    throw new ImeError(
      'E_TRUST_GROUP_DESCRIPTION',
      `the description of trust group ${describeInput(name)} must be a string of at most ${TRUST_DESCRIPTION_MAX} characters`,
    );
  }
  if (!Array.isArray(elements)) {
    throw new ImeError('E_TRUST_GROUP_ELEMENTS', `trust group ${describeInput(name)} needs a list of elements`);
  }
  return { name, trusted, description, elements: elements.map((e) => parseTrustElement(e)) };
}

/** Who is being judged: a remote enterprise's domain, a number, or both (a learned route). */
export interface TrustSubject {
  readonly domain?: string;
  readonly number?: string;
}

export type TrustReason = 'no-trust-groups' | 'whitelisted' | 'not-whitelisted' | 'blacklisted' | 'not-blacklisted';

export interface TrustDecision {
  readonly trusted: boolean;
  readonly reason: TrustReason;
  /** The group and element that decided, when one did. */
  readonly group?: string;
  readonly element?: string;
}

export function trustElementMatches(element: TrustElement, subject: TrustSubject): boolean {
  if (element.kind === 'domain') {
    if (subject.domain === undefined) return false;
    const d = subject.domain.endsWith('.') ? subject.domain.slice(0, -1) : subject.domain;
    return d.toLowerCase() === element.domain;
  }
  const number = subject.number;
  if (number === undefined || number[0] !== '+') return false;
  const digits = number.slice(1);
  return element.wildcard
    ? digits.length > element.digits.length && digits.startsWith(element.digits)
    : digits === element.digits;
}

function elementText(e: TrustElement): string {
  return e.kind === 'domain' ? e.domain : e.text;
}

/**
 * Decides whether a subject is trusted. No groups: trusted. A match in any blacklist: untrusted, even
 * if a whitelist also matches. Otherwise, when any whitelist exists the subject must match one.
 */
export function evaluateTrust(groups: readonly TrustGroup[], subject: TrustSubject): TrustDecision {
  if (groups.length === 0) return { trusted: true, reason: 'no-trust-groups' };
  let whitelistMatch: TrustDecision | undefined;
  let anyWhitelist = false;
  for (const group of groups) {
    if (group.trusted) anyWhitelist = true;
    for (const element of group.elements) {
      if (!trustElementMatches(element, subject)) continue;
      if (!group.trusted) {
        return { trusted: false, reason: 'blacklisted', group: group.name, element: elementText(element) };
      }
      whitelistMatch ??= { trusted: true, reason: 'whitelisted', group: group.name, element: elementText(element) };
    }
  }
  if (whitelistMatch) return whitelistMatch;
  return anyWhitelist ? { trusted: false, reason: 'not-whitelisted' } : { trusted: true, reason: 'not-blacklisted' };
}
