import { mkdir, open } from 'node:fs/promises';
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

  async #append(line: string): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      const file = await open(this.path, 'a', 0o600);
      try {
        if (!this.#checkedMode) {
          // The mode given to open only applies to a new file; one made by hand may be wider.
          await file.chmod(0o600);
          this.#checkedMode = true;
        }
        await file.appendFile(line, 'utf8');
        await file.sync();
      } finally {
        await file.close();
      }
    } catch (err) {
      throw new ImeError('E_AUDIT_WRITE', `cannot write the audit log ${this.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
}
