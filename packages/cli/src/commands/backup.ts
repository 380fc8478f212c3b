import { randomBytes } from 'node:crypto';
import { type FileHandle, chmod, link, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ImeError, isImeError } from '@ime/core';
import { BACKUP_FILE_MODE, BACKUP_SCHEMA_VERSION, type BackupHeader, RESTORE_CHUNK_BYTES, type RestoreStatus, type RestoredFile, readBackupFile, restorePeerOffline } from '@ime/peer';
import type { AdminClient } from '@ime/runtime';
import { UsageError, optionInteger, optionString } from '../args.js';
import { ADMIN_OPTIONS, adminClient } from '../admin-target.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT_OK } from '../output.js';

/**
 * `ime utils backup --out FILE` and `ime utils restore --in FILE [--config peer.yaml]`
 * (docs/OPERATIONS.md "Backup and restore"). The backup is taken from the running peer through its
 * admin API and written to a temporary file beside FILE, checked, then renamed into place, so a
 * failure never leaves half a backup under the operator's name. The restore either goes through the
 * running peer (which checks the file, swaps its state and restarts as the backed-up peer) or, with
 * --config, writes the state into the data dir of a stopped peer.
 */

const SECRET_NOTE = 'The file holds this peer\'s private keys, ring certificate, VAP credentials and ticket secrets: it is written mode 0600; keep it as safe as the peer itself.';
const POLL_MS = 500;
const DEFAULT_WAIT_SEC = 300;
/** While the peer restarts its admin API is briefly away: these mean "not back yet", not failure. */
const RESTARTING_CODES = new Set(['E_ADMIN_UNREACHABLE', 'E_ADMIN_TIMEOUT', 'E_ADMIN_HTTP', 'E_ADMIN_PROTOCOL']);

