import { afterEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { ImeError } from '@ime/core';
import type { RingParameters, RingViewChange } from '../src/ring-types.js';
import { LiveRingView } from '../src/ring-view.js';

const PARAMS: RingParameters = {
  replicationFactor: 3,
  writeQuorum: 2,
  readQuorum: 2,
  recordTtlSec: 86_400,
  republishIntervalSec: 43_200,
  storageQuota: 1000,
};
const ids = Array.from({ length: 6 }, (_, i) => `peer-${i}`);
const roster = (list: string[] = ids) => list.map((peerId) => ({ peerId, virtualNodes: 3 }));
const key = (i: number) => new Uint8Array(createHash('sha256').update(`k${i}`).digest());
const tick = () => new Promise<void>((r) => setImmediate(r));

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function newView(self = 'peer-0', now?: () => number): LiveRingView {
  return new LiveRingView({ self, members: roster(), parameters: PARAMS, ...(now ? { now } : {}) });
}

/** A ping whose every call waits until the test settles it. */
function controlledPing() {
  const calls: { peerId: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  const ping = (peerId: string) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ peerId, resolve, reject });
    });
  const settle = (peerId: string, outcome: 'ok' | ImeError) => {
    const i = calls.findIndex((c) => c.peerId === peerId);
    if (i < 0) throw new Error(`no probe in flight to ${peerId}`);
    const [c] = calls.splice(i, 1);
    if (outcome === 'ok') c!.resolve();
    else c!.reject(outcome);
  };
  return { ping, calls, settle };
}

describe('LiveRingView: replica sets', () => {
  it('uses every member while all are live', () => {
    const view = newView();
    for (let i = 0; i < 50; i++) {
      expect(view.replicasFor(key(i))).toEqual(view.placement.replicasFor(key(i), 3));
      expect(view.preferenceList(key(i))).toHaveLength(6);
    }
    expect(view.isMember('peer-3')).toBe(true);
    expect(view.isMember('stranger')).toBe(false);
    expect(view.isLive('stranger')).toBe(false);
  });

  it('skips peers seen down, replacing them with the next live member', () => {
    const view = newView();
    const k = key(3);
    const [a, b, c, d] = view.preferenceList(k);
    const victim = b === 'peer-0' ? a! : b!; // self cannot go down, so pick another replica
    view.markDown(victim, 'test');
    expect(view.isLive(victim)).toBe(false);
    const replicas = view.replicasFor(k);
    expect(replicas).toHaveLength(3);
    expect(replicas).not.toContain(victim);
    expect(replicas).toEqual([a, b, c, d].filter((p) => p !== victim).slice(0, 3));
    expect(view.preferenceList(k)).not.toContain(victim);
    view.markUp(victim);
    expect(view.replicasFor(k)).toEqual([a, b, c]);
  });

  it('never marks itself down and ignores strangers', () => {
    const view = newView();
    view.markDown('peer-0', 'test');
    view.reportUnreachable('stranger', 'test');
    expect(view.isLive('peer-0')).toBe(true);
    expect(view.downPeers()).toEqual([]);
    expect(view.version).toBe(0);
  });

  it('reportUnreachable marks the peer down, with since and reason', () => {
    let t = 1000;
    const view = newView('peer-0', () => t);
    t = 5000;
    view.reportUnreachable('peer-4', 'connection refused');
    expect(view.downPeers()).toEqual(['peer-4']);
    expect(view.downDetails()).toEqual([{ peerId: 'peer-4', sinceMs: 5000, reason: 'connection refused' }]);
    expect(view.snapshot().live.has('peer-4')).toBe(false);
  });

  it('keeps replica sets N distinct live members when several are down', () => {
    const view = newView();
    view.markDown('peer-1', 'x');
    view.markDown('peer-2', 'x');
    view.markDown('peer-3', 'x');
    for (let i = 0; i < 50; i++) {
      const r = view.replicasFor(key(i));
      expect(new Set(r)).toEqual(new Set(['peer-0', 'peer-4', 'peer-5']));
    }
  });
});

