import { randomBytes } from 'node:crypto';
import { RING_SALT_BYTES, verifyRingCertificate } from '@ime/admission';
import { ImeError, describeInput, isImeError } from '@ime/core';
import { type Database, getJson, keyOf, loadOrCreateIdentity } from '@ime/runtime';
import type { ime } from '@ime/wire';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import {
  MAX_CONTACT_LENGTH,
  MAX_MOTD_LENGTH,
  MAX_NOTE_LENGTH,
  MAX_REASON_LENGTH,
  MAX_STORAGE_QUOTA,
  MAX_VIRTUAL_NODES,
  canonicalPeerId,
  checkAddresses,
  checkDomain,
  checkInteger,
  checkMinVersion,
  checkSoftwareVersion,
  checkText,
  isRecord,
} from './bootstrap-checks.js';
import { type RingAuthority, type RingAuthorityMaterial, createRingAuthority, loadRingAuthority } from './ring-authority.js';

/**
 * The bootstrap's state (docs/RING.md "Several bootstraps"), in its own LevelDB database:
 *
 * - its libp2p identity (per bootstrap, never shared or exported);
 * - the ring authority (CA key and certificate) and the ring (name, salt) — the same for every
 *   bootstrap of a ring, copied by export/import;
 * - mergeable entries (`enrollment/<peerId>`, `token/<sha256 hex>`, `ban/<peerId>`,
 *   `setting/<name>`), each stamped with when and by which bootstrap it last changed. The later
 *   change wins (ties broken by the bootstrap's PeerId, then by the value), so merging is
 *   commutative and idempotent and bootstraps that were apart converge whatever order they meet in;
 * - the highest configuration sequence issued or seen, and the last signed configuration.
 *
 * Everything is held in memory as well (operator-scale data) and changed synchronously, so a check
 * and the change it guards (a token checked, then marked used) cannot interleave with another
 * request; writes to disk are queued in order behind it.
 */

export type BootstrapStateErrorCode = 'E_STATE_FORMAT' | 'E_STATE_ENTRY' | 'E_STATE_CONFLICT' | 'E_STATE_NO_AUTHORITY';

export const STATE_FORMAT = 'ime-bootstrap-state';
export const STATE_FORMAT_VERSION = 1;

/** A peer's enrollment. */
export interface EnrollmentValue {
  readonly domain: string;
  readonly contact: string;
  readonly addresses: readonly string[];
  /** The peer's current ring certificate (DER, base64): answered again on refresh, by any bootstrap. */
  readonly certificate: string;
  readonly certificateSerial: string;
  readonly certificateExpiresAtMs: number;
  readonly virtualNodes: number;
  /** On the roster (auto admission, or admitted by the operator). */
  readonly admitted: boolean;
  readonly enrolledAtMs: number;
  readonly softwareVersion: string;
}

/** A one-time enrollment token, stored only as the SHA-256 of its text (the entry's id). */
export interface TokenValue {
  /** When set, the token enrolls only a peer of this domain. */
  readonly domain?: string;
  readonly expiresAtMs: number;
  readonly createdAtMs: number;
  readonly note?: string;
  readonly usedBy?: string;
  readonly usedAtMs?: number;
}

/** Unbanning keeps the entry (banned: false) so the later change still wins when bootstraps merge. */
export interface BanValue {
  readonly banned: boolean;
  readonly reason: string;
  readonly atMs: number;
}

export const PARAMETER_SETTINGS = [
  'replicationFactor',
  'writeQuorum',
  'readQuorum',
  'recordTtlSec',
  'republishIntervalSec',
  'storageQuota',
  'pollIntervalSec',
  'virtualNodes',
] as const;
export type ParameterSetting = (typeof PARAMETER_SETTINGS)[number];
export const SETTING_NAMES = ['messageOfTheDay', 'minSoftwareVersion', ...PARAMETER_SETTINGS] as const;
export type SettingName = (typeof SETTING_NAMES)[number];
/** A setting's value; null means "no override": the configuration file's value applies. */
export type SettingValue = string | number | null;

