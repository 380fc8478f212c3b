import { expect } from '@jest/globals';
import { ImeError } from '../src/errors.js';

/** Runs `fn`, expects it to throw an ImeError (not a TypeError or a protobufjs error), and returns it. */
export function thrown(fn: () => unknown): ImeError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error('expected an ImeError, but nothing was thrown');
  expect(caught).toBeInstanceOf(ImeError);
  return caught as ImeError;
}

/** Expects an ImeError message to be informative but safe: no stack trace, no unbounded echo. */
export function expectSafeMessage(err: ImeError, maxLength = 300): void {
  expect(err.message.length).toBeGreaterThan(10);
  expect(err.message.length).toBeLessThanOrEqual(maxLength);
  expect(err.message).not.toMatch(/\n\s+at /);
  expect(err.message).not.toContain('\n');
}

/**
 * Awaits `attempt` (a promise, or a function run and awaited), expects it to fail with an ImeError,
 * and returns the error.
 */
export async function rejected(attempt: Promise<unknown> | (() => unknown)): Promise<ImeError> {
  let caught: unknown;
  try {
    await (typeof attempt === 'function' ? attempt() : attempt);
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error('expected an ImeError rejection, but the promise resolved');
  expect(caught).toBeInstanceOf(ImeError);
  return caught as ImeError;
}

/** The code of the ImeError `attempt` fails with (see `rejected`). */
export async function rejectionCode(attempt: Promise<unknown> | (() => unknown)): Promise<string> {
  return (await rejected(attempt)).code;
}
