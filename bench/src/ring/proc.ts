import { readFileSync } from 'node:fs';
import { parseProcStatTicks } from './stats.js';

/** CPU time (user + system, ms) a process has used so far, from /proc; NaN when the pid is unknown. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  return ((parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? Number.NaN) * 1000) / 100;
}
