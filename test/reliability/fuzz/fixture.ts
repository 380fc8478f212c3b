import { createHash, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { DEFAULT_RING_PARAMETERS, type RingConfiguration, type RingConfigurationSigner } from '@ime/admission';
import { createRingAuthority } from '@ime/bootstrap';
import { type Publisher, publisherFromSeed } from '@ime/core';
import type { loadOrCreateIdentity } from '@ime/runtime';

/**
 * What the fuzz targets and the corpus generator share: where the corpus lives, the fixed clock and
 * the test-only identities and secrets the seeds are made with. Everything but the ring authority's
 * RSA key is derived from fixed labels, so it needs no storage; the authority (RSA key generation
 * cannot be seeded) is kept in corpus/keys.json next to the seeds it signed. None of these keys
 * protects anything: they exist for the fuzzer only.
 */

const HERE = dirname(fileURLToPath(import.meta.url));
export const CORPUS_DIR = join(HERE, 'corpus');
export const CRASH_DIR = join(HERE, 'crashes');
/** Inputs that once crashed a target (named `<target>--<what>.bin`): every run replays them first. */
export const REGRESSION_DIR = join(HERE, 'regressions');
const KEYS_FILE = join(CORPUS_DIR, 'keys.json');

export const FORMATS = ['vap', 'ring', 'validation', 'ringconf', 'ticket'] as const;
export type Format = (typeof FORMATS)[number];

/** The fuzz clock: seeds are issued around it and the targets verify at it. */
export const FUZZ_NOW_MS = Date.UTC(2026, 10, 24, 12, 0, 0);
export const HOUR_MS = 3600 * 1000;
export const DAY_MS = 24 * HOUR_MS;

function derived(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`ime-fuzz|${label}`).digest());
}

export const RING_NAME = 'fuzz-ring';
export const RING_SALT = derived('ring-salt');
/** The key a validation grant is sealed under in the corpus's result messages. */
export const GRANT_KEY = derived('grant-key');
/** Numbers the DID records, validations and tickets of the corpus are about. */
export const NUMBERS = ['+12125551001', '+12125551002', '+14085550100', '+15125552003'] as const;

export const IDENTITY_NAMES = ['alpha', 'beta', 'bootstrap', 'stranger'] as const;
export type IdentityName = (typeof IDENTITY_NAMES)[number];
export const DOMAINS: Readonly<Record<IdentityName, string>> = {
  alpha: 'acme.example',
  beta: 'globex.example',
  bootstrap: 'bootstrap.example',
  stranger: 'blocked.example',
};

/** A libp2p Ed25519 private key (the test package does not depend on @libp2p/interface). */
export type PrivateKey = Awaited<ReturnType<typeof loadOrCreateIdentity>>;

export interface Identity {
  readonly name: IdentityName;
  readonly domain: string;
  readonly privateKey: PrivateKey;
  readonly peerId: string;
  readonly publisher: Publisher;
}

export async function identity(name: IdentityName): Promise<Identity> {
  const seed = derived(`identity|${name}`);
  const privateKey = await generateKeyPairFromSeed('Ed25519', seed);
  return { name, domain: DOMAINS[name], privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), publisher: publisherFromSeed(seed) };
}

export async function identities(): Promise<Record<IdentityName, Identity>> {
  const [alpha, beta, bootstrap, stranger] = await Promise.all(IDENTITY_NAMES.map((n) => identity(n)));
  return { alpha, beta, bootstrap, stranger } as Record<IdentityName, Identity>;
}

/** Ticket secrets of the terminating enterprise (beta): the current epoch and the one before it. */
export const TICKETS = {
  issuerDomain: DOMAINS.beta,
  password: 'fuzz-ticket-Password-7',
  epoch: 7,
  previousPassword: 'fuzz-ticket-Password-6',
  previousEpoch: 6,
  /** The previous epoch was retired a day before the fuzz clock; its grace lasts 7 days. */
  previousRetiredAtMs: FUZZ_NOW_MS - DAY_MS,
} as const;

// ---------------------------------------------------------------------------------------------
// The ring authority

