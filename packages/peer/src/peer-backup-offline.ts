import { mkdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { ImeError, isImeError, sameDomain } from '@ime/core';
import { AuditLog, loadConfigFile, openDatabase, parseConfigText } from '@ime/runtime';
import {
  type RestoredFile,
  discardStaging,
  isNonEmptyDir,
  readBackupFile,
  readBackupFilePrefix,
  restoreExternalFiles,
  stageRestore,
  swapInStagedDatabase,
} from './peer-backup-files.js';
import { type PeerConfig, peerConfigSchema } from './peer-config.js';

/**
 * `ime utils restore --in FILE --config peer.yaml`: restores a backup into the data dir of a peer
 * that is not running (a machine being rebuilt; docs/OPERATIONS.md says when to use which form).
 * When the configuration file does not exist yet, the backup's own configuration is written there
 * (as JSON, which YAML reads too) once the data is in place.
 */

export interface OfflineRestoreOptions {
  readonly backupFile: string;
  readonly configFile: string;
  /** Replace a data dir that already holds something (its database is replaced). */
  readonly force?: boolean;
}

export interface OfflineRestoreResult {
  readonly configFile: string;
  readonly configWritten: boolean;
  readonly dataDir: string;
  readonly peerId: string;
  readonly domain: string;
  readonly name: string;
  readonly createdAt: string;
  readonly entries: number;
  readonly bytes: number;
  /** Whether a database was there before and was replaced (only with `force`). */
  readonly replaced: boolean;
  readonly files: readonly RestoredFile[];
}

function actor(): string {
  try {
    return `local:${userInfo().username}`;
  } catch {
    return `local:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

/** The peer's configuration, or undefined when the file does not exist (any other problem is refused). */
async function loadIfPresent(path: string): Promise<PeerConfig | undefined> {
  try {
    return await loadConfigFile(path, peerConfigSchema);
  } catch (err) {
    if (isImeError(err) && err.code === 'E_CONFIG_FILE' && /no such file/.test(err.message)) return undefined;
    throw err;
  }
}

export async function restorePeerOffline(options: OfflineRestoreOptions): Promise<OfflineRestoreResult> {
  const { backupFile, configFile } = options;
  let config = await loadIfPresent(configFile);
  let configText: string | undefined;
  if (config === undefined) {
    const checked = await readBackupFile(backupFile);
    configText = `${JSON.stringify(checked.configuration, null, 2)}\n`;
    config = parseConfigText(configText, 'json', peerConfigSchema, { baseDir: dirname(configFile), source: `the configuration in ${backupFile}` });
  }
  // Refusals that need no more than the preamble come before the data dir is looked at.
  await readBackupFilePrefix(backupFile);
  const dataDir = config.dataDir;
  const occupied = await isNonEmptyDir(dataDir);
  if (occupied && !options.force) {
    throw new ImeError('E_RESTORE_DATA_DIR_NOT_EMPTY', `the data dir ${dataDir} is not empty: restore into an empty one, or pass --force to replace its state`);
  }
  let replaced = false;
  if (occupied) {
    // A running peer holds its database's lock: the offline form must not pull the state from under it.
    try {
      await (await openDatabase(join(dataDir, 'db'))).close();
    } catch (err) {
      if (isImeError(err) && err.code === 'E_DB_LOCKED') {
        throw new ImeError('E_RESTORE_PEER_RUNNING', `the peer using ${dataDir} is running: restore through it (ime utils restore --in FILE --admin URL) or stop it first`);
      }
      throw err;
    }
    replaced = true;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const audit = new AuditLog(join(dataDir, 'audit.log'));
  const params: Record<string, unknown> = { backupFile, configFile, force: options.force === true };
  try {
    const checked = await stageRestore(dataDir, backupFile);
    const h = checked.header;
    Object.assign(params, { peerId: h.peerId, domain: h.domain, createdAt: h.createdAt });
    if (!sameDomain(h.domain, config.domain)) {
      throw new ImeError('E_BACKUP_DOMAIN', `the backup is of a peer of ${h.domain}; ${configFile} configures ${config.domain}`);
    }
    const files = await restoreExternalFiles(checked.files, config.vap);
    await swapInStagedDatabase(dataDir);
    await discardStaging(dataDir);
    if (configText !== undefined) await writeFile(configFile, configText, { mode: 0o644, flag: 'wx' });
    await audit.record({ actor: actor(), action: 'restore-offline', params, outcome: 'success' });
    return {
      configFile,
      configWritten: configText !== undefined,
      dataDir,
      peerId: checked.header.peerId,
      domain: checked.header.domain,
      name: checked.header.name,
      createdAt: checked.header.createdAt,
      entries: checked.counts.entries,
      bytes: checked.bytes,
      replaced,
      files,
    };
  } catch (err) {
    if (!occupied) {
      // Left as it was found (nothing there), so that the next attempt needs no --force.
      await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    await discardStaging(dataDir).catch(() => undefined);
    const error = isImeError(err) ? { code: err.code, message: err.message } : { code: 'E_INTERNAL', message: (err as Error).message };
    await audit.record({ actor: actor(), action: 'restore-offline', params, outcome: 'failure', error }).catch(() => undefined);
    throw err;
  }
}