describe('LiveRingView: change events', () => {
  it('batches changes made in one tick into one event with the right before and after', async () => {
    const view = newView();
    const events: RingViewChange[] = [];
    view.onChange((c) => events.push(c));
    const before = view.snapshot();
    view.markDown('peer-1', 'x');
    view.markDown('peer-2', 'x');
    expect(view.version).toBe(2);
    await tick();
    expect(events).toHaveLength(1);
    const [e] = events;
    expect(e!.before).toBe(before);
    expect(e!.before.version).toBe(0);
    expect([...e!.before.live].sort()).toEqual(ids);
    expect(e!.after.version).toBe(2);
    expect([...e!.after.live].sort()).toEqual(['peer-0', 'peer-3', 'peer-4', 'peer-5']);
    expect(e!.after.replicationFactor).toBe(3);
    // Snapshots are pictures: later changes do not alter them.
    view.markUp('peer-1');
    await tick();
    expect(events).toHaveLength(2);
    expect(e!.after.live.has('peer-1')).toBe(false);
    expect(events[1]!.before).toBe(e!.after);
    expect(events[1]!.after.live.has('peer-1')).toBe(true);
  });

  it('fires no event for what changes nothing, and stops after unsubscribing', async () => {
    const view = newView();
    const events: RingViewChange[] = [];
    const off = view.onChange((c) => events.push(c));
    view.markUp('peer-1'); // already live
    view.update(roster([...ids].reverse()), { ...PARAMS, storageQuota: 5 }); // same roster
    await tick();
    expect(events).toHaveLength(0);
    expect(view.parameters.storageQuota).toBe(5);
    off();
    view.markDown('peer-1', 'x');
    await tick();
    expect(events).toHaveLength(0);
  });

  it('a listener that throws does not stop the others', async () => {
    const view = newView();
    let seen = 0;
    view.onChange(() => {
      throw new Error('boom');
    });
    view.onChange(() => seen++);
    view.markDown('peer-1', 'x');
    await tick();
    expect(seen).toBe(1);
  });

  it('update: new members start live, leavers are forgotten, survivors keep their liveness', async () => {
    const view = newView();
    view.markDown('peer-1', 'x');
    view.markDown('peer-5', 'x');
    await tick();
    const events: RingViewChange[] = [];
    view.onChange((c) => events.push(c));
    view.update(roster(['peer-0', 'peer-1', 'peer-2', 'peer-3', 'peer-4', 'peer-6']), PARAMS);
    await tick();
    expect(events).toHaveLength(1);
    const { before, after } = events[0]!;
    expect(before.placement.members.has('peer-5')).toBe(true);
    expect(after.placement.members.has('peer-5')).toBe(false);
    expect(after.placement.members.has('peer-6')).toBe(true);
    expect(view.isLive('peer-6')).toBe(true);
    expect(view.isLive('peer-1')).toBe(false);
    expect(view.downPeers()).toEqual(['peer-1']);
    expect(after.placement.tokens).toHaveLength(18);
  });

  it('update: a new replication factor is a change', async () => {
    const view = newView();
    const events: RingViewChange[] = [];
    view.onChange((c) => events.push(c));
    view.update(roster(), { ...PARAMS, replicationFactor: 2 });
    await tick();
    expect(events).toHaveLength(1);
    expect(events[0]!.after.replicationFactor).toBe(2);
    expect(view.replicasFor(key(1))).toHaveLength(2);
  });

  it('neighbours are the placement neighbours of self', () => {
    const view = newView();
    expect(view.neighbours()).toEqual(view.placement.neighbours('peer-0', 3));
    expect(view.neighbours()).not.toContain('peer-0');
    view.markDown(view.neighbours()[0]!, 'x');
    expect(view.neighboursDown()).toEqual([view.neighbours()[0]]);
  });
});

