import { ImeError, describeInput } from './errors.js';

/** A validated +E.164 number: `+` then 1–15 digits. The brand keeps unchecked strings out. */
export type E164 = string & { readonly __brand: 'E164' };

export const E164_MAX_DIGITS = 15;

export type E164ErrorCode =
  | 'E_E164_NOT_STRING'
  | 'E_E164_EMPTY'
  | 'E_E164_MISSING_PLUS'
  | 'E_E164_NO_DIGITS'
  | 'E_E164_INVALID_CHARACTER'
  | 'E_E164_TOO_LONG';

/** Returns the refusal for `input`, or undefined when it is a valid +E.164 number. */
export function e164Problem(input: unknown): ImeError<E164ErrorCode> | undefined {
  if (typeof input !== 'string') {
    return new ImeError('E_E164_NOT_STRING', `a +E.164 number must be a string, got ${describeInput(input)}`);
  }
  if (input.length === 0) return new ImeError('E_E164_EMPTY', 'a +E.164 number must not be empty');
  if (input[0] !== '+') {
    return new ImeError('E_E164_MISSING_PLUS', `${describeInput(input)} is not +E.164: it must start with "+"`);
  }
  if (input.length === 1) return new ImeError('E_E164_NO_DIGITS', '"+" alone is not a number: add 1–15 digits');
  for (let i = 1; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (c < 0x30 || c > 0x39) {
      return new ImeError(
        'E_E164_INVALID_CHARACTER',
        `${describeInput(input)} is not +E.164: character ${i + 1} is not a digit`,
        { position: i + 1 },
      );
    }
  }
  if (input.length - 1 > E164_MAX_DIGITS) {
    return new ImeError(
      'E_E164_TOO_LONG',
      `${describeInput(input)} has ${input.length - 1} digits; +E.164 allows at most ${E164_MAX_DIGITS}`,
      { digits: input.length - 1 },
    );
  }
  return undefined;
}

export function isE164(input: unknown): input is E164 {
  return e164Problem(input) === undefined;
}

/** Validates a +E.164 number, throwing an ImeError with an `E_E164_…` code on malformed input. */
export function parseE164(input: unknown): E164 {
  const problem = e164Problem(input);
  if (problem) throw problem;
  return input as E164;
}