interface KeysFile {
  readonly note: string;
  readonly authority: { readonly privateKeyPem: string; readonly certificateDer: string };
}

export interface FuzzAuthority {
  readonly signer: RingConfigurationSigner;
  readonly certificateDer: Uint8Array;
}

/** Makes the authority the first time the corpus is generated; later generations keep it. */
export function ensureAuthority(): void {
  if (existsSync(KEYS_FILE)) return;
  mkdirSync(CORPUS_DIR, { recursive: true });
  const material = createRingAuthority({ ringName: RING_NAME, nowMs: FUZZ_NOW_MS - 30 * DAY_MS, validityYears: 30 });
  const file: KeysFile = {
    note: 'Test-only ring authority that signed the fuzz corpus (test/reliability/fuzz). It protects nothing; never use it elsewhere.',
    authority: { privateKeyPem: material.privateKeyPem, certificateDer: Buffer.from(material.certificateDer).toString('base64') },
  };
  writeFileSync(KEYS_FILE, `${JSON.stringify(file, null, 2)}\n`);
}

export function loadAuthority(): FuzzAuthority {
  const file = JSON.parse(readFileSync(KEYS_FILE, 'utf8')) as KeysFile;
  const certificateDer = new Uint8Array(Buffer.from(file.authority.certificateDer, 'base64'));
  return { certificateDer, signer: { privateKey: createPrivateKey(file.authority.privateKeyPem), authorityCertificateDer: certificateDer } };
}

/** A valid configuration admitting alpha and beta, with `bootstrap` as the ring's bootstrap. */
export function baseConfiguration(ids: Record<IdentityName, Identity>, sequence: number, overrides: Partial<RingConfiguration> = {}): RingConfiguration {
  const entry = (id: Identity, port: number) => ({
    peerId: id.peerId,
    addresses: [`/ip4/127.0.0.1/tcp/${port}`],
    domain: id.domain,
    certificateSerial: createHash('sha256').update(id.peerId).digest('hex').slice(0, 32),
    certificateExpiresAtMs: FUZZ_NOW_MS + 300 * DAY_MS,
    virtualNodes: 5,
  });
  return {
    sequence,
    issuedAtMs: FUZZ_NOW_MS - HOUR_MS,
    expiresAtMs: FUZZ_NOW_MS + 30 * DAY_MS,
    ringName: RING_NAME,
    ringSalt: RING_SALT,
    roster: [entry(ids.alpha, 6084), entry(ids.beta, 6085)],
    parameters: { ...DEFAULT_RING_PARAMETERS },
    bans: [],
    minSoftwareVersion: '',
    messageOfTheDay: '',
    bootstraps: [{ peerId: ids.bootstrap.peerId, addresses: ['/ip4/127.0.0.1/tcp/6080'] }],
    ...overrides,
  };
}

// ---------------------------------------------------------------------------------------------
// Seeds on disk

function formatDir(format: Format): string {
  return join(CORPUS_DIR, format);
}

export function corpusExists(): boolean {
  return existsSync(KEYS_FILE) && FORMATS.every((f) => existsSync(formatDir(f)) && readdirSync(formatDir(f)).some((n) => n.endsWith('.bin')));
}

export interface Seed {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export function readSeeds(format: Format): Seed[] {
  const dir = formatDir(format);
  return readdirSync(dir)
    .filter((n) => n.endsWith('.bin'))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}

/** The regression inputs of a target: `<target>--<what>.bin` (two dashes: target names have one). */
export function readRegressions(target: string): Seed[] {
  if (!existsSync(REGRESSION_DIR)) return [];
  return readdirSync(REGRESSION_DIR)
    .filter((n) => n.startsWith(`${target}--`) && n.endsWith('.bin'))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(REGRESSION_DIR, name))) }));
}

/** Replaces a format's seeds: numbered files named after what each seed is. */
export function writeSeeds(format: Format, seeds: readonly (readonly [string, Uint8Array])[]): void {
  const dir = formatDir(format);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  seeds.forEach(([label, bytes], i) => writeFileSync(join(dir, `${String(i + 1).padStart(2, '0')}-${label}.bin`), bytes));
}
