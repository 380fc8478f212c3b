import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built `ime` binary, run as operators and outside checks run it. */
export const IME_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'packages/cli/bin/ime.js');

export interface ImeRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `ime …` as a separate process. Async on purpose: the components it talks to may live in this
 * process (in-process ring members), whose timers and sockets must keep running meanwhile.
 */
export function runIme(argv: readonly string[], timeoutMs = 30_000): Promise<ImeRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [IME_BIN, ...argv], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The one JSON object a `--json` command prints as its last line. */
export function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}
