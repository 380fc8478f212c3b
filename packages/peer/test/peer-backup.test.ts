import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ImeError } from '@ime/core';
import { openDatabase } from '@ime/runtime';
import {
  BACKUP_PREAMBLE_BYTES,
  BACKUP_SCHEMA_VERSION,
  BackupEncoder,
  BackupFrameDecoder,
  type PeerBackupContent,
  decodeBackup,
  encodeBackup,
} from '../src/peer-backup.js';
import { RESTORE_STAGING_DIR, readBackupFile, recoverInterruptedRestore, stageRestore, swapInStagedDatabase, undoSwap } from '../src/peer-backup-files.js';
import { rejectionCode as codeOfAsync } from '../../core/test/helpers.js';

const HEADER = {
  peerId: '12D3KooWLpRY4BXPQ3Fgv4y8LGSRPxxzX5GySLhTs5ifyyqm3Bwc',
  domain: 'acme.example',
  name: 'peer-1',
  createdAt: '2026-11-24T10:00:00.000Z',
  softwareVersion: '0.1.0',
};

function content(entries = 20): Omit<PeerBackupContent, 'header'> & { header: typeof HEADER } {
  return {
    header: HEADER,
    configuration: { name: 'peer-1', domain: 'acme.example', dataDir: '/var/lib/ime/data', listen: ['/ip4/0.0.0.0/tcp/6084'] },
    files: [{ name: 'vap/keyFile', bytes: new TextEncoder().encode('-----BEGIN PRIVATE KEY-----\n…') }],
    entries: Array.from({ length: entries }, (_, i) => ({
      // Binary keys with every byte value, as the record store writes them.
      key: Uint8Array.from([i % 3, ...randomBytes(32)]),
      value: randomBytes(i * 7),
    })),
  };
}

