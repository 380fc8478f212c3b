import { type AddressInfo, type Socket, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { multiaddr } from '@multiformats/multiaddr';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p } from '@libp2p/interface';
import { ImeError } from '@ime/core';
import { createRingHost } from '../src/host.js';
import { RpcClient, serveRpc } from '../src/rpc.js';

const PROTOCOL = '/ime/test-rpc/1.0.0';
const text = (s: string) => new TextEncoder().encode(s);
const untext = (b: Uint8Array) => new TextDecoder().decode(b);

async function host(): Promise<Libp2p> {
  return createRingHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
}

describe('RPC over a kept libp2p stream', () => {
  let server: Libp2p;
  let client: Libp2p;
  let rpc: RpcClient;
  const internalErrors: unknown[] = [];

  beforeAll(async () => {
    server = await host();
    client = await host();
    await serveRpc(
      server,
      PROTOCOL,
      async (payload) => {
        const cmd = untext(payload);
        if (cmd === 'refuse') throw new ImeError('E_TEST_REFUSED', 'refused on purpose');
        if (cmd === 'crash') throw new TypeError('secret internal detail');
        if (cmd.startsWith('sleep ')) await new Promise((r) => setTimeout(r, Number(cmd.slice(6))));
        if (cmd === 'big') return new Uint8Array(2 * 1024 * 1024);
        return text(`echo:${cmd}`);
      },
      { maxFrameBytes: 1024 * 1024, onInternalError: (e) => internalErrors.push(e) },
    );
    await client.peerStore.merge(server.peerId, { multiaddrs: server.getMultiaddrs() });
    rpc = new RpcClient(client, PROTOCOL, { timeoutMs: 2000, maxFrameBytes: 1024 * 1024 });
  });

  afterAll(async () => {
    rpc.stop();
    await client.stop();
    await server.stop();
  });

  it('answers requests, many at once, each with its own response', async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => rpc.request(server.peerId, text(`m${i}`))));
    expect(answers.map(untext)).toEqual(Array.from({ length: 200 }, (_, i) => `echo:m${i}`));
  });

  it('keeps one stream for successive requests', async () => {
    await rpc.request(server.peerId, text('a'));
    const conns = client.getConnections(server.peerId);
    expect(conns).toHaveLength(1);
    const streamsBefore = conns[0]!.streams.filter((s) => s.protocol === PROTOCOL).length;
    for (let i = 0; i < 20; i++) await rpc.request(server.peerId, text('b'));
    expect(conns[0]!.streams.filter((s) => s.protocol === PROTOCOL).length).toBe(streamsBefore);
    expect(rpc.isConnected(server.peerId)).toBe(true);
  });

  it("passes the handler's error code to the caller", async () => {
    await expect(rpc.request(server.peerId, text('refuse'))).rejects.toMatchObject({ code: 'E_TEST_REFUSED', message: 'refused on purpose' });
  });

  it('hides internal errors behind E_INTERNAL and reports them to the server', async () => {
    const err = await rpc.request(server.peerId, text('crash')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_INTERNAL' });
    expect((err as Error).message).not.toContain('secret');
    expect(internalErrors.length).toBeGreaterThan(0);
  });

  it('times out a slow answer without disturbing later requests', async () => {
    await expect(rpc.request(server.peerId, text('sleep 500'), { timeoutMs: 50 })).rejects.toMatchObject({ code: 'E_RPC_TIMEOUT' });
    expect(untext(await rpc.request(server.peerId, text('after')))).toBe('echo:after');
  });

  it('refuses to send a frame over the limit', async () => {
    await expect(rpc.request(server.peerId, new Uint8Array(2 * 1024 * 1024))).rejects.toMatchObject({ code: 'E_RPC_TOO_LARGE' });
  });

  it('closes the stream when the answer is over the limit, failing the request', async () => {
    await expect(rpc.request(server.peerId, text('big'))).rejects.toMatchObject({ code: 'E_RPC_CLOSED' });
    expect(untext(await rpc.request(server.peerId, text('again')))).toBe('echo:again');
  });

  it('fails pending requests when the peer disconnects, and reconnects for the next one', async () => {
    const pending = rpc.request(server.peerId, text('sleep 1000'));
    await new Promise((r) => setTimeout(r, 50));
    await client.hangUp(server.peerId);
    await expect(pending).rejects.toMatchObject({ code: 'E_RPC_CLOSED' });
    expect(untext(await rpc.request(server.peerId, text('back')))).toBe('echo:back');
  });

  it('reports an unreachable peer', async () => {
    const gone = await host();
    const id = gone.peerId;
    const addrs = gone.getMultiaddrs();
    await gone.stop();
    await client.peerStore.merge(id, { multiaddrs: addrs });
    await expect(rpc.request(id, text('x'))).rejects.toMatchObject({ code: 'E_RPC_UNREACHABLE' });
  });

  it('closes a connection that stays silent under requests, and dials afresh; a slow peer that still answers keeps its connection', async () => {
    const other = await host();
    try {
      await other.peerStore.merge(server.peerId, { multiaddrs: server.getMultiaddrs() });
      const strict = new RpcClient(other, PROTOCOL, { timeoutMs: 150, silentConnectionMs: 600 });
      expect(untext(await strict.request(server.peerId, text('hello')))).toBe('echo:hello');
      const first = other.getConnections(server.peerId)[0]!;
      // Slow: every answer comes after its request timed out, but answers keep coming.
      for (let i = 0; i < 6; i++) {
        await expect(strict.request(server.peerId, text('sleep 200'))).rejects.toMatchObject({ code: 'E_RPC_TIMEOUT' });
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(first.status).toBe('open');
      // Silent: nothing at all comes back for longer than the window.
      const outcomes: string[] = [];
      for (let i = 0; i < 6 && first.status === 'open'; i++) {
        outcomes.push(await strict.request(server.peerId, text('sleep 5000')).then(() => 'answered', (e: ImeError) => e.code));
      }
      expect(outcomes.every((c) => c === 'E_RPC_TIMEOUT')).toBe(true);
      expect(outcomes.length).toBeGreaterThanOrEqual(4); // 4 × 150 ms ≥ 600 ms of silence
      expect(first.status).not.toBe('open');
      expect(untext(await strict.request(server.peerId, text('again')))).toBe('echo:again');
      expect(other.getConnections(server.peerId)[0]).not.toBe(first);
      strict.stop();
    } finally {
      await other.stop();
    }
  });

  it('tells a connection that could not be made in time (E_RPC_TIMEOUT) from a refused one', async () => {
    // A socket that accepts and never answers: the dial hangs in the handshake.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const id = (await host().then(async (h) => (await h.stop(), h))).peerId;
      await client.peerStore.merge(id, { multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${port}`)] });
      const quick = new RpcClient(client, PROTOCOL, { connectTimeoutMs: 300 });
      await expect(quick.request(id, text('x'))).rejects.toMatchObject({ code: 'E_RPC_TIMEOUT', message: expect.stringContaining('could not connect') });
      quick.stop();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
