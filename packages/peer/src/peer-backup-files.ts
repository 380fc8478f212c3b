import { existsSync, renameSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ImeError, isImeError } from '@ime/core';
import { openDatabase } from '@ime/runtime';
import {
  type BackupCounts,
  type BackupFrame,
  type BackupHeader,
  BackupFrameDecoder,
  type BackupPrefix,
  BackupSealCheck,
  MAX_BACKUP_HEADER_BYTES,
  BACKUP_PREAMBLE_BYTES,
  backupHeaderOf,
  checkBackupLength,
  readBackupPrefix,
} from './peer-backup.js';

/**
 * Backup files on disk and the data-dir swap of a restore, shared by the running peer
 * (peer-backup-service.ts), the offline restore (peer-backup-offline.ts) and the CLI.
 *
 * A restore never changes the peer's database in place: the backup is checked whole, then written
 * into a new database under `<dataDir>/restore-staging/`, and only then swapped in by two renames.
 * A marker written before the renames lets the next start finish a swap a crash interrupted (see
 * recoverInterruptedRestore), so a peer never comes up with no database — which would mean a new
 * identity.
 */

/** Backups hold the peer's private keys and secrets. */
export const BACKUP_FILE_MODE = 0o600;
export const RESTORE_STAGING_DIR = 'restore-staging';
const SWAP_MARKER = 'swap.json';
const STAGED_DB = 'db';
const PREVIOUS_DB = 'previous-db';
const FAILED_DB = 'failed-db';
const READ_CHUNK_BYTES = 1024 * 1024;
/** Entries written per LevelDB batch while loading: bounded memory whatever the store's size. */
const LOAD_BATCH_ENTRIES = 2048;
const LOAD_BATCH_BYTES = 4 * 1024 * 1024;

/** The external files a backup may carry (the peer's VAP certificate and key when configured as files). */
export const BACKUP_FILE_NAMES = ['vap/certificateFile', 'vap/keyFile'] as const;
export type BackupFileName = (typeof BACKUP_FILE_NAMES)[number];

export interface CheckedBackup {
  readonly header: BackupHeader;
  readonly prefix: BackupPrefix;
  readonly counts: BackupCounts;
  readonly configuration: Record<string, unknown>;
  readonly files: ReadonlyMap<BackupFileName, Uint8Array>;
  readonly bytes: number;
}

function malformed(message: string): ImeError {
  return new ImeError('E_BACKUP_MALFORMED', `not a usable peer backup: ${message}`);
}

function fileError(path: string, err: unknown): ImeError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'a directory' : (code ?? 'error');
  return new ImeError('E_BACKUP_FILE', `cannot read the backup ${path}: ${why}`);
}

/** Opens a backup for reading, naming what is wrong with the path (E_BACKUP_FILE). */
async function openBackup(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw fileError(path, err);
  }
}

/** The preamble and header of a backup file (refusals as readBackupPrefix). */
export async function readBackupFilePrefix(path: string): Promise<{ prefix: BackupPrefix; bytes: number }> {
  const file = await openBackup(path);
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new ImeError('E_BACKUP_FILE', `cannot read the backup ${path}: not a regular file`);
    const buf = Buffer.alloc(Math.min(info.size, BACKUP_PREAMBLE_BYTES + MAX_BACKUP_HEADER_BYTES));
    const { bytesRead } = await file.read(buf, 0, buf.length, 0);
    const prefix = readBackupPrefix(buf.subarray(0, bytesRead));
    if (prefix === undefined) throw malformed(`the file is truncated (${info.size} bytes, shorter than its header)`);
    return { prefix, bytes: info.size };
  } finally {
    await file.close();
  }
}

/**
 * Reads a backup file through once, in bounded memory: its seal, then its structure, with every
 * frame passed to `onFrame` on the way. A structural fault is reported only once the seal is known
 * good, so a damaged file says E_BACKUP_CORRUPT and a well-sealed but ill-formed one
 * E_BACKUP_MALFORMED. `onFrame` may see frames of a file later refused: what it builds must be
 * thrown away on a refusal (a staging database is).
 */
export async function readBackupFile(path: string, onFrame?: (frame: BackupFrame) => Promise<void> | void): Promise<CheckedBackup> {
  const { prefix, bytes } = await readBackupFilePrefix(path);
  checkBackupLength(prefix, bytes);
  const seal = new BackupSealCheck(prefix);
  const decoder = new BackupFrameDecoder();
  let structural: unknown;
  let configuration: Record<string, unknown> | undefined;
  const files = new Map<BackupFileName, Uint8Array>();
  const take = async (frame: BackupFrame): Promise<void> => {
    if (frame.kind === 'configuration') {
      const c = frame.configuration;
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw malformed('the configuration is not a JSON object');
      configuration = c as Record<string, unknown>;
    } else if (frame.kind === 'file') {
      if (!(BACKUP_FILE_NAMES as readonly string[]).includes(frame.name) || files.has(frame.name as BackupFileName)) {
        throw malformed(`unexpected file ${JSON.stringify(frame.name.slice(0, 64))}`);
      }
      files.set(frame.name as BackupFileName, frame.bytes);
    }
    await onFrame?.(frame);
  };
  const file = await openBackup(path);
  try {
    const buf = Buffer.alloc(READ_CHUNK_BYTES);
    let position = prefix.contentOffset;
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const chunk = buf.subarray(0, bytesRead);
      seal.update(chunk);
      if (structural !== undefined) continue;
      try {
        for (const frame of decoder.push(chunk)) await take(frame);
      } catch (err) {
        if (!isImeError(err)) throw err;
        structural = err;
      }
    }
  } finally {
    await file.close();
  }
  seal.check();
  const header = backupHeaderOf(prefix);
  if (structural !== undefined) throw structural;
  const counts = decoder.finish();
  if (configuration === undefined) throw malformed('no configuration');
  return { header, prefix, counts, configuration, files, bytes };
}

