import type { OptionSpec, ParsedOptions } from './args.js';
import type { CliIo, Output } from './output.js';

export interface CommandContext {
  readonly options: ParsedOptions;
  /** Positional arguments after the command words, by the names in `Command.args`. */
  readonly args: Readonly<Record<string, string>>;
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
  /** Positional arguments, all required, in order (e.g. the number of `ime utils fetch did +E164`). */
  readonly args?: readonly { readonly name: string; readonly description: string }[];
  /** Lines shown under the options in `--help`. */
  readonly examples?: readonly string[];
  run(ctx: CommandContext): Promise<number> | number;
}
