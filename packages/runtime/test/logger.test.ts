import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import type { LogEntry } from '../src/logger.js';
import { Logger, redactSecrets } from '../src/logger.js';

function capture(options: ConstructorParameters<typeof Logger>[0] = {}): { log: Logger; lines: string[]; entries: LogEntry[] } {
  const lines: string[] = [];
  const entries: LogEntry[] = [];
  const log = new Logger({
    ...options,
    now: () => new Date('2025-03-01T12:00:00.000Z'),
    sink: (line, entry) => {
      lines.push(line);
      entries.push(entry);
    },
  });
  return { log, lines, entries };
}

describe('structured logs', () => {
  it('writes one JSON object per line with time, level, module, msg and fields', () => {
    const { log, lines } = capture();
    log.child('ring').info('joined the ring', { peers: 4 });
    log.warn('no fields');
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { time: '2025-03-01T12:00:00.000Z', level: 'info', module: 'ring', msg: 'joined the ring', fields: { peers: 4 } },
      { time: '2025-03-01T12:00:00.000Z', level: 'warn', module: 'ime', msg: 'no fields' },
    ]);
    for (const l of lines) expect(l).not.toContain('\n');
  });

  it('filters by the default level and per-module levels, with dotted modules inheriting', () => {
    const { log, entries } = capture({ level: 'warn', modules: { ring: 'debug', 'ring.store': 'error' } });
    const ring = log.child('ring');
    const store = ring.child('store');
    const handoff = ring.child('handoff');
    const vap = log.child('vap');
    for (const l of [log, ring, store, handoff, vap]) {
      l.error('e');
      l.warn('w');
      l.info('i');
      l.debug('d');
      l.trace('t');
    }
    const seen = (module: string): string[] => entries.filter((e) => e.module === module).map((e) => e.msg);
    expect(seen('ime')).toEqual(['e', 'w']);
    expect(seen('ring')).toEqual(['e', 'w', 'i', 'd']);
    expect(seen('ring.store')).toEqual(['e']);
    expect(seen('ring.handoff')).toEqual(['e', 'w', 'i', 'd']);
    expect(seen('vap')).toEqual(['e', 'w']);
  });

  it('changes levels at run time for the whole tree', () => {
    const { log, entries } = capture({ level: 'info' });
    const vap = log.child('vap');
    vap.debug('before');
    log.setLevel('vap', 'trace');
    vap.trace('after');
    log.setLevel('error');
    log.info('quiet');
    vap.setLevel('vap', undefined);
    vap.warn('back to default');
    expect(entries.map((e) => e.msg)).toEqual(['after']);
    expect(log.levels()).toEqual({ level: 'error', modules: {} });
    expect(() => log.setLevel('loud' as never)).toThrow(expect.objectContaining({ code: 'E_LOG_LEVEL' }));
    expect(() => new Logger({ modules: { ring: 'verbose' as never } })).toThrow(expect.objectContaining({ code: 'E_LOG_LEVEL' }));
  });

  it('redacts secret-looking keys at any depth', () => {
    const { log, lines } = capture();
    log.info('credentials added', {
      username: 'cm1',
      password: 'hunter2',
      nested: { deeper: [{ apiToken: 'tok-1', ok: 1 }], clientSecret: 'sec', PrivateKey: 'pk', private_key: 'pk2' },
      headers: { Authorization: 'Bearer abc' },
    });
    const line = lines[0] ?? '';
    for (const secret of ['hunter2', 'tok-1', 'sec"', 'pk"', 'pk2', 'Bearer abc']) expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({
      fields: {
        username: 'cm1',
        password: '***',
        nested: { deeper: [{ apiToken: '***', ok: 1 }], clientSecret: '***', PrivateKey: '***', private_key: '***' },
        headers: { Authorization: '***' },
      },
    });
  });

  it('logs awkward values without throwing', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const out = redactSecrets({
      cyclic,
      big: 10n,
      bytes: new Uint8Array(5),
      err: new ImeError('E_X', 'refused'),
      bug: new TypeError('boom'),
      when: new Date('2025-01-01T00:00:00Z'),
      nan: Number.NaN,
      fn: () => 1,
      gone: undefined,
    }) as Record<string, unknown>;
    expect(out.cyclic).toEqual({ a: 1, self: '[Circular]' });
    expect(out.big).toBe('10');
    expect(out.bytes).toBe('<5 bytes>');
    expect(out.err).toEqual({ name: 'ImeError', message: 'refused', code: 'E_X' });
    expect((out.bug as { stack?: string }).stack).toContain('boom');
    expect(out.when).toBe('2025-01-01T00:00:00.000Z');
    expect(out.nan).toBe('NaN');
    expect(out.fn).toBe('[function]');
    expect('gone' in out).toBe(false);
    const withProto = redactSecrets(JSON.parse('{"__proto__":{"polluted":true}}')) as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(withProto)).toEqual(['__proto__']);
  });

  it('appends to a file sink created with mode 0600', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-log-'));
    try {
      const file = join(dir, 'logs', 'peer.log');
      const a = new Logger({ sink: file });
      a.info('first');
      a.close();
      const b = new Logger({ sink: { file } });
      b.child('ring').error('second', { token: 'x' });
      b.close();
      b.info('dropped after close');
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as LogEntry);
      expect(lines.map((l) => [l.module, l.msg, l.fields])).toEqual([
        ['ime', 'first', undefined],
        ['ring', 'second', { token: '***' }],
      ]);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad module names', () => {
    const { log } = capture();
    expect(() => log.child('has space')).toThrow(expect.objectContaining({ code: 'E_LOG_MODULE' }));
    expect(() => log.child('')).toThrow(expect.objectContaining({ code: 'E_LOG_MODULE' }));
  });
});
