import { createHash, type Hash } from 'node:crypto';
import { ImeError, describeInput, domainProblem } from '@ime/core';

/**
 * The backup file of a whole peer (SPEC §8, docs/OPERATIONS.md "Backup and restore"): pure encoding
 * and decoding, no I/O, so that the format is tested on its own and the same code serves the running
 * peer (which produces and checks files in chunks), the CLI and the offline restore.
 *
 * Layout (integers big-endian):
 *
 *   0   16 bytes  magic "IME-PEER-BACKUP\n"
 *   16  u32       schema version (checked before anything else: a later schema may change the rest)
 *   20  u64       content length in bytes
 *   28  32 bytes  SHA-256 seal: over the content, then the preamble with these 32 bytes zeroed, then
 *                 the header text — every byte of the file but the seal itself
 *   60  u32       header length
 *   64  header    JSON: format name, PeerId, domain, name, creation time, software version
 *   …   content   frames: kind u8 ‖ length u32 ‖ payload
 *                   0x01 configuration (JSON)
 *                   0x02 file: name length u16 ‖ name ‖ bytes (key material kept outside the database)
 *                   0x03 database entry: key length u32 ‖ key ‖ value
 *                   0x7f end (JSON counts); nothing may follow it
 *
 * The content comes first in the seal so a writer can hash it while streaming and only learn the
 * content length (which sits in the preamble) at the end; the preamble is then written over the blank
 * one at offset 0. Check order on reading: magic (E_BACKUP_MALFORMED), schema (E_BACKUP_SCHEMA), the
 * file length the preamble announces (E_BACKUP_MALFORMED: truncated or extended), the seal
 * (E_BACKUP_CORRUPT: any other changed byte, header included), then the header and the structure
 * (E_BACKUP_MALFORMED).
 */

export type BackupErrorCode = 'E_BACKUP_MALFORMED' | 'E_BACKUP_SCHEMA' | 'E_BACKUP_CORRUPT';

export const BACKUP_FORMAT = 'ime-peer-backup';
export const BACKUP_SCHEMA_VERSION = 1;
export const BACKUP_MAGIC: Uint8Array = new TextEncoder().encode('IME-PEER-BACKUP\n');
export const BACKUP_PREAMBLE_BYTES = 64;
const SCHEMA_OFFSET = 16;
const LENGTH_OFFSET = 20;
const SEAL_OFFSET = 28;
const SEAL_BYTES = 32;
const HEADER_LENGTH_OFFSET = 60;
export const MAX_BACKUP_HEADER_BYTES = 64 * 1024;
/** No single key, value or file of a peer comes near this; a larger frame means a damaged file. */
export const MAX_BACKUP_FRAME_BYTES = 64 * 1024 * 1024;
const MAX_KEY_BYTES = 64 * 1024;
const MAX_FILE_NAME_BYTES = 256;

const FRAME_CONFIGURATION = 0x01;
const FRAME_FILE = 0x02;
const FRAME_ENTRY = 0x03;
const FRAME_END = 0x7f;
const FRAME_HEAD_BYTES = 5;

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

export interface BackupHeader {
  readonly format: typeof BACKUP_FORMAT;
  readonly peerId: string;
  readonly domain: string;
  readonly name: string;
  /** ISO 8601. */
  readonly createdAt: string;
  readonly softwareVersion: string;
}

export interface BackupSeal {
  readonly contentBytes: number;
  /** Hex. */
  readonly sha256: string;
}

export interface BackupCounts {
  readonly entries: number;
  readonly files: number;
}

export type BackupFrame =
  | { readonly kind: 'configuration'; readonly configuration: unknown }
  | { readonly kind: 'file'; readonly name: string; readonly bytes: Uint8Array }
  | { readonly kind: 'entry'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly kind: 'end'; readonly counts: BackupCounts };

/** What the first bytes of a file say (the header text is read with `backupHeaderOf`). */
export interface BackupPrefix {
  readonly headerText: Uint8Array;
  readonly seal: BackupSeal;
  /** Preamble and header: where the content starts. */
  readonly contentOffset: number;
  /** The file's length as announced: contentOffset + seal.contentBytes. */
  readonly totalBytes: number;
  /** The preamble (seal zeroed) and header, as hashed after the content. */
  readonly sealedPrefix: Uint8Array;
}