/**
 * Checks a backup file whole, then writes its database entries into a new LevelDB database at
 * `<dataDir>/restore-staging/db` (replacing any earlier staged one). Nothing outside the staging
 * directory changes; on a refusal the staged database is removed.
 */
export async function stageRestore(dataDir: string, backupFile: string): Promise<CheckedBackup> {
  const staging = join(dataDir, RESTORE_STAGING_DIR);
  const checked = await readBackupFile(backupFile);
  await clearStagedDatabases(staging);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  const db = await openDatabase(join(staging, STAGED_DB));
  try {
    let batch = db.batch();
    let batchBytes = 0;
    await readBackupFile(backupFile, async (frame) => {
      if (frame.kind !== 'entry') return;
      batch.put(frame.key, frame.value);
      batchBytes += frame.key.length + frame.value.length;
      if (batch.length >= LOAD_BATCH_ENTRIES || batchBytes >= LOAD_BATCH_BYTES) {
        await batch.write();
        batch = db.batch();
        batchBytes = 0;
      }
    });
    if (batch.length > 0) await batch.write();
    else await batch.close();
  } catch (err) {
    await db.close().catch(() => undefined);
    await clearStagedDatabases(staging);
    throw err;
  }
  await db.close();
  return checked;
}

async function clearStagedDatabases(staging: string): Promise<void> {
  for (const name of [SWAP_MARKER, STAGED_DB, PREVIOUS_DB, FAILED_DB]) await rm(join(staging, name), { recursive: true, force: true });
}

/** Removes the staging directory: a refused, finished or abandoned restore. */
export async function discardStaging(dataDir: string): Promise<void> {
  await rm(join(dataDir, RESTORE_STAGING_DIR), { recursive: true, force: true });
}

/** Puts the staged database in place of `<dataDir>/db`; the replaced one waits in staging until `discardStaging`. */
export async function swapInStagedDatabase(dataDir: string): Promise<void> {
  const staging = join(dataDir, RESTORE_STAGING_DIR);
  const live = join(dataDir, 'db');
  await writeFile(join(staging, SWAP_MARKER), `${JSON.stringify({ swapping: true, at: new Date().toISOString() })}\n`, { mode: 0o600 });
  if (existsSync(live)) await rename(live, join(staging, PREVIOUS_DB));
  await rename(join(staging, STAGED_DB), live);
  // Only the moment between the renames needs recovering: a data dir wiped later must stay wiped.
  await rm(join(staging, SWAP_MARKER), { force: true });
}

/** Puts back the database `swapInStagedDatabase` replaced (a restored peer that could not start). */
export async function undoSwap(dataDir: string): Promise<void> {
  const staging = join(dataDir, RESTORE_STAGING_DIR);
  const previous = join(staging, PREVIOUS_DB);
  if (!existsSync(previous)) return;
  const live = join(dataDir, 'db');
  if (existsSync(live)) await rename(live, join(staging, FAILED_DB));
  await rename(previous, live);
}

/**
 * Called by the peer before it opens its database: if a crash interrupted a restore between its two
 * renames, there is no database; put the staged (already checked) one in place, or else the previous
 * one back. Otherwise it does nothing.
 */
export function recoverInterruptedRestore(dataDir: string): void {
  const live = join(dataDir, 'db');
  const staging = join(dataDir, RESTORE_STAGING_DIR);
  if (existsSync(live) || !existsSync(join(staging, SWAP_MARKER))) return;
  for (const candidate of [STAGED_DB, PREVIOUS_DB]) {
    if (existsSync(join(staging, candidate))) {
      renameSync(join(staging, candidate), live);
      return;
    }
  }
}

/** What happened to one external file of the backup on restore. */
export interface RestoredFile {
  readonly name: BackupFileName;
  /** Where this peer's configuration keeps it, if it names such a file. */
  readonly path: string | null;
  readonly outcome: 'written' | 'identical' | 'kept-different' | 'not-configured';
}

/**
 * The backup's external files against this peer's configuration: a configured file that is missing
 * is written (keys mode 0600); an existing one is never overwritten — it is this machine's, and
 * the operator decides (the result says when it differs from the backup's).
 */
export async function restoreExternalFiles(
  files: ReadonlyMap<BackupFileName, Uint8Array>,
  vap: { certificateFile?: string | undefined; keyFile?: string | undefined },
): Promise<RestoredFile[]> {
  const out: RestoredFile[] = [];
  for (const [name, bytes] of files) {
    const path = name === 'vap/certificateFile' ? vap.certificateFile : vap.keyFile;
    if (path === undefined) {
      out.push({ name, path: null, outcome: 'not-configured' });
      continue;
    }
    let existing: Buffer | undefined;
    try {
      existing = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ImeError('E_RESTORE_FILE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (existing !== undefined) {
      out.push({ name, path, outcome: Buffer.compare(existing, bytes) === 0 ? 'identical' : 'kept-different' });
      continue;
    }
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(path, bytes, { mode: name === 'vap/keyFile' ? 0o600 : 0o644, flag: 'wx' });
    } catch (err) {
      throw new ImeError('E_RESTORE_FILE', `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    out.push({ name, path, outcome: 'written' });
  }
  return out;
}

/** Whether a directory exists and holds anything. */
export async function isNonEmptyDir(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isDirectory()) return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  return (await readdir(path)).length > 0;
}
