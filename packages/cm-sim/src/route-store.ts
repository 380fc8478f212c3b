import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ImeError } from '@ime/core';
import { type StoredRoute, parseStoredRoutes } from './route-table.js';

/**
 * Keeps the learned routes in a JSON file so they survive a restart, as a call manager's database
 * does. Writes go to a temporary file renamed over the old one, so a crash leaves the old table or
 * the new one, never half of one; they are chained so the last table written is the last asked.
 */
export class RouteStore {
  readonly path: string;
  #tail: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  /** The stored routes; none when the file does not exist yet. */
  async load(): Promise<StoredRoute[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new ImeError('E_CM_ROUTES_FILE', `cannot read the learned routes file ${this.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ImeError('E_CM_ROUTES_FILE', `the learned routes file ${this.path} is not valid JSON; move it away to start with an empty table`);
    }
    return parseStoredRoutes(value);
  }

  save(routes: readonly StoredRoute[]): Promise<void> {
    const text = `${JSON.stringify({ routes }, null, 1)}\n`;
    const write = async (): Promise<void> => {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const tmp = `${this.path}.tmp`;
      // Tickets authorise calls into the other enterprise: not for other users of the machine.
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.path);
    };
    const next = this.#tail.then(write, write);
    this.#tail = next.catch(() => undefined);
    return next;
  }

  /** Resolves once every save asked so far is on disk (or failed). */
  settled(): Promise<void> {
    return this.#tail;
  }
}
