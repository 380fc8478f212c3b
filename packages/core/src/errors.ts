/**
 * Every refusal the product makes is an ImeError carrying a stable code (`E_…`) that an operator can
 * search for in the docs and logs. Messages describe the input without echoing secrets, and untrusted
 * input is shortened before it appears in a message.
 */
export class ImeError<Code extends string = string> extends Error {
  override readonly name = 'ImeError';
  readonly code: Code;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: Code, message: string, details?: Readonly<Record<string, unknown>>) {
    super(message);
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: Code; message: string; details?: Readonly<Record<string, unknown>> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isImeError(value: unknown): value is ImeError {
  return value instanceof ImeError;
}

/** What an error code from another peer must look like to be passed on as it is. */
const REMOTE_ERROR_CODE = /^E_[A-Z0-9_]{1,60}$/;

/**
 * The code of a refusal another peer sent, as this peer passes it on: only a well-formed one as it is
 * (a malformed one was found by fuzzing), so every refusal a caller sees has a code it can look up;
 * an empty one is `empty`, anything else `malformed`.
 */
export function remoteErrorCode(code: string | null | undefined, malformed: string, empty = 'E_INTERNAL'): string {
  if (code === undefined || code === null || code === '') return empty;
  return REMOTE_ERROR_CODE.test(code) ? code : malformed;
}

const MAX_SHOWN = 40;

/** Renders untrusted input for an error message: quoted, control characters escaped, long input cut. */
export function describeInput(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : typeof value;
  const cut = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value;
  return JSON.stringify(cut);
}
