import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { dirname } from 'node:path';
import { ImeError, isImeError } from '@ime/core';
import { readAdminTokenFile } from './admin-client.js';
import { type AuditLog, MAX_AUDIT_TAIL } from './audit.js';
import type { LogLevel, Logger } from './logger.js';
import { LOG_LEVELS, isLogLevel, silentLogger } from './logger.js';

/**
 * The local admin HTTP API of every running component (SPEC §8). Bound to loopback unless the
 * operator says otherwise, and every route — `/metrics` included — needs the bearer token from the
 * token file: anyone else on the machine must not read counters or change settings.
 *
 * Answers are JSON; refusals are `{"error":{"code":"E_…","message":"…"}}` with a status derived from
 * the code (see statusForErrorCode). Internal failures answer E_INTERNAL without details; the
 * details go to the log.
 */

export const MAX_ADMIN_BODY_BYTES = 1024 * 1024;

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
const METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];

export interface AdminRequest {
  /** Path parameters (`:number` in the route), percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** Query parameters (the last value of a repeated one). */
  readonly query: Readonly<Record<string, string>>;
  /** The parsed JSON body, or undefined when there is none. Validate it: it comes from outside. */
  readonly body: unknown;
  /** Who called, for the audit log: `admin@127.0.0.1`. */
  readonly actor: string;
}

/** A non-JSON answer (Prometheus text). */
export interface RawResponse {
  readonly contentType: string;
  readonly body: string;
}

export function rawResponse(contentType: string, body: string): RawResponse {
  return { contentType, body };
}

/** A JSON-serialisable value (sent as 200 application/json; undefined sends {"ok":true}) or a RawResponse. */
export type AdminHandler = (request: AdminRequest) => unknown;

export interface AdminRoute {
  readonly method: AdminMethod;
  /** `/v1/dids/:number`: literal segments and `:name` parameters. */
  readonly path: string;
  /** Set for routes that change something: each call writes one audit entry with its outcome. */
  readonly audit?: string;
  readonly handler: AdminHandler;
}

export interface AdminServerOptions {
  /** `host:port` or `[v6]:port`; port 0 picks a free one. */
  readonly listen: string;
  /** Holds the bearer token; created (32 random bytes, base64url, mode 0600) when missing. */
  readonly tokenFile: string;
  readonly log?: Logger;
  readonly audit?: AuditLog;
  /** Listening beyond loopback exposes the API to the network; it must be asked for. */
  readonly allowNonLoopback?: boolean;
  /** Default 1 MB. */
  readonly maxBodyBytes?: number;
}

/** HTTP status of a refusal: the code's suffix says what kind of refusal it is. */
export function statusForErrorCode(code: string): number {
  if (code === 'E_ADMIN_AUTH') return 401;
  if (code === 'E_ADMIN_TOO_LARGE') return 413;
  if (code === 'E_ADMIN_METHOD') return 405;
  if (code === 'E_INTERNAL' || code === 'E_AUDIT_WRITE') return 500;
  if (code === 'E_BOOTSTRAP_ONLY' || code.endsWith('_CONFLICT')) return 409;
  if (code.endsWith('_NOT_FOUND')) return 404;
  return 400;
}

interface CompiledRoute extends AdminRoute {
  readonly segments: readonly ({ readonly literal: string } | { readonly param: string })[];
}

export function parseListenAddress(listen: string): { host: string; port: number } {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(listen) ?? /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[2]);
  if (m === null || m[1] === undefined || !(port >= 0 && port <= 65535) || (listen.startsWith('[') && isIP(m[1]) !== 6)) {
    throw new ImeError('E_ADMIN_LISTEN', 'the admin listen address must be host:port or [v6-address]:port, e.g. 127.0.0.1:9620');
  }
  return { host: m[1], port };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

function compile(route: AdminRoute): CompiledRoute {
  if (!METHODS.includes(route.method)) throw new TypeError(`admin route ${route.path}: unknown method ${route.method}`);
  if (!/^(\/(:?[A-Za-z0-9._~-]+))+$|^\/$/.test(route.path)) throw new TypeError(`admin route path ${JSON.stringify(route.path)} is invalid`);
  if (route.audit !== undefined && !/^[A-Za-z0-9._-]{1,100}$/.test(route.audit)) {
    throw new TypeError(`admin route ${route.path}: invalid audit action name`);
  }
  const segments = route.path === '/' ? [] : route.path.slice(1).split('/').map((s) => (s.startsWith(':') ? { param: s.slice(1) } : { literal: s }));
  return { ...route, segments };
}

