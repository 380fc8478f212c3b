import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CONFIG_PROTOCOL,
  ENROLL_PROTOCOL,
  RING_PROTOCOL,
  type RingConfiguration,
  WIRE_VERSION,
  verifySignedRingConfiguration,
} from '@ime/admission';
import { ImeError, decodeWire } from '@ime/core';
import { RpcClient, createRingHost, serveRpc, silentLogger } from '@ime/runtime';
import { ime } from '@ime/wire';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { type BootstrapConfig, bootstrapConfigFrom } from '../src/bootstrap-config.js';
import { BootstrapServer, type BootstrapServerOptions } from '../src/bootstrap-server.js';

/**
 * Real libp2p hosts and LevelDB in temporary directories: a bootstrap, and test peers that speak the
 * enrollment and configuration protocols exactly as @ime/peer's enrollment-client and config-sync do.
 */

const dirs: string[] = [];

export function tempDir(prefix = 'ime-bootstrap-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A free TCP port on 127.0.0.1 (for bootstraps that must know each other's address before they start). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function testConfig(dataDir: string, overrides: Record<string, unknown> = {}): BootstrapConfig {
  return bootstrapConfigFrom({
    name: 'bootstrap-test',
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    admin: { listen: '127.0.0.1:0' },
    ...overrides,
  });
}

export async function startBootstrap(
  overrides: Record<string, unknown> = {},
  options: BootstrapServerOptions & { dataDir?: string } = {},
): Promise<BootstrapServer> {
  const dataDir = options.dataDir ?? tempDir();
  return BootstrapServer.start(testConfig(dataDir, overrides), { log: silentLogger(), ...(options.now ? { now: options.now } : {}) });
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface EnrollInput {
  readonly token?: string;
  readonly domain?: string;
  readonly contact?: string;
  readonly addresses?: readonly string[];
  readonly softwareVersion?: string;
  /** Defaults to `token === undefined`, as the peer's enrollment client sends it. */
  readonly renewal?: boolean;
  /** Claim another PeerId than the connection's. */
  readonly peerId?: string;
  readonly version?: number;
}

/** A peer as the bootstrap sees one: a libp2p host with the enroll and config clients. */
export class TestPeer {
  readonly host: Libp2p;
  readonly peerId: string;
  readonly pushes: ime.v1.ConfigurationPush[] = [];
  readonly #enroll: RpcClient;
  readonly #config: RpcClient;
  readonly #clients: RpcClient[] = [];

  private constructor(host: Libp2p) {
    this.host = host;
    this.peerId = host.peerId.toString();
    this.#enroll = this.client(ENROLL_PROTOCOL);
    this.#config = this.client(CONFIG_PROTOCOL);
  }

  static async start(bootstraps: readonly BootstrapServer[] = []): Promise<TestPeer> {
    const host = await createRingHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
    const peer = new TestPeer(host);
    for (const b of bootstraps) await peer.know(b);
    return peer;
  }

  async know(b: BootstrapServer): Promise<void> {
    await this.host.peerStore.merge(peerIdFromString(b.peerId), { multiaddrs: b.addresses.map((a) => multiaddr(a)) });
  }

  client(protocol: string): RpcClient {
    const c = new RpcClient(this.host, protocol, { timeoutMs: 15_000 });
    this.#clients.push(c);
    return c;
  }

  get addresses(): string[] {
    return this.host.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, ''));
  }

  /** Serves /ime/ring/1.0.0 and records configuration pushes, answering as a peer does. */
  async acceptPushes(): Promise<void> {
    await serveRpc(this.host, RING_PROTOCOL, (payload) => {
      const request = decodeWire(ime.v1.RingRequest, payload, 4 * 1024 * 1024, 'ring request');
      if (request.configuration) this.pushes.push(request.configuration);
      return ime.v1.RingResponse.encode({ version: WIRE_VERSION, configuration: { sequence: 0, accepted: true } }).finish();
    });
  }

  async enrollRaw(bootstrap: BootstrapServer, payload: Uint8Array): Promise<ime.v1.EnrollmentResponse> {
    const bytes = await this.#enroll.request(peerIdFromString(bootstrap.peerId), payload);
    return decodeWire(ime.v1.EnrollmentResponse, bytes, 8 * 1024 * 1024, 'enrollment response');
  }

  async enroll(bootstrap: BootstrapServer, input: EnrollInput = {}): Promise<ime.v1.EnrollmentResponse> {
    const payload = ime.v1.EnrollmentRequest.encode({
      version: input.version ?? WIRE_VERSION,
      peerId: input.peerId ?? this.peerId,
      domain: input.domain ?? 'acme.example',
      contact: input.contact ?? 'noc@acme.example',
      enrollmentToken: input.token ?? '',
      addresses: [...(input.addresses ?? this.addresses)],
      softwareVersion: input.softwareVersion ?? '0.1.0',
      requestedAtMs: Date.now(),
      renewal: input.renewal ?? input.token === undefined,
    }).finish();
    return this.enrollRaw(bootstrap, payload);
  }

  /** Enrolls and returns the enrollment, failing on a refusal. */
  async enrolled(bootstrap: BootstrapServer, input: EnrollInput = {}): Promise<ime.v1.Enrollment> {
    const response = await this.enroll(bootstrap, input);
    if (response.refused) throw new ImeError(response.refused.code, response.refused.message);
    if (!response.enrolled) throw new Error('no enrollment in the response');
    return response.enrolled;
  }

  /** The refusal code of an enrollment that must be refused. */
  async refusal(bootstrap: BootstrapServer, input: EnrollInput = {}): Promise<string> {
    const response = await this.enroll(bootstrap, input);
    if (!response.refused) throw new Error('the enrollment was accepted');
    return response.refused.code;
  }

  async poll(bootstrap: BootstrapServer, knownSequence: number): Promise<ime.v1.ConfigurationResponse> {
    const bytes = await this.#config.request(
      peerIdFromString(bootstrap.peerId),
      ime.v1.ConfigurationRequest.encode({ version: WIRE_VERSION, knownSequence }).finish(),
    );
    return decodeWire(ime.v1.ConfigurationResponse, bytes, 8 * 1024 * 1024, 'configuration response');
  }

  async stop(): Promise<void> {
    for (const c of this.#clients) c.stop();
    await this.host.stop();
  }
}

/** Verifies a signed configuration from a bootstrap as a peer would (pinned authority, signature). */
export function verifyConfiguration(
  signed: ime.v1.SignedRingConfiguration.$Properties | null | undefined,
  bootstrap: BootstrapServer,
  nowMs = Date.now(),
): RingConfiguration {
  if (!signed) throw new Error('no configuration');
  return verifySignedRingConfiguration(signed, { authorityCertificateDer: bootstrap.authorityCertificateDer }, { nowMs });
}

export function rosterIds(config: RingConfiguration | undefined): string[] {
  return (config?.roster ?? []).map((e) => e.peerId);
}
