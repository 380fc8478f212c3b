import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImeError, isImeError, sameDomain } from '@ime/core';
import type { AdminServer } from '@ime/runtime';
import { type BackupHeader, type BackupPrefix, BackupEncoder, backupHeaderOf, MAX_BACKUP_HEADER_BYTES, BACKUP_PREAMBLE_BYTES, checkBackupLength, readBackupPrefix } from './peer-backup.js';
import {
  type BackupFileName,
  RESTORE_STAGING_DIR,
  type RestoredFile,
  discardStaging,
  restoreExternalFiles,
  stageRestore,
  swapInStagedDatabase,
  undoSwap,
} from './peer-backup-files.js';
import { PEER_SOFTWARE_VERSION, type PeerNode } from './peer-node.js';

/**
 * Backup and restore of a running peer through its admin API (docs/OPERATIONS.md "Backup and
 * restore"). The admin API speaks JSON with bounded bodies, so files travel in base64 chunks:
 *
 *   POST   /v1/backup                  (audited) opens a snapshot → {session, header, chunkBytes}
 *   GET    /v1/backup/:session?part=N  the Nth chunk; the last one carries the sealed preamble
 *   DELETE /v1/backup/:session         gives the snapshot up
 *   POST   /v1/restore {bytes}         opens an upload → {session, chunkBytes}
 *   PUT    /v1/restore/:session {offset, data}
 *   POST   /v1/restore/:session/commit checks the file whole, stages it, answers, then restarts
 *   GET    /v1/restore/:session        the upload, or the outcome of the restore after the restart
 *   DELETE /v1/restore/:session        gives the upload up
 *
 * A backup's chunks are cut from one LevelDB iterator (one snapshot), so the peer keeps serving and
 * the file is consistent. A restore is checked as its bytes arrive (signature, schema, domain) and
 * whole before anything changes; then the peer stops every service, swaps its database and starts
 * again in this process as the backed-up peer (PeerNode.restartWith). Restore requests are audited
 * by hand rather than by the route (`audit:` would put the chunk bodies in the log); no file content
 * is ever logged.
 */

/** Raw bytes per download chunk (≈ 5.5 MB of JSON). */
const DOWNLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
/** Raw bytes per upload chunk: base64 and JSON must stay under the admin API's 1 MB body limit. */
export const RESTORE_CHUNK_BYTES = 512 * 1024;
const ITERATOR_STEP = 512;
/** A session nobody asked anything of for this long is closed (its snapshot or upload released). */
const SESSION_IDLE_MS = 120_000;
const MAX_BACKUP_SESSIONS = 2;
const MAX_RESTORE_BYTES = 2 ** 50;
const UPLOAD_FILE = 'upload.part';
const STATUS_FILE = 'restore-status.json';
const SESSION_RE = /^[A-Za-z0-9_-]{16}$/;

export interface RestoreStatus {
  readonly id: string;
  readonly state: 'restarting' | 'applied' | 'failed';
  readonly backup: { peerId: string; domain: string; name: string; createdAt: string };
  readonly previousPeerId: string;
  readonly peerId?: string;
  readonly entries: number;
  readonly bytes: number;
  readonly files: readonly RestoredFile[];
  readonly at: string;
  readonly error?: { code: string; message: string };
}