/** Matches a request path's decoded segments; the parameters when it fits. */
function match(route: CompiledRoute, parts: readonly string[]): Record<string, string> | undefined {
  if (route.segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const seg = route.segments[i];
    const part = parts[i] as string;
    if (seg === undefined) return undefined;
    if ('literal' in seg) {
      if (seg.literal !== part) return undefined;
    } else {
      if (part === '') return undefined;
      Object.defineProperty(params, seg.param, { value: part, enumerable: true, writable: true, configurable: true });
    }
  }
  return params;
}

function isRawResponse(v: unknown): v is RawResponse {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return (
    keys.length === 2 &&
    typeof (v as RawResponse).contentType === 'string' &&
    typeof (v as RawResponse).body === 'string'
  );
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

class BodyTooLarge extends Error {}

export class AdminServer {
  readonly #options: AdminServerOptions;
  readonly #log: Logger;
  readonly #routes: CompiledRoute[] = [];
  readonly #maxBody: number;
  #server: Server | undefined;
  #tokenDigest: Buffer | undefined;
  #url: string | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(options: AdminServerOptions) {
    const { host } = parseListenAddress(options.listen);
    if (!isLoopbackHost(host) && options.allowNonLoopback !== true) {
      throw new ImeError(
        'E_ADMIN_LISTEN',
        `the admin API would listen on ${options.listen}, which is not a loopback address; allow it explicitly if that is meant`,
      );
    }
    this.#options = options;
    this.#log = options.log ?? silentLogger();
    this.#maxBody = options.maxBodyBytes ?? MAX_ADMIN_BODY_BYTES;
  }

  addRoute(route: AdminRoute): this {
    const compiled = compile(route);
    for (const r of this.#routes) {
      const same = r.method === compiled.method && r.segments.length === compiled.segments.length &&
        r.segments.every((s, i) => {
          const o = compiled.segments[i];
          return o !== undefined && ('literal' in s ? 'literal' in o && o.literal === s.literal : 'param' in o);
        });
      if (same) throw new TypeError(`admin route ${route.method} ${route.path} is already defined`);
    }
    this.#routes.push(compiled);
    return this;
  }

  /**
   * The operations routes every role shares (SPEC §8), defined once here:
   *  - `GET /v1/log/levels`: the default level, per-module levels and the modules that exist;
   *  - `PUT /v1/log/levels` `{"level":"debug","module":"ring"}` (audited): changes a level while
   *    running, for the whole component (`level: null` with a module returns it to the default);
   *  - `GET /v1/audit?last=N`: the last entries of the audit log.
   * A role calls this on its administrative listener only; other listeners of the same process
   * (the call manager's PSTN callback) must not offer them.
   */
  addOperationsRoutes(): this {
    const log = this.#log;
    const levels = () => ({ ...log.levels(), known: log.knownModules() });
    return this.addRoute({ method: 'GET', path: '/v1/log/levels', handler: levels })
      .addRoute({
        method: 'PUT',
        path: '/v1/log/levels',
        audit: 'set-log-level',
        handler: ({ body }) => {
          if (typeof body !== 'object' || body === null || Array.isArray(body)) {
            throw new ImeError('E_ADMIN_BAD_REQUEST', 'the body must be {"level": LEVEL} or {"level": LEVEL|null, "module": MODULE}');
          }
          const b = body as Record<string, unknown>;
          const unknown = Object.keys(b).find((k) => k !== 'level' && k !== 'module');
          if (unknown !== undefined) throw new ImeError('E_ADMIN_BAD_REQUEST', `unknown field ${JSON.stringify(unknown.slice(0, 40))} (allowed: level, module)`);
          const previous = log.levels();
          // null returns a module to the default; the default itself always has a level.
          const reset = b.level === null && b.module !== undefined;
          if (!reset && !isLogLevel(b.level)) throw new ImeError('E_LOG_LEVEL', `unknown log level (use one of ${LOG_LEVELS.join(', ')})`);
          if (b.module === undefined) {
            log.setLevel(b.level as LogLevel);
          } else {
            // Logger.setLevel refuses a malformed module name with E_LOG_MODULE.
            log.setLevel(b.module as string, reset ? undefined : (b.level as LogLevel));
          }
          return { previous, ...levels() };
        },
      })
      .addRoute({
        method: 'GET',
        path: '/v1/audit',
        handler: async ({ query }) => {
          const audit = this.#options.audit;
          if (audit === undefined) throw new ImeError('E_AUDIT_NOT_FOUND', 'this component keeps no audit log');
          const text = query.last ?? '20';
          const last = /^\d{1,6}$/.test(text) ? Number(text) : Number.NaN;
          if (!(last >= 1 && last <= MAX_AUDIT_TAIL)) throw new ImeError('E_ADMIN_BAD_REQUEST', `last must be a whole number from 1 to ${MAX_AUDIT_TAIL}`);
          return { file: audit.path, ...(await audit.tail(last)) };
        },
      });
  }

  /** The routes defined so far, e.g. to check that every route that changes something is audited. */
  get routes(): { method: AdminMethod; path: string; audit: string | undefined }[] {
    return this.#routes.map((r) => ({ method: r.method, path: r.path, audit: r.audit }));
  }

  /** The base URL once started, e.g. `http://127.0.0.1:9620`. */
  get url(): string | undefined {
    return this.#url;
  }

  async start(): Promise<{ url: string }> {
    if (this.#server !== undefined) throw new ImeError('E_ADMIN_LISTEN', 'the admin API is already started');
    const token = await loadOrCreateToken(this.#options.tokenFile, this.#log);
    this.#tokenDigest = sha256(token);
    const { host, port } = parseListenAddress(this.#options.listen);
    const server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    // Slow or stuck clients must not hold connections open forever.
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const why = err.code === 'EADDRINUSE' ? 'the address is in use (is another component running?)' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : (err.code ?? 'error');
        reject(new ImeError('E_ADMIN_LISTEN', `the admin API cannot listen on ${this.#options.listen}: ${why}`));
      };
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.#log.error('admin server error', { err }));
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' || isIP(address.address) === 6 ? `[${address.address}]` : address.address;
    this.#server = server;
    this.#url = `http://${shownHost}:${address.port}`;
    this.#log.info('admin API listening', { url: this.#url });
    return { url: this.#url };
  }

  /** Stops listening; requests in progress get `graceMs` to finish before their connections close. */
  async stop(graceMs = 2000): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    this.#url = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const remote = (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
    const actor = `admin@${remote}`;
    const method = req.method ?? 'GET';
    let pathname = '/';
    let route: CompiledRoute | undefined;
    let params: Record<string, string> = {};
    let query: Record<string, string> = {};
    let body: unknown;
    try {
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      pathname = url.pathname;
      if (!this.#authorised(req)) {
        this.#log.warn('admin request refused: missing or wrong token', { remote, method, path: pathname });
        throw new ImeError('E_ADMIN_AUTH', 'missing or wrong admin token (send Authorization: Bearer <the token file\'s content>)');
      }
      const parts = pathname === '/' ? [] : pathname.replace(/\/$/, '').slice(1).split('/').map(decodeSegment);
      const candidates = this.#routes
        .map((r) => ({ r, p: match(r, parts) }))
        .filter((c): c is { r: CompiledRoute; p: Record<string, string> } => c.p !== undefined);
      if (candidates.length === 0) throw new ImeError('E_ADMIN_NOT_FOUND', `no admin route ${pathname.slice(0, 200)}`);
      // A literal segment beats a parameter: /v1/dids/count before /v1/dids/:number.
      const fitting = candidates.filter((c) => c.r.method === method).sort((a, b) => literalCount(b.r) - literalCount(a.r));
      const chosen = fitting[0];
      if (chosen === undefined) {
        const allowed = [...new Set(candidates.map((c) => c.r.method))].join(', ');
        res.setHeader('allow', allowed);
        throw new ImeError('E_ADMIN_METHOD', `${method} is not allowed on ${pathname.slice(0, 200)} (allowed: ${allowed})`);
      }
      route = chosen.r;
      params = chosen.p;
      query = {};
      for (const [k, v] of url.searchParams) Object.defineProperty(query, k, { value: v, enumerable: true, writable: true, configurable: true });
      body = await this.#readJsonBody(req);
      const result = await route.handler({ params, query, body, actor });
      // Serialised before auditing: an answer that cannot be sent must not be audited as a success.
      const answer = isRawResponse(result)
        ? result
        : { contentType: 'application/json; charset=utf-8', body: JSON.stringify(result === undefined ? { ok: true } : result) as string | undefined };
      if (typeof answer.body !== 'string') throw new TypeError(`admin route ${route.path} returned a value JSON cannot represent`);
      await this.#audit(route, actor, params, query, body, undefined);
      this.#send(res, 200, answer.contentType, answer.body);
      this.#log.debug('admin request', { actor, method, path: pathname, status: 200 });
    } catch (err) {
      let error: ImeError;
      if (isImeError(err)) {
        error = err;
      } else if (err instanceof BodyTooLarge) {
        error = new ImeError('E_ADMIN_TOO_LARGE', `the request body is larger than ${this.#maxBody} bytes`);
      } else {
        this.#log.error('admin request failed', { actor, method, path: pathname, err });
        error = new ImeError('E_INTERNAL', 'the component failed to handle the request; see its log');
      }
      if (route !== undefined && error.code !== 'E_AUDIT_WRITE') {
        try {
          await this.#audit(route, actor, params, query, body, error);
        } catch (auditErr) {
          this.#log.error('cannot write the audit log', { err: auditErr });
        }
      }
      const status = statusForErrorCode(error.code);
      if (status >= 500 && error.code !== 'E_INTERNAL') this.#log.error('admin request failed', { actor, method, path: pathname, code: error.code });
      else this.#log.debug('admin request refused', { actor, method, path: pathname, status, code: error.code });
      if (!res.headersSent) {
        this.#send(res, status, 'application/json; charset=utf-8', JSON.stringify({ error: { code: error.code, message: error.message } }));
      }
      if (!req.complete) discardRest(req);
    }
  }

  #authorised(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    const expected = this.#tokenDigest;
    if (typeof header !== 'string' || expected === undefined) return false;
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (m === null || m[1] === undefined) return false;
    // Digests have equal length whatever was sent, so the comparison is constant-time.
    return timingSafeEqual(sha256(m[1]), expected);
  }

  async #readJsonBody(req: IncomingMessage): Promise<unknown> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.#maxBody) throw new BodyTooLarge();
    const raw = await readLimited(req, this.#maxBody);
    if (raw.length === 0) return undefined;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw new ImeError('E_ADMIN_BAD_REQUEST', 'the request body is not UTF-8 text');
    }
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ImeError('E_ADMIN_BAD_REQUEST', 'the request body is not valid JSON');
    }
  }

  async #audit(
    route: CompiledRoute,
    actor: string,
    params: Record<string, string>,
    query: Record<string, string>,
    body: unknown,
    error: ImeError | undefined,
  ): Promise<void> {
    const log = this.#options.audit;
    if (route.audit === undefined || log === undefined) return;
    const recorded = {
      ...(typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : body === undefined ? {} : { body }),
      ...query,
      ...params,
    };
    try {
      await log.record({
        actor,
        action: route.audit,
        params: recorded,
        outcome: error === undefined ? 'success' : 'failure',
        ...(error === undefined ? {} : { error: { code: error.code, message: error.message } }),
      });
    } catch (err) {
      if (error !== undefined) throw err;
      // The change was made but cannot be accounted for: say so rather than report plain success.
      this.#log.error('cannot write the audit log', { err, action: route.audit });
      throw new ImeError('E_AUDIT_WRITE', `the change was made but could not be written to the audit log: ${isImeError(err) ? err.message : 'write failed'}`);
    }
  }

  #send(res: ServerResponse, status: number, contentType: string, text: string): void {
    res.statusCode = status;
    res.setHeader('content-type', contentType);
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('content-length', Buffer.byteLength(text));
    res.end(text);
  }
}

