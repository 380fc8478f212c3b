import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from '@jest/globals';
import { type Database, openDatabase } from '@ime/runtime';

/**
 * Real LevelDB databases in temporary directories for the validator's store tests, closed and removed
 * after each test. Call once at the top of a test file; `freshDb(dir)` reopens a directory (restart).
 */
export function tempDatabases(prefix: string): (dir?: string) => Promise<{ db: Database; dir: string }> {
  const dirs: string[] = [];
  const dbs: Database[] = [];
  afterEach(async () => {
    for (const db of dbs.splice(0)) if (db.status === 'open') await db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return async (dir = mkdtempSync(join(tmpdir(), prefix))) => {
    if (!dirs.includes(dir)) dirs.push(dir);
    const db = await openDatabase(dir);
    dbs.push(db);
    return { db, dir };
  };
}
