import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { AdminClient, readAdminTokenFile } from '../src/admin-client.js';
import { AdminServer, isLoopbackHost, parseListenAddress, rawResponse, statusForErrorCode } from '../src/admin-server.js';
import { AuditLog } from '../src/audit.js';
import type { LogEntry } from '../src/logger.js';
import { Logger } from '../src/logger.js';
import { Counters, PROMETHEUS_CONTENT_TYPE } from '../src/telemetry.js';
import { rejected as refusal } from '../../core/test/helpers.js';

function auditLines(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('admin API over real HTTP on 127.0.0.1', () => {
  let dir: string;
  let server: AdminServer;
  let url: string;
  let tokenFile: string;
  let auditFile: string;
  let client: AdminClient;
  const logs: LogEntry[] = [];
  let entropy = 5;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ime-admin-'));
    tokenFile = join(dir, 'secrets', 'admin.token');
    auditFile = join(dir, 'audit.jsonl');
    const log = new Logger({ level: 'debug', sink: (_line, entry) => logs.push(entry) });
    const counters = new Counters().define('IMEDistributedCacheStores', 'Records stored').gauge('IMEDistributedCacheHealth', 'Health: 2 green', () => 2);
    counters.inc('IMEDistributedCacheStores', 3);
    server = new AdminServer({ listen: '127.0.0.1:0', tokenFile, log, audit: new AuditLog(auditFile) });
    server
      .addRoute({ method: 'GET', path: '/v1/status', handler: () => ({ ok: true, entropy }) })
      .addRoute({ method: 'GET', path: '/metrics', handler: () => rawResponse(PROMETHEUS_CONTENT_TYPE, counters.renderPrometheus()) })
      .addRoute({ method: 'GET', path: '/v1/dids/:number', handler: ({ params }) => ({ number: params.number }) })
      .addRoute({ method: 'GET', path: '/v1/dids/count', handler: () => ({ count: 7 }) })
      .addRoute({ method: 'GET', path: '/v1/echo', handler: ({ query, actor }) => ({ query, actor }) })
      .addRoute({
        method: 'PUT',
        path: '/v1/validator/bucketentropy',
        audit: 'set-bucketentropy',
        handler: ({ body }) => {
          const value = (body as { value?: unknown } | undefined)?.value;
          if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
            throw new ImeError('E_VALIDATOR_BAD_ENTROPY', 'bucket entropy must be a positive integer');
          }
          entropy = value;
          return { entropy };
        },
      })
      .addRoute({
        method: 'POST',
        path: '/v1/vapusercredentials',
        audit: 'add-vapusercredentials',
        handler: ({ body }) => ({ added: (body as { username: string }).username }),
      })
      .addRoute({ method: 'POST', path: '/v1/echo-body', handler: ({ body }) => ({ body }) })
      .addRoute({ method: 'DELETE', path: '/v1/things/:id', handler: ({ params }) => {
        throw new ImeError('E_THING_NOT_FOUND', `no thing ${params.id}`);
      } })
      .addRoute({ method: 'POST', path: '/v1/storagequota', audit: 'set-storagequota', handler: () => {
        throw new ImeError('E_BOOTSTRAP_ONLY', 'only a bootstrap sets the storage quota');
      } })
      .addRoute({ method: 'POST', path: '/v1/conflict', handler: () => {
        throw new ImeError('E_VAPSERVER_CONFLICT', 'already exists');
      } })
      .addRoute({ method: 'POST', path: '/v1/crash', audit: 'crash', handler: () => {
        throw new TypeError('internal detail: secret=hunter2');
      } })
      .addRoute({ method: 'GET', path: '/v1/nothing', handler: () => undefined });
    ({ url } = await server.start());
    client = await AdminClient.fromTokenFile(url, tokenFile);
  });

  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the token file: 32 random bytes, base64url, mode 0600, parent dirs made', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(await readAdminTokenFile(tokenFile)).toBe(token);
  });

  it('answers JSON with the right token', async () => {
    expect(await client.get('/v1/status')).toEqual({ ok: true, entropy: 5 });
    expect(await client.get('/v1/nothing')).toEqual({ ok: true });
  });

  it('refuses without a token, with a wrong one, and on every route including /metrics (401 E_ADMIN_AUTH)', async () => {
    for (const path of ['/v1/status', '/metrics', '/no/such/route']) {
      const bare = await fetch(`${url}${path}`);
      expect(bare.status).toBe(401);
      expect(((await bare.json()) as { error: { code: string } }).error.code).toBe('E_ADMIN_AUTH');
    }
    const wrong = new AdminClient({ url, token: 'A'.repeat(43) });
    const err = await refusal(wrong.get('/v1/status'));
    expect(err.code).toBe('E_ADMIN_AUTH');
    const basic = await fetch(`${url}/v1/status`, { headers: { authorization: `Basic ${readFileSync(tokenFile, 'utf8').trim()}` } });
    expect(basic.status).toBe(401);
    expect(logs.some((e) => e.level === 'warn' && e.msg.includes('refused'))).toBe(true);
  });

  it('serves /metrics as raw Prometheus text', async () => {
    const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    const text = await res.text();
    expect(text).toContain('# TYPE IMEDistributedCacheStores counter\nIMEDistributedCacheStores 3\n');
    expect(text).toContain('IMEDistributedCacheHealth 2\n');
    expect(await client.getText('/metrics')).toBe(text);
    expect(await client.get('/metrics')).toBe(text);
  });

  it('decodes path parameters and prefers literal segments', async () => {
    expect(await client.get(`/v1/dids/${encodeURIComponent('+12125551234')}`)).toEqual({ number: '+12125551234' });
    expect(await client.get('/v1/dids/count')).toEqual({ count: 7 });
    expect(await client.get('/v1/echo?a=1&b=x%20y')).toEqual({ query: { a: '1', b: 'x y' }, actor: 'admin@127.0.0.1' });
  });

  it('404 E_ADMIN_NOT_FOUND for an unknown path, 405 for a wrong method', async () => {
    expect((await refusal(client.get('/v1/nope'))).code).toBe('E_ADMIN_NOT_FOUND');
    const err = await refusal(client.post('/v1/status', {}));
    expect(err.code).toBe('E_ADMIN_METHOD');
    expect(err.details?.status).toBe(405);
    const res = await fetch(`${url}/v1/status`, { method: 'DELETE', headers: { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` } });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });

  it('maps handler ImeErrors to statuses by code', async () => {
    const cases: [Promise<unknown>, string, number][] = [
      [client.delete('/v1/things/9'), 'E_THING_NOT_FOUND', 404],
      [client.post('/v1/storagequota', { quota: 5 }), 'E_BOOTSTRAP_ONLY', 409],
      [client.post('/v1/conflict'), 'E_VAPSERVER_CONFLICT', 409],
      [client.put('/v1/validator/bucketentropy', { value: -1 }), 'E_VALIDATOR_BAD_ENTROPY', 400],
    ];
    for (const [p, code, status] of cases) {
      const err = await refusal(p);
      expect(err.code).toBe(code);
      expect(err.details?.status).toBe(status);
    }
    expect(statusForErrorCode('E_ADMIN_AUTH')).toBe(401);
    expect(statusForErrorCode('E_ADMIN_TOO_LARGE')).toBe(413);
  });

  it('hides internal errors behind 500 E_INTERNAL and logs the details', async () => {
    const err = await refusal(client.post('/v1/crash'));
    expect(err.code).toBe('E_INTERNAL');
    expect(err.details?.status).toBe(500);
    expect(err.message).not.toContain('hunter2');
    expect(logs.some((e) => e.level === 'error' && JSON.stringify(e.fields).includes('internal detail'))).toBe(true);
  });

  it('400 E_ADMIN_BAD_REQUEST for a body that is not JSON', async () => {
    const res = await fetch(`${url}/v1/echo-body`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}`, 'content-type': 'application/json' },
      body: '{"a": ',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_ADMIN_BAD_REQUEST');
    expect(await client.post('/v1/echo-body', { a: [1, 'x'] })).toEqual({ body: { a: [1, 'x'] } });
    expect(await client.post('/v1/echo-body')).toEqual({});
  });

  it('413 E_ADMIN_TOO_LARGE for a body over 1 MB, declared or streamed, and keeps serving', async () => {
    const big = { data: 'x'.repeat(1024 * 1024 + 10) };
    const err = await refusal(client.post('/v1/echo-body', big));
    expect(err.code).toBe('E_ADMIN_TOO_LARGE');
    expect(err.details?.status).toBe(413);

    // Chunked, no Content-Length: the limit applies while reading.
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 20) controller.close();
        else {
          sent++;
          controller.enqueue(chunk);
        }
      },
    });
    const res = await fetch(`${url}/v1/echo-body`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('E_ADMIN_TOO_LARGE');
    expect(await client.get('/v1/status')).toEqual({ ok: true, entropy: 5 });
  });

  it('audits changes with the real outcome and masked secrets', async () => {
    const before = auditLines(auditFile).length;
    expect(await client.put('/v1/validator/bucketentropy', { value: 9 })).toEqual({ entropy: 9 });
    await refusal(client.put('/v1/validator/bucketentropy', { value: 'many' }));
    await client.post('/v1/vapusercredentials', { username: 'cm1', password: 'hunter2', nested: { privateKey: 'k' } });
    await refusal(client.post('/v1/storagequota', { quota: 5 }));
    await refusal(client.post('/v1/crash'));
    await client.get('/v1/status'); // not a change: not audited

    const lines = auditLines(auditFile).slice(before);
    expect(lines.map((l) => [l.action, l.outcome])).toEqual([
      ['set-bucketentropy', 'success'],
      ['set-bucketentropy', 'failure'],
      ['add-vapusercredentials', 'success'],
      ['set-storagequota', 'failure'],
      ['crash', 'failure'],
    ]);
    for (const l of lines) {
      expect(l.actor).toBe('admin@127.0.0.1');
      expect(typeof l.time).toBe('string');
    }
    expect(lines[0]?.params).toEqual({ value: 9 });
    expect(lines[1]?.error).toEqual({ code: 'E_VALIDATOR_BAD_ENTROPY', message: 'bucket entropy must be a positive integer' });
    expect(lines[2]?.params).toEqual({ username: 'cm1', password: '***', nested: { privateKey: '***' } });
    expect(lines[3]?.error).toMatchObject({ code: 'E_BOOTSTRAP_ONLY' });
    expect(lines[4]?.error).toMatchObject({ code: 'E_INTERNAL' });
    expect(readFileSync(auditFile, 'utf8')).not.toContain('hunter2');
  });

  it('audits refusals that happen before the handler (bad body)', async () => {
    const before = auditLines(auditFile).length;
    const res = await fetch(`${url}/v1/validator/bucketentropy`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` },
      body: 'not json',
    });
    expect(res.status).toBe(400);
    const lines = auditLines(auditFile).slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ action: 'set-bucketentropy', outcome: 'failure', error: { code: 'E_ADMIN_BAD_REQUEST' } });
  });

  it('keeps using an existing token file', async () => {
    const other = new AdminServer({ listen: '127.0.0.1:0', tokenFile });
    other.addRoute({ method: 'GET', path: '/v1/status', handler: () => ({ other: true }) });
    const { url: otherUrl } = await other.start();
    try {
      expect(await (await AdminClient.fromTokenFile(otherUrl, tokenFile)).get('/v1/status')).toEqual({ other: true });
    } finally {
      await other.stop();
    }
  });
});

describe('admin server set-up refusals', () => {
  it('refuses a non-loopback listen address unless allowed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-admin-'));
    try {
      for (const listen of ['0.0.0.0:9620', '192.168.1.2:0', '[::]:0', 'example.com:9620']) {
        expect(() => new AdminServer({ listen, tokenFile: join(dir, 't') })).toThrow(expect.objectContaining({ code: 'E_ADMIN_LISTEN' }));
      }
      for (const listen of ['9620', 'host:', ':80', '127.0.0.1:99999', '[nope]:1']) {
        expect(() => new AdminServer({ listen, tokenFile: join(dir, 't') })).toThrow(expect.objectContaining({ code: 'E_ADMIN_LISTEN' }));
      }
      const open = new AdminServer({ listen: '0.0.0.0:0', tokenFile: join(dir, 't'), allowNonLoopback: true });
      const { url } = await open.start();
      expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
      await open.stop();
      expect(isLoopbackHost('localhost')).toBe(true);
      expect(isLoopbackHost('127.9.9.9')).toBe(true);
      expect(isLoopbackHost('::1')).toBe(true);
      expect(isLoopbackHost('10.0.0.1')).toBe(false);
      expect(parseListenAddress('[::1]:9620')).toEqual({ host: '::1', port: 9620 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a port in use (E_ADMIN_LISTEN) and an unusable token file (E_ADMIN_TOKEN_FILE)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-admin-'));
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const busy = new AdminServer({ listen: `127.0.0.1:${port}`, tokenFile: join(dir, 't') });
      expect((await refusal(busy.start())).code).toBe('E_ADMIN_LISTEN');

      const bad = join(dir, 'bad.token');
      writeFileSync(bad, 'short\n');
      const s = new AdminServer({ listen: '127.0.0.1:0', tokenFile: bad });
      const err = await refusal(s.start());
      expect(err.code).toBe('E_ADMIN_TOKEN_FILE');
      expect(err.message).toContain(bad);
      expect(err.message).not.toContain('short');
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects duplicate and malformed routes (programming errors)', () => {
    const s = new AdminServer({ listen: '127.0.0.1:0', tokenFile: '/nonexistent/t' });
    s.addRoute({ method: 'GET', path: '/v1/a/:x', handler: () => 1 });
    expect(() => s.addRoute({ method: 'GET', path: '/v1/a/:y', handler: () => 1 })).toThrow(TypeError);
    expect(() => s.addRoute({ method: 'GET', path: 'v1/a', handler: () => 1 })).toThrow(TypeError);
    expect(() => s.addRoute({ method: 'GET', path: '/v1//a', handler: () => 1 })).toThrow(TypeError);
  });
});

describe('admin client refusals', () => {
  it('E_ADMIN_TOKEN_FILE naming the file when it is missing or unreadable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-admin-'));
    try {
      const missing = join(dir, 'missing.token');
      const err = await refusal(AdminClient.fromTokenFile('http://127.0.0.1:9620', missing));
      expect(err.code).toBe('E_ADMIN_TOKEN_FILE');
      expect(err.message).toContain(missing);
      const empty = join(dir, 'empty.token');
      writeFileSync(empty, '\n');
      expect((await refusal(AdminClient.fromTokenFile('http://127.0.0.1:9620', empty))).code).toBe('E_ADMIN_TOKEN_FILE');
      if (process.getuid?.() !== 0) {
        const locked = join(dir, 'locked.token');
        writeFileSync(locked, 'A'.repeat(43));
        chmodSync(locked, 0o000);
        expect((await refusal(AdminClient.fromTokenFile('http://127.0.0.1:9620', locked))).code).toBe('E_ADMIN_TOKEN_FILE');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('E_ADMIN_UNREACHABLE naming the URL when nothing listens', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const client = new AdminClient({ url: `http://127.0.0.1:${port}`, token: 'A'.repeat(43) });
    const err = await refusal(client.get('/v1/status'));
    expect(err.code).toBe('E_ADMIN_UNREACHABLE');
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    expect(err.message).toContain('is the component running?');
    expect(err.message).not.toContain('A'.repeat(43));
  });

  it('E_ADMIN_TIMEOUT when the component does not answer in time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-admin-'));
    const tokenFile = join(dir, 'admin.token');
    let release: () => void = () => {};
    const server = new AdminServer({ listen: '127.0.0.1:0', tokenFile });
    server.addRoute({ method: 'GET', path: '/v1/slow', handler: () => new Promise<unknown>((r) => (release = () => r({ late: true }))) });
    const { url } = await server.start();
    try {
      const client = await AdminClient.fromTokenFile(url, tokenFile, { timeoutMs: 200 });
      expect((await refusal(client.get('/v1/slow'))).code).toBe('E_ADMIN_TIMEOUT');
    } finally {
      release();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('E_ADMIN_URL for a URL it cannot use', () => {
    expect(() => new AdminClient({ url: 'not a url', token: 'A'.repeat(43) })).toThrow(expect.objectContaining({ code: 'E_ADMIN_URL' }));
    expect(() => new AdminClient({ url: 'ftp://127.0.0.1:1', token: 'A'.repeat(43) })).toThrow(expect.objectContaining({ code: 'E_ADMIN_URL' }));
  });
});
