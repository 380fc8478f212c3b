import { describe, expect, it } from '@jest/globals';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { ImeError } from '@ime/core';
import type { Database, RpcClient } from '@ime/runtime';
import { ime } from '@ime/wire';
import { rejected } from '../../core/test/helpers.js';
import { enrollPersistently } from '../src/enrollment-client.js';

/** Only the RPC is faked: what the bootstrap answers (or that nobody does), not the client's logic. */
async function setup(answer: () => Promise<Uint8Array>) {
  const bootstrap = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
  let clock = 0;
  const pauses: number[] = [];
  const codes: string[] = [];
  let calls = 0;
  const rpc = { request: async () => (calls++, answer()) } as unknown as RpcClient;
  const run = (retryForMs: number) =>
    enrollPersistently({
      db: {} as Database,
      rpc,
      bootstraps: [bootstrap],
      request: { peerId: bootstrap, domain: 'acme.example', contact: 'ops@acme.example', token: 't', addresses: [], softwareVersion: '1' },
      nowMs: 0,
      now: () => clock,
      retryForMs,
      sleep: async (ms) => {
        clock += ms;
      },
      onRetry: (err, pauseMs) => {
        codes.push(err.code);
        pauses.push(pauseMs);
      },
    });
  return { run, pauses, codes, calls: () => calls };
}

describe('the first enrollment', () => {
  it('keeps trying while no bootstrap answers, backing off, and gives up with the last error at the deadline', async () => {
    const s = await setup(async () => {
      throw new ImeError('E_RPC_UNREACHABLE', 'no route to the bootstrap');
    });
    const err = await rejected(s.run(60_000));
    expect(err.code).toBe('E_RPC_UNREACHABLE');
    expect(s.pauses).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    expect(s.pauses.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(s.calls()).toBe(8);
  });

  it('stops at once when the bootstrap refuses the request itself', async () => {
    const s = await setup(async () => ime.v1.EnrollmentResponse.encode({ refused: { code: 'E_ENROLL_TOKEN_USED', message: 'the enrollment token was already used by another peer' } }).finish());
    expect((await rejected(s.run(60_000))).code).toBe('E_ENROLL_TOKEN_USED');
    expect(s.calls()).toBe(1);
    expect(s.pauses).toEqual([]);
  });

  it('tries again after a timeout, and stops at a ban', async () => {
    let n = 0;
    const s = await setup(async () => {
      n++;
      if (n === 1) throw new ImeError('E_RPC_TIMEOUT', 'the bootstrap did not answer in time');
      return ime.v1.EnrollmentResponse.encode({ refused: { code: 'E_ENROLL_BANNED', message: 'banned' } }).finish();
    });
    expect((await rejected(s.run(60_000))).code).toBe('E_ENROLL_BANNED');
    expect(s.codes).toEqual(['E_RPC_TIMEOUT']);
  });
});