function interrupted(ctx: CommandContext): void {
  if (ctx.stopSignal.aborted) throw new ImeError('E_CLI_INTERRUPTED', 'interrupted: nothing was written');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new ImeError('E_BACKUP_FILE', `cannot look at ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

interface BackupChunk {
  part: number;
  data: string;
  done: boolean;
  prefix?: string;
  seal?: { contentBytes: number; sha256: string };
}

async function runBackup(ctx: CommandContext): Promise<number> {
  const { options, out } = ctx;
  const target = resolve(optionString(options, 'out') as string);
  const force = options.force === true;
  if (!force && (await exists(target))) throw new ImeError('E_BACKUP_EXISTS', `${target} already exists: name another file, or pass --force to replace it`);
  const client = await adminClient(options);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  let file: FileHandle | undefined;
  try {
    file = await open(temp, 'wx', BACKUP_FILE_MODE);
  } catch (err) {
    throw new ImeError('E_BACKUP_FILE', `cannot write in ${dirname(target)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let session: string | undefined;
  try {
    const begin = await client.post<{ session: string; header: BackupHeader }>('/v1/backup', {});
    session = begin.session;
    let position = 0;
    let last: BackupChunk;
    for (let part = 0; ; part++) {
      interrupted(ctx);
      last = await client.get<BackupChunk>(`/v1/backup/${encodeURIComponent(session)}?part=${part}`);
      if (last.part !== part || typeof last.data !== 'string') throw new ImeError('E_ADMIN_PROTOCOL', 'the peer answered a backup chunk out of order');
      const bytes = Buffer.from(last.data, 'base64');
      await file.write(bytes, 0, bytes.length, position);
      position += bytes.length;
      if (last.done) break;
    }
    if (typeof last.prefix !== 'string' || last.seal === undefined) throw new ImeError('E_ADMIN_PROTOCOL', 'the peer did not seal the backup');
    // The sealed preamble replaces the blank one the first chunk began with.
    const prefix = Buffer.from(last.prefix, 'base64');
    await file.write(prefix, 0, prefix.length, 0);
    await file.sync();
    await file.close();
    file = undefined;
    await client.delete(`/v1/backup/${encodeURIComponent(session)}`).catch(() => undefined);
    session = undefined;
    // Read back whole: what is renamed into place is known to restore.
    const checked = await readBackupFile(temp);
    if (checked.prefix.seal.sha256 !== last.seal.sha256) throw new ImeError('E_BACKUP_CORRUPT', 'the backup written differs from the one the peer sealed');
    await chmod(temp, BACKUP_FILE_MODE);
    if (force) {
      await rename(temp, target);
    } else {
      // link refuses an existing name, so a file created meanwhile is not replaced.
      try {
        await link(temp, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ImeError('E_BACKUP_EXISTS', `${target} already exists: name another file, or pass --force to replace it`);
        throw new ImeError('E_BACKUP_FILE', `cannot create ${target}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      await unlink(temp);
    }
    const h = checked.header;
    const result = {
      ok: true,
      file: target,
      peerId: h.peerId,
      domain: h.domain,
      name: h.name,
      createdAt: h.createdAt,
      softwareVersion: h.softwareVersion,
      schemaVersion: BACKUP_SCHEMA_VERSION,
      entries: checked.counts.entries,
      files: checked.counts.files,
      bytes: checked.bytes,
      sha256: checked.prefix.seal.sha256,
      mode: '0600',
      holdsSecrets: true,
    };
    out.result(result, [
      `backup of ${h.name} (${h.domain}, ${h.peerId}) written to ${target}`,
      `  created          ${h.createdAt} (software ${h.softwareVersion}, backup schema ${BACKUP_SCHEMA_VERSION})`,
      `  content          ${checked.counts.entries} database entries, ${checked.counts.files} files, ${checked.bytes} bytes`,
      `  SHA-256          ${checked.prefix.seal.sha256}`,
      SECRET_NOTE,
    ]);
    return EXIT_OK;
  } catch (err) {
    await file?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    if (session !== undefined) await client.delete(`/v1/backup/${encodeURIComponent(session)}`).catch(() => undefined);
    throw err;
  }
}

function filesLines(files: readonly RestoredFile[]): string[] {
  const why: Record<RestoredFile['outcome'], string> = {
    written: 'written from the backup',
    identical: 'already there, same as in the backup',
    'kept-different': 'kept: it differs from the backup\'s (this machine\'s file stays; compare them)',
    'not-configured': 'in the backup, but this configuration names no such file (the peer uses the certificate in its database)',
  };
  return files.map((f) => `  ${f.name}${f.path ? ` (${f.path})` : ''}: ${why[f.outcome]}`);
}

async function follow(client: AdminClient, session: string, waitSec: number, ctx: CommandContext): Promise<RestoreStatus> {
  const deadline = Date.now() + waitSec * 1000;
  for (;;) {
    let status: { state: string; error?: { code: string; message: string } } | undefined;
    try {
      status = await client.get(`/v1/restore/${encodeURIComponent(session)}`);
    } catch (err) {
      if (!isImeError(err) || !RESTARTING_CODES.has(err.code)) throw err;
    }
    if (status?.state === 'refused' || status?.state === 'failed') {
      const e = status.error ?? { code: 'E_RESTORE_FAILED', message: 'the restore failed' };
      const tail = status.state === 'failed' ? ' (the peer runs again with the state it had before)' : ' (nothing was changed)';
      throw new ImeError(e.code, `${e.message}${tail}`);
    }
    if (status?.state === 'applied') return status as unknown as RestoreStatus;
    if (Date.now() > deadline) {
      throw new ImeError('E_RESTORE_TIMEOUT', `the peer did not finish the restore within ${waitSec} s (last state: ${status?.state ?? 'not answering'}); see its log, then \`ime show peerid\``);
    }
    if (ctx.stopSignal.aborted) throw new ImeError('E_CLI_INTERRUPTED', 'stopped waiting; the peer goes on with the restore (follow it with `ime show peerid`)');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function runRestoreThroughPeer(ctx: CommandContext, input: string): Promise<number> {
  const { options, out } = ctx;
  const waitSec = optionInteger(options, 'wait-sec') ?? DEFAULT_WAIT_SEC;
  if (waitSec < 1 || waitSec > 86_400) throw new UsageError('E_CLI_BAD_VALUE', '--wait-sec must be 1–86400');
  let file: FileHandle;
  try {
    file = await open(input, 'r');
  } catch (err) {
    throw new ImeError('E_BACKUP_FILE', `cannot read the backup ${input}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : ((err as NodeJS.ErrnoException).code ?? 'error')}`);
  }
  const client = await adminClient(options);
  let session: string | undefined;
  try {
    const { size } = await file.stat();
    // The peer checks the file, from its first chunk (signature, schema, domain) to the whole.
    const begin = await client.post<{ session: string; chunkBytes: number }>('/v1/restore', { bytes: size });
    session = begin.session;
    const chunkBytes = Math.min(begin.chunkBytes, RESTORE_CHUNK_BYTES);
    const buf = Buffer.alloc(chunkBytes);
    for (let offset = 0; offset < size; ) {
      interrupted(ctx);
      const { bytesRead } = await file.read(buf, 0, chunkBytes, offset);
      if (bytesRead === 0) throw new ImeError('E_BACKUP_FILE', `${input} became shorter while it was read`);
      await client.put(`/v1/restore/${encodeURIComponent(session)}`, { offset, data: buf.subarray(0, bytesRead).toString('base64') });
      offset += bytesRead;
    }
    await client.post(`/v1/restore/${encodeURIComponent(session)}/commit`, {});
  } catch (err) {
    if (session !== undefined) await client.delete(`/v1/restore/${encodeURIComponent(session)}`).catch(() => undefined);
    throw err;
  } finally {
    await file.close();
  }
  const done = await follow(client, session, waitSec, ctx);
  const changed = done.previousPeerId !== done.peerId;
  const result = { ok: true, restored: true, form: 'running', ...done };
  out.result(result, [
    `restored ${done.backup.name} (${done.backup.domain}) from ${input}, a backup of ${done.backup.createdAt}: the peer runs as ${done.peerId ?? done.backup.peerId}`,
    `  content          ${done.entries} database entries, ${done.bytes} bytes`,
    ...filesLines(done.files),
    ...(changed
      ? [`The identity this peer had before (${done.previousPeerId}) is no longer used: retire it on a bootstrap with \`ime bootstrap ban ${done.previousPeerId} --reason "replaced by a restore"\`.`]
      : []),
  ]);
  return EXIT_OK;
}

async function runRestoreOffline(ctx: CommandContext, input: string, configFile: string): Promise<number> {
  const r = await restorePeerOffline({ backupFile: input, configFile, force: ctx.options.force === true });
  ctx.out.result({ ok: true, restored: true, form: 'offline', ...r }, [
    `restored ${r.name} (${r.domain}, ${r.peerId}) from ${input}, a backup of ${r.createdAt}, into ${r.dataDir}${r.replaced ? ' (its previous state replaced)' : ''}`,
    `  content          ${r.entries} database entries, ${r.bytes} bytes`,
    ...(r.configWritten ? [`  configuration    written to ${r.configFile} from the backup: check its paths and addresses before starting`] : []),
    ...filesLines(r.files),
    `Start it with \`ime peer start --config ${r.configFile}\`; it comes up as ${r.peerId}.`,
  ]);
  return EXIT_OK;
}

export const utilsBackup: Command = {
  path: ['utils', 'backup'],
  summary: "back up a running peer's whole state (store, keys, certificates, credentials, configuration) to one file",
  options: [
    { name: 'out', type: 'string', valueName: 'FILE', required: true, description: 'the backup file to write (mode 0600: it holds secrets)' },
    { name: 'force', type: 'boolean', description: 'replace FILE if it exists' },
    ...ADMIN_OPTIONS,
  ],
  examples: ['ime utils backup --out peer-1.imebackup --admin http://127.0.0.1:9620 --token-file data/admin.token'],
  run: runBackup,
};

export const utilsRestore: Command = {
  path: ['utils', 'restore'],
  summary: "replace a peer's state with a backup's: through the running peer, or (--config) into a stopped peer's data dir",
  options: [
    { name: 'in', type: 'string', valueName: 'FILE', required: true, description: 'the backup file' },
    {
      name: 'config',
      type: 'string',
      valueName: 'FILE',
      description: "offline: the stopped peer's configuration; the state goes into its data dir (written from the backup when FILE does not exist)",
    },
    { name: 'force', type: 'boolean', description: 'offline: replace the state of a data dir that is not empty' },
    { name: 'wait-sec', type: 'integer', valueName: 'N', description: `running peer: how long to wait for it to come back as the backed-up peer (default ${DEFAULT_WAIT_SEC})` },
    ...ADMIN_OPTIONS,
  ],
  examples: [
    'ime utils restore --in peer-1.imebackup --admin http://127.0.0.1:9620 --token-file data/admin.token',
    'ime utils restore --in peer-1.imebackup --config peer.yaml   # the peer is stopped',
  ],
  run: async (ctx) => {
    const input = resolve(optionString(ctx.options, 'in') as string);
    const config = optionString(ctx.options, 'config');
    if (config === undefined) {
      if (ctx.options.force === true) throw new UsageError('E_CLI_CONFLICTING_OPTIONS', '--force goes with --config (the offline form); a running peer replaces its state anyway');
      return runRestoreThroughPeer(ctx, input);
    }
    for (const name of ['admin', 'token-file', 'wait-sec']) {
      if (ctx.options[name] !== undefined) throw new UsageError('E_CLI_CONFLICTING_OPTIONS', `--${name} is for restoring through a running peer; --config restores into a stopped one`);
    }
    return runRestoreOffline(ctx, input, resolve(config));
  },
};

export const BACKUP_COMMANDS: readonly Command[] = [utilsBackup, utilsRestore];
