import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ImeError } from '@ime/core';
import { type PvpCryptoJob, type PvpCryptoReply, type PvpCryptoResult, runPvpCryptoJob } from './pvp-crypto-jobs.js';

/**
 * Where the key exchanges of validations run. SPAKE2+ over P-256 costs ≈ 3 ms of CPU per slot and the
 * terminating side does twice the originator's work, so on the event loop one peer validates on one
 * core however many it has; crypto threads let it use the others while the event loop keeps serving
 * the ring and VAP. `threads: 0` keeps everything on the event loop (same code, pvp-crypto-jobs.ts).
 */
export interface PvpCrypto {
  /** Throws the exchange's own ImeError (E_PVP_…), or E_PVP_CRYPTO_FAULT when a thread died. */
  run(job: PvpCryptoJob): Promise<PvpCryptoResult>;
  close(): Promise<void>;
}

export const MAX_CRYPTO_THREADS = 16;

export class InlinePvpCrypto implements PvpCrypto {
  run(job: PvpCryptoJob): Promise<PvpCryptoResult> {
    return runPvpCryptoJob(job);
  }

  async close(): Promise<void> {}
}

interface Pending {
  resolve(result: PvpCryptoResult): void;
  reject(err: Error): void;
}

interface CryptoThread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

/** The built worker; under jest the sources are TypeScript, so the build's copy next to them is used. */
function workerFile(): string | undefined {
  const here = import.meta.url;
  const file = fileURLToPath(new URL(here.endsWith('.ts') ? '../dist/pvp-crypto-worker.js' : './pvp-crypto-worker.js', here));
  return existsSync(file) ? file : undefined;
}

export class PvpCryptoPool implements PvpCrypto {
  readonly #threads: (CryptoThread | undefined)[];
  readonly #file: string;
  #nextId = 1;
  #closed = false;

  constructor(threads: number, file: string) {
    this.#threads = Array.from({ length: threads }, () => undefined);
    this.#file = file;
  }

  run(job: PvpCryptoJob): Promise<PvpCryptoResult> {
    if (this.#closed) return Promise.reject(new ImeError('E_PVP_CRYPTO_CLOSED', 'the validator is stopping'));
    const thread = this.#leastBusy();
    const id = this.#nextId++;
    return new Promise<PvpCryptoResult>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.ref();
      thread.worker.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const running = this.#threads.filter((t): t is CryptoThread => t !== undefined);
    this.#threads.fill(undefined);
    await Promise.all(running.map((t) => t.worker.terminate()));
  }

  /** Threads start on first use, and a thread that died is replaced by the next job. */
  #leastBusy(): CryptoThread {
    let best = -1;
    for (const [i, t] of this.#threads.entries()) {
      if (t === undefined) return this.#spawn(i);
      if (best < 0 || t.pending.size < (this.#threads[best] as CryptoThread).pending.size) best = i;
    }
    return this.#threads[best] as CryptoThread;
  }

  #spawn(slot: number): CryptoThread {
    const worker = new Worker(this.#file);
    const thread: CryptoThread = { worker, pending: new Map() };
    this.#threads[slot] = thread;
    worker.unref();
    const fail = (message: string) => {
      if (this.#threads[slot] === thread) this.#threads[slot] = undefined;
      for (const p of thread.pending.values()) p.reject(new ImeError('E_PVP_CRYPTO_FAULT', message));
      thread.pending.clear();
    };
    worker.on('message', (message: { id: number; reply: PvpCryptoReply }) => {
      const p = thread.pending.get(message.id);
      if (!p) return;
      thread.pending.delete(message.id);
      // An idle thread must not keep the process alive.
      if (thread.pending.size === 0) worker.unref();
      if (message.reply.ok) p.resolve(message.reply.result);
      else p.reject(new ImeError(message.reply.code, message.reply.message));
    });
    worker.on('error', (err) => fail(`a crypto thread failed: ${err.message}`));
    worker.on('exit', (code) => fail(`a crypto thread exited (code ${code})`));
    return thread;
  }
}

/** `threads` crypto threads, or the event loop when 0 or when the worker has not been built. */
export function createPvpCrypto(threads: number): PvpCrypto {
  if (!Number.isInteger(threads) || threads < 0 || threads > MAX_CRYPTO_THREADS) {
    throw new ImeError('E_CONFIG_INVALID', `crypto threads must be a whole number from 0 to ${MAX_CRYPTO_THREADS}`);
  }
  const file = threads > 0 ? workerFile() : undefined;
  return file === undefined ? new InlinePvpCrypto() : new PvpCryptoPool(threads, file);
}
