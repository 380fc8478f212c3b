import { ImeError } from '@ime/core';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';

/** PeerIds are parsed once per peer (a base58 decode and a key parse); a ring has at most a few thousand. */
const PEER_ID_CACHE_MAX = 8192;

/** Parses PeerIds once each; a text that is not one is refused with E_PEER_ID. */
export class PeerIdCache {
  readonly #ids = new Map<string, PeerId>();

  get(id: string): PeerId {
    let peer = this.#ids.get(id);
    if (!peer) {
      try {
        peer = peerIdFromString(id);
      } catch {
        throw new ImeError('E_PEER_ID', `not a peer id: ${id.slice(0, 60)}`);
      }
      if (this.#ids.size >= PEER_ID_CACHE_MAX) this.#ids.clear();
      this.#ids.set(id, peer);
    }
    return peer;
  }
}
