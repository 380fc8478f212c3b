import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { type DidRecord, type Publisher, parseE164, publisherFromSeed, sealDidRecord, sealDidTombstone } from '@ime/core';
import { type Database, RpcClient, createRingHost, ed25519Seed, openDatabase, serveRpc } from '@ime/runtime';
import type { ime } from '@ime/wire';
import { RecordStore } from '../src/record-store.js';
import { RingCoordinator, type RingCoordinatorOptions } from '../src/ring-coordinator.js';
import { type PlacementMember, RingPlacement } from '../src/ring-placement.js';
import { createRingHandler } from '../src/ring-service.js';
import { RpcRingTransport } from '../src/ring-transport.js';
import {
  RING_PROTOCOL,
  type RingParameters,
  type RingTransport,
  type RingView,
  type RingViewChange,
  type ViewSnapshot,
} from '../src/ring-types.js';

/**
 * An in-process ring for tests: N real libp2p hosts on loopback, each with its own RecordStore in its
 * own temporary LevelDB, serving /ime/ring/1.0.0 with the real handler, and an RpcRingTransport to
 * reach the others. Views are hand-written (TestRingView): static membership and a settable "down"
 * set, so a test decides what each peer believes.
 */

export const TEST_PARAMETERS: RingParameters = {
  replicationFactor: 3,
  writeQuorum: 2,
  readQuorum: 2,
  recordTtlSec: 24 * 3600,
  republishIntervalSec: 12 * 3600,
  storageQuota: 100_000,
};

/** A RingView with fixed members, a settable down set, and a record of what was reported. */
export class TestRingView implements RingView {
  readonly self: string;
  parameters: RingParameters;
  placement: RingPlacement;
  version = 1;
  readonly down = new Set<string>();
  readonly reports: { peerId: string; reason: string }[] = [];
  /** When set, a reported peer is marked down (as the real view does after a failed request). */
  markDownOnReport: boolean;
  readonly #listeners = new Set<(change: RingViewChange) => void>();

  constructor(options: { self: string; members: readonly PlacementMember[]; parameters?: RingParameters; down?: Iterable<string>; markDownOnReport?: boolean }) {
    this.self = options.self;
    this.parameters = options.parameters ?? TEST_PARAMETERS;
    this.placement = new RingPlacement(options.members);
    for (const p of options.down ?? []) this.down.add(p);
    this.markDownOnReport = options.markDownOnReport ?? false;
  }

  readonly #live = (peerId: string): boolean => this.isLive(peerId);

  isMember(peerId: string): boolean {
    return this.placement.members.has(peerId);
  }

  isLive(peerId: string): boolean {
    return this.placement.members.has(peerId) && !this.down.has(peerId);
  }