describe('LiveRingView: failure detector', () => {
  let view: LiveRingView | undefined;
  afterEach(() => view?.stop());

  it('probes the ring neighbours at once and marks a refusing peer down immediately', async () => {
    view = newView();
    const p = controlledPing();
    view.startProbing({ ping: p.ping, intervalMs: 60_000, misses: 3 });
    expect(p.calls.map((c) => c.peerId).sort()).toEqual(view.neighbours());
    const target = view.neighbours()[0]!;
    p.settle(target, new ImeError('E_RPC_UNREACHABLE', 'connection refused'));
    await tick();
    expect(view.isLive(target)).toBe(false);
    expect(view.downDetails()[0]).toMatchObject({ peerId: target, reason: 'connection refused' });
  });

  it('needs `misses` consecutive timeouts; an answer in between resets the count', async () => {
    view = newView();
    const p = controlledPing();
    view.startProbing({ ping: p.ping, intervalMs: 60_000, misses: 3 });
    const target = view.neighbours()[0]!;
    const timeout = () => new ImeError('E_RPC_TIMEOUT', 'no answer');
    p.settle(target, timeout());
    await tick();
    void view.probeNow(target);
    p.settle(target, timeout());
    await tick();
    void view.probeNow(target);
    p.settle(target, 'ok');
    await tick();
    for (let i = 0; i < 2; i++) {
      void view.probeNow(target);
      p.settle(target, timeout());
      await tick();
    }
    expect(view.isLive(target)).toBe(true);
    const last = view.probeNow(target);
    p.settle(target, timeout());
    await last;
    expect(view.isLive(target)).toBe(false);
  });

  it('a timed-out request counts as a missed probe: down only at `misses` in a row, and any answer starts the count again', async () => {
    view = newView();
    const p = controlledPing();
    view.startProbing({ ping: p.ping, intervalMs: 60_000, misses: 3 });
    const target = view.neighbours()[0]!;
    p.settle(target, 'ok');
    await tick();
    view.reportTimeout(target, 'E_RPC_TIMEOUT: slow');
    view.reportTimeout(target, 'E_RPC_TIMEOUT: slow');
    view.heardFrom(target);
    view.reportTimeout(target, 'E_RPC_TIMEOUT: slow');
    view.reportTimeout(target, 'E_RPC_TIMEOUT: slow');
    expect(view.isLive(target)).toBe(true);
    // A timed-out probe and a timed-out request add up.
    const probe = view.probeNow(target);
    p.settle(target, new ImeError('E_RPC_TIMEOUT', 'could not connect within 5000 ms'));
    await probe;
    expect(view.isLive(target)).toBe(false);
    expect(view.downDetails()[0]).toMatchObject({ peerId: target, reason: expect.stringContaining('3 probes or requests got no answer') });
    // Without a prober the peer's default of two misses applies; self and strangers are ignored.
    const idle = newView();
    const other = idle.neighbours()[0]!;
    idle.reportTimeout(other, 'E_RPC_TIMEOUT');
    expect(idle.isLive(other)).toBe(true);
    idle.reportTimeout(other, 'E_RPC_TIMEOUT');
    expect(idle.isLive(other)).toBe(false);
    idle.reportTimeout(idle.self, 'E_RPC_TIMEOUT');
    idle.reportTimeout(idle.self, 'E_RPC_TIMEOUT');
    idle.reportTimeout('12D3KooWstranger', 'E_RPC_TIMEOUT');
    expect(idle.isLive(idle.self)).toBe(true);
  });

  it('keeps one probe in flight per peer', async () => {
    view = newView();
    const p = controlledPing();
    view.startProbing({ ping: p.ping, intervalMs: 5, misses: 3 });
    const n = view.neighbours().length;
    await new Promise((r) => setTimeout(r, 50)); // several rounds, all probes still unanswered
    expect(p.calls).toHaveLength(n);
    const target = view.neighbours()[0]!;
    const a = view.probeNow(target);
    const b = view.probeNow(target);
    expect(a).toBe(b);
    expect(p.calls).toHaveLength(n);
  });

  it('probes members seen down, even beyond the neighbours, and notices them return', async () => {
    // A ring big enough that some member is not a neighbour of self.
    const many = Array.from({ length: 20 }, (_, i) => `peer-${i}`);
    view = new LiveRingView({ self: 'peer-0', members: roster(many), parameters: PARAMS });
    const far = many.find((p) => p !== 'peer-0' && !view!.neighbours().includes(p))!;
    expect(far).toBeDefined();
    view.markDown(far, 'request failed');
    const answered = new Set<string>();
    view.startProbing({
      ping: async (peerId) => {
        answered.add(peerId);
      },
      intervalMs: 10,
      misses: 3,
    });
    await until(() => view!.isLive(far), `${far} to come back`);
    expect(answered.has(far)).toBe(true);
    expect(view.downPeers()).toEqual([]);
  });

  it('skips the next probe of a neighbour heard from since the last round, but not of a peer seen down', async () => {
    view = newView();
    const rounds: string[][] = [];
    let current: string[] = [];
    const [busy, gone, quiet] = view.neighbours() as [string, string, string];
    view.markDown(gone, 'test');
    view.startProbing({
      ping: async (peerId) => {
        current.push(peerId);
        if (peerId === gone) throw new ImeError('E_RPC_UNREACHABLE', 'refused');
      },
      intervalMs: 40,
      misses: 3,
    });
    // Rounds at 40 ms: the busy neighbour keeps talking to us; the others only answer probes.
    const chatter = setInterval(() => {
      view!.heardFrom(busy);
      view!.heardFrom(gone);
    }, 5);
    try {
      for (let i = 0; i < 3; i++) {
        current = [];
        await new Promise((r) => setTimeout(r, 40));
        rounds.push(current);
      }
    } finally {
      clearInterval(chatter);
    }
    const later = rounds.slice(1).flat();
    expect(later).not.toContain(busy);
    expect(later).toContain(gone);
    // A probe's own answer is no reason to skip the next probe.
    expect(later.filter((p) => p === quiet).length).toBeGreaterThanOrEqual(1);
  });

  it('probeNow without a detector, on self or on a stranger does nothing', async () => {
    view = newView();
    await view.probeNow('peer-1');
    const p = controlledPing();
    view.startProbing({ ping: p.ping, intervalMs: 60_000, misses: 1 });
    const count = p.calls.length;
    await view.probeNow('peer-0');
    await view.probeNow('stranger');
    expect(p.calls).toHaveLength(count);
  });

  it('ignores probe outcomes after stop()', async () => {
    view = newView();
    const p = controlledPing();
    view.startProbing({ ping: p.ping, intervalMs: 60_000, misses: 1 });
    const target = view.neighbours()[0]!;
    view.stop();
    p.settle(target, new ImeError('E_RPC_UNREACHABLE', 'refused'));
    await tick();
    expect(view.isLive(target)).toBe(true);
  });
});
