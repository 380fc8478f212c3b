import { mkdirSync } from 'node:fs';
import { ImeError } from '@ime/core';
import { Level } from 'level';

/**
 * One LevelDB database per component (SPEC §4), keys and values as bytes. Components keep their own
 * key prefixes (records, metadata, …) in it.
 */
export type Database = Level<Uint8Array, Uint8Array>;

export async function openDatabase(dir: string): Promise<Database> {
  mkdirSync(dir, { recursive: true });
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const text = `${(err as Error).message} ${cause?.message ?? ''}`;
    if (/lock/i.test(text)) {
      throw new ImeError('E_DB_LOCKED', `the database in ${dir} is in use by another process (is this component already running?)`);
    }
    throw new ImeError('E_DB_OPEN', `cannot open the database in ${dir}: ${text.trim()}`);
  }
  return db;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function keyOf(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Small metadata values (identity, certificates, settings) are stored as JSON under text keys. */
export async function getJson<T>(db: Database, key: string): Promise<T | undefined> {
  const v = await db.get(keyOf(key));
  if (v === undefined) return undefined;
  try {
    return JSON.parse(decoder.decode(v)) as T;
  } catch {
    throw new ImeError('E_DB_CORRUPT', `the stored value ${key} is not valid JSON`);
  }
}

export async function putJson(db: Database, key: string, value: unknown): Promise<void> {
  await db.put(keyOf(key), encoder.encode(JSON.stringify(value)));
}
