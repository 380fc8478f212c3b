import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSignedRingConfiguration } from '@ime/admission';
import { ImeError, didRecordKey, parseE164 } from '@ime/core';
import { type EnterpriseSpec, FAST_TUNING, Member, type PeerTuningInput, type RingHarness, type Role, startEnterprise, waitFor, writeBootstrapConfigs } from '@ime/harness';
import { RingPlacement } from '@ime/peer';
import { seededRandom } from '@ime/pstn-sim';
import { AdminClient } from '@ime/runtime';
import { ime } from '@ime/wire';
import { type Host, NetnsLab } from '../netns.js';
import { summary } from '../ring-test-helpers.js';

export { liveCopies, ringMembers, seenDownByNeighbours } from '../ring-test-helpers.js';

/**
 * Shared helpers of the reliability suite (churn, crash safety, partition): progress lines a watcher
 * can follow, a seeded random source whose seed is printed (and replayed with IME_RELIABILITY_SEED),
 * whole-ring reads, liveness and handoff signals, log checks after a crash, and a ring whose members
 * live in network namespaces that can be split into two halves.
 */

// ---------------------------------------------------------------------------------------------------
// Progress and randomness

/** A progress printer: `[tag +12.3s] line` on stderr, at once (jest buffers console.log per test). */
export function progress(tag: string): (line: string) => void {
  const start = Date.now();
  return (line) => {
    process.stderr.write(`[${tag} +${((Date.now() - start) / 1000).toFixed(1)}s] ${line}\n`);
  };
}

export interface Rng {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
  /** `k` distinct items, in random order. */
  sample<T>(items: readonly T[], k: number): T[];
}

/**
 * mulberry32 from IME_RELIABILITY_SEED when set (to replay a failed run), otherwise from a fresh seed.
 * The seed is printed through `say`, so every run can be replayed.
 */
