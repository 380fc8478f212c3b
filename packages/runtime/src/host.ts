import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { ImeError } from '@ime/core';
import { createLibp2p } from 'libp2p';

/**
 * A libp2p host as every ring role uses it: TCP, Noise (which authenticates the remote PeerId) and
 * yamux, no discovery and no DHT — membership comes from the signed roster, so nothing is learned from
 * strangers. Admission is the gater's job.
 */
export interface RingHostOptions {
  readonly privateKey: PrivateKey;
  /** Multiaddrs to listen on, e.g. /ip4/0.0.0.0/tcp/6084 (port 0 picks a free port). */
  readonly listen: readonly string[];
  /** Addresses to tell others (public address behind NAT); defaults to the listen addresses. */
  readonly announce?: readonly string[];
  readonly gater?: ConnectionGater;
  readonly maxConnections?: number;
}

export async function createRingHost(options: RingHostOptions): Promise<Libp2p> {
  try {
    return await createLibp2p({
      privateKey: options.privateKey,
      addresses: {
        listen: [...options.listen],
        ...(options.announce && options.announce.length > 0 ? { announce: [...options.announce] } : {}),
      },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      ...(options.gater ? { connectionGater: options.gater } : {}),
      // Off: it pings every connection every 10 s on a stream of its own and aborts the connection at
      // the first ping slower than its timeout. On a ring that is a ping per pair of peers — most of
      // an idle ring's CPU — and, on a loaded machine, connections aborted under requests in flight.
      // The ring probes its neighbours itself, and the RPC client closes a connection that stays
      // silent under requests (rpc.ts, RPC_SILENT_CONNECTION_MS).
      connectionMonitor: { enabled: false },
      connectionManager: {
        maxConnections: options.maxConnections ?? 1024,
        // Every peer of a local ring shares 127.0.0.1; the default (5 per second per host) would
        // refuse most of them.
        inboundConnectionThreshold: 100_000,
        maxIncomingPendingConnections: 512,
      },
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ImeError('E_HOST_START', `cannot start the libp2p host on ${options.listen.join(', ')}: ${reason}`);
  }
}
