import { ImeError, decodeWire, remoteErrorCode } from '@ime/core';
import { DEFAULT_MAX_FRAME_BYTES, type RpcClient } from '@ime/runtime';
import { ime } from '@ime/wire';
import { PeerIdCache } from './peer-id-cache.js';
import { RING_WIRE_VERSION, type RingTransport } from './ring-types.js';

/** The response body that answers each request body. */
const ANSWER: Readonly<Record<string, string>> = {
  store: 'store',
  fetch: 'fetch',
  withdraw: 'withdraw',
  handoff: 'handoff',
  rangeDigest: 'rangeDigest',
  configuration: 'configuration',
  ping: 'pong',
  rangeFetch: 'rangeFetch',
};
const REQUEST_BODIES = Object.keys(ANSWER);

/**
 * Ring requests over the RPC layer: one kept stream per peer (RpcClient on RING_PROTOCOL). The
 * client must have been made for RING_PROTOCOL. A refusal from the remote — an `error` response or an
 * RPC error frame — becomes a thrown ImeError with the remote's code.
 */
export class RpcRingTransport implements RingTransport {
  readonly #client: RpcClient;
  readonly #maxResponseBytes: number;
  readonly #peerIds = new PeerIdCache();

  readonly #onAnswer: ((peerId: string) => void) | undefined;

  /** `onAnswer` hears of every peer that answered (even with a refusal): it is alive. */
  constructor(client: RpcClient, options: { maxResponseBytes?: number; onAnswer?: (peerId: string) => void } = {}) {
    this.#client = client;
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#onAnswer = options.onAnswer;
  }

  async request(peerId: string, request: ime.v1.IRingRequest, options: { timeoutMs?: number } = {}): Promise<ime.v1.RingResponse> {
    const body = REQUEST_BODIES.find((name) => (request as Record<string, unknown>)[name] != null);
    if (body === undefined) throw new ImeError('E_RING_REQUEST', 'a ring request needs a body');
    const payload = ime.v1.RingRequest.encode({ ...request, version: RING_WIRE_VERSION }).finish();
    const bytes = await this.#client.request(this.#peerIds.get(peerId), payload, options);
    this.#onAnswer?.(peerId);
    const response = decodeWire(ime.v1.RingResponse, bytes, this.#maxResponseBytes, `ring response from ${peerId}`);
    if (response.version !== RING_WIRE_VERSION) {
      throw new ImeError('E_WIRE_VERSION', `${peerId} answered with ring protocol version ${response.version}, not ${RING_WIRE_VERSION}`);
    }
    if (response.body === 'error') {
      const error = response.error as ime.v1.ErrorInfo;
      throw new ImeError(remoteErrorCode(error.code, 'E_RING_RESPONSE'), error.message || `${peerId} refused the request`);
    }
    if (response.body !== ANSWER[body]) {
      throw new ImeError('E_RING_RESPONSE', `${peerId} answered a ${body} request with ${response.body ?? 'nothing'}`);
    }
    return response;
  }

}
