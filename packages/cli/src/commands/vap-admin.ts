import type { Command } from '../command.js';

/** Filled by the VAP issue (#5); registered in main.ts. */
export const VAP_ADMIN_COMMANDS: readonly Command[] = [];