function malformed(message: string): ImeError<BackupErrorCode> {
  return new ImeError('E_BACKUP_MALFORMED', `not a usable peer backup: ${message}`);
}

const PEER_ID_RE = /^[1-9A-HJ-NP-Za-km-z]{32,128}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkHeader(value: unknown): BackupHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('the header is not a JSON object');
  const h = value as Record<string, unknown>;
  if (h.format !== BACKUP_FORMAT) throw malformed(`the header names the format ${describeInput(h.format)}, not ${BACKUP_FORMAT}`);
  const text = (field: string, re: RegExp): string => {
    const v = h[field];
    if (typeof v !== 'string' || !re.test(v)) throw malformed(`the header's ${field} ${describeInput(v)} is not valid`);
    return v;
  };
  if (domainProblem(h.domain) !== undefined) throw malformed(`the header's domain ${describeInput(h.domain)} is not a domain name`);
  const createdAt = text('createdAt', /^\d{4}-\d{2}-\d{2}T[0-9:.]+Z$/);
  if (Number.isNaN(Date.parse(createdAt))) throw malformed(`the header's createdAt ${describeInput(createdAt)} is not a time`);
  return {
    format: BACKUP_FORMAT,
    peerId: text('peerId', PEER_ID_RE),
    domain: text('domain', /^[^A-Z]+$/),
    name: text('name', NAME_RE),
    createdAt,
    softwareVersion: text('softwareVersion', /^[0-9A-Za-z.+-]{1,64}$/),
  };
}

function frameHead(kind: number, length: number): Uint8Array {
  const head = new Uint8Array(FRAME_HEAD_BYTES);
  head[0] = kind;
  new DataView(head.buffer).setUint32(1, length);
  return head;
}

/**
 * A copy, never a view: callers pass Buffers, whose slice() shares memory, and reuse them for the
 * next read.
 */
function copyOf(bytes: Uint8Array, start: number, end?: number): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function preamble(schemaVersion: number, seal: { contentBytes: number; digest: Uint8Array | undefined }, headerText: Uint8Array): Uint8Array {
  const out = new Uint8Array(BACKUP_PREAMBLE_BYTES + headerText.length);
  const view = new DataView(out.buffer);
  out.set(BACKUP_MAGIC, 0);
  view.setUint32(SCHEMA_OFFSET, schemaVersion);
  view.setBigUint64(LENGTH_OFFSET, BigInt(seal.contentBytes));
  if (seal.digest) out.set(seal.digest, SEAL_OFFSET);
  view.setUint32(HEADER_LENGTH_OFFSET, headerText.length);
  out.set(headerText, BACKUP_PREAMBLE_BYTES);
  return out;
}

/**
 * Writes a backup piece by piece: `start()` first (a blank preamble, to be overwritten), then the
 * configuration, files and entries in any number, then `end()`, then `seal()` gives the preamble to
 * write at offset 0. Each call returns the bytes to append; nothing is buffered here.
 */
export class BackupEncoder {
  readonly header: BackupHeader;
  readonly #headerText: Uint8Array;
  readonly #hash: Hash = createHash('sha256');
  #contentBytes = 0;
  #entries = 0;
  #files = 0;
  #state: 'new' | 'content' | 'ended' | 'sealed' = 'new';
  readonly #schemaVersion: number;

