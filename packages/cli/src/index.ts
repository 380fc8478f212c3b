/** @ime/cli: the `ime` command. The binary is bin/ime.js; `run` is exported for in-process tests. */
export { run, runFromProcess, COMMANDS, cliVersion } from './main.js';
export type { CliIo } from './output.js';
export type { Command, CommandContext } from './command.js';