function badRequest(message: string): ImeError {
  return new ImeError('E_ADMIN_BAD_REQUEST', message);
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function sessionId(): string {
  return randomBytes(12).toString('base64url');
}

function checkSessionParam(id: string | undefined): string {
  if (id === undefined || !SESSION_RE.test(id)) throw new ImeError('E_BACKUP_SESSION_NOT_FOUND', 'no such backup or restore session');
  return id;
}

function concat(parts: readonly Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

/** The header when it can be read (before the seal is checked, a damaged one cannot). */
function readableHeader(prefix: BackupPrefix | undefined): BackupHeader | undefined {
  if (prefix === undefined) return undefined;
  try {
    return backupHeaderOf(prefix);
  } catch {
    return undefined;
  }
}

/**
 * What a refused or failed restore reports. The outcome is read by the operator who asked (through
 * the token-protected admin API) and no log line carries it, so an unexpected error keeps its text.
 */
function errorOf(err: unknown): { code: string; message: string } {
  if (isImeError(err)) return { code: err.code, message: err.message };
  return { code: 'E_INTERNAL', message: `the restore failed unexpectedly: ${String((err as Error)?.message ?? err).split('\n')[0]?.slice(0, 300)}` };
}

interface BackupChunk {
  readonly part: number;
  readonly data: string;
  readonly done: boolean;
  readonly prefix?: string;
  readonly seal?: { contentBytes: number; sha256: string };
  readonly counts?: { entries: number; files: number };
}

/** One backup in progress: a snapshot iterator cut into chunks; a chunk asked for again is sent again. */
class BackupSession {
  readonly id = sessionId();
  readonly encoder: BackupEncoder;
  lastUsedMs = Date.now();
  readonly #iterator: ReturnType<PeerNode['stateIterator']>;
  readonly #head: Uint8Array[];
  #last: BackupChunk | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(encoder: BackupEncoder, iterator: ReturnType<PeerNode['stateIterator']>, head: Uint8Array[]) {
    this.encoder = encoder;
    this.#iterator = iterator;
    this.#head = head;
  }

  next(part: number): Promise<BackupChunk> {
    this.lastUsedMs = Date.now();
    // Chunks are cut one at a time, in order, whatever the client does.
    const run = this.#queue.then(() => this.#cut(part));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #cut(part: number): Promise<BackupChunk> {
    if (this.#last !== undefined && part === this.#last.part) return this.#last;
    const expected = this.#last === undefined ? 0 : this.#last.part + 1;
    if (part !== expected || this.#last?.done) throw new ImeError('E_BACKUP_PART', `chunk ${part} cannot be sent now (next is ${this.#last?.done ? 'none: the backup is complete' : expected})`);
    const pieces = part === 0 ? this.#head.splice(0) : [];
    let size = pieces.reduce((n, p) => n + p.length, 0);
    let exhausted = false;
    while (size < DOWNLOAD_CHUNK_BYTES) {
      const entries = await this.#iterator.nextv(ITERATOR_STEP);
      if (entries.length === 0) {
        exhausted = true;
        break;
      }
      for (const [key, value] of entries) {
        const frame = this.encoder.entry(key, value);
        pieces.push(frame);
        size += frame.length;
      }
    }
    let chunk: BackupChunk;
    if (exhausted) {
      pieces.push(this.encoder.end());
      const { prefix, seal } = this.encoder.seal();
      await this.close();
      chunk = { part, data: concat(pieces).toString('base64'), done: true, prefix: Buffer.from(prefix).toString('base64'), seal, counts: this.encoder.counts };
    } else {
      chunk = { part, data: concat(pieces).toString('base64'), done: false };
    }
    this.#last = chunk;
    return chunk;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#iterator.close().catch(() => undefined);
  }
}

/** One restore upload: bytes appended in order to a file in the staging directory, checked as they come. */
class RestoreSession {
  readonly id = sessionId();
  readonly bytes: number;
  readonly path: string;
  received = 0;
  /** Committed: the file is being checked and staged. */
  checking = false;
  lastUsedMs = Date.now();
  prefix: BackupPrefix | undefined;
  #head: Buffer[] = [];
  #file: FileHandle | undefined;

  constructor(bytes: number, path: string) {
    this.bytes = bytes;
    this.path = path;
  }

  async open(): Promise<void> {
    this.#file = await open(this.path, 'w', 0o600);
  }

  /** Appends a chunk; returns the backup's prefix once its header has arrived. */
  async append(offset: number, data: Buffer): Promise<BackupPrefix | undefined> {
    this.lastUsedMs = Date.now();
    if (offset !== this.received) throw new ImeError('E_RESTORE_OFFSET', `the upload is at byte ${this.received}, not ${offset}`);
    if (this.received + data.length > this.bytes) throw new ImeError('E_BACKUP_MALFORMED', `not a usable peer backup: more than the announced ${this.bytes} bytes`);
    if (this.prefix === undefined) {
      this.#head.push(data);
      const head = Buffer.concat(this.#head);
      const prefix = readBackupPrefix(head.subarray(0, BACKUP_PREAMBLE_BYTES + MAX_BACKUP_HEADER_BYTES));
      if (prefix !== undefined) {
        checkBackupLength(prefix, this.bytes);
        this.prefix = prefix;
        this.#head = [];
      } else if (this.received + data.length === this.bytes) {
        throw new ImeError('E_BACKUP_MALFORMED', `not a usable peer backup: the file is truncated (${this.bytes} bytes, shorter than its header)`);
      }
    }
    await (this.#file as FileHandle).write(data);
    this.received += data.length;
    return this.prefix;
  }

  async close(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    await f?.close().catch(() => undefined);
  }
}

/** Registers the backup and restore routes of one running peer. */
export function registerPeerBackupRoutes(admin: AdminServer, node: PeerNode): void {
  const service = new PeerBackupService(node);
  admin
    .addRoute({ method: 'POST', path: '/v1/backup', audit: 'backup', handler: () => service.beginBackup() })
    .addRoute({
      method: 'GET',
      path: '/v1/backup/:session',
      handler: ({ params, query }) => {
        const part = /^\d{1,9}$/.test(query.part ?? '') ? Number(query.part) : Number.NaN;
        if (!Number.isInteger(part)) throw badRequest('part must be a chunk number (0, 1, …)');
        return service.backupChunk(checkSessionParam(params.session), part);
      },
    })
    .addRoute({ method: 'DELETE', path: '/v1/backup/:session', handler: ({ params }) => service.endBackup(checkSessionParam(params.session)) })
    .addRoute({ method: 'POST', path: '/v1/restore', handler: ({ body, actor }) => service.beginRestore(objectBody(body), actor) })
    .addRoute({ method: 'PUT', path: '/v1/restore/:session', handler: ({ params, body, actor }) => service.restoreChunk(checkSessionParam(params.session), objectBody(body), actor) })
    .addRoute({ method: 'POST', path: '/v1/restore/:session/commit', handler: ({ params, actor }) => service.commitRestore(checkSessionParam(params.session), actor) })
    .addRoute({ method: 'GET', path: '/v1/restore/:session', handler: ({ params }) => service.restoreStatus(checkSessionParam(params.session)) })
    .addRoute({ method: 'DELETE', path: '/v1/restore/:session', handler: ({ params, actor }) => service.abortRestore(checkSessionParam(params.session), actor) });
}

class PeerBackupService {
  readonly #node: PeerNode;
  readonly #dataDir: string;
  readonly #backups = new Map<string, BackupSession>();
  #restore: RestoreSession | undefined;
  /** From a commit until the restarted peer is up (or the old one is back). */
  #restarting = false;
  /** The last restore this peer refused, for the client following it. */
  #refused: { id: string; state: 'refused'; error: { code: string; message: string } } | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(node: PeerNode) {
    this.#node = node;
    this.#dataDir = node.configuration.dataDir;
  }

  async beginBackup(): Promise<Record<string, unknown>> {
    this.#startSweeping();
    if (this.#restarting) throw new ImeError('E_RESTORE_BUSY', 'a restore is replacing this peer\'s state; back up once it is done');
    if (this.#backups.size >= MAX_BACKUP_SESSIONS) throw new ImeError('E_BACKUP_BUSY', `${MAX_BACKUP_SESSIONS} backups are already in progress; wait for one to finish`);
    const node = this.#node;
    const config = node.configuration;
    const encoder = new BackupEncoder({
      peerId: node.peerId,
      domain: node.domain,
      name: node.name,
      createdAt: new Date().toISOString(),
      softwareVersion: PEER_SOFTWARE_VERSION,
    });
    const head = [encoder.start(), encoder.configuration(config)];
    const external: [BackupFileName, string | undefined][] = [
      ['vap/certificateFile', config.vap.certificateFile],
      ['vap/keyFile', config.vap.keyFile],
    ];
    for (const [name, path] of external) {
      if (path === undefined) continue;
      try {
        head.push(encoder.file(name, await readFile(path)));
      } catch (err) {
        throw new ImeError('E_BACKUP_FILE', `cannot read ${path} (${name}) to back it up: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    // Taken last: the snapshot is of the database as the operator asked for the backup.
    const session = new BackupSession(encoder, node.stateIterator(), head);
    this.#backups.set(session.id, session);
    return { session: session.id, header: encoder.header, chunkBytes: DOWNLOAD_CHUNK_BYTES };
  }

  async backupChunk(id: string, part: number): Promise<BackupChunk> {
    const session = this.#backups.get(id);
    if (!session) throw new ImeError('E_BACKUP_SESSION_NOT_FOUND', 'no such backup session (finished, given up or idle too long)');
    try {
      const chunk = await session.next(part);
      // The last chunk stays answerable until the client ends the session or it idles out.
      return chunk;
    } catch (err) {
      if (!isImeError(err) || err.code !== 'E_BACKUP_PART') await this.endBackup(id);
      throw err;
    }
  }

  async endBackup(id: string): Promise<{ ok: true }> {
    const session = this.#backups.get(id);
    this.#backups.delete(id);
    await session?.close();
    return { ok: true };
  }

  async beginRestore(body: Record<string, unknown>, actor: string): Promise<Record<string, unknown>> {
    this.#startSweeping();
    const bytes = body.bytes;
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < BACKUP_PREAMBLE_BYTES || bytes > MAX_RESTORE_BYTES) {
      throw badRequest('bytes must be the size of the backup file');
    }
    if (this.#restarting) {
      throw new ImeError('E_RESTORE_BUSY', 'a restore is already replacing this peer\'s state');
    }
    if (this.#restore) {
      if (this.#restore.checking || Date.now() - this.#restore.lastUsedMs < SESSION_IDLE_MS) throw new ImeError('E_RESTORE_BUSY', 'another restore is being uploaded to this peer');
      await this.#endRestore(this.#restore, actor, new ImeError('E_RESTORE_ABANDONED', 'the upload stopped'));
    }
    // Leftovers of an interrupted restore go; a restore's staging is never shared.
    await discardStaging(this.#dataDir);
    await mkdir(join(this.#dataDir, RESTORE_STAGING_DIR), { recursive: true, mode: 0o700 });
    const session = new RestoreSession(bytes, join(this.#dataDir, RESTORE_STAGING_DIR, UPLOAD_FILE));
    await session.open();
    this.#restore = session;
    return { session: session.id, chunkBytes: RESTORE_CHUNK_BYTES };
  }

  async restoreChunk(id: string, body: Record<string, unknown>, actor: string): Promise<Record<string, unknown>> {
    const session = this.#uploading(id);
    if (session.checking) throw new ImeError('E_RESTORE_BUSY', 'this restore is complete and being checked');
    const { offset, data } = body;
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw badRequest('offset must be the byte offset of the chunk');
    if (typeof data !== 'string' || data.length === 0 || data.length > Math.ceil(RESTORE_CHUNK_BYTES / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
      throw badRequest(`data must be base64 of 1–${RESTORE_CHUNK_BYTES} bytes`);
    }
    try {
      const prefix = await session.append(offset, Buffer.from(data, 'base64'));
      // Refused early when the header is readable; a damaged one is judged with the seal at commit.
      const header = readableHeader(prefix);
      if (header) this.#checkDomain(header);
    } catch (err) {
      // A refused file ends the restore: nothing was changed and nothing of it is kept.
      if (!isImeError(err) || err.code !== 'E_RESTORE_OFFSET') await this.#endRestore(session, actor, err);
      throw err;
    }
    return { received: session.received, bytes: session.bytes };
  }

  /**
   * Ends the upload and answers at once; the file is then checked whole and staged in the
   * background (minutes for a large store: longer than an admin request should last), and the
   * client follows with `GET /v1/restore/:session` until it is refused, applied or failed.
   */
  async commitRestore(id: string, actor: string): Promise<Record<string, unknown>> {
    const session = this.#uploading(id);
    if (session.checking) throw new ImeError('E_RESTORE_BUSY', 'this restore is already being checked');
    if (session.received !== session.bytes || session.prefix === undefined) {
      const err = new ImeError('E_RESTORE_INCOMPLETE', `only ${session.received} of ${session.bytes} bytes were uploaded`);
      await this.#endRestore(session, actor, err);
      throw err;
    }
    session.checking = true;
    await session.close();
    void this.#checkAndRestart(session, actor).catch(() => undefined);
    return { id, state: 'checking', bytes: session.bytes };
  }

  async #checkAndRestart(session: RestoreSession, actor: string): Promise<void> {
    const node = this.#node;
    let files: RestoredFile[];
    let checked;
    try {
      checked = await stageRestore(this.#dataDir, session.path);
      this.#checkDomain(checked.header);
      await rm(session.path, { force: true });
      files = await restoreExternalFiles(checked.files, node.configuration.vap);
    } catch (err) {
      await this.#endRestore(session, actor, err);
      return;
    }
    this.#restore = undefined;
    this.#restarting = true;
    const header = checked.header;
    const backup = { peerId: header.peerId, domain: header.domain, name: header.name, createdAt: header.createdAt };
    const status: RestoreStatus = {
      id: session.id,
      state: 'restarting',
      backup,
      previousPeerId: node.peerId,
      entries: checked.counts.entries,
      bytes: checked.bytes,
      files,
      at: new Date().toISOString(),
    };
    try {
      await this.#writeStatus(status);
      await this.#audit(actor, 'restore', { session: session.id, backup, previousPeerId: node.peerId, entries: checked.counts.entries, bytes: checked.bytes }, undefined);
    } catch (err) {
      this.#restarting = false;
      this.#refused = { id: session.id, state: 'refused', error: errorOf(err) };
      await discardStaging(this.#dataDir).catch(() => undefined);
      return;
    }
    await this.#restart(status, actor);
  }

  async restoreStatus(id: string): Promise<Record<string, unknown>> {
    const session = this.#restore;
    if (session?.id === id) return { id, state: session.checking ? 'checking' : 'uploading', received: session.received, bytes: session.bytes };
    if (this.#refused?.id === id) return { ...this.#refused };
    const status = await this.#readStatus();
    if (status?.id !== id) throw new ImeError('E_RESTORE_NOT_FOUND', 'no such restore on this peer');
    return { ...status };
  }

  async abortRestore(id: string, actor: string): Promise<{ ok: true }> {
    const session = this.#restore;
    if (session?.id !== id) return { ok: true };
    if (session.checking) throw new ImeError('E_RESTORE_BUSY', 'this restore is being checked and can no longer be given up');
    await this.#endRestore(session, actor, new ImeError('E_RESTORE_ABORTED', 'the operator gave the restore up'));
    return { ok: true };
  }

  async #restart(status: RestoreStatus, actor: string): Promise<void> {
    const dataDir = this.#dataDir;
    const log = this.#node.auditLog;
    try {
      const next = await this.#node.restartWith({ apply: () => swapInStagedDatabase(dataDir), undo: () => undoSwap(dataDir) });
      await discardStaging(dataDir);
      await this.#writeStatus({ ...status, state: 'applied', peerId: next.peerId, at: new Date().toISOString() });
      await log.record({ actor, action: 'restore-applied', params: { session: status.id, peerId: next.peerId, previousPeerId: status.previousPeerId }, outcome: 'success' }).catch(() => undefined);
    } catch (err) {
      const error = errorOf(err);
      await discardStaging(dataDir).catch(() => undefined);
      await this.#writeStatus({ ...status, state: 'failed', peerId: this.#node.current.peerId, at: new Date().toISOString(), error }).catch(() => undefined);
      await log.record({ actor, action: 'restore-applied', params: { session: status.id }, outcome: 'failure', error }).catch(() => undefined);
    } finally {
      this.#restarting = false;
      this.#stopSweeping();
    }
  }

  #uploading(id: string): RestoreSession {
    const session = this.#restore;
    if (session?.id !== id) throw new ImeError('E_BACKUP_SESSION_NOT_FOUND', 'no such restore upload (finished, refused, given up or idle too long)');
    return session;
  }

  #checkDomain(header: BackupHeader): void {
    if (!sameDomain(header.domain, this.#node.domain)) {
      throw new ImeError(
        'E_BACKUP_DOMAIN',
        `the backup is of a peer of ${header.domain}; this peer is configured for ${this.#node.domain} (restore it on a peer configured for its domain)`,
      );
    }
  }

  async #endRestore(session: RestoreSession, actor: string, err: unknown): Promise<void> {
    if (this.#restore === session) this.#restore = undefined;
    this.#refused = { id: session.id, state: 'refused', error: errorOf(err) };
    await session.close();
    await discardStaging(this.#dataDir).catch(() => undefined);
    const header = readableHeader(session.prefix);
    await this.#audit(actor, 'restore', { session: session.id, bytes: session.bytes, ...(header ? { backup: { peerId: header.peerId, domain: header.domain, createdAt: header.createdAt } } : {}) }, err);
  }

  async #audit(actor: string, action: string, params: Record<string, unknown>, err: unknown): Promise<void> {
    try {
      await this.#node.auditLog.record({ actor, action, params, outcome: err === undefined ? 'success' : 'failure', ...(err === undefined ? {} : { error: errorOf(err) }) });
    } catch (auditErr) {
      if (err !== undefined) return;
      throw auditErr;
    }
  }

  async #readStatus(): Promise<RestoreStatus | undefined> {
    try {
      return JSON.parse(await readFile(join(this.#dataDir, STATUS_FILE), 'utf8')) as RestoreStatus;
    } catch {
      return undefined;
    }
  }

  async #writeStatus(status: RestoreStatus): Promise<void> {
    const file = join(this.#dataDir, STATUS_FILE);
    await writeFile(`${file}.tmp`, `${JSON.stringify(status)}\n`, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  /** Idle sessions are closed, so a client that went away does not pin a snapshot or an upload. */
  #startSweeping(): void {
    if (this.#sweeper) return;
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const [id, s] of this.#backups) if (now - s.lastUsedMs > SESSION_IDLE_MS) void this.endBackup(id);
      const r = this.#restore;
      if (r && !r.checking && now - r.lastUsedMs > SESSION_IDLE_MS) void this.#endRestore(r, 'admin', new ImeError('E_RESTORE_ABANDONED', 'the upload stopped')).catch(() => undefined);
      if (this.#backups.size === 0 && this.#restore === undefined && !this.#restarting) this.#stopSweeping();
    }, 10_000);
    this.#sweeper.unref();
  }

  #stopSweeping(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}