export interface StateEntry {
  /** `enrollment/<peerId>`, `token/<sha256 hex>`, `ban/<peerId>`, `setting/<name>`. */
  readonly id: string;
  readonly updatedAtMs: number;
  /** PeerId of the bootstrap that made the change. */
  readonly updatedBy: string;
  readonly value: unknown;
}

export interface BootstrapStateDocument {
  readonly format: typeof STATE_FORMAT;
  readonly version: typeof STATE_FORMAT_VERSION;
  readonly exportedAt: string;
  readonly authority: { readonly privateKeyPem: string; readonly certificateDer: string };
  readonly ring: { readonly name: string; readonly salt: string };
  readonly entries: readonly StateEntry[];
  readonly sequence: number;
}

export interface MergeResult {
  /** Ids whose value this merge replaced or added. */
  readonly changed: readonly string[];
  /** Entries refused as malformed (with why), e.g. from a bootstrap running other software. */
  readonly refused: readonly { readonly id: string; readonly code: string; readonly message: string }[];
}

interface Stored {
  readonly id: string;
  readonly updatedAtMs: number;
  readonly updatedBy: string;
  readonly valueJson: string;
  readonly value: unknown;
  /** Local change counter when this entry last changed here: what a delta sync sends. */
  readonly version: number;
}

const KEY_ENTRY = 'state/entry/';
const KEY_AUTHORITY = 'state/authority';
const KEY_RING = 'state/ring';
const KEY_SEQUENCE = 'state/sequence';
const KEY_CONFIGURATION = 'state/configuration';

