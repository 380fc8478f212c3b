import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { RING_PROTOCOL, decodeSignedRingConfiguration } from '@ime/admission';
import { decodeWire, isImeError } from '@ime/core';
import { Member, type RingHarness } from '@ime/harness';
import type { PeerNode } from '@ime/peer';
import { RpcClient, loadOrCreateIdentity, openDatabase } from '@ime/runtime';
import { VALIDATION_PROTOCOL, type PvpRequestBody, type PvpResponse, decodeResponse, encodeRequest } from '@ime/validator';
import { VapFrameReader, encodeVapFrame } from '@ime/vap';
import { ime } from '@ime/wire';

type Libp2p = PeerNode['libp2p'];
/** A libp2p identity key, as the peer keeps it in its database. */
export type PrivateKey = Awaited<ReturnType<typeof loadOrCreateIdentity>>;

/**
 * What the attack tests (attacks.test.ts) need beyond the harness: attackers that are real peers
 * running in this process (so the test holds their libp2p host and their signing key), raw ring and
 * validation requests sent as such a peer, and hostile VAP connections.
 */

export function progress(line: string): void {
  process.stderr.write(`[attacks] ${line}\n`);
}

/**
 * A peer of `ring` run inside this process while the ring's other members are processes: the harness
 * writes its configuration and enrollment token (createPeer without starting it), and the peer is
 * started from that same file in this process. Its identity key is made before the first start, so
 * the test knows the key the peer signs its DID records with — as an attacking operator would.
 */
export async function inProcessPeer(ring: RingHarness, domain: string): Promise<{ member: Member; identity: PrivateKey }> {
  const planned = await ring.createPeer({ domain, start: false });
  const db = await openDatabase(join(planned.dir, 'data', 'db'));
  let identity: PrivateKey;
  try {
    identity = await loadOrCreateIdentity(db);
  } finally {
    await db.close();
  }
  const member = new Member('peer', planned.name, 'in-process', planned.configFile, planned.dir);
  await member.start();
  return { member, identity };
}

/** The ring salt every admitted member holds, read from the bootstrap's current signed configuration. */
export async function ringSaltOf(bootstrap: Member): Promise<Uint8Array> {
  const { signed } = await (await bootstrap.admin()).get<{ signed: string }>('/v1/configuration');
  const outer = decodeSignedRingConfiguration(Buffer.from(signed, 'base64'));
  return ime.v1.RingConfiguration.decode(outer.configuration).ringSalt;
}

/** The error code a promise fails with, or `answered` when it resolves. */
export async function outcomeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'answered';
  } catch (err) {
    if (isImeError(err)) return err.code;
    throw err;
  }
}

/**
 * Ring and validation requests sent by one libp2p host exactly as it chooses to write them: the
 * product's own request code (coordinator, validator) never builds a replay or a guess.
 */
export class RingWire {
  readonly #host: Libp2p;
  readonly #ring: RpcClient;
  readonly #validation: RpcClient;

  constructor(host: Libp2p, timeoutMs = 4000) {
    this.#host = host;
    this.#ring = new RpcClient(host, RING_PROTOCOL, { timeoutMs, connectTimeoutMs: timeoutMs });
    this.#validation = new RpcClient(host, VALIDATION_PROTOCOL, { timeoutMs, connectTimeoutMs: timeoutMs });
  }

  /** Tells the host where a peer listens, so a refusal cannot be blamed on a missing address. */
  async know(peerId: string, address: string): Promise<void> {
    await this.#host.peerStore.merge(peerIdFromString(peerId), { multiaddrs: [multiaddr(address)] });
  }

  /** One ring request; a refusal of the whole request comes back as `response.error`. */
  async ring(peerId: string, request: Omit<ime.v1.IRingRequest, 'version'>): Promise<ime.v1.RingResponse> {
    const bytes = await this.#ring.request(peerIdFromString(peerId), ime.v1.RingRequest.encode({ version: 1, ...request }).finish());
    return decodeWire(ime.v1.RingResponse, bytes, 4 << 20, 'ring response');
  }

  /** One validation request; returns the decoded answer and its size on the wire. */
  async validation(peerId: string, sessionId: Uint8Array, body: PvpRequestBody): Promise<{ response: PvpResponse; bytes: number }> {
    const bytes = await this.#validation.request(peerIdFromString(peerId), encodeRequest({ sessionId, body }));
    return { response: decodeResponse(bytes), bytes: bytes.length };
  }

  stop(): void {
    this.#ring.stop();
    this.#validation.stop();
  }
}

/** Per-record outcome of a store, withdraw or handoff answer: `accepted` or the refusal's code. */
export function recordCodes(response: ime.v1.RingResponse, kind: 'store' | 'withdraw' | 'handoff'): string[] {
  if (response.error) return [response.error.code];
  return (response[kind]?.results ?? []).map((r) => (r.accepted ? 'accepted' : (r.error?.code ?? '?')));
}

/** Hostile VAP connections of a flood; none of them ever registers. */
export type FloodKind = 'silent' | 'garbage' | 'hello-only' | 'bad-register' | 'huge-frame' | 'half-prefix';
export const FLOOD_KINDS: readonly FloodKind[] = ['silent', 'garbage', 'hello-only', 'bad-register', 'huge-frame', 'half-prefix'];

export interface FloodOutcome {
  /** Error codes of the frames the server sent before it closed the connection. */
  readonly codes: string[];
  /** The server closed it (a refusal, a protocol error, the handshake timeout). */
  readonly closedByServer: boolean;
}

function floodBytes(kind: FloodKind): Uint8Array[] {
  switch (kind) {
    case 'silent':
      return [];
    case 'garbage':
      return [randomBytes(1 + Math.floor(Math.random() * 512))];
    case 'hello-only':
      return [encodeVapFrame({ sequence: 1, hello: { username: 'imeuser', clientNonce: randomBytes(32), clientSoftware: 'flood' } })];
    case 'bad-register':
      return [
        encodeVapFrame({ sequence: 1, hello: { username: 'imeuser', clientNonce: randomBytes(32) } }),
        encodeVapFrame({ sequence: 2, register: { digest: randomBytes(32) } }),
      ];
    case 'huge-frame': {
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(0x7fff_ffff, 0);
      return [Buffer.concat([prefix, randomBytes(64)])];
    }
    case 'half-prefix':
      return [Uint8Array.of(0, 0)];
  }
}

/**
 * Opens one hostile connection and keeps it open (never ending it itself) until the server closes
 * it, or `holdMs` passes and the attacker gives up.
 */
export function floodConnection(port: number, kind: FloodKind, holdMs: number): Promise<FloodOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const reader = new VapFrameReader();
    const codes: string[] = [];
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ codes, closedByServer });
    };
    const timer = setTimeout(() => finish(false), holdMs);
    socket.on('connect', () => {
      for (const b of floodBytes(kind)) socket.write(b);
    });
    socket.on('data', (chunk: Buffer) => {
      const read = reader.push(chunk);
      for (const f of read.frames) if (f.error) codes.push(f.error.code);
    });
    socket.on('error', () => finish(true));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
  });
}