/**
 * Events rather than `for await`: leaving a for-await loop early destroys the request and with it
 * the socket, and the client would see a reset instead of our 413.
 */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (): void => {
      cleanup();
      reject(new ImeError('E_ADMIN_BAD_REQUEST', 'the request body could not be read (the client went away)'));
    };
    // A client that goes away mid-body may produce no 'error', only 'close'.
    const onClose = onError;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function literalCount(route: CompiledRoute): number {
  return route.segments.filter((s) => 'literal' in s).length;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ImeError('E_ADMIN_BAD_REQUEST', 'the request path is not validly percent-encoded');
  }
}

/**
 * Reads and drops what is left of a refused request's body, up to a bound, so an honest client
 * that is still sending sees our answer rather than a reset; past the bound the socket is cut.
 */
function discardRest(req: IncomingMessage): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > 16 * MAX_ADMIN_BODY_BYTES) req.socket.destroy();
  });
  req.on('error', () => {});
  req.resume();
}

async function loadOrCreateToken(tokenFile: string, log: Logger): Promise<string> {
  try {
    const info = await stat(tokenFile);
    if ((info.mode & 0o077) !== 0) {
      log.warn('the admin token file is readable by other users; make it mode 0600', { file: tokenFile });
    }
    return await readAdminTokenFile(tokenFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (isImeError(err)) throw err;
      throw new ImeError('E_ADMIN_TOKEN_FILE', `cannot use the admin token file ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  const token = randomBytes(32).toString('base64url');
  try {
    await mkdir(dirname(tokenFile), { recursive: true, mode: 0o700 });
    // 'wx': if another process created it meanwhile, use theirs rather than overwrite it.
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600, flag: 'wx' });
    log.info('created the admin token file', { file: tokenFile });
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readAdminTokenFile(tokenFile);
    throw new ImeError('E_ADMIN_TOKEN_FILE', `cannot create the admin token file ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
