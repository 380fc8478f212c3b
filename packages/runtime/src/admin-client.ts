import { open } from 'node:fs/promises';
import { ImeError } from '@ime/core';

/**
 * What the `ime` command uses to talk to a running component's admin API. Every failure is an
 * ImeError the CLI can print as one line: the server's own code when it refused, otherwise
 * E_ADMIN_UNREACHABLE (nothing listening), E_ADMIN_TIMEOUT, E_ADMIN_AUTH (wrong token),
 * E_ADMIN_PROTOCOL (an answer that is not ours) or E_ADMIN_HTTP (an HTTP error without our body).
 */

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9620';
export const DEFAULT_ADMIN_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const MAX_TOKEN_FILE_BYTES = 4096;
/** What a token may look like: base64url as generated, with room for hand-made ones. */
const TOKEN_RE = /^[A-Za-z0-9._~+/=-]{16,1024}$/;

export interface AdminClientOptions {
  readonly url: string;
  readonly token: string;
  /** Per request, including reading the answer. Default 30 s. */
  readonly timeoutMs?: number;
  /** Larger answers are refused (E_ADMIN_PROTOCOL). Default 64 MB. */
  readonly maxResponseBytes?: number;
}

/**
 * Reads an admin token file: E_ADMIN_TOKEN_FILE naming the file when it is missing, unreadable or
 * does not hold a token. The token itself never appears in a message.
 */
export async function readAdminTokenFile(tokenFile: string): Promise<string> {
  const fail = (why: string): ImeError =>
    new ImeError('E_ADMIN_TOKEN_FILE', `cannot use the admin token file ${tokenFile}: ${why}`, { file: tokenFile });
  let text: string;
  try {
    const file = await open(tokenFile, 'r');
    try {
      const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
      let n = 0;
      for (;;) {
        const { bytesRead } = await file.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n > MAX_TOKEN_FILE_BYTES) throw fail('too large to be a token file');
      }
      text = buf.subarray(0, n).toString('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof ImeError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : `cannot be read (${code ?? 'error'})`);
  }
  const token = text.trim();
  if (!TOKEN_RE.test(token)) throw fail('it does not hold a token (16 or more base64url characters)');
  return token;
}

export class AdminClient {
  readonly url: string;
  readonly #base: URL;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;

  constructor(options: AdminClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new ImeError('E_ADMIN_URL', 'the admin URL is not a valid URL (e.g. http://127.0.0.1:9620)');
    }
    if ((base.protocol !== 'http:' && base.protocol !== 'https:') || base.username !== '' || base.password !== '' || base.search !== '' || base.hash !== '') {
      throw new ImeError('E_ADMIN_URL', 'the admin URL must be http(s)://host:port[/prefix] without credentials or query');
    }
    if (typeof options.token !== 'string' || !TOKEN_RE.test(options.token)) {
      throw new ImeError('E_ADMIN_AUTH', 'the admin token is empty or malformed');
    }
    this.#base = base;
    this.url = base.href.replace(/\/$/, '');
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (!(this.#timeoutMs > 0)) throw new RangeError('timeoutMs must be positive');
  }

  static async fromTokenFile(url: string, tokenFile: string, options: Omit<AdminClientOptions, 'url' | 'token'> = {}): Promise<AdminClient> {
    const token = await readAdminTokenFile(tokenFile);
    return new AdminClient({ ...options, url, token });
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  put<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }
  delete<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('DELETE', path, body);
  }

  /** A raw text answer, e.g. `/metrics`. */
  async getText(path: string): Promise<string> {
    return (await this.#send('GET', path, undefined)).text;
  }

  /**
   * The parsed JSON answer (a non-JSON answer is returned as its text). `path` is the route with
   * its parameters already percent-encoded (`/v1/dids/${encodeURIComponent(number)}`).
   */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const { text, contentType } = await this.#send(method, path, body);
    if (!/\bjson\b/i.test(contentType)) return text as T;
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ImeError('E_ADMIN_PROTOCOL', `the admin API at ${this.url} sent an answer that is not valid JSON`);
    }
  }

  #target(path: string): URL {
    if (!path.startsWith('/') || path.startsWith('//')) throw new TypeError(`admin path must start with one "/": ${path}`);
    const prefix = this.#base.pathname.replace(/\/$/, '');
    return new URL(`${prefix}${path}`, this.#base);
  }

  async #send(method: string, path: string, body: unknown): Promise<{ status: number; contentType: string; text: string }> {
    const target = this.#target(path);
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json, text/plain' };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    let text: string;
    let res: Response;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await fetch(target, { method, headers, body: payload, signal, redirect: 'error' });
        text = await this.#readText(res);
        break;
      } catch (err) {
        // A kept-alive connection the server closed while this process was busy fails at once; a read
        // is safe to send again on a fresh connection (a change is not: it may have been applied).
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (method === 'GET' && attempt === 1 && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) continue;
        throw this.#transportError(err);
      }
    }
    const contentType = res.headers.get('content-type') ?? '';
    if (res.status >= 200 && res.status < 300) return { status: res.status, contentType, text };
    throw this.#httpError(res.status, text);
  }

  async #readText(res: Response): Promise<string> {
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    if (declared > this.#maxResponseBytes) {
      await res.body?.cancel();
      throw new ImeError('E_ADMIN_PROTOCOL', `the admin API at ${this.url} sent an answer larger than ${this.#maxResponseBytes} bytes`);
    }
    if (res.body === null) return '';
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of res.body) {
      total += chunk.byteLength;
      // Leaving the loop cancels the stream.
      if (total > this.#maxResponseBytes) {
        throw new ImeError('E_ADMIN_PROTOCOL', `the admin API at ${this.url} sent an answer larger than ${this.#maxResponseBytes} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  #transportError(err: unknown): ImeError {
    if (err instanceof ImeError) return err;
    const name = (err as { name?: unknown }).name;
    const cause = (err as { cause?: { code?: unknown; name?: unknown } }).cause;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    if (name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      return new ImeError('E_ADMIN_TIMEOUT', `the admin API at ${this.url} did not answer within ${this.#timeoutMs / 1000} s`, { url: this.url });
    }
    return new ImeError(
      'E_ADMIN_UNREACHABLE',
      `cannot reach the admin API at ${this.url}${code === undefined ? '' : ` (${code})`}: is the component running?`,
      { url: this.url, ...(code === undefined ? {} : { cause: code }) },
    );
  }

  #httpError(status: number, text: string): ImeError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (typeof error?.code === 'string' && /^E_[A-Z0-9_]{1,64}$/.test(error.code) && typeof error.message === 'string') {
      // The message is shown on a terminal: no control characters, bounded length.
      const message = error.message.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500);
      return new ImeError(error.code, message, { status });
    }
    if (status === 401) return new ImeError('E_ADMIN_AUTH', `the admin API at ${this.url} refused the token`, { status });
    return new ImeError('E_ADMIN_HTTP', `the admin API at ${this.url} answered HTTP ${status}`, { status });
  }
}
