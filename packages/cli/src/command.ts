import type { OptionSpec, ParsedOptions } from './args.js';
import type { CliIo, Output } from './output.js';

export interface CommandContext {
  readonly options: ParsedOptions;
  readonly out: Output;
  readonly io: CliIo;
  /** Resolves when the user asks the command to stop (SIGINT/SIGTERM); long-running commands watch it. */
  readonly stopSignal: AbortSignal;
}

export interface Command {
  /** Words after `ime`, e.g. ['ticket', 'verify']. */
  readonly path: readonly string[];
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  /** Lines shown under the options in `--help`. */
  readonly examples?: readonly string[];
  run(ctx: CommandContext): Promise<number> | number;
}
