import { isImeError } from '@ime/core';
import { UsageError } from './args.js';

export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/** Exit statuses: 0 success, 1 refused or failed, 2 the command line itself was wrong. */
export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

/**
 * The output convention of every command: human text by default; with --json, exactly one JSON object
 * as the last line of stdout. Errors always go to stderr as one line naming the code.
 */
export class Output {
  constructor(
    private readonly io: CliIo,
    readonly json: boolean,
  ) {}

  /** Progress or detail for people; silent under --json so the JSON stays the only stdout line. */
  info(text: string): void {
    if (!this.json) this.io.stdout.write(`${text}\n`);
  }

  /** The command's result: `human` lines, or the object as one JSON line. */
  result(object: Record<string, unknown>, human: readonly string[]): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify(object)}\n`);
    else for (const line of human) this.io.stdout.write(`${line}\n`);
  }

  /** Reports an error on stderr (and as JSON under --json) and returns the exit status. */
  error(err: unknown): number {
    if (isImeError(err)) {
      this.io.stderr.write(`ime: ${err.code}: ${err.message}\n`);
      if (this.json) this.io.stdout.write(`${JSON.stringify({ ok: false, error: { code: err.code, message: err.message } })}\n`);
      return err instanceof UsageError ? EXIT_USAGE : EXIT_REFUSED;
    }
    // Not ours: still one line, never a stack trace; IME_DEBUG=1 shows the stack for developers.
    const message = err instanceof Error ? err.message : String(err);
    this.io.stderr.write(`ime: E_INTERNAL: ${message.split('\n')[0]}\n`);
    if (process.env.IME_DEBUG && err instanceof Error && err.stack) this.io.stderr.write(`${err.stack}\n`);
    if (this.json) this.io.stdout.write(`${JSON.stringify({ ok: false, error: { code: 'E_INTERNAL', message } })}\n`);
    return EXIT_REFUSED;
  }
}
