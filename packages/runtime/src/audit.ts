import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ImeError } from '@ime/core';
import { redactSecrets } from './logger.js';

/**
 * Append-only audit log (SPEC §8): one JSON line per administrative change, with who made it, what,
 * with which parameters (secrets masked) and what really happened. `record` resolves only once the
 * line is on disk, so a change reported to the operator is never missing from the log after a crash.
 */

export type AuditOutcome = 'success' | 'failure';

export interface AuditRecord {
  /** Who asked, e.g. `admin@127.0.0.1`. */
  readonly actor: string;
  /** What was asked, e.g. `set-bucketentropy`. */
  readonly action: string;
  readonly params?: unknown;
  readonly outcome: AuditOutcome;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface AuditEntry extends AuditRecord {
  readonly time: string;
  readonly params: unknown;
}

export interface AuditLogOptions {
  /** Clock, for tests. */
  readonly now?: () => Date;
}

/** Parameters larger than this are summarised: the audit log records changes, not payloads. */
const MAX_PARAMS_CHARS = 64 * 1024;

/** Entries `tail` returns at most, and bytes it reads at most to find them (lines are ≤ ~64 KB). */
export const MAX_AUDIT_TAIL = 10_000;
const MAX_TAIL_BYTES = 16 * 1024 * 1024;
const TAIL_CHUNK_BYTES = 64 * 1024;

export interface AuditTail {
  /** Oldest first, as in the file. */
  readonly entries: AuditEntry[];
  /** Lines that are not JSON objects (a line torn by a crash mid-write); they are not returned. */
  readonly unreadable: number;
  /** True when the byte bound stopped the read before `last` entries were found. */
  readonly truncated: boolean;
}

export class AuditLog {
  readonly path: string;
  readonly #now: () => Date;
  /** Writes are chained so lines land in the order `record` was called. */
  #tail: Promise<void> = Promise.resolve();
  #checkedMode = false;

  constructor(path: string, options: AuditLogOptions = {}) {
    this.path = path;
    this.#now = options.now ?? (() => new Date());
  }

  record(record: AuditRecord): Promise<void> {
    if (record.outcome !== 'success' && record.outcome !== 'failure') {
      return Promise.reject(new TypeError('audit outcome must be success or failure'));
    }
    let params = redactSecrets(record.params ?? {});
    const serialised = JSON.stringify(params) ?? 'null';
    if (serialised.length > MAX_PARAMS_CHARS) params = { truncated: true, chars: serialised.length };
    const entry: AuditEntry = {
      time: this.#now().toISOString(),
      actor: record.actor,
      action: record.action,
      params,
      outcome: record.outcome,
      ...(record.error === undefined ? {} : { error: { code: record.error.code, message: record.error.message } }),
    };
    const line = `${JSON.stringify(entry)}\n`;
    const write = this.#tail.then(() => this.#append(line));
    // A failed write is reported to its caller; later records still try.
    this.#tail = write.catch(() => {});
    return write;
  }

  /** Resolves when every record so far is written (for shutdown). */
  async flush(): Promise<void> {
    await this.#tail;
  }

  /**
   * The last `last` entries (`ime show audit`), read backwards from the end of the file so a long
   * history costs only what is shown. Records still being written are waited for first.
   */
  async tail(last: number): Promise<AuditTail> {
    if (!Number.isSafeInteger(last) || last < 1 || last > MAX_AUDIT_TAIL) {
      throw new ImeError('E_AUDIT_TAIL', `the number of audit entries must be 1–${MAX_AUDIT_TAIL}`);
    }
    await this.flush();
    let file: FileHandle;
    try {
      file = await open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], unreadable: 0, truncated: false };
      throw new ImeError('E_AUDIT_READ', `cannot read the audit log ${this.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    try {
      const { size } = await file.stat();
      const chunks: Buffer[] = [];
      let position = size;
      let newlines = 0;
      let read = 0;
      // One newline more than entries wanted: the line before them must be complete to be skipped.
      while (position > 0 && newlines <= last && read < MAX_TAIL_BYTES) {
        const length = Math.min(TAIL_CHUNK_BYTES, position);
        position -= length;
        const chunk = Buffer.alloc(length);
        await file.read(chunk, 0, length, position);
        chunks.unshift(chunk);
        read += length;
        for (const byte of chunk) if (byte === 0x0a) newlines++;
      }
      const lines = Buffer.concat(chunks).toString('utf8').split('\n');
      // A read that stopped mid-file starts inside a line (possibly inside a character): drop it.
      if (position > 0) lines.shift();
      const wanted = lines.filter((l) => l.trim() !== '').slice(-last);
      const entries: AuditEntry[] = [];
      let unreadable = 0;
      for (const line of wanted) {
        try {
          const parsed = JSON.parse(line) as unknown;
          if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) entries.push(parsed as AuditEntry);
          else unreadable++;
        } catch {
          unreadable++;
        }
      }
      return { entries, unreadable, truncated: position > 0 && wanted.length < last };
    } catch (err) {
      throw new ImeError('E_AUDIT_READ', `cannot read the audit log ${this.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    } finally {
      await file.close();
    }
  }

  async #append(line: string): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      // 'a+': appends, and lets the first write of this process look at the file's last byte.
      const file = await open(this.path, 'a+', 0o600);
      try {
        let text = line;
        if (!this.#checkedMode) {
          // The mode given to open only applies to a new file; one made by hand may be wider.
          await file.chmod(0o600);
          // A line torn by a crash must not swallow the next entry: start it on a line of its own.
          const { size } = await file.stat();
          const last = Buffer.alloc(1);
          if (size > 0 && (await file.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a) text = `\n${line}`;
          this.#checkedMode = true;
        }
        await file.appendFile(text, 'utf8');
        await file.sync();
      } finally {
        await file.close();
      }
    } catch (err) {
      throw new ImeError('E_AUDIT_WRITE', `cannot write the audit log ${this.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
}
