import { ImeError } from '@ime/core';

/**
 * A strict parser for `ime` options: `--name value`, `--name=value`, boolean flags, repeatable options.
 * Unknown options, missing values and missing required options are usage errors (exit 2), reported
 * with the option's name so the operator can fix the command line.
 */

export type OptionType = 'string' | 'strings' | 'integer' | 'boolean';

export interface OptionSpec {
  readonly name: string;
  readonly type: OptionType;
  readonly description: string;
  readonly required?: boolean;
  readonly valueName?: string;
}

export type OptionValue = string | string[] | number | boolean;
export type ParsedOptions = Readonly<Record<string, OptionValue | undefined>>;

export type UsageErrorCode =
  | 'E_CLI_UNKNOWN_COMMAND'
  | 'E_CLI_UNKNOWN_OPTION'
  | 'E_CLI_MISSING_VALUE'
  | 'E_CLI_MISSING_OPTION'
  | 'E_CLI_BAD_VALUE'
  | 'E_CLI_REPEATED_OPTION'
  | 'E_CLI_UNEXPECTED_ARGUMENT'
  | 'E_CLI_MISSING_ARGUMENT'
  | 'E_CLI_CONFLICTING_OPTIONS';

/** A wrong command line (exit 2). Its code is an `E_CLI_…` code or the code of the invalid value. */
export class UsageError extends ImeError<string> {}

/** Runs a check of a command-line value; its refusal becomes a usage error with the same code. */
export function checkArgument<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof ImeError && !(err instanceof UsageError)) throw new UsageError(err.code, err.message, err.details);
    throw err;
  }
}

/** Options every command accepts. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'json', type: 'boolean', description: 'print exactly one JSON object as the last line' },
  { name: 'help', type: 'boolean', description: 'show help for the command' },
];

export function parseOptions(tokens: readonly string[], specs: readonly OptionSpec[]): ParsedOptions {
  const all = [...specs, ...GLOBAL_OPTIONS];
  const out: Record<string, OptionValue> = {};
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (!token.startsWith('--') || token === '--') {
      throw new UsageError('E_CLI_UNEXPECTED_ARGUMENT', `unexpected argument ${JSON.stringify(token)}`);
    }
    const eq = token.indexOf('=');
    const name = token.slice(2, eq === -1 ? undefined : eq);
    const spec = all.find((s) => s.name === name);
    if (!spec) throw new UsageError('E_CLI_UNKNOWN_OPTION', `unknown option --${name}`);
    if (spec.type === 'boolean') {
      if (eq !== -1) throw new UsageError('E_CLI_BAD_VALUE', `--${name} takes no value`);
      out[name] = true;
      continue;
    }
    let value: string;
    if (eq !== -1) {
      value = token.slice(eq + 1);
    } else {
      const next = tokens[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError('E_CLI_MISSING_VALUE', `--${name} needs a value (${spec.valueName ?? 'VALUE'})`);
      }
      value = next;
      i++;
    }
    if (spec.type === 'strings') {
      const list = (out[name] as string[] | undefined) ?? [];
      list.push(value);
      out[name] = list;
      continue;
    }
    if (out[name] !== undefined) throw new UsageError('E_CLI_REPEATED_OPTION', `--${name} given more than once`);
    if (spec.type === 'integer') {
      if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw new UsageError('E_CLI_BAD_VALUE', `--${name} must be a whole number, got ${JSON.stringify(value)}`);
      }
      out[name] = Number(value);
    } else {
      out[name] = value;
    }
  }
  if (!out.help) {
    for (const spec of specs) {
      if (spec.required && out[spec.name] === undefined) {
        throw new UsageError('E_CLI_MISSING_OPTION', `missing required option --${spec.name} ${spec.valueName ?? 'VALUE'}`);
      }
    }
  }
  return out;
}

export function optionString(o: ParsedOptions, name: string): string | undefined {
  const v = o[name];
  return typeof v === 'string' ? v : undefined;
}

export function optionStrings(o: ParsedOptions, name: string): string[] {
  const v = o[name];
  return Array.isArray(v) ? v : [];
}

export function optionInteger(o: ParsedOptions, name: string): number | undefined {
  const v = o[name];
  return typeof v === 'number' ? v : undefined;
}

/** Parses an ISO 8601 time given on the command line. */
export function optionTime(o: ParsedOptions, name: string): number | undefined {
  const v = optionString(o, name);
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(ms)) {
    throw new UsageError('E_CLI_BAD_VALUE', `--${name} must be an ISO 8601 time such as 2026-11-24T10:00:00Z, got ${JSON.stringify(v)}`);
  }
  return ms;
}
