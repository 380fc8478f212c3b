import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { writeBootstrapConfigs } from './bootstraps.js';
import { Member, type Mode } from './member.js';
import { freePorts } from './ports.js';

/**
 * A local ring for tests and benchmarks: one or two bootstraps and N peers on 127.0.0.1, each from
 * its own configuration file in its own directory, as processes or inside this process. Timers are
 * short so that a ring settles in seconds; everything else is the product's defaults.
 */

export interface RingParametersInput {
  readonly replicationFactor?: number;
  readonly writeQuorum?: number;
  readonly readQuorum?: number;
  readonly recordTtlSec?: number;
  readonly republishIntervalSec?: number;
  readonly storageQuota?: number;
  readonly pollIntervalSec?: number;
  readonly virtualNodes?: number;
}

export interface PeerTuningInput {
  readonly pingIntervalMs?: number;
  readonly pingMisses?: number;
  readonly rpcTimeoutMs?: number;
  readonly antiEntropyIntervalSec?: number;
  readonly expirySweepSec?: number;
}

export interface RingHarnessOptions {
  readonly peers: number;
  readonly mode?: Mode;
  readonly bootstraps?: 1 | 2;
  /** Where members live; a new temporary directory by default, removed by stop() unless `keep`. */
  readonly dir?: string;
  readonly keep?: boolean;
  readonly parameters?: RingParametersInput;
  readonly tuning?: PeerTuningInput;
  /** Peer `validator` settings (docs/CONFIGURATION.md); tests default to a 2 s validation delay. */
  readonly validator?: Readonly<Record<string, number>>;
  readonly admission?: 'auto' | 'manual';
  /** Domain of peer i (default enterprise-i.example). */
  readonly domainOf?: (index: number) => string;
  readonly logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Peers started at once (processes compete for the CPU while they start). */
  readonly startConcurrency?: number;
  /** Use consecutive ports from here instead of free ones picked by the system. */
  readonly basePort?: number;
}

const FAST_PARAMETERS: RingParametersInput = { pollIntervalSec: 1 };
export const FAST_TUNING: PeerTuningInput = { pingIntervalMs: 300, pingMisses: 2, rpcTimeoutMs: 2000, antiEntropyIntervalSec: 30 };
/** The callee's VCR arrives within a second of the caller's on loopback; production waits 30 s. */
const FAST_VALIDATOR = { delaySec: 2 };

