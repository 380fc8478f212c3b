import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { AdminClient } from '../src/admin-client.js';
import { AdminServer } from '../src/admin-server.js';
import { AuditLog } from '../src/audit.js';
import type { LogEntry } from '../src/logger.js';
import { Logger } from '../src/logger.js';
import { rejected as refusal } from '../../core/test/helpers.js';

// The operations routes every role shares (log levels while running, the audit log's tail), over
// real HTTP, with the real audit file.

interface LevelsView {
  level: string;
  modules: Record<string, string>;
  known: { module: string; level: string }[];
}

describe('operations routes: log levels and the audit log', () => {
  let dir: string;
  let server: AdminServer;
  let client: AdminClient;
  let auditFile: string;
  const logs: LogEntry[] = [];
  let root: Logger;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ime-ops-'));
    auditFile = join(dir, 'audit.log');
    root = new Logger({ module: 'peer', level: 'info', modules: { vap: 'warn' }, sink: (_line, entry) => logs.push(entry) });
    root.child('ring').child('store');
    root.child('vap');
    server = new AdminServer({ listen: '127.0.0.1:0', tokenFile: join(dir, 'admin.token'), log: root.child('admin'), audit: new AuditLog(auditFile) });
    server.addOperationsRoutes();
    const { url } = await server.start();
    client = await AdminClient.fromTokenFile(url, join(dir, 'admin.token'));
  });

  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the default level, the module levels and every module that exists with its effective level', async () => {
    const v = await client.get<LevelsView>('/v1/log/levels');
    expect(v.level).toBe('info');
    expect(v.modules).toEqual({ vap: 'warn' });
    expect(v.known).toEqual([
      { module: 'admin', level: 'info' },
      { module: 'peer', level: 'info' },
      { module: 'ring', level: 'info' },
      { module: 'ring.store', level: 'info' },
      { module: 'vap', level: 'warn' },
    ]);
  });

  it('changes a module level and the default while running, for the whole component, and audits each change', async () => {
    const store = root.child('ring').child('store');
    store.debug('hidden');
    const set = await client.put<LevelsView & { previous: { level: string } }>('/v1/log/levels', { level: 'debug', module: 'ring' });
    expect(set.previous.level).toBe('info');
    expect(set.modules).toEqual({ vap: 'warn', ring: 'debug' });
    store.debug('shown');
    root.child('vap').info('still hidden');
    expect(logs.filter((e) => e.module === 'ring.store').map((e) => e.msg)).toEqual(['shown']);

    await client.put('/v1/log/levels', { level: 'error' });
    expect(root.levelOf('admin')).toBe('error');
    // null returns the module to the default.
    const reset = await client.put<LevelsView>('/v1/log/levels', { module: 'ring', level: null });
    expect(reset.modules).toEqual({ vap: 'warn' });
    expect(root.levelOf('ring.store')).toBe('error');

    const audit = (await client.get<{ entries: { action: string; params: unknown; outcome: string }[] }>('/v1/audit?last=3')).entries;
    expect(audit.map((e) => [e.action, e.params, e.outcome])).toEqual([
      ['set-log-level', { level: 'debug', module: 'ring' }, 'success'],
      ['set-log-level', { level: 'error' }, 'success'],
      ['set-log-level', { module: 'ring', level: null }, 'success'],
    ]);
    await client.put('/v1/log/levels', { level: 'info' });
  });

  it('refuses an unknown level, a malformed module, a reset of the default and unknown fields, each audited as a failure', async () => {
    expect((await refusal(client.put('/v1/log/levels', { level: 'loud' }))).code).toBe('E_LOG_LEVEL');
    expect((await refusal(client.put('/v1/log/levels', { level: 'debug', module: 'ring store' }))).code).toBe('E_LOG_MODULE');
    expect((await refusal(client.put('/v1/log/levels', { level: null }))).code).toBe('E_LOG_LEVEL');
    expect((await refusal(client.put('/v1/log/levels', { level: 'debug', modul: 'ring' }))).code).toBe('E_ADMIN_BAD_REQUEST');
    expect((await refusal(client.put('/v1/log/levels', [1]))).code).toBe('E_ADMIN_BAD_REQUEST');
    const audit = (await client.get<{ entries: { outcome: string; error?: { code: string } }[] }>('/v1/audit?last=5')).entries;
    expect(audit.map((e) => [e.outcome, e.error?.code])).toEqual([
      ['failure', 'E_LOG_LEVEL'],
      ['failure', 'E_LOG_MODULE'],
      ['failure', 'E_LOG_LEVEL'],
      ['failure', 'E_ADMIN_BAD_REQUEST'],
      ['failure', 'E_ADMIN_BAD_REQUEST'],
    ]);
    expect(root.levels()).toEqual({ level: 'info', modules: { vap: 'warn' } });
  });

  it('returns the last N audit entries in file order, with the file path, and refuses a bad N', async () => {
    const all = readFileSync(auditFile, 'utf8').trimEnd().split('\n');
    const tail = await client.get<{ file: string; entries: unknown[]; unreadable: number; truncated: boolean }>('/v1/audit?last=2');
    expect(tail.file).toBe(auditFile);
    expect(tail.entries).toEqual(all.slice(-2).map((l) => JSON.parse(l) as unknown));
    expect(tail.unreadable).toBe(0);
    expect(tail.truncated).toBe(false);
    expect((await client.get<{ entries: unknown[] }>('/v1/audit')).entries).toHaveLength(Math.min(20, all.length));
    for (const bad of ['0', '-1', 'x', '10001', '1.5']) {
      expect((await refusal(client.get(`/v1/audit?last=${bad}`))).code).toBe('E_ADMIN_BAD_REQUEST');
    }
  });
});

describe('audit log tail', () => {
  it('reads backwards across chunks, skips a torn line without losing the next entry, and is empty for a log not written yet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-audit-tail-'));
    try {
      const path = join(dir, 'audit.log');
      const log = new AuditLog(path);
      expect(await log.tail(5)).toEqual({ entries: [], unreadable: 0, truncated: false });
      // Lines of ~1 KB, so 300 of them span several 64 KB chunks.
      for (let i = 0; i < 300; i++) await log.record({ actor: 'a', action: 'set-thing', params: { i, pad: 'é'.repeat(500) }, outcome: 'success' });
      const tail = await log.tail(150);
      expect(tail.entries.map((e) => (e.params as { i: number }).i)).toEqual(Array.from({ length: 150 }, (_, k) => 150 + k));
      expect((await log.tail(10_000)).entries).toHaveLength(300);
      appendFileSync(path, '{"time":"2025-');
      const torn = await log.tail(2);
      expect(torn.entries.map((e) => (e.params as { i: number }).i)).toEqual([299]);
      expect(torn.unreadable).toBe(1);
      // The next process's first entry starts on a line of its own instead of completing the torn one.
      await new AuditLog(path).record({ actor: 'a', action: 'after-restart', outcome: 'success' });
      const after = await log.tail(3);
      expect(after.entries.map((e) => e.action)).toEqual(['set-thing', 'after-restart']);
      expect(after.unreadable).toBe(1);
      await expect(log.tail(0)).rejects.toMatchObject({ code: 'E_AUDIT_TAIL' });
      writeFileSync(path, '');
      expect((await log.tail(3)).entries).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