export function seededRng(say: (line: string) => void): Rng {
  const fromEnv = process.env.IME_RELIABILITY_SEED;
  if (fromEnv !== undefined && !/^\d{1,10}$/.test(fromEnv)) {
    throw new ImeError('E_TEST_SEED', 'IME_RELIABILITY_SEED must be a decimal integer');
  }
  const seed = fromEnv !== undefined ? Number(fromEnv) >>> 0 : randomInt(2 ** 31);
  say(`random seed ${seed} (replay with IME_RELIABILITY_SEED=${seed})`);
  // The simulated PSTN's mulberry32: the same seed gives the same sequence as before.
  const source = seededRandom(seed);
  const next = (): number => source.next();
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo));
  return {
    seed,
    next,
    int,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new ImeError('E_TEST_RNG', 'cannot pick from nothing');
      return items[int(0, items.length)] as T;
    },
    sample: <T>(items: readonly T[], k: number): T[] => {
      const pool = [...items];
      for (let i = pool.length - 1; i > 0; i--) {
        const j = int(0, i + 1);
        [pool[i], pool[j]] = [pool[j] as T, pool[i] as T];
      }
      return pool.slice(0, k);
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// ---------------------------------------------------------------------------------------------------
// Reading the whole ring, liveness and handoff

export interface ReadAllResult {
  readonly total: number;
  readonly found: number;
  readonly missing: string[];
  readonly failed: { number: string; code: string }[];
}

/**
 * An admin client for bulk work (publishing or reading thousands of DIDs), with a timeout long enough
 * for a machine that runs dozens of peer processes on two cores.
 */
export async function patientAdmin(m: Member, timeoutMs = 180_000): Promise<AdminClient> {
  return AdminClient.fromTokenFile(m.ready.admin, m.ready.tokenFile, { timeoutMs });
}

/** Looks every number up through one peer, in slices of a bounded size. */
export async function readAll(reader: Member, numbers: readonly string[], slice = 2500): Promise<ReadAllResult> {
  const out: ReadAllResult = { total: numbers.length, found: 0, missing: [], failed: [] };
  const admin = await patientAdmin(reader);
  let found = 0;
  for (let i = 0; i < numbers.length; i += slice) {
    const r = await admin.post<ReadAllResult>('/v1/dids/lookup', { numbers: numbers.slice(i, i + slice) });
    found += r.found;
    out.missing.push(...r.missing);
    out.failed.push(...r.failed);
  }
  return { ...out, found };
}

export async function waitGreen(m: Member, timeoutMs = 90_000): Promise<void> {
  await waitFor(`${m.name} GREEN`, async () => (await summary(m)).health === 'GREEN', timeoutMs, 200);
}

// ---------------------------------------------------------------------------------------------------
// Call managers and validations

/**
 * An enterprise's call-manager simulator on its peer, attached as `Cast` attaches one (`ime ring up`),
 * for rings the Cast does not build (other tuning, more peers).
 */
export async function startCallManager(ring: RingHarness, pstn: Member, peer: Member, spec: EnterpriseSpec): Promise<Member> {
  return (await startEnterprise(ring, pstn, peer, spec)).cm;
}

export interface ValidationView {
  readonly atMs: number;
  readonly called: string;
  readonly domain: string;
  readonly outcome: 'success' | 'failure' | 'refused' | 'error';
  readonly code?: string;
  readonly value?: number;
  readonly bucket?: string;
  readonly bucketTotal?: number;
  readonly released?: number;
}

export async function validations(m: Member): Promise<ValidationView[]> {
  return (await (await m.admin()).get<{ validations: ValidationView[] }>('/v1/validator/validations')).validations;
}

/** Waits for the peer's first validation of `called` that is not an error (errors are retried) and returns it. */
export async function validationOf(m: Member, called: string, timeoutMs = 60_000): Promise<ValidationView> {
  let seen: ValidationView | undefined;
  await waitFor(`${m.name} to validate ${called}`, async () => {
    seen = (await validations(m)).find((v) => v.called === called && v.outcome !== 'error');
    return seen !== undefined;
  }, timeoutMs, 250);
  return seen as ValidationView;
}

// ---------------------------------------------------------------------------------------------------
// Logs after a crash

const LOG_FILES = ['log.jsonl', 'stderr.log'] as const;
/** What a damaged store says when a component opens or reads it. */
const CORRUPTION = /corrupt|E_DB_OPEN|E_DB_CORRUPT|E_POOL_STATE/i;

export type LogMark = Readonly<Record<string, number>>;

/** Where each of the member's log files ends now: what is written after it is the next run's. */
export function logMark(m: Member): LogMark {
  const mark: Record<string, number> = {};
  for (const f of LOG_FILES) {
    const file = join(m.dir, f);
    mark[f] = existsSync(file) ? statSync(file).size : 0;
  }
  return mark;
}

/** Lines written after `mark` that speak of a damaged database. */
export function corruptionSince(m: Member, mark: LogMark): string[] {
  const found: string[] = [];
  for (const f of LOG_FILES) {
    const file = join(m.dir, f);
    if (!existsSync(file)) continue;
    const from = mark[f] ?? 0;
    const size = statSync(file).size;
    if (size <= from) continue;
    const buf = Buffer.alloc(size - from);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, from);
    } finally {
      closeSync(fd);
    }
    for (const line of buf.toString('utf8').split('\n')) if (CORRUPTION.test(line)) found.push(`${f}: ${line.slice(0, 300)}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------------
// Where records belong: an oracle independent of the peers' own views

export interface RingLayout {
  readonly sequence: number;
  /** The N replicas of a number when every member is live. */
  replicasOf(number: string): string[];
  /** Every member in the number's preference order (replicas first, then the peers writes fall back to). */
  preferenceOf(number: string): string[];
}

/**
 * The placement the bootstrap's current configuration implies, computed here: where each record
 * must end up once the ring has converged, asked without a read (a read would repair what it finds).
 */
export async function ringLayout(bootstrap: AdminClient): Promise<RingLayout> {
  const c = await bootstrap.get<{ sequence: number; signed: string; roster: { peerId: string; virtualNodes: number }[]; parameters: { replicationFactor: number } }>('/v1/configuration');
  const signed = decodeSignedRingConfiguration(Buffer.from(c.signed, 'base64'));
  const salt = Uint8Array.from(ime.v1.RingConfiguration.decode(signed.configuration).ringSalt);
  const placement = new RingPlacement(c.roster.map((e) => ({ peerId: e.peerId, virtualNodes: e.virtualNodes })));
  const key = (number: string) => didRecordKey(salt, parseE164(number));
  return {
    sequence: c.sequence,
    replicasOf: (number) => placement.replicasFor(key(number), c.parameters.replicationFactor),
    preferenceOf: (number) => placement.preferenceList(key(number)),
  };
}

/**
 * For a failure report: which peers' own stores hold each number, against the replicas the layout
 * says must (names where the member list knows them).
 */
export async function whereHeld(members: readonly Member[], layout: RingLayout, numbers: readonly string[]): Promise<string[]> {
  const name = (id: string) => members.find((m) => m.running && m.peerId === id)?.name ?? id.slice(-8);
  return Promise.all(
    numbers.map(async (n) => {
      const holders: string[] = [];
      for (const m of members) {
        if (!m.running) continue;
        const r = await (await m.admin()).get<{ held: boolean }>(`/v1/store/dids/${encodeURIComponent(n)}`).catch(() => ({ held: false }));
        if (r.held) holders.push(m.name);
      }
      return `${n}: held by [${holders.join(', ')}], replicas [${layout.replicasOf(n).map(name).join(', ')}]`;
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// A ring in network namespaces, split into two halves and joined again

/** Every namespace is its own machine: each role keeps its default ports there. */
export const NETNS_PORT = { bootstrapRing: 6080, peerRing: 6084, peerAdmin: 9620, bootstrapAdmin: 9621 } as const;

/** Why the ring cannot be split here (nft missing), or undefined. */
export function splitUnavailable(): string | undefined {
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? undefined : 'nft (nftables) is needed to split the network and is not usable here';
}

function nft(netns: string, args: readonly string[], check = true): void {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'nft', ...args], { encoding: 'utf8', timeout: 20_000 });
  if (check && r.status !== 0) throw new ImeError('E_NETNS_COMMAND', `nft ${args.join(' ')} in ${netns} failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
}

const SPLIT_TABLE = 'imesplit';

export interface NetnsPeerSpec {
  readonly name: string;
  readonly host: string;
  readonly domain: string;
}

export interface NetnsRingOptions {
  /** Host labels (namespaces), 1–8 lowercase characters each. */
  readonly hosts: readonly string[];
  /** The host of each bootstrap (one or two; two share one ring authority, as RingHarness makes them). */
  readonly bootstrapHosts: readonly string[];
  readonly peers: readonly NetnsPeerSpec[];
  readonly tuning?: PeerTuningInput;
  readonly parameters?: Readonly<Record<string, number>>;
  readonly say?: (line: string) => void;
}

/**
 * Bootstraps and peers as processes, each on its host (a namespace of a NetnsLab), dialling each other
 * on the lab's /24. Admin APIs listen on each host's loopback; relays outside the bridge (Unix sockets,
 * as in test/multi-host.test.ts) bring each to a local port here, so splitting the network never cuts
 * the test off its components.
 */
export class NetnsRing {
  readonly lab: NetnsLab;
  readonly dir: string;
  readonly bootstraps: Member[] = [];
  readonly peers: Member[] = [];
  readonly #host = new Map<Member, string>();
  readonly #adminUrl = new Map<Member, string>();
  readonly #clients = new Map<Member, AdminClient>();
  /** Local admin URL by "host:port" on the member's host. */
  readonly #relayed = new Map<string, string>();
  #split: string[] = [];

  private constructor(lab: NetnsLab, dir: string) {
    this.lab = lab;
    this.dir = dir;
  }

  static async start(options: NetnsRingOptions): Promise<NetnsRing> {
    const say = options.say ?? (() => undefined);
    const lab = NetnsLab.create(options.hosts);
    const ring = new NetnsRing(lab, mkdtempSync(join(tmpdir(), 'ime-split-')));
    try {
      await ring.#relays(options.hosts);
      say(`${options.hosts.length} hosts on ${lab.subnet}.0/24; starting ${options.bootstrapHosts.length} bootstrap(s)`);
      await ring.#startBootstraps(options);
      say(`starting ${options.peers.length} peers`);
      for (const spec of options.peers) await ring.#definePeer(spec, options);
      await Promise.all(ring.peers.map((p) => p.start()));
      return ring;
    } catch (err) {
      await ring.stop();
      throw err;
    }
  }

  /** Admin APIs reached through relays outside the bridge (see NetnsLab.relayAdmins). */
  async #relays(hosts: readonly string[]): Promise<void> {
    const ports = [NETNS_PORT.peerAdmin, NETNS_PORT.bootstrapAdmin];
    for (const [key, url] of await this.lab.relayAdmins(this.dir, Object.fromEntries(hosts.map((label) => [label, ports])))) this.#relayed.set(key, url);
  }

  /** Writes `<dir>/<name>/<role>.json`; relative paths in it are relative to that directory. */
  #writeConfig(role: Role, name: string, adminPort: number, config: Record<string, unknown>): string {
    const home = join(this.dir, name);
    mkdirSync(home, { recursive: true });
    const file = join(home, `${role}.json`);
    writeJson(file, { name, dataDir: 'data', admin: { listen: `127.0.0.1:${adminPort}` }, log: { level: 'warn', file: 'log.jsonl' }, ...config });
    return file;
  }

  #define(role: Role, name: string, host: Host, adminPort: number, config: Record<string, unknown>): Member {
    return this.#member(role, name, host, adminPort, this.#writeConfig(role, name, adminPort, config));
  }

  /** The member run on `host` from configuration `file`, its admin API reached through the relays. */
  #member(role: Role, name: string, host: Host, adminPort: number, file: string): Member {
    const m = new Member(role, name, 'process', file, join(this.dir, name), { launchPrefix: this.lab.exec(host.label) });
    this.#host.set(m, host.label);
    const url = this.#relayed.get(`${host.label}:${adminPort}`);
    if (url === undefined) throw new ImeError('E_NETNS_RELAY', `no relay to ${host.label}:${adminPort}`);
    this.#adminUrl.set(m, url);
    return m;
  }

  /** One or two bootstraps of one ring, as RingHarness makes them (writeBootstrapConfigs), each on its host. */
  async #startBootstraps(options: NetnsRingOptions): Promise<void> {
    const hosts = options.bootstrapHosts.map((l) => this.lab.host(l));
    if (hosts.length < 1 || hosts.length > 2) throw new ImeError('E_TEST_SETUP', 'one or two bootstraps');
    const name = (i: number) => `bootstrap-${i + 1}`;
    const ringAddress = (i: number) => `/ip4/${(hosts[i] as Host).address}/tcp/${NETNS_PORT.bootstrapRing}`;
    const written = await writeBootstrapConfigs(hosts.length as 1 | 2, {
      write: (i, extra) => ({
        file: this.#writeConfig('bootstrap', name(i), NETNS_PORT.bootstrapAdmin, {
          listen: [ringAddress(i)],
          admission: 'auto',
          ordinal: i,
          syncIntervalSec: 1,
          parameters: { pollIntervalSec: 1, ...options.parameters },
          ...extra,
        }),
        dir: join(this.dir, name(i)),
      }),
      dialAddress: (i, id) => `${ringAddress(i)}/p2p/${id}`,
      stateFile: join(this.dir, 'bootstrap-state.json'),
    });
    written.forEach((b, i) => this.bootstraps.push(this.#member('bootstrap', name(i), hosts[i] as Host, NETNS_PORT.bootstrapAdmin, b.file)));
    await Promise.all(this.bootstraps.map((b) => b.start()));
  }

  async #definePeer(spec: NetnsPeerSpec, options: NetnsRingOptions): Promise<void> {
    const host = this.lab.host(spec.host);
    const { token } = await (await this.admin(this.bootstraps[0] as Member)).post<{ token: string }>('/v1/tokens', { domain: spec.domain, note: `split ${spec.name}` });
    const p = this.#define('peer', spec.name, host, NETNS_PORT.peerAdmin, {
      domain: spec.domain,
      listen: [`/ip4/${host.address}/tcp/${NETNS_PORT.peerRing}`],
      bootstraps: this.bootstraps.map((b) => `/ip4/${this.lab.host(this.hostOf(b)).address}/tcp/${NETNS_PORT.bootstrapRing}/p2p/${b.peerId}`),
      enrollmentTokenFile: 'enroll.token',
      tuning: { ...FAST_TUNING, ...options.tuning },
      validator: { delaySec: 2 },
    });
    writeFileSync(join(p.dir, 'enroll.token'), `${token}\n`, { mode: 0o600 });
    this.peers.push(p);
  }

  hostOf(m: Member): string {
    const h = this.#host.get(m);
    if (h === undefined) throw new ImeError('E_TEST_SETUP', `${m.name} is not on this ring`);
    return h;
  }

  /** The member's admin API, through the relays. */
  async admin(m: Member): Promise<AdminClient> {
    let c = this.#clients.get(m);
    if (!c) {
      c = await AdminClient.fromTokenFile(this.#adminUrl.get(m) as string, m.ready.tokenFile);
      this.#clients.set(m, c);
    }
    return c;
  }

  /**
   * Splits the network in two: every host drops what arrives from the other half. Only the receiving
   * side drops (an OUTPUT rule would fail the sender's own send at once with EPERM, which no real
   * network failure does): frames still leave, nobody answers, connections stall, and the failure
   * detectors have to notice by their timeouts — as with a switch failing between two racks.
   */
  split(halfA: readonly string[], halfB: readonly string[]): void {
    if (this.#split.length > 0) throw new ImeError('E_TEST_STATE', 'the network is already split');
    const addresses = (labels: readonly string[]) => labels.map((l) => this.lab.host(l).address).join(', ');
    const sides: [readonly string[], readonly string[]][] = [
      [halfA, halfB],
      [halfB, halfA],
    ];
    for (const [mine, theirs] of sides) {
      for (const label of mine) {
        const netns = this.lab.host(label).netns;
        this.#split.push(netns);
        nft(netns, ['add', 'table', 'inet', SPLIT_TABLE]);
        nft(netns, ['add', 'chain', 'inet', SPLIT_TABLE, 'input', '{ type filter hook input priority 0; policy accept; }']);
        nft(netns, ['add', 'rule', 'inet', SPLIT_TABLE, 'input', 'ip', 'saddr', `{ ${addresses(theirs)} }`, 'drop']);
      }
    }
  }

  /** Joins the halves again. */
  join(): void {
    for (const netns of this.#split.splice(0)) nft(netns, ['delete', 'table', 'inet', SPLIT_TABLE], false);
  }

  /** Stops everything and removes the namespaces; returns namespaces that could not be removed. */
  async stop(): Promise<string[]> {
    this.join();
    const stopAll = (ms: Member[]) => Promise.all(ms.map((m) => m.stop().catch(() => undefined)));
    await stopAll(this.peers);
    await stopAll(this.bootstraps);
    // Kills anything of ours still running on the hosts; if this process dies first, the lab's
    // watchdog does it (test/netns.ts).
    this.lab.destroy();
    if (!process.env.IME_KEEP_RING) rmSync(this.dir, { recursive: true, force: true });
    return this.lab.leftovers();
  }
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
