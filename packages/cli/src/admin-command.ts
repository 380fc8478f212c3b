import { ADMIN_OPTIONS } from './admin-target.js';
import type { Command } from './command.js';
import { EXIT_OK } from './output.js';

/**
 * Commands that call a running component's admin API and print its answer: human lines by default,
 * the JSON object with --json. Every role's administration commands are built with this.
 */

export type Json = Record<string, unknown>;

/** The guide's dotted labels: `Registration Status ......`. */
export function dots(label: string, width = 36): string {
  return `${label}${'.'.repeat(Math.max(2, width - label.length))}`;
}

export function adminCommand(
  path: string[],
  summary: string,
  call: (ctx: Parameters<Command['run']>[0]) => Promise<{ json: Json; human: string[] }>,
  extra: Partial<Command> = {},
): Command {
  return {
    path,
    summary,
    options: [...(extra.options ?? []), ...ADMIN_OPTIONS],
    ...(extra.args ? { args: extra.args } : {}),
    ...(extra.examples ? { examples: extra.examples } : {}),
    async run(ctx) {
      const { json, human } = await call(ctx);
      ctx.out.result(json, human);
      return EXIT_OK;
    },
  };
}