function flip(bytes: Uint8Array, at: number, mask: number): void {
  bytes[at] = (bytes[at] as number) ^ mask;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ImeError) return err.code;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('peer backup format', () => {
  it('round-trips the header, configuration, files and every database entry byte for byte', () => {
    const c = content();
    const decoded = decodeBackup(encodeBackup(c));
    expect(decoded.header).toEqual({ format: 'ime-peer-backup', ...HEADER });
    expect(decoded.configuration).toEqual(c.configuration);
    expect(decoded.files).toEqual(c.files.map((f) => ({ name: f.name, bytes: Uint8Array.from(f.bytes) })));
    expect(decoded.entries.map((e) => [Buffer.from(e.key).toString('hex'), Buffer.from(e.value).toString('hex')])).toEqual(
      c.entries.map((e) => [Buffer.from(e.key).toString('hex'), Buffer.from(e.value).toString('hex')]),
    );
    expect(decoded.seal.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('streams: pieces written one by one, then read back in chunks of any size, give the same frames', () => {
    const c = content(50);
    const e = new BackupEncoder(c.header);
    const pieces = [e.start(), e.configuration(c.configuration), ...c.files.map((f) => e.file(f.name, f.bytes)), ...c.entries.map((x) => e.entry(x.key, x.value)), e.end()];
    const { prefix } = e.seal();
    expect(prefix.length).toBe(pieces[0]!.length);
    pieces[0] = prefix;
    const whole = Buffer.concat(pieces);
    // The same state gives the same file, written whole or piece by piece.
    expect(Buffer.from(whole).equals(Buffer.from(encodeBackup(c)))).toBe(true);
    const body = whole.subarray(e.contentOffset);
    for (const step of [1, 3, 4096]) {
      const d = new BackupFrameDecoder();
      const kinds: string[] = [];
      for (let at = 0; at < body.length; at += step) for (const f of d.push(body.subarray(at, at + step))) kinds.push(f.kind);
      expect(d.finish()).toEqual({ entries: 50, files: 1 });
      expect(kinds).toEqual(['configuration', 'file', ...Array(50).fill('entry'), 'end']);
    }
    expect(decodeBackup(whole).entries).toHaveLength(50);
  });

  it('refuses another schema version with E_BACKUP_SCHEMA, before anything else is read', () => {
    const bytes = encodeBackup(content(), { schemaVersion: BACKUP_SCHEMA_VERSION + 1 });
    expect(codeOf(() => decodeBackup(bytes))).toBe('E_BACKUP_SCHEMA');
    // Even when the rest is damaged: a later schema may have changed it.
    flip(bytes, bytes.length - 1, 0xff);
    expect(codeOf(() => decodeBackup(bytes))).toBe('E_BACKUP_SCHEMA');
  });

  it('refuses any single flipped byte past the lengths (seal, header, content) with E_BACKUP_CORRUPT', () => {
    const good = encodeBackup(content(3));
    // 28–59 seal, 60–63 header length (a different length is a truncation: malformed), 64… header and content.
    const positions = [...Array.from({ length: 32 }, (_, i) => 28 + i), ...Array.from({ length: good.length - BACKUP_PREAMBLE_BYTES }, (_, i) => BACKUP_PREAMBLE_BYTES + i)];
    for (const at of positions) {
      const bad = Uint8Array.from(good);
      flip(bad, at, 0x01);
      expect([at, codeOf(() => decodeBackup(bad))]).toEqual([at, 'E_BACKUP_CORRUPT']);
    }
  });

  it('refuses truncated, extended, garbage and foreign files with E_BACKUP_MALFORMED', () => {
    const good = encodeBackup(content());
    expect(codeOf(() => decodeBackup(good.subarray(0, good.length - 1)))).toBe('E_BACKUP_MALFORMED');
    expect(codeOf(() => decodeBackup(good.subarray(0, 40)))).toBe('E_BACKUP_MALFORMED');
    expect(codeOf(() => decodeBackup(Buffer.concat([good, Buffer.from([0])])))).toBe('E_BACKUP_MALFORMED');
    expect(codeOf(() => decodeBackup(randomBytes(5000)))).toBe('E_BACKUP_MALFORMED');
    expect(codeOf(() => decodeBackup(new TextEncoder().encode('{"format":"ime-peer-backup"}')))).toBe('E_BACKUP_MALFORMED');
    expect(codeOf(() => decodeBackup(new Uint8Array(0)))).toBe('E_BACKUP_MALFORMED');
  });

  it('refuses a well-sealed file whose structure is wrong with E_BACKUP_MALFORMED', () => {
    // A writer that forgets the configuration: the seal is right, the content is not a peer's.
    const e = new BackupEncoder(HEADER);
    const start = e.start();
    const entry = e.entry(new Uint8Array([1]), new Uint8Array([2]));
    const end = e.end();
    const { prefix } = e.seal();
    expect(start.length).toBe(prefix.length);
    expect(codeOf(() => decodeBackup(Buffer.concat([prefix, entry, end])))).toBe('E_BACKUP_MALFORMED');
  });

  it('refuses a header that is not a peer backup header', () => {
    expect(() => new BackupEncoder({ ...HEADER, peerId: 'not a peer id' })).toThrow(ImeError);
    expect(() => new BackupEncoder({ ...HEADER, domain: 'Upper.Example' })).toThrow(ImeError);
  });
});

describe('backup files and the data-dir swap', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ime-backup-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function liveDatabase(dataDir: string, entries: [string, string][]): Promise<void> {
    const db = await openDatabase(join(dataDir, 'db'));
    for (const [k, v] of entries) await db.put(Buffer.from(k), Buffer.from(v));
    await db.close();
  }

  async function read(dataDir: string): Promise<[string, string][]> {
    const db = await openDatabase(join(dataDir, 'db'));
    const out: [string, string][] = [];
    for await (const [k, v] of db.iterator()) out.push([Buffer.from(k).toString(), Buffer.from(v).toString()]);
    await db.close();
    return out;
  }

  function backupOf(entries: [string, string][], schemaVersion?: number): Uint8Array {
    const c = { ...content(0), entries: entries.map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(v) })) };
    return encodeBackup(c, schemaVersion === undefined ? {} : { schemaVersion });
  }

  it('stages a checked backup and swaps it in; undo puts the previous state back', async () => {
    const dataDir = join(dir, 'data');
    await liveDatabase(dataDir, [['meta/identity', 'stand-in']]);
    const file = join(dir, 'b.imebackup');
    await writeFile(file, backupOf([['meta/identity', 'lost-peer'], ['record/1', 'x']]));
    const checked = await stageRestore(dataDir, file);
    expect(checked.counts).toEqual({ entries: 2, files: 1 });
    expect(checked.header.peerId).toBe(HEADER.peerId);
    // Staging changes nothing of the live state.
    expect(await read(dataDir)).toEqual([['meta/identity', 'stand-in']]);
    await swapInStagedDatabase(dataDir);
    expect(await read(dataDir)).toEqual([['meta/identity', 'lost-peer'], ['record/1', 'x']]);
    await undoSwap(dataDir);
    expect(await read(dataDir)).toEqual([['meta/identity', 'stand-in']]);
  });

  it('a refused file leaves no staged database and the live one untouched', async () => {
    const dataDir = join(dir, 'data');
    await liveDatabase(dataDir, [['meta/identity', 'stand-in']]);
    const corrupt = backupOf([['meta/identity', 'lost-peer']]);
    flip(corrupt, corrupt.length - 3, 0x40);
    await writeFile(join(dir, 'corrupt'), corrupt);
    await writeFile(join(dir, 'schema'), backupOf([['meta/identity', 'lost-peer']], 9));
    expect(await codeOfAsync(stageRestore(dataDir, join(dir, 'corrupt')))).toBe('E_BACKUP_CORRUPT');
    expect(await codeOfAsync(stageRestore(dataDir, join(dir, 'schema')))).toBe('E_BACKUP_SCHEMA');
    expect(await codeOfAsync(readBackupFile(join(dir, 'missing')))).toBe('E_BACKUP_FILE');
    expect(existsSync(join(dataDir, RESTORE_STAGING_DIR, 'db'))).toBe(false);
    expect(await read(dataDir)).toEqual([['meta/identity', 'stand-in']]);
  });

  it('a start after a crash between the two renames finds the staged database in place', async () => {
    const dataDir = join(dir, 'data');
    const staging = join(dataDir, RESTORE_STAGING_DIR);
    await liveDatabase(staging, [['meta/identity', 'lost-peer']]);
    await mkdir(join(staging, 'previous-db'));
    await writeFile(join(staging, 'swap.json'), '{}');
    recoverInterruptedRestore(dataDir);
    expect(await read(dataDir)).toEqual([['meta/identity', 'lost-peer']]);
    // With a database in place it does nothing.
    recoverInterruptedRestore(dataDir);
    expect(existsSync(join(staging, 'previous-db'))).toBe(true);
  });
});