export interface PeerOptions {
  readonly domain?: string;
  /** Start it now (default) or leave it for the test to start. */
  readonly start?: boolean;
  /** Give it an enrollment token (default); without one it cannot join. */
  readonly token?: boolean;
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Polls `check` until it holds; `signal` ends the wait at once (a Ctrl-C), with the signal's reason. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, intervalMs = 100, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    signal?.throwIfAborted();
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new ImeError('E_HARNESS_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

export class RingHarness {
  readonly dir: string;
  readonly mode: Mode;
  readonly bootstraps: Member[] = [];
  readonly peers: Member[] = [];
  /** Call-manager and PSTN simulators started with `startSimulator`. */
  readonly simulators: Member[] = [];
  readonly #options: RingHarnessOptions;
  readonly #ownsDir: boolean;
  #nextPort: number | undefined;

  private constructor(options: RingHarnessOptions) {
    this.#options = options;
    this.mode = options.mode ?? 'in-process';
    this.#ownsDir = options.dir === undefined;
    this.#nextPort = options.basePort;
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), 'ime-ring-'));
    mkdirSync(this.dir, { recursive: true });
  }

  async #ports(count: number): Promise<number[]> {
    if (this.#nextPort === undefined) return freePorts(count);
    const first = this.#nextPort;
    this.#nextPort += count;
    if (this.#nextPort > 65536) throw new ImeError('E_HARNESS_PORTS', `ports from ${first} run past 65535`);
    return Array.from({ length: count }, (_, i) => first + i);
  }

  static async start(options: RingHarnessOptions): Promise<RingHarness> {
    const h = new RingHarness(options);
    try {
      await h.#startBootstraps(options.bootstraps ?? 1);
      const created: Member[] = [];
      for (let i = 0; i < options.peers; i++) created.push(await h.createPeer({ start: false }));
      await inBatches(created, options.startConcurrency ?? (h.mode === 'process' ? 4 : 16), (m) => m.start());
      return h;
    } catch (err) {
      await h.stop();
      throw err;
    }
  }

  async #bootstrapConfig(index: number, ports: { ring: number; admin: number }, extra: Record<string, unknown>): Promise<{ dir: string; file: string }> {
    const o = this.#options;
    const dir = join(this.dir, `bootstrap-${index + 1}`);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'bootstrap.json');
    writeJson(file, {
      name: `bootstrap-${index + 1}`,
      dataDir: 'data',
      listen: [`/ip4/127.0.0.1/tcp/${ports.ring}`],
      admin: { listen: `127.0.0.1:${ports.admin}` },
      log: { level: o.logLevel ?? 'warn', file: 'log.jsonl' },
      admission: o.admission ?? 'auto',
      ordinal: index,
      syncIntervalSec: 1,
      parameters: { ...FAST_PARAMETERS, ...o.parameters },
      ...extra,
    });
    return { dir, file };
  }

  async #startBootstraps(count: 1 | 2): Promise<void> {
    const ports = await this.#ports(count * 2);
    const port = (i: number) => ({ ring: ports[2 * i] as number, admin: ports[2 * i + 1] as number });
    const written = await writeBootstrapConfigs(count, {
      write: (i, extra) => this.#bootstrapConfig(i, port(i), extra),
      dialAddress: (i, id) => `/ip4/127.0.0.1/tcp/${port(i).ring}/p2p/${id}`,
      stateFile: join(this.dir, 'bootstrap-state.json'),
    });
    written.forEach((b, i) => this.bootstraps.push(new Member('bootstrap', `bootstrap-${i + 1}`, this.mode, b.file, b.dir)));
    await Promise.all(this.bootstraps.map((b) => b.start()));
  }

  /** Adds a peer: its configuration, a token from the first bootstrap, and (by default) starts it. */
  async createPeer(options: PeerOptions = {}): Promise<Member> {
    const o = this.#options;
    const index = this.peers.length;
    const name = `peer-${index + 1}`;
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const [ring, admin] = await this.#ports(2);
    const domain = options.domain ?? o.domainOf?.(index) ?? `enterprise-${index + 1}.example`;
    if (options.token !== false) {
      const running = this.bootstraps.find((b) => b.running);
      if (!running) throw new ImeError('E_HARNESS_STATE', 'no bootstrap is running to issue an enrollment token');
      const bootstrap = await running.admin();
      const { token } = await bootstrap.post<{ token: string }>('/v1/tokens', { domain, note: `harness ${name}` });
      writeFileSync(join(dir, 'enroll.token'), `${token}\n`, { mode: 0o600 });
    }
    writeJson(join(dir, 'peer.json'), {
      name,
      domain,
      dataDir: 'data',
      listen: [`/ip4/127.0.0.1/tcp/${ring}`],
      bootstraps: this.bootstraps.map((b) => b.dialAddress),
      ...(options.token !== false ? { enrollmentTokenFile: 'enroll.token' } : {}),
      admin: { listen: `127.0.0.1:${admin}` },
      log: { level: o.logLevel ?? 'warn', file: 'log.jsonl' },
      tuning: { ...FAST_TUNING, ...o.tuning },
      validator: { ...FAST_VALIDATOR, ...o.validator },
    });
    const member = new Member('peer', name, this.mode, join(dir, 'peer.json'), dir);
    this.peers.push(member);
    if (options.start !== false) await member.start();
    return member;
  }

  /** Running peers, e.g. for a check across the ring. */
  running(): Member[] {
    return this.peers.filter((p) => p.running);
  }

  /**
   * Waits until every running peer is GREEN, holds the bootstrap's latest configuration and counts
   * `members` roster members (default: every running peer).
   */
  async converge(options: { members?: number; timeoutMs?: number } = {}): Promise<void> {
    const bootstrap = await (this.bootstraps.find((b) => b.running) as Member).admin();
    const expected = options.members ?? this.running().length;
    await waitFor(
      `${this.running().length} peers GREEN with ${expected} members`,
      async () => {
        const { sequence } = await bootstrap.get<{ sequence: number }>('/v1/summary');
        const summaries = await Promise.all(this.running().map(async (p) => (await p.admin()).get<{ health: string; sequence: number; peerCount: number }>('/v1/dht/summary')));
        return summaries.every((s) => s.health === 'GREEN' && s.sequence === sequence && s.peerCount === expected);
      },
      options.timeoutMs ?? 60_000,
      200,
    );
  }

  /**
   * Starts a call-manager (`ime cm start`) or PSTN (`ime pstn start`) simulator as a process, from a
   * configuration written to `<ring dir>/<name>/<role>.json`; relative paths in it are relative to
   * that directory. Its admin API listens on a port of the harness's range.
   */
  async startSimulator(role: 'cm' | 'pstn', name: string, config: Record<string, unknown>): Promise<Member> {
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const [admin] = await this.#ports(1);
    const file = join(dir, `${role}.json`);
    writeJson(file, {
      name,
      dataDir: 'data',
      admin: { listen: `127.0.0.1:${admin}` },
      log: { level: this.#options.logLevel ?? 'warn', file: 'log.jsonl' },
      ...config,
    });
    const member = new Member(role, name, 'process', file, dir);
    this.simulators.push(member);
    await member.start();
    return member;
  }

  async stop(): Promise<void> {
    await Promise.all(this.simulators.map((s) => s.stop().catch(() => undefined)));
    await Promise.all(this.peers.map((p) => p.stop().catch(() => undefined)));
    await Promise.all(this.bootstraps.map((b) => b.stop().catch(() => undefined)));
    if (this.#ownsDir && !this.#options.keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
