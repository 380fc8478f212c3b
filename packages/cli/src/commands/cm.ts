import type { Command } from '../command.js';

/** Filled by the VAP issue (#5); registered in main.ts. */
export const CM_COMMANDS: readonly Command[] = [];
