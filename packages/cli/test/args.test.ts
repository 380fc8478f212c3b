import { describe, expect, it } from '@jest/globals';
import { type OptionSpec, checkArgument, optionTime, parseOptions } from '../src/args.js';
import { parseE164 } from '@ime/core';

const specs: OptionSpec[] = [
  { name: 'name', type: 'string', required: true, description: 'a name' },
  { name: 'count', type: 'integer', description: 'a count' },
  { name: 'number', type: 'strings', description: 'numbers' },
  { name: 'at', type: 'string', description: 'a time' },
];

describe('parseOptions', () => {
  it('reads --opt value, --opt=value, repeatable options and global flags', () => {
    const o = parseOptions(['--name', 'x', '--count=3', '--number', '+1', '--number=+2', '--json'], specs);
    expect(o).toEqual({ name: 'x', count: 3, number: ['+1', '+2'], json: true });
  });

  it('lets a value start with a single dash', () => {
    expect(parseOptions(['--name', '-x-'], specs).name).toBe('-x-');
  });

  it.each([
    [['--nope', '1', '--name', 'x'], 'E_CLI_UNKNOWN_OPTION'],
    [['--name'], 'E_CLI_MISSING_VALUE'],
    [['--name', '--count', '1'], 'E_CLI_MISSING_VALUE'],
    [['--count', '1'], 'E_CLI_MISSING_OPTION'],
    [['--name', 'x', '--count', 'ten'], 'E_CLI_BAD_VALUE'],
    [['--name', 'x', '--count', '1.5'], 'E_CLI_BAD_VALUE'],
    [['--name', 'x', '--json=yes'], 'E_CLI_BAD_VALUE'],
    [['--name', 'x', '--name', 'y'], 'E_CLI_REPEATED_OPTION'],
    [['stray', '--name', 'x'], 'E_CLI_UNEXPECTED_ARGUMENT'],
  ])('%j → %s', (argv, code) => {
    expect(() => parseOptions(argv, specs)).toThrow(expect.objectContaining({ code }));
  });

  it('does not demand required options when help is asked for', () => {
    expect(parseOptions(['--help'], specs)).toEqual({ help: true });
  });

  it('parses ISO 8601 times and refuses anything else', () => {
    expect(optionTime(parseOptions(['--name', 'x', '--at', '2026-11-24T10:00:00Z'], specs), 'at')).toBe(Date.parse('2026-11-24T10:00:00Z'));
    expect(() => optionTime(parseOptions(['--name', 'x', '--at', 'yesterday'], specs), 'at')).toThrow(
      expect.objectContaining({ code: 'E_CLI_BAD_VALUE' }),
    );
  });

  it('turns a value refusal into a usage error with the same code', () => {
    expect(() => checkArgument(() => parseE164('12'))).toThrow(
      expect.objectContaining({ code: 'E_E164_MISSING_PLUS', name: 'ImeError' }),
    );
  });
});