  /** `schemaVersion` is for tests of refusals; files are always written with the current one. */
  constructor(header: Omit<BackupHeader, 'format'>, options: { schemaVersion?: number } = {}) {
    this.header = checkHeader({ ...header, format: BACKUP_FORMAT });
    this.#headerText = encoder.encode(JSON.stringify(this.header));
    if (this.#headerText.length > MAX_BACKUP_HEADER_BYTES) throw new RangeError('backup header too large');
    this.#schemaVersion = options.schemaVersion ?? BACKUP_SCHEMA_VERSION;
  }

  /** Length of preamble plus header: where the content starts. */
  get contentOffset(): number {
    return BACKUP_PREAMBLE_BYTES + this.#headerText.length;
  }

  get counts(): BackupCounts {
    return { entries: this.#entries, files: this.#files };
  }

  start(): Uint8Array {
    this.#expect('new');
    this.#state = 'content';
    return preamble(this.#schemaVersion, { contentBytes: 0, digest: undefined }, this.#headerText);
  }

  configuration(configuration: unknown): Uint8Array {
    const text = JSON.stringify(configuration);
    if (text === undefined) throw new TypeError('the configuration cannot be written as JSON');
    return this.#frame(FRAME_CONFIGURATION, [encoder.encode(text)]);
  }

  file(name: string, bytes: Uint8Array): Uint8Array {
    const n = encoder.encode(name);
    if (n.length === 0 || n.length > MAX_FILE_NAME_BYTES) throw new RangeError('backup file name must be 1–256 bytes');
    const len = new Uint8Array(2);
    new DataView(len.buffer).setUint16(0, n.length);
    this.#files++;
    return this.#frame(FRAME_FILE, [len, n, bytes]);
  }

  entry(key: Uint8Array, value: Uint8Array): Uint8Array {
    if (key.length > MAX_KEY_BYTES) throw new RangeError('database key too large for a backup');
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, key.length);
    this.#entries++;
    return this.#frame(FRAME_ENTRY, [len, key, value]);
  }

  end(): Uint8Array {
    const frame = this.#frame(FRAME_END, [encoder.encode(JSON.stringify(this.counts))]);
    this.#state = 'ended';
    return frame;
  }

  /** The final preamble and header (same length as `start()`'s), and the seal it carries. */
  seal(): { prefix: Uint8Array; seal: BackupSeal } {
    this.#expect('ended');
    this.#state = 'sealed';
    const blank = preamble(this.#schemaVersion, { contentBytes: this.#contentBytes, digest: undefined }, this.#headerText);
    const digest = this.#hash.update(blank).digest();
    return {
      prefix: preamble(this.#schemaVersion, { contentBytes: this.#contentBytes, digest }, this.#headerText),
      seal: { contentBytes: this.#contentBytes, sha256: Buffer.from(digest).toString('hex') },
    };
  }

  #frame(kind: number, parts: readonly Uint8Array[]): Uint8Array {
    this.#expect('content');
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (length > MAX_BACKUP_FRAME_BYTES) throw new RangeError(`backup frame of ${length} bytes is larger than ${MAX_BACKUP_FRAME_BYTES}`);
    const frame = concat([frameHead(kind, length), ...parts]);
    this.#hash.update(frame);
    this.#contentBytes += frame.length;
    return frame;
  }

  #expect(state: 'new' | 'content' | 'ended'): void {
    if (this.#state !== state) throw new Error(`backup encoder: not in state ${state} (in ${this.#state})`);
  }
}

/**
 * Reads the preamble from the first bytes of a file: undefined while more bytes are needed. Refuses
 * with E_BACKUP_MALFORMED (not a backup, impossible lengths) or E_BACKUP_SCHEMA. The header text is
 * not judged here: until the seal is checked a damaged header must not pass for a malformed one.
 */
export function readBackupPrefix(bytes: Uint8Array): BackupPrefix | undefined {
  const magicSeen = Math.min(bytes.length, BACKUP_MAGIC.length);
  for (let i = 0; i < magicSeen; i++) {
    if (bytes[i] !== BACKUP_MAGIC[i]) throw malformed('it does not start with the IME peer backup signature');
  }
  if (bytes.length < BACKUP_PREAMBLE_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const schemaVersion = view.getUint32(SCHEMA_OFFSET);
  if (schemaVersion !== BACKUP_SCHEMA_VERSION) {
    throw new ImeError<BackupErrorCode>(
      'E_BACKUP_SCHEMA',
      `the backup has schema version ${schemaVersion}; this software reads version ${BACKUP_SCHEMA_VERSION} only (restore it with the software that wrote it)`,
      { schemaVersion, supported: [BACKUP_SCHEMA_VERSION] },
    );
  }
  const contentBytes = view.getBigUint64(LENGTH_OFFSET);
  if (contentBytes > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('the announced content length is impossible');
  const headerBytes = view.getUint32(HEADER_LENGTH_OFFSET);
  if (headerBytes === 0 || headerBytes > MAX_BACKUP_HEADER_BYTES) throw malformed(`the header length ${headerBytes} is out of range`);
  const contentOffset = BACKUP_PREAMBLE_BYTES + headerBytes;
  if (bytes.length < contentOffset) return undefined;
  const sealedPrefix = copyOf(bytes, 0, contentOffset);
  sealedPrefix.fill(0, SEAL_OFFSET, SEAL_OFFSET + SEAL_BYTES);
  return {
    headerText: sealedPrefix.subarray(BACKUP_PREAMBLE_BYTES),
    seal: { contentBytes: Number(contentBytes), sha256: Buffer.from(bytes.subarray(SEAL_OFFSET, SEAL_OFFSET + SEAL_BYTES)).toString('hex') },
    contentOffset,
    totalBytes: contentOffset + Number(contentBytes),
    sealedPrefix,
  };
}

/** The header: format name, PeerId, domain, name, creation time, software version (E_BACKUP_MALFORMED). */
export function backupHeaderOf(prefix: BackupPrefix): BackupHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(strictDecoder.decode(prefix.headerText));
  } catch {
    throw malformed('the header is not JSON text');
  }
  return checkHeader(parsed);
}

/** Refuses a file whose length is not the one its preamble announces. */
export function checkBackupLength(prefix: BackupPrefix, fileBytes: number): void {
  if (fileBytes < prefix.totalBytes) throw malformed(`the file is truncated (${fileBytes} of ${prefix.totalBytes} bytes)`);
  if (fileBytes > prefix.totalBytes) throw malformed(`the file has ${fileBytes - prefix.totalBytes} bytes after the end of the backup`);
}

/** Hashes the content as it streams past; `check()` compares with the seal. */
export class BackupSealCheck {
  readonly #prefix: BackupPrefix;
  readonly #hash: Hash = createHash('sha256');
  #seen = 0;

  constructor(prefix: BackupPrefix) {
    this.#prefix = prefix;
  }

  update(content: Uint8Array): void {
    this.#seen += content.length;
    this.#hash.update(content);
  }

  check(): void {
    if (this.#seen !== this.#prefix.seal.contentBytes) throw malformed(`the content is ${this.#seen} bytes, the header says ${this.#prefix.seal.contentBytes}`);
    const digest = this.#hash.update(this.#prefix.sealedPrefix).digest('hex');
    if (digest !== this.#prefix.seal.sha256) {
      throw new ImeError<BackupErrorCode>('E_BACKUP_CORRUPT', 'the backup is damaged: its SHA-256 seal does not match its content (copy it again from a good source)');
    }
  }
}

/**
 * Splits content into frames as chunks arrive, holding at most one incomplete frame. The first frame
 * must be the configuration, the last the end frame with the right counts; `finish()` refuses a
 * content that stops before its end frame.
 */
export class BackupFrameDecoder {
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #frames = 0;
  #entries = 0;
  #files = 0;
  #ended = false;

  push(chunk: Uint8Array): BackupFrame[] {
    if (chunk.length === 0) return [];
    if (this.#ended) throw malformed('there are bytes after the end frame');
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    const out: BackupFrame[] = [];
    let buf = this.#pending.length === 1 ? (this.#pending[0] as Uint8Array) : concat(this.#pending);
    let at = 0;
    while (buf.length - at >= FRAME_HEAD_BYTES) {
      if (this.#ended) throw malformed('there are bytes after the end frame');
      const kind = buf[at] as number;
      const length = new DataView(buf.buffer, buf.byteOffset + at + 1, 4).getUint32(0);
      if (length > MAX_BACKUP_FRAME_BYTES) throw malformed(`a frame of ${length} bytes is larger than any a peer writes`);
      if (buf.length - at - FRAME_HEAD_BYTES < length) break;
      const payload = buf.subarray(at + FRAME_HEAD_BYTES, at + FRAME_HEAD_BYTES + length);
      out.push(this.#decode(kind, payload));
      at += FRAME_HEAD_BYTES + length;
    }
    buf = buf.subarray(at);
    // Copied: the caller may reuse its chunk's memory.
    this.#pending = buf.length > 0 ? [copyOf(buf, 0)] : [];
    this.#pendingBytes = buf.length;
    return out;
  }

  finish(): BackupCounts {
    if (this.#pendingBytes > 0 || !this.#ended) throw malformed('the content stops before its end frame');
    return { entries: this.#entries, files: this.#files };
  }

  #decode(kind: number, payload: Uint8Array): BackupFrame {
    const first = this.#frames === 0;
    this.#frames++;
    if (first !== (kind === FRAME_CONFIGURATION)) throw malformed(first ? 'the content does not start with the configuration' : 'a second configuration');
    switch (kind) {
      case FRAME_CONFIGURATION:
        return { kind: 'configuration', configuration: parseJson(payload, 'configuration') };
      case FRAME_FILE: {
        if (payload.length < 2) throw malformed('a file frame is too short');
        const nameLength = new DataView(payload.buffer, payload.byteOffset, 2).getUint16(0);
        if (nameLength === 0 || nameLength > MAX_FILE_NAME_BYTES || payload.length < 2 + nameLength) throw malformed('a file frame has an invalid name');
        let name: string;
        try {
          name = strictDecoder.decode(payload.subarray(2, 2 + nameLength));
        } catch {
          throw malformed('a file name is not UTF-8');
        }
        this.#files++;
        return { kind: 'file', name, bytes: copyOf(payload, 2 + nameLength) };
      }
      case FRAME_ENTRY: {
        if (payload.length < 4) throw malformed('an entry frame is too short');
        const keyLength = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
        if (keyLength > MAX_KEY_BYTES || payload.length < 4 + keyLength) throw malformed('an entry frame has an invalid key length');
        this.#entries++;
        return { kind: 'entry', key: copyOf(payload, 4, 4 + keyLength), value: copyOf(payload, 4 + keyLength) };
      }
      case FRAME_END: {
        const counts = parseJson(payload, 'end frame') as Partial<BackupCounts> | null;
        if (counts?.entries !== this.#entries || counts.files !== this.#files) throw malformed('the end frame counts do not match the content');
        this.#ended = true;
        return { kind: 'end', counts: { entries: this.#entries, files: this.#files } };
      }
      default:
        throw malformed(`unknown frame kind 0x${kind.toString(16)}`);
    }
  }
}

function parseJson(payload: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(strictDecoder.decode(payload));
  } catch {
    throw malformed(`the ${what} is not JSON text`);
  }
}

export interface PeerBackupContent {
  readonly header: BackupHeader;
  readonly configuration: unknown;
  readonly files: readonly { readonly name: string; readonly bytes: Uint8Array }[];
  readonly entries: readonly { readonly key: Uint8Array; readonly value: Uint8Array }[];
}

/** A whole backup in memory (small peers and tests; the peer and the CLI stream instead). */
export function encodeBackup(
  content: Omit<PeerBackupContent, 'header'> & { header: Omit<BackupHeader, 'format'> },
  options: { schemaVersion?: number } = {},
): Uint8Array {
  const e = new BackupEncoder(content.header, options);
  const parts = [e.start(), e.configuration(content.configuration)];
  for (const f of content.files) parts.push(e.file(f.name, f.bytes));
  for (const x of content.entries) parts.push(e.entry(x.key, x.value));
  parts.push(e.end());
  const { prefix } = e.seal();
  parts[0] = prefix;
  return concat(parts);
}

/** Checks and decodes a whole backup in memory, in the order the file format describes. */
export function decodeBackup(bytes: Uint8Array): PeerBackupContent & { seal: BackupSeal } {
  const prefix = readBackupPrefix(bytes);
  if (prefix === undefined) throw malformed(`the file is truncated (${bytes.length} bytes, shorter than its header)`);
  checkBackupLength(prefix, bytes.length);
  const content = bytes.subarray(prefix.contentOffset);
  const seal = new BackupSealCheck(prefix);
  seal.update(content);
  seal.check();
  const header = backupHeaderOf(prefix);
  const decoder = new BackupFrameDecoder();
  let configuration: unknown;
  const files: { name: string; bytes: Uint8Array }[] = [];
  const entries: { key: Uint8Array; value: Uint8Array }[] = [];
  for (const frame of decoder.push(content)) {
    if (frame.kind === 'configuration') configuration = frame.configuration;
    else if (frame.kind === 'file') files.push({ name: frame.name, bytes: frame.bytes });
    else if (frame.kind === 'entry') entries.push({ key: frame.key, value: frame.value });
  }
  decoder.finish();
  return { header, seal: prefix.seal, configuration, files, entries };
}
