import { isImeError } from '@ime/core';
import type { RingLog } from './ring-types.js';
import { type PlacementMember, RingPlacement } from './ring-placement.js';
import type { RingParameters, RingView, RingViewChange, ViewSnapshot } from './ring-types.js';

/**
 * The ring as this peer sees it (RING.md "Placement"): placement over the admitted roster, and
 * liveness from this peer's own probes and from the data plane's failures. Every peer keeps its own
 * view; replica sets skip the peers this one sees down, and handoff / anti-entropy repair what moves.
 */

export interface LiveRingViewOptions {
  readonly self: string;
  /** The admitted roster (the caller has already dropped banned and expired members). */
  readonly members: readonly PlacementMember[];
  readonly parameters: RingParameters;
  /** Clock for "down since" (tests). */
  readonly now?: () => number;
  readonly log?: RingLog;
}

export interface ProbeOptions {
  /** Sends one liveness probe; rejects with an ImeError (E_RPC_UNREACHABLE, E_RPC_TIMEOUT, …). */
  readonly ping: (peerId: string) => Promise<void>;
  readonly intervalMs: number;
  /** Consecutive failed probes (other than refused connections) after which a peer is down. */
  readonly misses: number;
}

export interface DownPeer {
  readonly peerId: string;
  readonly sinceMs: number;
  readonly reason: string;
}

interface Prober {
  readonly options: ProbeOptions;
  readonly timer: ReturnType<typeof setInterval>;
}

function sameMembers(a: RingPlacement, b: readonly PlacementMember[]): boolean {
  const seen = new Set<string>();
  for (const m of b) {
    if (seen.has(m.peerId)) continue;
    seen.add(m.peerId);
    if (a.members.get(m.peerId)?.virtualNodes !== m.virtualNodes) return false;
  }
  return seen.size === a.members.size;
}

/** Missed answers before a peer is down when no prober says otherwise (the peer's pingMisses default). */
const DEFAULT_MISSES = 2;

export class LiveRingView implements RingView {
  readonly self: string;
  #parameters: RingParameters;
  #placement: RingPlacement;
  #version = 0;
  readonly #down = new Map<string, { sinceMs: number; reason: string }>();
  readonly #listeners = new Set<(change: RingViewChange) => void>();
  readonly #now: () => number;
  readonly #log: RingLog | undefined;
  #snapshot: ViewSnapshot | undefined;
  /** Snapshot before the first change of the current tick; set while an event is queued. */
  #pendingBefore: ViewSnapshot | undefined;
  #neighbours: string[] | undefined;

  #prober: Prober | undefined;
  readonly #inflight = new Map<string, Promise<void>>();
  readonly #misses = new Map<string, number>();
  /** When each member last answered us or sent us a request: proof of life that makes a probe redundant. */
  readonly #heard = new Map<string, number>();

  constructor(options: LiveRingViewOptions) {
    this.self = options.self;
    this.#parameters = options.parameters;
    this.#placement = new RingPlacement(options.members);
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
  }

  get parameters(): RingParameters {
    return this.#parameters;
  }

  get placement(): RingPlacement {
    return this.#placement;
  }

  get version(): number {
    return this.#version;
  }

  isMember(peerId: string): boolean {
    return this.#placement.members.has(peerId);
  }

  isLive(peerId: string): boolean {
    if (peerId === this.self) return true;
    return this.isMember(peerId) && !this.#down.has(peerId);
  }

  readonly #liveness = (peerId: string): boolean => this.isLive(peerId);

  replicasFor(key: Uint8Array): string[] {
    return this.#placement.replicasFor(key, this.#parameters.replicationFactor, this.#liveness);
  }

  preferenceList(key: Uint8Array): string[] {
    return this.#placement.preferenceList(key, this.#liveness);
  }

  /** A request to the peer failed to connect: it is down until a probe gets an answer. */
  reportUnreachable(peerId: string, reason: string): void {
    this.markDown(peerId, reason);
  }

  reportTimeout(peerId: string, reason: string): void {
    this.#missed(peerId, reason);
  }

