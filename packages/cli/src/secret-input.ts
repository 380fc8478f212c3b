import { readFileSync } from 'node:fs';
import { type OptionSpec, type ParsedOptions, UsageError, optionString } from './args.js';

/**
 * Secrets come either inline (`--password P`, visible in the process list) or from a file
 * (`--password-file F`, preferred). Exactly one must be given.
 */
export function secretOptions(name: string, what: string): OptionSpec[] {
  return [
    { name, type: 'string', valueName: 'SECRET', description: `${what}; prefer --${name}-file, command lines are visible to other users` },
    { name: `${name}-file`, type: 'string', valueName: 'FILE', description: `file holding ${what} on one line` },
  ];
}

export function readSecret(options: ParsedOptions, name: string, required: boolean): string | undefined {
  const inline = optionString(options, name);
  const file = optionString(options, `${name}-file`);
  if (inline !== undefined && file !== undefined) {
    throw new UsageError('E_CLI_CONFLICTING_OPTIONS', `give either --${name} or --${name}-file, not both`);
  }
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new UsageError('E_CLI_FILE', `cannot read --${name}-file ${JSON.stringify(file)} (${code})`);
    }
    return text.replace(/\r?\n$/, '');
  }
  if (inline === undefined && required) {
    throw new UsageError('E_CLI_MISSING_OPTION', `missing required option --${name} SECRET (or --${name}-file FILE)`);
  }
  return inline;
}
