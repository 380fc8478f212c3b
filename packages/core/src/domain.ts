import { ImeError, describeInput } from './errors.js';

/** An enterprise domain name, lower-cased, without a trailing dot. */
export type Domain = string & { readonly __brand: 'Domain' };

/** Trust elements allow 128 characters (guide L3031); DNS itself allows 253. */
export const DOMAIN_MAX_LENGTH = 128;
const LABEL_MAX_LENGTH = 63;

export type DomainErrorCode =
  | 'E_DOMAIN_NOT_STRING'
  | 'E_DOMAIN_EMPTY'
  | 'E_DOMAIN_TOO_LONG'
  | 'E_DOMAIN_EMPTY_LABEL'
  | 'E_DOMAIN_LABEL_TOO_LONG'
  | 'E_DOMAIN_INVALID_CHARACTER'
  | 'E_DOMAIN_HYPHEN';

export function domainProblem(input: unknown): ImeError<DomainErrorCode> | undefined {
  if (typeof input !== 'string') {
    return new ImeError('E_DOMAIN_NOT_STRING', `a domain must be a string, got ${describeInput(input)}`);
  }
  const name = input.endsWith('.') ? input.slice(0, -1) : input;
  if (name.length === 0) return new ImeError('E_DOMAIN_EMPTY', 'a domain must not be empty');
  if (name.length > DOMAIN_MAX_LENGTH) {
    return new ImeError(
      'E_DOMAIN_TOO_LONG',
      `domain ${describeInput(input)} has ${name.length} characters; at most ${DOMAIN_MAX_LENGTH} are allowed`,
    );
  }
  for (const label of name.split('.')) {
    if (label.length === 0) {
      return new ImeError('E_DOMAIN_EMPTY_LABEL', `domain ${describeInput(input)} has an empty label ("..")`);
    }
    if (label.length > LABEL_MAX_LENGTH) {
      return new ImeError(
        'E_DOMAIN_LABEL_TOO_LONG',
        `domain ${describeInput(input)} has a label longer than ${LABEL_MAX_LENGTH} characters`,
      );
    }
    if (!/^[A-Za-z0-9-]+$/.test(label)) {
      return new ImeError(
        'E_DOMAIN_INVALID_CHARACTER',
        `domain ${describeInput(input)} may contain only letters, digits, "-" and "."`,
      );
    }
    if (label.startsWith('-') || label.endsWith('-')) {
      return new ImeError('E_DOMAIN_HYPHEN', `domain ${describeInput(input)} has a label starting or ending with "-"`);
    }
  }
  return undefined;
}

/** Validates and normalises a domain name (lower case, no trailing dot). */
export function parseDomain(input: unknown): Domain {
  const problem = domainProblem(input);
  if (problem) throw problem;
  const name = (input as string).toLowerCase();
  return (name.endsWith('.') ? name.slice(0, -1) : name) as Domain;
}

/** Compares two domains the way DNS does: case-insensitively, ignoring a trailing dot. */
export function sameDomain(a: string, b: string): boolean {
  if (a === b) return true;
  const na = a.endsWith('.') ? a.slice(0, -1) : a;
  const nb = b.endsWith('.') ? b.slice(0, -1) : b;
  return na.length === nb.length && na.toLowerCase() === nb.toLowerCase();
}
