/**
 * @ime/peer: the ring peer ("IME server"): enrollment, admission, the signed configuration, the
 * replicated DID record store and its repair, and the publication of the enterprise's numbers.
 */
export * from './peer-node.js';
export * from './peer-config.js';
export * from './ring-placement.js';
export * from './ring-types.js';
export * from './health.js';
export * from './peer-process.js';
export * from './peer-backup.js';
export { BACKUP_FILE_MODE, type CheckedBackup, type RestoredFile, readBackupFile, readBackupFilePrefix } from './peer-backup-files.js';
export { type OfflineRestoreOptions, type OfflineRestoreResult, restorePeerOffline } from './peer-backup-offline.js';
export { RESTORE_CHUNK_BYTES, type RestoreStatus } from './peer-backup-service.js';
export type { PublishReport } from './did-publisher.js';
