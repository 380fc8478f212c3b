import { ImeError } from '@ime/core';
import type { AdminClient } from '@ime/runtime';
import type { Member } from '@ime/harness';

/** Small helpers shared by the cross-process ring tests. */

export interface Summary {
  peerId: string;
  health: 'RED' | 'YELLOW' | 'GREEN';
  healthReasons: string[];
  sequence: number;
  peerCount: number;
  livePeers: number;
  messageOfTheDay: string;
  configsRefused: number;
}

export async function summary(m: Member): Promise<Summary> {
  return (await m.admin()).get<Summary>('/v1/dht/summary');
}

export async function counters(m: Member): Promise<Record<string, number>> {
  return (await (await m.admin()).get<{ counters: Record<string, number> }>('/v1/counters')).counters;
}

export async function lookup(m: Member, numbers: readonly string[]): Promise<{ total: number; found: number; missing: string[]; failed: { number: string; code: string }[] }> {
  return (await m.admin()).post('/v1/dids/lookup', { numbers });
}

/** The error code a rejected admin call carries. */
export async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ImeError) return err.code;
    throw err;
  }
  throw new Error('expected the call to be refused');
}

export async function adminOf(m: Member): Promise<AdminClient> {
  return m.admin();
}