  replicasFor(key: Uint8Array): string[] {
    return this.placement.replicasFor(key, this.parameters.replicationFactor, this.#live);
  }

  preferenceList(key: Uint8Array): string[] {
    return this.placement.preferenceList(key, this.#live);
  }

  reportUnreachable(peerId: string, reason: string): void {
    this.reports.push({ peerId, reason });
    if (this.markDownOnReport && !this.down.has(peerId)) this.setDown(peerId, true);
  }

  reportTimeout(peerId: string, reason: string): void {
    this.reports.push({ peerId, reason });
  }

  onChange(listener: (change: RingViewChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  snapshot(): ViewSnapshot {
    const live = new Set([...this.placement.members.keys()].filter((p) => !this.down.has(p)));
    return { version: this.version, placement: this.placement, live, replicationFactor: this.parameters.replicationFactor };
  }

  setDown(peerId: string, down: boolean): void {
    this.#change(() => (down ? this.down.add(peerId) : this.down.delete(peerId)));
  }

  setMembers(members: readonly PlacementMember[]): void {
    this.#change(() => (this.placement = new RingPlacement(members)));
  }

  #change(apply: () => unknown): void {
    const before = this.snapshot();
    apply();
    this.version++;
    const after = this.snapshot();
    for (const l of this.#listeners) l({ before, after });
  }
}

export interface FixturePeer {
  readonly index: number;
  readonly peerId: string;
  readonly privateKey: PrivateKey;
  /** Signs DID records with the peer's libp2p key, as the real peer does. */
  readonly publisher: Publisher;
  readonly dir: string;
  readonly db: Database;
  readonly store: RecordStore;
  /** Who this peer's ring service admits (all fixture peers by default); tests may change it. */
  readonly admitted: Set<string>;
  readonly bootstraps: Set<string>;
  readonly configurationPushes: { push: ime.v1.ConfigurationPush; from: string }[];
  /** Our configuration sequence, as Pong carries it. */
  configurationSequence: number;
  /** Outgoing ring requests of this peer; stays valid across stopHost/startHost. */
  readonly transport: RingTransport;
  host: Libp2p;
  client: RpcClient;
  running: boolean;
}

export interface RingFixtureOptions {
  readonly size: number;
  readonly parameters?: RingParameters;
  readonly virtualNodes?: number;
  /** Per-peer cap function for the store (default unlimited). */
  readonly capFor?: (peerIndex: number) => ((publisherKeyHex: string) => number) | undefined;
  readonly now?: () => number;
  /** RPC timeouts: short, so a test with a silent peer does not wait long. */
  readonly timeoutMs?: number;
}

export interface RingFixture {
  readonly peers: readonly FixturePeer[];
  readonly members: readonly PlacementMember[];
  readonly parameters: RingParameters;
  readonly ringSalt: Uint8Array;
  /** A fresh view as peer `index` sees the ring (everyone live unless `down`). */
  view(index: number, options?: { down?: Iterable<string>; markDownOnReport?: boolean }): TestRingView;
  coordinator(index: number, view?: RingView, options?: Partial<RingCoordinatorOptions>): RingCoordinator;
  /** A DID record published by peer `index` for `number`. */
  seal(index: number, number: string, options?: { sequence?: number; expiresAtMs?: number; vserviceId?: string }): DidRecord;
  tombstone(index: number, number: string, options?: { sequence?: number; expiresAtMs?: number }): DidRecord;
  /** The record key of a number under this ring's salt. */
  keyOf(number: string): Uint8Array;
  /** Stops a peer's libp2p host (its store stays open, so a test can inspect it). */
  stopHost(index: number): Promise<void>;
  /** Starts a stopped peer's host again with the same identity and port. */
  startHost(index: number): Promise<void>;
  /** A host that is not a member of the ring, with its own transport. */
  outsider(): Promise<{ host: Libp2p; peerId: string; transport: RpcRingTransport; publisher: Publisher }>;
  close(): Promise<void>;
}

/** Runs a cleanup step; a failure must not keep the others from running. */
async function quietly(step: () => unknown): Promise<void> {
  try {
    await step();
  } catch {
    // already stopped or closed
  }
}

async function startHost(privateKey: PrivateKey, listen: string): Promise<Libp2p> {
  return createRingHost({ privateKey, listen: [listen] });
}

export async function createRingFixture(options: RingFixtureOptions): Promise<RingFixture> {
  const parameters = options.parameters ?? TEST_PARAMETERS;
  const virtualNodes = options.virtualNodes ?? 16;
  const timeoutMs = options.timeoutMs ?? 3000;
  const now = options.now ?? Date.now;
  const ringSalt = new Uint8Array(32).fill(7);
  const cleanups: (() => Promise<unknown>)[] = [];
  const extraHosts: Libp2p[] = [];
  const extraClients: RpcClient[] = [];
  const peers: FixturePeer[] = [];
  const transports = new Map<number, RpcRingTransport>();

  const newClient = (host: Libp2p) => new RpcClient(host, RING_PROTOCOL, { timeoutMs, connectTimeoutMs: timeoutMs });

  const introduce = async (host: Libp2p) => {
    for (const p of peers) {
      if (p.host === host || !p.running) continue;
      await host.peerStore.merge(p.host.peerId, { multiaddrs: p.host.getMultiaddrs() });
      await p.host.peerStore.merge(host.peerId, { multiaddrs: host.getMultiaddrs() });
    }
  };

  const serve = async (peer: FixturePeer) => {
    await serveRpc(
      peer.host,
      RING_PROTOCOL,
      createRingHandler({
        store: peer.store,
        isAdmitted: (id) => peer.admitted.has(id),
        isBootstrap: (id) => peer.bootstraps.has(id),
        onConfigurationPush: async (push, from) => {
          peer.configurationPushes.push({ push, from });
          return { sequence: peer.configurationSequence, accepted: false };
        },
        onPing: () => peer.configurationSequence,
      }),
    );
  };

  try {
    for (let index = 0; index < options.size; index++) {
      const privateKey = await generateKeyPair('Ed25519');
      const dir = await mkdtemp(join(tmpdir(), `ime-ring-fixture-${index}-`));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const db = await openDatabase(dir);
      cleanups.push(() => db.close());
      const capFor = options.capFor?.(index);
      const store = await RecordStore.open({ db, now, maxTtlMs: parameters.recordTtlSec * 1000, ...(capFor ? { capFor } : {}) });
      const host = await startHost(privateKey, '/ip4/127.0.0.1/tcp/0');
      const client = newClient(host);
      transports.set(index, new RpcRingTransport(client));
      const peer: FixturePeer = {
        index,
        peerId: host.peerId.toString(),
        privateKey,
        publisher: publisherFromSeed(ed25519Seed(privateKey)),
        dir,
        db,
        store,
        admitted: new Set(),
        bootstraps: new Set(),
        configurationPushes: [],
        configurationSequence: 1,
        // Follows the peer's current client: startHost makes a new one.
        transport: { request: (peerId, request, opts) => (transports.get(index) as RpcRingTransport).request(peerId, request, opts) },
        host,
        client,
        running: true,
      };
      peers.push(peer);
    }
    const ids = peers.map((p) => p.peerId);
    for (const p of peers) {
      for (const id of ids) p.admitted.add(id);
      await serve(p);
    }
    for (const p of peers) await introduce(p.host);
  } catch (err) {
    for (const p of peers) {
      p.client.stop();
      await quietly(() => p.host.stop());
    }
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw err;
  }

  const members: PlacementMember[] = peers.map((p) => ({ peerId: p.peerId, virtualNodes }));
  const peerAt = (i: number): FixturePeer => {
    const p = peers[i];
    if (!p) throw new Error(`no fixture peer ${i}`);
    return p;
  };

  const fixture: RingFixture = {
    peers,
    members,
    parameters,
    ringSalt,
    view: (index, o = {}) =>
      new TestRingView({
        self: peerAt(index).peerId,
        members,
        parameters,
        ...(o.down ? { down: o.down } : {}),
        ...(o.markDownOnReport !== undefined ? { markDownOnReport: o.markDownOnReport } : {}),
      }),
    coordinator: (index, view, o = {}) => {
      const p = peerAt(index);
      return new RingCoordinator({
        view: view ?? fixture.view(index),
        transport: p.transport,
        localStore: p.store,
        localPublisherKey: p.publisher.publicKey,
        now,
        ...o,
      });
    },
    seal: (index, number, o = {}) =>
      sealDidRecord({
        ringSalt,
        number: parseE164(number),
        publisher: peerAt(index).publisher,
        claim: { vserviceId: o.vserviceId ?? `vs-${index}`, publishedAtMs: now() },
        sequence: o.sequence ?? 1,
        expiresAtMs: o.expiresAtMs ?? now() + parameters.recordTtlSec * 1000,
      }),
    tombstone: (index, number, o = {}) =>
      sealDidTombstone({
        ringSalt,
        number: parseE164(number),
        publisher: peerAt(index).publisher,
        sequence: o.sequence ?? 2,
        expiresAtMs: o.expiresAtMs ?? now() + parameters.recordTtlSec * 1000,
      }),
    keyOf: (number) => fixture.seal(0, number).key,
    stopHost: async (index) => {
      const p = peerAt(index);
      if (!p.running) return;
      p.running = false;
      p.client.stop();
      await p.host.stop();
    },
    startHost: async (index) => {
      const p = peerAt(index);
      if (p.running) return;
      const address = p.host.getMultiaddrs()[0]?.toString() ?? '';
      const port = /\/tcp\/(\d+)/.exec(address)?.[1] ?? '0';
      p.host = await startHost(p.privateKey, `/ip4/127.0.0.1/tcp/${port}`);
      p.client = newClient(p.host);
      transports.set(index, new RpcRingTransport(p.client));
      p.running = true;
      await serve(p);
      await introduce(p.host);
    },
    outsider: async () => {
      const privateKey = await generateKeyPair('Ed25519');
      const host = await startHost(privateKey, '/ip4/127.0.0.1/tcp/0');
      extraHosts.push(host);
      for (const p of peers) if (p.running) await host.peerStore.merge(p.host.peerId, { multiaddrs: p.host.getMultiaddrs() });
      const client = newClient(host);
      extraClients.push(client);
      return { host, peerId: host.peerId.toString(), transport: new RpcRingTransport(client), publisher: publisherFromSeed(ed25519Seed(privateKey)) };
    },
    close: async () => {
      for (const c of extraClients) c.stop();
      for (const h of extraHosts) await quietly(() => h.stop());
      for (const p of peers) {
        if (!p.running) continue;
        p.running = false;
        p.client.stop();
        await quietly(() => p.host.stop());
      }
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    },
  };
  return fixture;
}
