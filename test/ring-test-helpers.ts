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

export interface MemberView {
  peerId: string;
  live: boolean;
  neighbour: boolean;
}

/** The ring's members as `m` sees them (`/v1/ring/members`). */
export async function ringMembers(m: Member): Promise<MemberView[]> {
  return (await (await m.admin()).get<{ members: MemberView[] }>('/v1/ring/members')).members;
}

/**
 * Its ring neighbours probe a peer, so they are the first to see it down (the others learn it at
 * their first failed request): true once every running peer that counts `gone` as a neighbour sees
 * it down.
 */
export async function seenDownByNeighbours(running: readonly Member[], gone: Member): Promise<boolean> {
  let neighbours = 0;
  for (const p of running) {
    const entry = (await ringMembers(p)).find((m) => m.peerId === gone.peerId);
    if (entry?.neighbour) {
      neighbours++;
      if (entry.live) return false;
    }
  }
  return neighbours > 0;
}

/** Records held by the running peers' own stores, summed (N copies of each record once handoff is done). */
export async function liveCopies(running: readonly Member[]): Promise<number> {
  const all = await Promise.all(running.map((p) => counters(p)));
  return all.reduce((s, c) => s + (c.IMEDistributedCacheStoredData ?? 0), 0);
}