  markDown(peerId: string, reason: string): void {
    // Self always counts as live: we are obviously running, and placement must keep our own ranges.
    if (peerId === this.self || !this.isMember(peerId) || this.#down.has(peerId)) return;
    this.#change(() => this.#down.set(peerId, { sinceMs: this.#now(), reason }));
    this.#log?.('warn', 'ring peer down', { peerId, reason });
  }

  markUp(peerId: string): void {
    this.#misses.delete(peerId);
    if (!this.#down.has(peerId)) return;
    this.#change(() => this.#down.delete(peerId));
    this.#log?.('info', 'ring peer up', { peerId });
  }

  /**
   * A new signed configuration: the admitted roster and its parameters. Liveness of members that stay
   * is kept; new members start live; members that left are forgotten.
   */
  update(members: readonly PlacementMember[], parameters: RingParameters): void {
    const membersChanged = !sameMembers(this.#placement, members);
    const nChanged = parameters.replicationFactor !== this.#parameters.replicationFactor;
    if (!membersChanged && !nChanged) {
      this.#parameters = parameters;
      return;
    }
    this.#change(() => {
      this.#parameters = parameters;
      if (membersChanged) {
        this.#placement = new RingPlacement(members);
        for (const peerId of [...this.#down.keys()]) if (!this.#placement.members.has(peerId)) this.#down.delete(peerId);
        for (const peerId of [...this.#misses.keys()]) if (!this.#placement.members.has(peerId)) this.#misses.delete(peerId);
        for (const peerId of [...this.#heard.keys()]) if (!this.#placement.members.has(peerId)) this.#heard.delete(peerId);
      }
    });
  }

  snapshot(): ViewSnapshot {
    if (!this.#snapshot) {
      const live = new Set<string>();
      for (const peerId of this.#placement.members.keys()) if (this.isLive(peerId)) live.add(peerId);
      this.#snapshot = Object.freeze({
        version: this.#version,
        placement: this.#placement,
        live: live as ReadonlySet<string>,
        replicationFactor: this.#parameters.replicationFactor,
      });
    }
    return this.#snapshot;
  }

  onChange(listener: (change: RingViewChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Members seen down, by peer id. */
  downPeers(): string[] {
    return [...this.#down.keys()].sort();
  }

  /** Members seen down, with since when and why (for the admin summary). */
  downDetails(): DownPeer[] {
    return this.downPeers().map((peerId) => ({ peerId, ...(this.#down.get(peerId) as { sinceMs: number; reason: string }) }));
  }

  /** The ring neighbours this peer probes: the peers within N tokens of its own tokens. */
  neighbours(): string[] {
    this.#neighbours ??= this.#placement.neighbours(this.self, this.#parameters.replicationFactor);
    return this.#neighbours;
  }

  /** Ring neighbours seen down (health turns YELLOW when there is one). */
  neighboursDown(): string[] {
    return this.neighbours().filter((p) => this.#down.has(p));
  }

  /**
   * Starts the failure detector: every `intervalMs`, probes the ring neighbours and every member
   * seen down (so a returning peer is noticed), at most one probe in flight per peer.
   */
  startProbing(options: ProbeOptions): void {
    this.stop();
    const timer = setInterval(() => this.#probeRound(), options.intervalMs);
    // A view nobody stopped must not keep the process alive.
    timer.unref?.();
    this.#prober = { options, timer };
    this.#probeRound();
  }

  /**
   * Probes one member now (a connection to it just closed). Resolves when the probe is done; joins the
   * probe already in flight, if any.
   */
  probeNow(peerId: string): Promise<void> {
    return this.#probe(peerId);
  }

  /** Stops probing; probes in flight no longer change the view. */
  stop(): void {
    if (this.#prober) clearInterval(this.#prober.timer);
    this.#prober = undefined;
  }

  /**
   * The peer answered one of our requests or sent us one: it is alive now, so the next probe round
   * skips it. On a busy ring the data plane replaces most probes; an idle ring still probes every
   * neighbour each interval. A peer seen down is still probed: only a probe brings it back.
   */
  heardFrom(peerId: string): void {
    // An answer ends a run of timeouts: misses count in a row, not over the peer's lifetime.
    this.#misses.delete(peerId);
    if (this.#prober) this.#heard.set(peerId, this.#now());
  }

  #probeRound(): void {
    const prober = this.#prober;
    if (!prober) return;
    const recent = this.#now() - prober.options.intervalMs;
    const targets = new Set<string>();
    for (const peerId of this.neighbours()) if ((this.#heard.get(peerId) ?? -Infinity) <= recent) targets.add(peerId);
    for (const peerId of this.#down.keys()) targets.add(peerId);
    for (const peerId of targets) void this.#probe(peerId);
  }

  #probe(peerId: string): Promise<void> {
    const prober = this.#prober;
    if (!prober || peerId === this.self || !this.isMember(peerId)) return Promise.resolve();
    const existing = this.#inflight.get(peerId);
    if (existing) return existing;
    const run = (async () => {
      try {
        await prober.options.ping(peerId);
        if (this.#prober !== prober) return;
        // The probe's own answer is not the data plane's proof of life: it must not skip the next probe.
        this.#heard.delete(peerId);
        this.markUp(peerId);
      } catch (err) {
        if (this.#prober !== prober) return;
        const code = isImeError(err) ? err.code : 'E_INTERNAL';
        const message = err instanceof Error ? err.message : String(err);
        // A refused connection is definite; a timeout may be a slow peer, so it takes several.
        if (code === 'E_RPC_UNREACHABLE') {
          this.#misses.delete(peerId);
          this.markDown(peerId, message);
          return;
        }
        this.#missed(peerId, `${code} ${message}`);
      }
    })().finally(() => this.#inflight.delete(peerId));
    this.#inflight.set(peerId, run);
    return run;
  }

  /** One more missed answer (probe or request); the peer is down once they reach the configured misses. */
  #missed(peerId: string, last: string): void {
    if (peerId === this.self || !this.isMember(peerId)) return;
    const misses = (this.#misses.get(peerId) ?? 0) + 1;
    this.#misses.set(peerId, misses);
    if (misses >= (this.#prober?.options.misses ?? DEFAULT_MISSES)) this.markDown(peerId, `${misses} probes or requests got no answer, last: ${last}`);
  }

  /**
   * Applies a change and queues one change event per tick: handoff compares the view before the first
   * change with the view after the last, instead of reacting to each step of a burst.
   */
  #change(apply: () => void): void {
    const before = this.snapshot();
    apply();
    this.#version++;
    this.#snapshot = undefined;
    this.#neighbours = undefined;
    if (this.#pendingBefore) return;
    this.#pendingBefore = before;
    queueMicrotask(() => {
      const first = this.#pendingBefore as ViewSnapshot;
      this.#pendingBefore = undefined;
      const change: RingViewChange = { before: first, after: this.snapshot() };
      for (const listener of [...this.#listeners]) {
        try {
          listener(change);
        } catch (err) {
          this.#log?.('warn', 'ring view listener failed', { error: err instanceof Error ? err.message : String(err) });
        }
      }
    });
  }
}