const MAX_ENTRY_ID_LENGTH = 200;
const MAX_VALUE_JSON_LENGTH = 64 * 1024;
const MAX_CERTIFICATE_BASE64 = 24 * 1024;
const MAX_UPDATED_BY_LENGTH = 128;
const SEQUENCE_SLOTS = 8; // one residue per bootstrap ordinal 0–7
const TOKEN_ID = /^[0-9a-f]{64}$/;
const RING_NAME = /^[a-z0-9.-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const encoder = new TextEncoder();

export class BootstrapState {
  readonly #db: Database;
  readonly #now: () => number;
  readonly identity: PrivateKey;
  readonly peerId: string;
  readonly #entries = new Map<string, Stored>();
  #material: RingAuthorityMaterial | undefined;
  #authority: RingAuthority | undefined;
  #ring: { name: string; salt: Uint8Array } | undefined;
  #sequence = 0;
  #configuration: Uint8Array | undefined;
  #version = 0;
  /** Writes in the order the changes were made; LevelDB does not order concurrent writes. */
  #writes: Promise<void> = Promise.resolve();
  #writeError: unknown;

  private constructor(db: Database, identity: PrivateKey, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.identity = identity;
    this.peerId = peerIdFromPrivateKey(identity).toString();
  }

  /**
   * Loads the state (creating the libp2p identity on first use, or taking `identity`, the key of
   * `identityKeyFile`). The authority may still be missing.
   */
  static async open(db: Database, options: { now?: () => number; identity?: PrivateKey } = {}): Promise<BootstrapState> {
    const identity = await loadOrCreateIdentity(db, options.identity);
    const state = new BootstrapState(db, identity, options.now ?? Date.now);
    await state.#load();
    return state;
  }

  async #load(): Promise<void> {
    const authority = await getJson<{ privateKeyPem: string; certificateDer: string }>(this.#db, KEY_AUTHORITY);
    if (authority !== undefined) {
      const material = { privateKeyPem: authority.privateKeyPem, certificateDer: Buffer.from(authority.certificateDer, 'base64') };
      this.#authority = loadRingAuthority(material);
      this.#material = material;
    }
    const ring = await getJson<{ name: string; salt: string }>(this.#db, KEY_RING);
    if (ring !== undefined) this.#ring = { name: ring.name, salt: Buffer.from(ring.salt, 'base64') };
    this.#sequence = (await getJson<number>(this.#db, KEY_SEQUENCE)) ?? 0;
    const configuration = await getJson<string>(this.#db, KEY_CONFIGURATION);
    if (configuration !== undefined) this.#configuration = Buffer.from(configuration, 'base64');

    const prefix = keyOf(KEY_ENTRY);
    const end = keyOf(`${KEY_ENTRY.slice(0, -1)}0`); // '/' + 1
    const decoder = new TextDecoder();
    for await (const [, raw] of this.#db.iterator({ gte: prefix, lt: end })) {
      let stored: { id: string; updatedAtMs: number; updatedBy: string; valueJson: string };
      try {
        stored = JSON.parse(decoder.decode(raw)) as typeof stored;
        this.#entries.set(stored.id, { ...stored, value: JSON.parse(stored.valueJson) as unknown, version: ++this.#version });
      } catch {
        throw new ImeError('E_DB_CORRUPT', 'a stored bootstrap state entry is not valid JSON');
      }
    }
  }

  // --- authority and ring ---------------------------------------------------------------------

  get hasAuthority(): boolean {
    return this.#authority !== undefined && this.#ring !== undefined;
  }

  /** The ring authority; E_STATE_NO_AUTHORITY before `initialize` or `importState`. */
  get authority(): RingAuthority {
    if (this.#authority === undefined) throw new ImeError('E_STATE_NO_AUTHORITY', 'this bootstrap has no ring authority yet');
    return this.#authority;
  }

  get ring(): { readonly name: string; readonly salt: Uint8Array } {
    if (this.#ring === undefined) throw new ImeError('E_STATE_NO_AUTHORITY', 'this bootstrap has no ring yet');
    return { name: this.#ring.name, salt: Uint8Array.from(this.#ring.salt) };
  }

  /** First start of the first bootstrap of a ring: a new authority and a new 32-byte salt. */
  async initialize(ringName: string): Promise<void> {
    if (this.hasAuthority) throw new ImeError('E_STATE_CONFLICT', 'this bootstrap already has a ring authority');
    const material = createRingAuthority({ ringName, nowMs: this.#now() });
    await this.#setAuthority(material, { name: ringName, salt: randomBytes(RING_SALT_BYTES) });
  }

  async #setAuthority(material: RingAuthorityMaterial, ring: { name: string; salt: Uint8Array }): Promise<void> {
    const authority = loadRingAuthority(material);
    this.#material = { privateKeyPem: material.privateKeyPem, certificateDer: Uint8Array.from(material.certificateDer) };
    this.#authority = authority;
    this.#ring = { name: ring.name, salt: Uint8Array.from(ring.salt) };
    await this.#put([
      [KEY_AUTHORITY, { privateKeyPem: material.privateKeyPem, certificateDer: Buffer.from(material.certificateDer).toString('base64') }],
      [KEY_RING, { name: ring.name, salt: Buffer.from(ring.salt).toString('base64') }],
    ]);
  }

  // --- entries --------------------------------------------------------------------------------

  entry(id: string): StateEntry | undefined {
    const e = this.#entries.get(id);
    return e === undefined ? undefined : publicEntry(e);
  }

  entries(): StateEntry[] {
    return [...this.#entries.values()].map(publicEntry);
  }

  enrollment(peerId: string): EnrollmentValue | undefined {
    return this.#entries.get(`enrollment/${peerId}`)?.value as EnrollmentValue | undefined;
  }

  enrollments(): { peerId: string; value: EnrollmentValue; updatedAtMs: number }[] {
    return this.#ofKind('enrollment/').map(([peerId, e]) => ({ peerId, value: e.value as EnrollmentValue, updatedAtMs: e.updatedAtMs }));
  }

  token(hashHex: string): TokenValue | undefined {
    return this.#entries.get(`token/${hashHex}`)?.value as TokenValue | undefined;
  }

  tokens(): { id: string; value: TokenValue }[] {
    return this.#ofKind('token/').map(([id, e]) => ({ id, value: e.value as TokenValue }));
  }

  ban(peerId: string): BanValue | undefined {
    return this.#entries.get(`ban/${peerId}`)?.value as BanValue | undefined;
  }

  isBanned(peerId: string): boolean {
    return this.ban(peerId)?.banned === true;
  }

  /** Bans in force. */
  bans(): { peerId: string; value: BanValue }[] {
    return this.#ofKind('ban/')
      .map(([peerId, e]) => ({ peerId, value: e.value as BanValue }))
      .filter((b) => b.value.banned);
  }

  setting(name: SettingName): SettingValue {
    const v = this.#entries.get(`setting/${name}`)?.value;
    return v === undefined ? null : (v as SettingValue);
  }

  #ofKind(prefix: string): [string, Stored][] {
    const out: [string, Stored][] = [];
    for (const [id, e] of this.#entries) if (id.startsWith(prefix)) out.push([id.slice(prefix.length), e]);
    return out;
  }

  /** Incremented on every change made or merged here. */
  get version(): number {
    return this.#version;
  }

  /** Entries changed here (made or merged) after local version `since`, for a delta sync. */
  changedSince(since: number): StateEntry[] {
    return [...this.#entries.values()].filter((e) => e.version > since).map(publicEntry);
  }

  /** Entries as they travel in a sync, with their stored JSON: all, or those changed after local version `since`. */
  wireEntries(since = 0): ime.v1.BootstrapStateEntry.$Properties[] {
    const out: ime.v1.BootstrapStateEntry.$Properties[] = [];
    for (const e of this.#entries.values()) {
      if (e.version > since) out.push({ id: e.id, updatedAtMs: e.updatedAtMs, updatedBy: e.updatedBy, valueJson: e.valueJson });
    }
    return out;
  }

  /**
   * Local changes, made at once in memory (so they are visible to the very next check) and written
   * to disk before the promise resolves. The stamp is `max(now, previous + 1)`: an operator's
   * change must win over the entry it replaces even when another bootstrap's clock ran ahead.
   */
  change(changes: readonly { readonly id: string; readonly value: unknown }[]): Promise<void> {
    const nowMs = this.#now();
    const checked = changes.map((c) => ({ id: c.id, value: this.#checkEntry(c.id, c.value) }));
    const writes: [string, unknown][] = [];
    for (const { id, value } of checked) {
      const previous = this.#entries.get(id);
      const updatedAtMs = Math.max(nowMs, (previous?.updatedAtMs ?? 0) + 1);
      writes.push(this.#store({ id, updatedAtMs, updatedBy: this.peerId, valueJson: JSON.stringify(value), value }));
    }
    return this.#put(writes);
  }

  /**
   * Merges entries from another bootstrap (or an imported file): each replaces the local one when
   * it is later by the merge rule. Malformed entries are refused one by one, not the whole batch:
   * one bad entry must not stop two bootstraps from converging on everything else.
   */
  merge(entries: readonly ime.v1.BootstrapStateEntry.$Properties[]): { result: MergeResult; written: Promise<void> } {
    const changed: string[] = [];
    const refused: { id: string; code: string; message: string }[] = [];
    const writes: [string, unknown][] = [];
    for (const raw of entries) {
      const id = typeof raw.id === 'string' ? raw.id : '';
      try {
        const incoming = checkStamp(raw);
        const local = this.#entries.get(incoming.id);
        if (local !== undefined && compareStamps(incoming, local) <= 0) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(incoming.valueJson);
        } catch {
          throw new ImeError('E_STATE_ENTRY', `entry ${describeInput(incoming.id)}: the value is not JSON`);
        }
        const value = this.#checkEntry(incoming.id, parsed);
        writes.push(this.#store({ ...incoming, valueJson: JSON.stringify(value), value }));
        changed.push(incoming.id);
      } catch (err) {
        refused.push({ id: id.slice(0, MAX_ENTRY_ID_LENGTH), code: isImeError(err) ? err.code : 'E_STATE_ENTRY', message: (err as Error).message });
      }
    }
    return { result: { changed, refused }, written: this.#put(writes) };
  }

  #store(e: Omit<Stored, 'version'>): [string, unknown] {
    const stored: Stored = { ...e, version: ++this.#version };
    this.#entries.set(e.id, stored);
    return [`${KEY_ENTRY}${e.id}`, { id: e.id, updatedAtMs: e.updatedAtMs, updatedBy: e.updatedBy, valueJson: e.valueJson }];
  }

  /** Validates an entry's value by its kind; returns the value in its normal form. */
  #checkEntry(id: string, value: unknown, authorityDer?: Uint8Array): unknown {
    const bad = (why: string): ImeError => new ImeError('E_STATE_ENTRY', `entry ${describeInput(id)}: ${why}`);
    if (typeof id !== 'string' || id.length > MAX_ENTRY_ID_LENGTH) throw bad('invalid id');
    const slash = id.indexOf('/');
    const kind = id.slice(0, slash);
    const key = id.slice(slash + 1);
    if (!isRecord(value) && kind !== 'setting') throw bad('the value must be an object');
    try {
      switch (kind) {
        case 'enrollment':
          if (canonicalPeerId(key) === undefined) throw bad('not an Ed25519 PeerId');
          return checkEnrollment(key, value as Record<string, unknown>, authorityDer ?? this.authority.certificateDer);
        case 'token':
          if (!TOKEN_ID.test(key)) throw bad('a token is named by the SHA-256 of its text (64 hex digits)');
          return checkToken(value as Record<string, unknown>);
        case 'ban':
          if (canonicalPeerId(key) === undefined) throw bad('not an Ed25519 PeerId');
          return checkBan(value as Record<string, unknown>);
        case 'setting':
          if (!(SETTING_NAMES as readonly string[]).includes(key)) throw bad('unknown setting');
          return checkSetting(key as SettingName, value);
        default:
          throw bad('unknown kind of entry');
      }
    } catch (err) {
      if (isImeError(err) && err.code === 'E_STATE_ENTRY') throw err;
      throw bad(isImeError(err) ? err.message : 'invalid value');
    }
  }

  // --- configuration sequence and the signed configuration -------------------------------------

  /** The highest configuration sequence issued or seen. */
  get sequence(): number {
    return this.#sequence;
  }

  /** Raises the floor to a sequence another bootstrap issued; returns whether it rose. */
  noteSequence(sequence: number): boolean {
    if (!Number.isSafeInteger(sequence) || sequence <= this.#sequence) return false;
    this.#sequence = sequence;
    void this.#put([[KEY_SEQUENCE, sequence]]).catch(() => undefined);
    return true;
  }

  /**
   * The next configuration sequence, reserved at once: `max(last + 1, now_ms × 8 + ordinal)`,
   * rounded up to the next number ≡ ordinal (mod 8). The rounding keeps sequences of different
   * bootstraps distinct even when `last + 1` wins (several issues in one millisecond, or a floor
   * raised by another bootstrap), where two bootstraps would otherwise pick the same number for two
   * different documents and peers would keep whichever came first.
   */
  nextSequence(nowMs: number, ordinal: number): number {
    const sequence = nextConfigurationSequence(this.#sequence, nowMs, ordinal);
    this.#sequence = sequence;
    return sequence;
  }

  /** The last signed configuration (encoded `SignedRingConfiguration`), kept across restarts. */
  get configuration(): Uint8Array | undefined {
    return this.#configuration;
  }

  saveConfiguration(signed: Uint8Array, sequence: number): Promise<void> {
    this.#configuration = signed;
    if (sequence > this.#sequence) this.#sequence = sequence;
    return this.#put([
      [KEY_CONFIGURATION, Buffer.from(signed).toString('base64')],
      [KEY_SEQUENCE, this.#sequence],
    ]);
  }

  // --- export and import ----------------------------------------------------------------------

  /** The shared state as one document: authority (with its private key: a secret), ring, entries, sequence. */
  exportState(): BootstrapStateDocument {
    const material = this.#material;
    const ring = this.#ring;
    if (material === undefined || ring === undefined) throw new ImeError('E_STATE_NO_AUTHORITY', 'this bootstrap has no ring authority yet');
    return {
      format: STATE_FORMAT,
      version: STATE_FORMAT_VERSION,
      exportedAt: new Date(this.#now()).toISOString(),
      authority: { privateKeyPem: material.privateKeyPem, certificateDer: Buffer.from(material.certificateDer).toString('base64') },
      ring: { name: ring.name, salt: Buffer.from(ring.salt).toString('base64') },
      entries: this.entries(),
      sequence: this.#sequence,
    };
  }

  /**
   * Takes an exported state: the authority and ring when this bootstrap has none yet (a second
   * bootstrap of the ring), else only if they are the same ones (a restore); then merges the
   * entries and raises the sequence floor. Refuses another format or version (E_STATE_FORMAT), a
   * malformed document (E_STATE_FORMAT) and another ring's state (E_STATE_CONFLICT).
   */
  async importState(doc: unknown): Promise<MergeResult> {
    const bad = (why: string): ImeError => new ImeError('E_STATE_FORMAT', `bootstrap state: ${why}`);
    if (!isRecord(doc) || doc.format !== STATE_FORMAT) throw bad(`not an exported bootstrap state (format must be "${STATE_FORMAT}")`);
    if (doc.version !== STATE_FORMAT_VERSION) {
      throw bad(`version ${describeInput(String(doc.version))} is not supported (this bootstrap reads version ${STATE_FORMAT_VERSION})`);
    }
    const { authority, ring, entries, sequence } = doc;
    if (!isRecord(authority) || typeof authority.privateKeyPem !== 'string' || typeof authority.certificateDer !== 'string' || !BASE64.test(authority.certificateDer)) {
      throw bad('authority must hold privateKeyPem and certificateDer (base64)');
    }
    const material = { privateKeyPem: authority.privateKeyPem, certificateDer: Buffer.from(authority.certificateDer, 'base64') };
    let loaded: RingAuthority;
    try {
      loaded = loadRingAuthority(material);
    } catch (err) {
      throw bad(`the authority cannot be used (${isImeError(err) ? err.code : 'invalid'})`);
    }
    if (!isRecord(ring) || typeof ring.name !== 'string' || !RING_NAME.test(ring.name) || typeof ring.salt !== 'string' || !BASE64.test(ring.salt)) {
      throw bad('ring must hold a name and a base64 salt');
    }
    const salt = Buffer.from(ring.salt, 'base64');
    if (salt.length !== RING_SALT_BYTES) throw bad(`the ring salt must be ${RING_SALT_BYTES} bytes`);
    if (!Array.isArray(entries)) throw bad('entries must be a list');
    if (!Number.isSafeInteger(sequence) || (sequence as number) < 0) throw bad('sequence must be a non-negative integer');

    // Everything is checked before anything changes: a half-imported state would make the next
    // start skip the import (the authority would exist) and run with part of the ring's state.
    const wire = entries.map((e: unknown) => {
      if (!isRecord(e)) throw bad('every entry must be an object');
      try {
        const stamp = checkStamp({ id: e.id as string, updatedAtMs: e.updatedAtMs as number, updatedBy: e.updatedBy as string, valueJson: JSON.stringify(e.value) ?? '' });
        this.#checkEntry(stamp.id, e.value, loaded.certificateDer);
        return stamp;
      } catch (err) {
        throw bad(isImeError(err) ? err.message : 'an entry is invalid');
      }
    });
    if (this.hasAuthority) {
      const mine = this.#ring;
      const same = this.authority.fingerprintHex === loaded.fingerprintHex && mine !== undefined && mine.name === ring.name && Buffer.from(mine.salt).equals(salt);
      if (!same) throw new ImeError('E_STATE_CONFLICT', 'the state belongs to another ring authority or ring than this bootstrap’s');
    } else {
      await this.#setAuthority(material, { name: ring.name, salt });
    }
    const { result, written } = this.merge(wire);
    await written;
    this.noteSequence(sequence as number);
    await this.flush();
    return result;
  }

  // --- persistence ----------------------------------------------------------------------------

  #put(writes: readonly (readonly [string, unknown])[]): Promise<void> {
    if (writes.length === 0) return this.#writes;
    const ops = writes.map(([key, value]) => ({ type: 'put' as const, key: keyOf(key), value: encoder.encode(JSON.stringify(value)) }));
    const write = this.#writes.then(() => this.#db.batch(ops));
    // A failed write is reported to the change that caused it; later changes still try.
    this.#writes = write.catch((err: unknown) => {
      this.#writeError = err;
    });
    return write;
  }

  /** Resolves when every change so far is on disk. */
  async flush(): Promise<void> {
    await this.#writes;
  }

  /** The last write failure, if any (for the log at shutdown). */
  get writeError(): unknown {
    return this.#writeError;
  }
}

/** See `BootstrapState.nextSequence`. */
export function nextConfigurationSequence(last: number, nowMs: number, ordinal: number): number {
  if (!Number.isSafeInteger(ordinal) || ordinal < 0 || ordinal >= SEQUENCE_SLOTS) throw new RangeError('ordinal must be 0–7');
  const base = Math.max(last + 1, Math.floor(nowMs) * SEQUENCE_SLOTS + ordinal);
  const sequence = base + ((ordinal - (base % SEQUENCE_SLOTS) + SEQUENCE_SLOTS) % SEQUENCE_SLOTS);
  if (!Number.isSafeInteger(sequence)) throw new ImeError('E_STATE_SEQUENCE', 'the configuration sequence has run out of safe integers');
  return sequence;
}

/** Orders two stamps: later time first, then the greater bootstrap PeerId, then the greater value. */
export function compareStamps(
  a: { readonly updatedAtMs: number; readonly updatedBy: string; readonly valueJson: string },
  b: { readonly updatedAtMs: number; readonly updatedBy: string; readonly valueJson: string },
): number {
  if (a.updatedAtMs !== b.updatedAtMs) return a.updatedAtMs < b.updatedAtMs ? -1 : 1;
  if (a.updatedBy !== b.updatedBy) return a.updatedBy < b.updatedBy ? -1 : 1;
  if (a.valueJson !== b.valueJson) return a.valueJson < b.valueJson ? -1 : 1;
  return 0;
}

function publicEntry(e: Stored): StateEntry {
  return { id: e.id, updatedAtMs: e.updatedAtMs, updatedBy: e.updatedBy, value: e.value };
}

function checkStamp(raw: ime.v1.BootstrapStateEntry.$Properties): { id: string; updatedAtMs: number; updatedBy: string; valueJson: string } {
  const id = raw.id;
  const bad = (why: string): ImeError => new ImeError('E_STATE_ENTRY', `entry ${describeInput(id)}: ${why}`);
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ENTRY_ID_LENGTH) throw bad('invalid id');
  const updatedAtMs = Number(raw.updatedAtMs);
  if (!Number.isSafeInteger(updatedAtMs) || updatedAtMs < 0) throw bad('updatedAtMs must be a time in milliseconds');
  if (typeof raw.updatedBy !== 'string' || raw.updatedBy.length === 0 || raw.updatedBy.length > MAX_UPDATED_BY_LENGTH) throw bad('updatedBy is missing');
  if (typeof raw.valueJson !== 'string' || raw.valueJson.length > MAX_VALUE_JSON_LENGTH) throw bad(`the value must be JSON of at most ${MAX_VALUE_JSON_LENGTH} characters`);
  return { id, updatedAtMs, updatedBy: raw.updatedBy, valueJson: raw.valueJson };
}

function checkEnrollment(peerId: string, v: Record<string, unknown>, authorityDer: Uint8Array): EnrollmentValue {
  const code = 'E_STATE_ENTRY';
  const domain = checkDomain(v.domain, code);
  if (typeof v.certificate !== 'string' || v.certificate.length > MAX_CERTIFICATE_BASE64 || !BASE64.test(v.certificate)) {
    throw new ImeError(code, 'certificate must be base64 DER');
  }
  const expiresAtMs = checkInteger(v.certificateExpiresAtMs, 1, Number.MAX_SAFE_INTEGER, code, 'certificateExpiresAtMs');
  // Checked at the certificate's own expiry instant, so the answer does not depend on this
  // bootstrap's clock: a certificate another bootstrap issued a moment ago is not "not yet valid".
  const info = verifyRingCertificate(
    Buffer.from(v.certificate, 'base64'),
    { certificateDer: authorityDer },
    { peerId, nowMs: expiresAtMs, allowExpired: true },
  );
  if (info.notAfterMs !== expiresAtMs || info.serialHex !== v.certificateSerial || info.domain !== domain) {
    throw new ImeError(code, 'the certificate does not match the serial, expiry and domain recorded with it');
  }
  return {
    domain,
    contact: checkText(v.contact, MAX_CONTACT_LENGTH, code, 'contact'),
    addresses: checkAddresses(v.addresses, code),
    certificate: v.certificate,
    certificateSerial: info.serialHex,
    certificateExpiresAtMs: expiresAtMs,
    virtualNodes: checkInteger(v.virtualNodes, 1, MAX_VIRTUAL_NODES, code, 'virtualNodes'),
    admitted: checkBoolean(v.admitted, 'admitted'),
    enrolledAtMs: checkInteger(v.enrolledAtMs, 0, Number.MAX_SAFE_INTEGER, code, 'enrolledAtMs'),
    softwareVersion: checkSoftwareVersion(v.softwareVersion, code),
  };
}

function checkBoolean(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new ImeError('E_STATE_ENTRY', `${what} must be true or false`);
  return v;
}

function optionalTime(v: unknown, what: string): number | undefined {
  return v === undefined ? undefined : checkInteger(v, 0, Number.MAX_SAFE_INTEGER, 'E_STATE_ENTRY', what);
}

function checkToken(v: Record<string, unknown>): TokenValue {
  const code = 'E_STATE_ENTRY';
  const domain = v.domain === undefined ? undefined : checkDomain(v.domain, code);
  const note = v.note === undefined ? undefined : checkText(v.note, MAX_NOTE_LENGTH, code, 'note');
  const usedBy = v.usedBy === undefined ? undefined : canonicalPeerId(v.usedBy);
  if (v.usedBy !== undefined && usedBy === undefined) throw new ImeError(code, 'usedBy must be an Ed25519 PeerId');
  const usedAtMs = optionalTime(v.usedAtMs, 'usedAtMs');
  return {
    ...(domain === undefined ? {} : { domain }),
    expiresAtMs: checkInteger(v.expiresAtMs, 0, Number.MAX_SAFE_INTEGER, code, 'expiresAtMs'),
    createdAtMs: checkInteger(v.createdAtMs, 0, Number.MAX_SAFE_INTEGER, code, 'createdAtMs'),
    ...(note === undefined ? {} : { note }),
    ...(usedBy === undefined ? {} : { usedBy }),
    ...(usedAtMs === undefined ? {} : { usedAtMs }),
  };
}

function checkBan(v: Record<string, unknown>): BanValue {
  return {
    banned: checkBoolean(v.banned, 'banned'),
    reason: checkText(v.reason, MAX_REASON_LENGTH, 'E_STATE_ENTRY', 'reason'),
    atMs: checkInteger(v.atMs, 0, Number.MAX_SAFE_INTEGER, 'E_STATE_ENTRY', 'atMs'),
  };
}

/** Settings hold the same limits as the configuration field they end up in. */
export function checkSetting(name: SettingName, v: unknown, code = 'E_STATE_ENTRY'): SettingValue {
  if (v === null) return null;
  switch (name) {
    case 'messageOfTheDay':
      return checkText(v, MAX_MOTD_LENGTH, code, 'the message of the day');
    case 'minSoftwareVersion':
      return checkMinVersion(v, code);
    case 'storageQuota':
      return checkInteger(v, 0, MAX_STORAGE_QUOTA, code, 'storageQuota');
    case 'replicationFactor':
    case 'writeQuorum':
    case 'readQuorum':
      return checkInteger(v, 1, 7, code, name);
    case 'recordTtlSec':
      return checkInteger(v, 60, 7 * 86_400, code, name);
    case 'republishIntervalSec':
      return checkInteger(v, 1, 7 * 86_400 - 1, code, name);
    case 'pollIntervalSec':
      return checkInteger(v, 1, 3600, code, name);
    case 'virtualNodes':
      return checkInteger(v, 1, MAX_VIRTUAL_NODES, code, name);
  }
}
