import { describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../src/audit.js';

function lines(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('audit log', () => {
  it('appends one masked JSON line per record, in call order, durable when record resolves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-audit-'));
    try {
      const path = join(dir, 'state', 'audit.jsonl');
      const log = new AuditLog(path, { now: () => new Date('2025-03-01T00:00:00Z') });
      await log.record({
        actor: 'admin@127.0.0.1',
        action: 'add-vapusercredentials',
        params: { username: 'cm1', password: 'hunter2', deep: [{ ticketSecret: 'x', keep: 1 }] },
        outcome: 'success',
      });
      expect(lines(path)).toEqual([
        {
          time: '2025-03-01T00:00:00.000Z',
          actor: 'admin@127.0.0.1',
          action: 'add-vapusercredentials',
          params: { username: 'cm1', password: '***', deep: [{ ticketSecret: '***', keep: 1 }] },
          outcome: 'success',
        },
      ]);
      // Concurrent records land in call order.
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          log.record({ actor: 'admin@127.0.0.1', action: 'set-thing', params: { i }, outcome: i % 2 === 0 ? 'success' : 'failure', ...(i % 2 === 0 ? {} : { error: { code: 'E_X', message: 'refused' } }) }),
        ),
      );
      const all = lines(path);
      expect(all).toHaveLength(51);
      expect(all.slice(1).map((l) => (l.params as { i: number }).i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(all[2]).toMatchObject({ outcome: 'failure', error: { code: 'E_X', message: 'refused' } });
      expect(readFileSync(path, 'utf8')).not.toContain('hunter2');
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('appends to an existing file and tightens its mode', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-audit-'));
    try {
      const path = join(dir, 'audit.jsonl');
      writeFileSync(path, '{"old":true}\n');
      chmodSync(path, 0o644);
      await new AuditLog(path).record({ actor: 'a', action: 'b', outcome: 'success' });
      const all = lines(path);
      expect(all[0]).toEqual({ old: true });
      expect(all[1]).toMatchObject({ actor: 'a', action: 'b', params: {}, outcome: 'success' });
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a failed write as E_AUDIT_WRITE and keeps working afterwards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-audit-'));
    try {
      const blocked = join(dir, 'file-not-dir');
      writeFileSync(blocked, '');
      const bad = new AuditLog(join(blocked, 'audit.jsonl'));
      await expect(bad.record({ actor: 'a', action: 'b', outcome: 'success' })).rejects.toMatchObject({ code: 'E_AUDIT_WRITE' });
      await expect(bad.record({ actor: 'a', action: 'b', outcome: 'success' })).rejects.toMatchObject({ code: 'E_AUDIT_WRITE' });
      await expect(bad.record({ actor: 'a', action: 'b', outcome: 'maybe' as never })).rejects.toThrow(TypeError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('summarises huge parameters instead of writing them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-audit-'));
    try {
      const path = join(dir, 'audit.jsonl');
      await new AuditLog(path).record({ actor: 'a', action: 'restore', params: { blob: 'x'.repeat(8000), more: Array(50).fill('y'.repeat(2000)) }, outcome: 'success' });
      expect(lines(path)[0]?.params).toMatchObject({ truncated: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
