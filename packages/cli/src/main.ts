import { readFileSync } from 'node:fs';
import { GLOBAL_OPTIONS, type OptionSpec, UsageError, parseOptions } from './args.js';
import type { Command } from './command.js';
import { demo } from './commands/demo.js';
import { ringUp } from './commands/ring-up.js';
import { ticketInspect, ticketIssue, ticketVerify } from './commands/ticket.js';
import { RING_ADMIN_COMMANDS } from './commands/ring-admin.js';
import { bootstrapStart, peerStart } from './commands/roles.js';
import { bootstrapIdentity } from './commands/bootstrap-identity.js';
import { CM_COMMANDS } from './commands/cm.js';
import { PSTN_COMMANDS } from './commands/pstn.js';
import { VAP_ADMIN_COMMANDS } from './commands/vap-admin.js';
import { VALIDATOR_ADMIN_COMMANDS } from './commands/validator-admin.js';
import { BACKUP_COMMANDS } from './commands/backup.js';
import { OPS_COMMANDS } from './commands/ops.js';
import { type CliIo, EXIT_OK, EXIT_USAGE, Output } from './output.js';

export const COMMANDS: readonly Command[] = [demo, ringUp, bootstrapStart, bootstrapIdentity, peerStart, ...RING_ADMIN_COMMANDS, ...VAP_ADMIN_COMMANDS, ...VALIDATOR_ADMIN_COMMANDS, ...BACKUP_COMMANDS, ...OPS_COMMANDS, ...CM_COMMANDS, ...PSTN_COMMANDS, ticketIssue, ticketVerify, ticketInspect];

export function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function optionLines(options: readonly OptionSpec[]): string[] {
  const rows = options.map((o) => {
    const left = `--${o.name}${o.type === 'boolean' ? '' : ` ${o.valueName ?? 'VALUE'}`}`;
    return [left, `${o.description}${o.required ? ' (required)' : ''}`] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`);
}

function commandHelp(c: Command): string[] {
  const args = c.args ?? [];
  return [
    `ime ${[...c.path, ...args.map((a) => a.name)].join(' ')} — ${c.summary}`,
    ...(args.length > 0 ? ['', 'Arguments:', ...args.map((a) => `  ${a.name}  ${a.description}`)] : []),
    '',
    'Options:',
    ...optionLines([...c.options, ...GLOBAL_OPTIONS]),
    ...(c.examples?.length ? ['', 'Example:', ...c.examples.map((e) => `  ${e}`)] : []),
  ];
}

function listHelp(prefix: readonly string[]): string[] {
  const matching = COMMANDS.filter((c) => prefix.every((w, i) => c.path[i] === w));
  const width = Math.max(...matching.map((c) => c.path.join(' ').length));
  return [
    `ime ${cliVersion()} — Intercompany Media Engine ring`,
    '',
    'Usage: ime <command> [options] [--json]',
    '',
    'Commands:',
    ...matching.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Run `ime <command> --help` for its options. Exit status: 0 ok, 1 refused or failed, 2 bad command line.',
  ];
}

/** Splits argv into the command (longest matching word path), its positional words and its options. */
function resolve(argv: readonly string[]): { command: Command | undefined; words: string[]; rest: string[] } {
  const firstOption = argv.findIndex((a) => a.startsWith('--'));
  const words = argv.slice(0, firstOption === -1 ? argv.length : firstOption);
  const rest = argv.slice(words.length);
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.path.length <= words.length && c.path.every((w, i) => words[i] === w)) {
      if (!best || c.path.length > best.path.length) best = c;
    }
  }
  return { command: best, words, rest };
}

export async function run(argv: readonly string[], io: CliIo, stopSignal: AbortSignal = new AbortController().signal): Promise<number> {
  const json = argv.includes('--json');
  const out = new Output(io, json);
  try {
    const bare = argv.filter((a) => a !== '--json');
    if (bare.length === 1 && (bare[0] === '--version' || bare[0] === '-V')) {
      out.result({ version: cliVersion(), node: process.version }, [`ime ${cliVersion()} (node ${process.version})`]);
      return EXIT_OK;
    }
    const { command, words, rest } = resolve(argv);
    if (!command) {
      if (words.length === 0 || (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) || words[0] === 'help') {
        out.result({ commands: COMMANDS.map((c) => ({ command: c.path.join(' '), summary: c.summary })) }, listHelp([]));
        return words.length === 0 && !argv.includes('--help') && !argv.includes('-h') ? EXIT_USAGE : EXIT_OK;
      }
      const known = COMMANDS.filter((c) => c.path[0] === words[0]);
      if (known.length > 0 && rest.includes('--help')) {
        out.result({ commands: known.map((c) => ({ command: c.path.join(' '), summary: c.summary })) }, listHelp([words[0] as string]));
        return EXIT_OK;
      }
      const hint = known.length > 0 ? `; did you mean: ${known.map((c) => `ime ${c.path.join(' ')}`).join(', ')}` : '; run `ime --help`';
      throw new UsageError('E_CLI_UNKNOWN_COMMAND', `unknown command "ime ${words.join(' ')}"${hint}`);
    }
    const positional = words.slice(command.path.length);
    const expected = command.args ?? [];
    const options = parseOptions(rest, command.options);
    if (options.help) {
      out.result({ command: command.path.join(' '), summary: command.summary }, commandHelp(command));
      return EXIT_OK;
    }
    if (positional.length > expected.length) {
      throw new UsageError('E_CLI_UNEXPECTED_ARGUMENT', `unexpected argument ${JSON.stringify(positional[expected.length])}`);
    }
    if (positional.length < expected.length) {
      const missing = expected[positional.length] as { name: string };
      throw new UsageError('E_CLI_MISSING_ARGUMENT', `missing ${missing.name}: usage: ime ${command.path.join(' ')} ${expected.map((a) => a.name).join(' ')}`);
    }
    const args: Record<string, string> = {};
    expected.forEach((a, i) => (args[a.name] = positional[i] as string));
    return await command.run({ options, args, out, io, stopSignal });
  } catch (err) {
    return out.error(err);
  }
}

/** Runs with the real process: argv, stdio, signals and exit status. */
export async function runFromProcess(): Promise<void> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    // First signal asks the command to stop cleanly; a second one leaves at once.
    if (controller.signal.aborted) process.exit(130);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const status = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }, controller.signal);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.exitCode = status;
}
