import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { didRecordKey, parseE164 } from '@ime/core';
import { type Member, type Mode, RingHarness, freePorts, waitFor } from '@ime/harness';
import { type DidLookupReport, type PublishReport, RingPlacement } from '@ime/peer';
import { AdminClient } from '@ime/runtime';
import { ime } from '@ime/wire';
import { type Row, type Suite, type SuiteOptions, type Target, median, round3, target } from '../harness.js';
import { Cleanup } from '../ring/cleanup.js';
import { PRODUCTION_TUNING } from '../ring/production.js';
import { type Anchor, runAnchor, setUpAnchor } from '../ring/opendht.js';
import { ringDetails } from '../ring/report.js';
import {
  anchorPercentile,
  deal,
  errorCode,
  expandPattern,
  histogram,
  latencies,
  numbers,
  parseProcStatTicks,
  parseProcStatus,
  patterns,
  roles,
  sample,
} from '../ring/stats.js';

/**
 * The ring (issue #4): fetch and store latency next to OpenDHT at the same peer count, in the same
 * run; bulk publication; memory per peer holding a million records; and how soon a newly admitted
 * peer serves. Rings are real: a bootstrap and N peers as separate processes (`ime peer start`), or —
 * the "ours-inprocess" rows — all in this process, as the OpenDHT anchor runs its nodes.
 *
 * Honesty rules: every system in a comparison does the same number of operations; each timed fetch
 * reads a number its reader has never read before (no record a real reader would not have cached);
 * failures are counted in the rows, never dropped; timers are the product's defaults (not the
 * harness's short test timers), except the configuration poll interval the harness sets to 1 s.
 *
 * Steady state: a peer in service has JIT-compiled code and open connections, a freshly started
 * Node process has neither (its first fetches are 2–3× slower). So the timed stores and fetches
 * follow a warm-up on *other* numbers — every peer fetches, the publishers store — and the first
 * stores and fetches of the fresh ring, timed the same way, are reported next to them (`cold_*`).
 */

interface Sizes {
  /** Ring sizes of the latency comparison. */
  readonly peers: readonly number[];
  /** The anchor's OPS: puts and gets per anchor run. */
  readonly ops: number;
  /**
   * Anchor runs per ring size; ours times ops × rounds stores and fetches, so both systems do the
   * same number of operations, and the anchor's figure is the median of its runs (one run is noisy:
   * its p95 at 32 nodes ranged 0.7–1.9 ms between runs here).
   */
  readonly rounds: number;
  readonly warmup: {
    /** Patterns of 3 X published for the fetch warm-up. */
    readonly poolPatterns: number;
    /** Untimed fetches by every peer process. */
    readonly fetchesPerProcess: number;
    /** Untimed fetches in all of an in-process ring (one process, so one JIT). */
    readonly fetchesInProcess: number;
    /** Untimed single-DID stores by each publisher. */
    readonly storesPerPublisher: number;
  };
  /** The ring size whose comparison with OpenDHT is a target. */
  readonly compareAt: number;
  /** Bulk publication: patterns of 3 X (1 000 DIDs each) from one peer into a ring of `peers`. */
  readonly bulk: { readonly peers: number; readonly patterns: number };
  /** Records every peer of a 3-peer ring (N = 3) holds for the memory measurement. */
  readonly memoryRecords: number;
  /** Admission: ring size, DIDs published before the new peer comes, fetch sample. */
  readonly admission: { readonly peers: number; readonly dids: number; readonly sample: number };
}

const FULL: Sizes = {
  peers: [8, 32, 64],
  ops: 200,
  rounds: 3,
  warmup: { poolPatterns: 4, fetchesPerProcess: 1500, fetchesInProcess: 6000, storesPerPublisher: 150 },
  compareAt: 32,
  bulk: { peers: 16, patterns: 100 },
  memoryRecords: 1_000_000,
  admission: { peers: 32, dids: 20_000, sample: 200 },
};

const QUICK: Sizes = {
  peers: [8],
  ops: 50,
  rounds: 1,
  warmup: { poolPatterns: 1, fetchesPerProcess: 250, fetchesInProcess: 1000, storesPerPublisher: 25 },
  compareAt: 8,
  bulk: { peers: 8, patterns: 10 },
  memoryRecords: 100_000,
  admission: { peers: 8, dids: 2_000, sample: 50 },
};

const TUNING = PRODUCTION_TUNING;
/** How long the memory measurement lets an idle ring settle after the publication before reading RSS. */
const HOLDING_SETTLE_MS = 30_000;

/** Publishers and readers per ring (each a different peer). */
const ROLE_COUNT = 4;
/** How long a newly admitted peer gets before the measurement gives up. */
const ADMISSION_LIMIT_MS = 60_000;
const BULK_VERIFY_SAMPLE = 1000;
/**
 * Ports for ring members come from below the kernel's ephemeral range (32768–60999 here), where the
 * source ports of the ring's own outgoing connections cannot take them between choice and use.
 */
const PORT_FLOOR = 20_000;
const PORT_CEILING = 32_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Clock ticks per second of /proc/<pid>/stat. */
const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const v = Number(r.stdout?.trim());
  return Number.isFinite(v) && v > 0 ? v : 100;
})();

function cpuTicks(pid: number): number {
  try {
    return parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? 0;
  } catch {
    return 0;
  }
}

/**
 * CPU the ring's processes use while nobody asks anything of it (liveness probes, configuration
 * polls), in cores: what the timed operations compete with on this machine.
 */
async function idleCpuCores(ring: RingHarness, ms: number): Promise<number> {
  const pids = [...ring.bootstraps, ...ring.peers].map((m) => m.pid).filter((p): p is number => p !== undefined);
  const before = pids.map(cpuTicks);
  const start = performance.now();
  await sleep(ms);
  const elapsed = (performance.now() - start) / 1000;
  const used = pids.reduce((sum, pid, i) => sum + cpuTicks(pid) - (before[i] ?? 0), 0) / CLOCK_TICKS;
  return round3(used / elapsed);
}

interface Counters {
  counters: Record<string, number>;
}

function isPortTaken(err: unknown): boolean {
  return err instanceof Error && /EADDRINUSE/.test(err.message);
}

/** A member that could not reach the bootstrap in time while it started (a busy machine), e.g. E_RPC_UNREACHABLE. */
function isUnreachable(err: unknown): boolean {
  return err instanceof Error && /E_RPC_UNREACHABLE|E_RPC_TIMEOUT|E_ENROLL_UNREACHABLE|cannot reach/.test(`${errorCode(err)} ${err.message}`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] ?? err.message : String(err);
}

/** An admin client with a long timeout, for publications and lookups that take longer than the default 30 s. */
async function slowAdmin(m: Member): Promise<AdminClient> {
  return AdminClient.fromTokenFile(m.ready.admin, m.ready.tokenFile, { timeoutMs: 900_000 });
}

/** What the latency measurement needs from a ring: the same steps for peer processes and in-process peers. */
interface Driver {
  /** How single stores are timed. */
  readonly storeVia: string;
  readonly storeNote: string;
  readonly fetchVia: string;
  readonly fetchNote: string;
  readonly pingOp: string;
  readonly pingNote: string;
  /** One number from peer i: its duration, and the error code when it was not published. */
  publishOne(i: number, number: string): Promise<{ ms: number; code?: string }>;
  publishPatterns(i: number, patterns: readonly string[]): Promise<PublishReport>;
  lookup(i: number, numbers: readonly string[], concurrency: number, timings: boolean): Promise<DidLookupReport>;
  ping(i: number, peerId: string, count: number): Promise<number[]>;
}

async function processDriver(ring: RingHarness): Promise<Driver> {
  const admins = await Promise.all(ring.peers.map((p) => p.admin()));
  const slow = await Promise.all(ring.peers.map((p) => slowAdmin(p)));
  const admin = (i: number) => admins[i] as AdminClient;
  return {
    storeVia: 'admin-http',
    storeNote: 'POST /v1/dids with one number, timed by the client around the HTTP round trip (the peer reports no store timing); nothing subtracted',
    fetchVia: 'in-peer',
    fetchNote: 'POST /v1/dids/lookup {concurrency: 1, timings: true}: each fetch timed inside the reading peer process',
    pingOp: 'ping',
    pingNote: 'POST /v1/ring/ping: ring-protocol round trips on the kept stream between two peer processes, timed inside the sender',
    async publishOne(i, number) {
      const start = performance.now();
      try {
        const r = await admin(i).post<PublishReport>('/v1/dids', { vserviceId: 'bench', numbers: [number] });
        const ms = performance.now() - start;
        return r.published === 1 ? { ms } : { ms, code: r.failed[0]?.code ?? 'E_NOT_PUBLISHED' };
      } catch (err) {
        return { ms: performance.now() - start, code: errorCode(err) };
      }
    },
    publishPatterns: (i, pats) => (slow[i] as AdminClient).post<PublishReport>('/v1/dids', { vserviceId: 'bench', patterns: pats }),
    lookup: (i, nums, concurrency, timings) => (slow[i] as AdminClient).post<DidLookupReport>('/v1/dids/lookup', { numbers: nums, concurrency, timings }),
    ping: async (i, peerId, count) => (await admin(i).post<{ latenciesMs: number[] }>('/v1/ring/ping', { peerId, count })).latenciesMs,
  };
}

function inProcessDriver(ring: RingHarness): Driver {
  const node = (i: number) => {
    const nd = (ring.peers[i] as Member).node;
    if (!nd) throw new Error('an in-process ring member has no node');
    return nd;
  };
  return {
    storeVia: 'in-process',
    storeNote: 'node.publish(vserviceId, [one number]), timed around the call',
    fetchVia: 'in-process',
    fetchNote: 'node.lookupDids(numbers, {concurrency: 1, timings: true})',
    pingOp: 'ping-inprocess',
    pingNote: 'node.pingPeer: ring-protocol round trips on the kept stream, both peers in this process',
    async publishOne(i, number) {
      const start = performance.now();
      try {
        const r = await node(i).publish('bench', [number]);
        const ms = performance.now() - start;
        return r.published === 1 ? { ms } : { ms, code: r.failed[0]?.code ?? 'E_NOT_PUBLISHED' };
      } catch (err) {
        return { ms: performance.now() - start, code: errorCode(err) };
      }
    },
    publishPatterns: (i, pats) => node(i).publish('bench', pats.flatMap(expandPattern)),
    lookup: (i, nums, concurrency, timings) => node(i).lookupDids(nums, { concurrency, timings }),
    ping: (i, peerId, count) => node(i).pingPeer(peerId, count),
  };
}

interface StoreRound {
  readonly ms: number[];
  readonly errors: string[];
  readonly published: string[];
}

interface FetchRound {
  readonly ms: number[];
  readonly notFound: number;
  readonly errors: string[];
}

class RingBench {
  readonly #o: SuiteOptions;
  readonly #s: Sizes;
  readonly #cleanup: Cleanup;
  readonly rows: Row[] = [];
  readonly targets: Target[] = [];
  /** Our timed fetch samples per (system, peers), for the comparison with the anchor. */
  readonly #fetchSamples = new Map<string, number[]>();
  readonly #anchorFetch = new Map<number, { p50: number; p95: number }>();
  #anchor: Anchor | undefined;
  #anchorSkipped: string | undefined;
  /** Members started again because a port was taken or the bootstrap did not answer in time. */
  startRetries = 0;

  constructor(options: SuiteOptions, cleanup: Cleanup) {
    this.#o = options;
    this.#s = options.quick ? QUICK : FULL;
    this.#cleanup = cleanup;
  }

  #progress(line: string): void {
    this.#o.progress(`ring: ${line}`);
  }

  /**
   * Starts a member, up to three times: when its port was taken meanwhile (EADDRINUSE) it moves to new
   * free ports; when it could not reach the bootstrap in time (a machine busy starting the others) it
   * simply starts again. Each retry is counted in the rows (`start_retries`).
   */
  async #startMember(m: Member): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await m.start();
        return;
      } catch (err) {
        if (attempt >= 3 || !(isPortTaken(err) || isUnreachable(err))) throw err;
        this.startRetries++;
        if (isUnreachable(err)) {
          this.#progress(`${m.name}: did not start (${errorCode(err)}: ${(err as Error).message.split('\n')[0] ?? ''}); starting it again`);
          await sleep(1000);
          continue;
        }
        const [ringPort, adminPort] = await freePorts(2);
        const config = JSON.parse(readFileSync(m.configFile, 'utf8')) as { listen: string[]; admin: Record<string, unknown> };
        config.listen = [`/ip4/127.0.0.1/tcp/${String(ringPort)}`];
        config.admin = { ...config.admin, listen: `127.0.0.1:${String(adminPort)}` };
        writeFileSync(m.configFile, `${JSON.stringify(config, null, 2)}\n`);
        this.#progress(`${m.name}: its port was taken (EADDRINUSE); retrying on ports ${String(ringPort)}/${String(adminPort)}`);
      }
    }
  }

  /**
   * A ring of `peers` peers in its own temporary directory, registered for clean-up before any process
   * starts (the bootstrap first, then the peers a few at a time), and converged.
   */
  async #startRing(peers: number, mode: Mode): Promise<{ ring: RingHarness; stop: () => Promise<void> }> {
    const started = performance.now();
    const dir = mkdtempSync(join(tmpdir(), 'ime-bench-ring-'));
    const removeDir = this.#cleanup.add(`temporary directory ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    let ring: RingHarness | undefined;
    for (let attempt = 1; ring === undefined; attempt++) {
      const span = 2 * (peers + 4);
      const basePort = PORT_FLOOR + Math.floor(Math.random() * (PORT_CEILING - PORT_FLOOR - span));
      try {
        ring = await RingHarness.start({ peers: 0, mode, dir: join(dir, `ring-${attempt}`), basePort, tuning: TUNING, logLevel: 'warn' });
      } catch (err) {
        if (attempt < 3 && isPortTaken(err)) continue;
        await removeDir();
        throw err;
      }
    }
    const theRing = ring;
    const stopRing = this.#cleanup.add(`${peers}-peer ring (${mode})`, () => theRing.stop());
    const stop = async () => {
      const t = performance.now();
      await stopRing();
      await removeDir();
      this.#progress(`stopped the ${peers}-peer ring in ${Math.round(performance.now() - t)} ms`);
    };
    try {
      const members: Member[] = [];
      for (let i = 0; i < peers; i++) members.push(await theRing.createPeer({ start: false }));
      // Four at a time: more processes compete for the two cores while they start, and in one
      // process more peers make the bootstrap answer enrolments later than the connect timeout.
      const batch = 4;
      for (let i = 0; i < members.length; i += batch) await Promise.all(members.slice(i, i + batch).map((m) => this.#startMember(m)));
      await theRing.converge({ timeoutMs: 180_000 });
    } catch (err) {
      await stop();
      throw err;
    }
    this.#progress(`${peers} peers (${mode}) up and converged in ${Math.round(performance.now() - started)} ms`);
    return { ring: theRing, stop };
  }

  async run(): Promise<void> {
    const s = this.#s;
    this.#progress(
      this.#o.quick
        ? `quick sizes: ${s.peers.join(', ')} peers, ${s.ops} timed stores and fetches per system, bulk ${s.bulk.patterns * 1000} DIDs into ${s.bulk.peers} peers, ` +
            `memory with ${s.memoryRecords} records, admission into ${s.admission.peers} peers holding ${s.admission.dids} DIDs`
        : `full sizes: ${s.peers.join(', ')} peers, ${s.ops * s.rounds} timed stores and fetches per system (OpenDHT: ${s.rounds} runs of ${s.ops})`,
    );
    const setup = setUpAnchor((line) => this.#o.progress(line));
    if (setup.ok) {
      this.#anchor = setup.anchor;
      this.#progress(`OpenDHT anchor: ${setup.anchor.script} (${setup.anchor.setup})`);
    } else {
      this.#anchorSkipped = setup.reason;
      this.#progress(`OpenDHT anchor SKIPPED: ${setup.reason}`);
    }

    for (const n of s.peers) {
      for (const mode of ['process', 'in-process'] as const) {
        const system = mode === 'process' ? 'ours' : 'ours-inprocess';
        await this.#guard(`${n} peers (${mode})`, (error) => {
          for (const op of ['store', 'fetch']) {
            if (!this.rows.some((r) => r.system === system && r.peers === n && r.op === op)) this.rows.push({ bench: 'ring', system, peers: n, op, n: 0, error });
          }
        }, () => this.#latency(n, mode));
      }
      await this.#guard(`OpenDHT at ${n} nodes`, (error) => {
        for (const op of ['store', 'fetch']) this.rows.push({ bench: 'ring', system: 'opendht', peers: n, op, n: 0, error });
      }, () => this.#openDht(n));
    }
    if (!s.peers.includes(s.bulk.peers)) {
      await this.#guard('bulk publication', (error) => this.#bulkFailed(error), async () => {
        const { ring, stop } = await this.#startRing(s.bulk.peers, 'process');
        try {
          await this.#bulk(ring, new Set());
        } finally {
          await stop();
        }
      });
    }
    await this.#guard('memory', (error) => {
      this.rows.push({ bench: 'ring', system: 'ours', peers: 3, op: 'rss', n: 0, error });
      this.targets.push(target(`ring RSS per peer process holding ${this.#s.memoryRecords.toLocaleString('en-US')} records (MB, worst replica)`, '<= 150', Number.NaN, false));
    }, () => this.#memory());
    this.#compareTargets();
  }

  /** Runs one measurement; a failure becomes rows saying so (via `onError`), and the others still run. */
  async #guard(what: string, onError: (error: string) => void, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      // After Ctrl-C nothing is measured any more: the clean-up is under way and the process exits.
      if (this.#cleanup.interrupted !== undefined) throw err;
      const error = `${errorCode(err)}: ${messageOf(err)}`;
      this.#progress(`${what} FAILED: ${error}`);
      onError(error);
    }
  }

  #bulkFailed(error: string): void {
    const { peers, patterns: count } = this.#s.bulk;
    this.rows.push({ bench: 'ring', system: 'ours', peers, op: 'bulk-publish', n: 0, error });
    this.targets.push(target(`ring bulk publish of ${(count * 1000).toLocaleString('en-US')} DIDs into ${peers} peers, all stored (ms)`, '<= 5000', Number.NaN, false));
  }

  // -----------------------------------------------------------------------------------------------
  // Latency

  async #stores(d: Driver, publishers: readonly number[], nums: readonly string[]): Promise<StoreRound> {
    const ms: number[] = [];
    const errors: string[] = [];
    const published: string[] = [];
    for (const [i, number] of nums.entries()) {
      const r = await d.publishOne(publishers[i % publishers.length] as number, number);
      if (r.code === undefined) {
        ms.push(r.ms);
        published.push(number);
      } else {
        errors.push(r.code);
      }
    }
    return { ms, errors, published };
  }

  /** Sequential fetches (concurrency 1), reader after reader; number i is read by reader i mod R. */
  async #fetches(d: Driver, readers: readonly number[], nums: readonly string[]): Promise<FetchRound> {
    const ms: number[] = [];
    let notFound = 0;
    const errors: string[] = [];
    for (const [r, list] of deal(nums, readers.length).entries()) {
      const answer = await d.lookup(readers[r] as number, list, 1, true);
      ms.push(...(answer.latenciesMs ?? []));
      notFound += answer.missing.length;
      errors.push(...answer.failed.map((f) => f.code));
    }
    return { ms, notFound, errors };
  }

  async #latency(n: number, mode: Mode): Promise<void> {
    const s = this.#s;
    this.startRetries = 0;
    const w = s.warmup;
    const system = mode === 'process' ? 'ours' : 'ours-inprocess';
    const label = `${n} peers (${mode === 'process' ? 'processes' : 'in-process'})`;
    const { ring, stop } = await this.#startRing(n, mode);
    try {
      const d = mode === 'process' ? await processDriver(ring) : inProcessDriver(ring);
      const { publishers, readers } = roles(n, ROLE_COUNT);
      const published = new Set<string>();
      const cold = numbers('650', 1, s.ops);
      const timed = numbers('650', 2, s.ops * s.rounds);
      const idle = mode === 'process' ? { idle_ring_cpu_cores: await idleCpuCores(ring, 3000) } : {};

      this.#progress(`${label}: cold: ${s.ops} single-DID stores, then ${s.ops} fetches, on the fresh ring`);
      const coldStores = await this.#stores(d, publishers, cold);
      const coldFetches = await this.#fetches(d, readers, cold);
      coldStores.published.forEach((x) => published.add(x));

      // Warm-up on other numbers: every peer fetches, the publishers store.
      const pool = patterns('660', w.poolPatterns);
      const poolAnswer = await d.publishPatterns(0, pool);
      const poolNumbers = pool.flatMap(expandPattern);
      const poolFailed = new Set(poolAnswer.failed.map((f) => f.number));
      poolNumbers.forEach((x) => poolFailed.has(x) || published.add(x));
      const perPeer = mode === 'process' ? w.fetchesPerProcess : Math.ceil(w.fetchesInProcess / n);
      this.#progress(`${label}: warm-up: ${w.storesPerPublisher} stores per publisher, ${perPeer} fetches by each of the ${n} peers (other numbers)`);
      const warmStart = performance.now();
      const warmStores = await Promise.all(publishers.map((p, j) => this.#stores(d, [p], numbers('652', j, w.storesPerPublisher))));
      warmStores.forEach((r) => r.published.forEach((x) => published.add(x)));
      const warmFetches = await Promise.all(
        ring.peers.map((_, i) => d.lookup(i, Array.from({ length: perPeer }, (_, j) => poolNumbers[(i * 997 + j) % poolNumbers.length] as string), 1, false)),
      );
      const warmFailed = warmFetches.reduce((sum, a) => sum + a.failed.length + a.missing.length, 0) + poolAnswer.failed.length;
      const warmup = {
        start_retries: this.startRetries,
        warmup_ms: round3(performance.now() - warmStart),
        warmup_fetches: perPeer * n,
        warmup_stores: w.storesPerPublisher * publishers.length,
        warmup_failures: warmFailed + warmStores.reduce((sum, r) => sum + r.errors.length, 0),
      };

      this.#progress(`${label}: timed: ${timed.length} single-DID stores from ${publishers.length} peers, then ${timed.length} fetches, one at a time, from ${readers.length} other peers`);
      const load = { loadavg_1m: round3(loadavg()[0] ?? Number.NaN) };
      const stores = await this.#stores(d, publishers, timed);
      stores.published.forEach((x) => published.add(x));
      const fetches = await this.#fetches(d, readers, timed);
      const pingMs: number[] = [];
      const counts = deal(timed, readers.length).map((l) => l.length);
      for (const [j, count] of counts.entries()) {
        if (count > 0) pingMs.push(...(await d.ping(readers[j] as number, (ring.peers[publishers[j] as number] as Member).peerId, count)));
      }

      const coldOf = (ms: number[]) => {
        const c = latencies(ms);
        return { cold_p50_ms: c.p50_ms, cold_p95_ms: c.p95_ms, cold_p99_ms: c.p99_ms, cold_n: c.n };
      };
      this.rows.push({
        bench: 'ring',
        system,
        peers: n,
        op: 'store',
        ...latencies(stores.ms),
        via: d.storeVia,
        note: d.storeNote,
        publishers: publishers.length,
        errors: stores.errors.length,
        ...(stores.errors.length > 0 ? { error_codes: histogram(stores.errors) } : {}),
        ...coldOf(coldStores.ms),
        cold_errors: coldStores.errors.length,
        ...warmup,
        ...idle,
        ...load,
      });
      this.#fetchSamples.set(`${system}:${n}`, fetches.ms);
      const fetchLat = latencies(fetches.ms);
      this.rows.push({
        bench: 'ring',
        system,
        peers: n,
        op: 'fetch',
        ...fetchLat,
        via: d.fetchVia,
        note: d.fetchNote,
        readers: readers.length,
        not_found: fetches.notFound,
        errors: fetches.errors.length,
        ...(fetches.errors.length > 0 ? { error_codes: histogram(fetches.errors) } : {}),
        ...coldOf(coldFetches.ms),
        cold_not_found: coldFetches.notFound,
        cold_errors: coldFetches.errors.length,
        ...warmup,
        ...idle,
        ...load,
      });
      const rtt = latencies(pingMs);
      this.rows.push({
        bench: 'ring',
        system: 'libp2p-rtt',
        peers: n,
        op: d.pingOp,
        ...rtt,
        via: d.fetchVia,
        note: d.pingNote,
        pairs: readers.length,
        fetch_p50_over_rtt_p50: round3(fetchLat.p50_ms / rtt.p50_ms),
        ...idle,
      });
      this.#progress(
        `${label}: fetch p50 ${fetchLat.p50_ms} ms (cold ${latencies(coldFetches.ms).p50_ms}), store p50 ${latencies(stores.ms).p50_ms} ms, ring ping p50 ${rtt.p50_ms} ms` +
          (mode === 'process' ? `; the idle ring used ${String(idle.idle_ring_cpu_cores)} cores` : ''),
      );

      if (mode === 'process' && n === s.bulk.peers) {
        await this.#guard('bulk publication', (error) => this.#bulkFailed(error), () => this.#bulk(ring, published));
      }
      if (mode === 'process' && n === s.admission.peers) {
        await this.#guard('admission', (error) => {
          this.rows.push({ bench: 'ring', system: 'ours', peers: n, op: 'admitted-peer-serves', n: 0, error });
          this.targets.push(target(`ring newly admitted peer serves, ${n}-peer ring (ms after admission)`, '<= 5000', Number.NaN, false));
        }, () => this.#admission(ring, published));
      }
    } finally {
      await stop();
    }
  }

  // -----------------------------------------------------------------------------------------------
  // The anchor

  async #openDht(n: number): Promise<void> {
    const { ops, rounds } = this.#s;
    if (!this.#anchor) {
      for (const op of ['store', 'fetch']) {
        this.rows.push({ bench: 'ring', system: 'opendht', peers: n, op, n: 0, skipped: this.#anchorSkipped ?? 'not set up' });
      }
      return;
    }
    const runs = [];
    for (let run = 1; run <= rounds; run++) {
      this.#progress(`OpenDHT, ${n} nodes in one process, run ${run} of ${rounds}: ${ops} puts and gets (${this.#anchor.python} ${this.#anchor.script} ${n} ${ops})`);
      const r = await runAnchor(this.#anchor, n, ops, this.#cleanup);
      if (r.peers !== n || r.ops !== ops) throw new Error(`the OpenDHT anchor ran N=${r.peers} ops=${r.ops}, not N=${n} ops=${ops}`);
      this.#progress(`OpenDHT ${n} nodes: get p50 ${r.getP50} ms p95 ${r.getP95} ms, put p50 ${r.putP50} ms p95 ${r.putP95} ms, failures ${r.fails}`);
      runs.push(r);
    }
    const common = {
      bench: 'ring',
      system: 'opendht',
      peers: n,
      n: ops * rounds,
      via: 'anchor',
      runs: rounds,
      failures_put_and_get: runs.reduce((sum, r) => sum + r.fails, 0),
      note:
        `shared/anchors/opendht_ring_bench.py N ${ops}, run ${rounds} time(s) (8 s of routing-table warm-up each, then put and get from different nodes); ` +
        'p50 and p95 are the medians of the runs\' figures; the script prints no p99 and rounds to 0.1 ms',
    };
    const store = { p50_ms: median(runs.map((r) => r.putP50)), p95_ms: median(runs.map((r) => r.putP95)) };
    const fetch = { p50_ms: median(runs.map((r) => r.getP50)), p95_ms: median(runs.map((r) => r.getP95)) };
    this.rows.push({ ...common, op: 'store', ...store, runs_p50_ms: runs.map((r) => r.putP50), runs_p95_ms: runs.map((r) => r.putP95) });
    this.rows.push({ ...common, op: 'fetch', ...fetch, runs_p50_ms: runs.map((r) => r.getP50), runs_p95_ms: runs.map((r) => r.getP95) });
    this.#anchorFetch.set(n, { p50: fetch.p50_ms, p95: fetch.p95_ms });
  }

  #compareTargets(): void {
    const n = this.#s.compareAt;
    const anchor = this.#anchorFetch.get(n);
    const why = anchor ? '' : ` (OpenDHT anchor skipped: ${this.#anchorSkipped ?? 'no result'})`;
    for (const [system, label] of [
      ['ours', 'ours (processes)'],
      ['ours-inprocess', 'ours (in one process)'],
    ] as const) {
      const samples = this.#fetchSamples.get(`${system}:${n}`) ?? [];
      // Both sides with the anchor's percentile rank and its 0.1 ms rounding.
      const p50 = Math.round(anchorPercentile(samples, 50) * 10) / 10;
      const p95 = Math.round(anchorPercentile(samples, 95) * 10) / 10;
      const r50 = anchor ? p50 / anchor.p50 : Number.NaN;
      const r95 = anchor ? p95 / anchor.p95 : Number.NaN;
      this.targets.push(
        target(`ring fetch p50 at ${n} peers, ${label} / OpenDHT${why}`, '<= 1', r50, anchor !== undefined && r50 <= 1),
        target(`ring fetch p95 at ${n} peers, ${label} / OpenDHT${why}`, '<= 1.5', r95, anchor !== undefined && r95 <= 1.5),
      );
    }
  }

  // -----------------------------------------------------------------------------------------------
  // Bulk publication

  async #bulk(ring: RingHarness, published: Set<string>): Promise<void> {
    const { peers, patterns: count } = this.#s.bulk;
    const dids = count * 1000;
    const bootstrap = await (ring.bootstraps[0] as Member).admin();
    const config = await bootstrap.get<{ parameters: { replicationFactor: number; storageQuota: number } }>('/v1/configuration');
    const { replicationFactor, storageQuota } = config.parameters;
    // The publisher's quota covers what it published already plus this (peer 0 published some of the
    // latency numbers when this ring is shared with that measurement).
    if (storageQuota < dids + published.size) {
      this.#progress(`raising the storage quota from ${storageQuota} to ${dids + published.size}`);
      await bootstrap.put('/v1/dht/global/storagequota', { quota: dids + published.size });
      await ring.converge({ timeoutMs: 60_000 });
    }
    const pats = patterns('212', count);
    const publisher = ring.peers[0] as Member;
    this.#progress(`bulk: publishing ${dids} DIDs (${count} patterns of 3 X) from one peer into ${peers} peers, N = ${replicationFactor}`);
    const start = performance.now();
    const answer = await (await slowAdmin(publisher)).post<PublishReport>('/v1/dids', { vserviceId: 'bulk', patterns: pats });
    const ms = performance.now() - start;
    const all = pats.flatMap(expandPattern);
    const failedSet = new Set(answer.failed.map((f) => f.number));
    for (const num of all) if (!failedSet.has(num)) published.add(num);

    // Read back a sample from another peer, so "published" is checked, not taken on trust.
    const check = sample(all, BULK_VERIFY_SAMPLE, 7);
    const reader = await slowAdmin(ring.peers[Math.floor(peers / 2)] as Member);
    const readBack = await reader.post<DidLookupReport>('/v1/dids/lookup', { numbers: check, concurrency: 32 });
    this.rows.push({
      bench: 'ring',
      system: 'ours',
      peers,
      op: 'bulk-publish',
      ops_per_sec: round3(answer.published / (ms / 1000)),
      ms: round3(ms),
      n: answer.requested,
      via: 'admin-http',
      note: `one POST /v1/dids with ${count} patterns of 3 X, timed by the client around the HTTP round trip`,
      replication_factor: replicationFactor,
      published: answer.published,
      failed: answer.failed.length,
      ...(answer.failed.length > 0 ? { failure_codes: histogram(answer.failed.map((f) => f.code)) } : {}),
      read_back_sample: check.length,
      read_back_found: readBack.found,
      read_back_errors: readBack.failed.length,
    });
    const ok = answer.published === dids && answer.failed.length === 0 && readBack.found === check.length;
    this.targets.push(
      target(`ring bulk publish of ${dids.toLocaleString('en-US')} DIDs into ${peers} peers, all stored (ms)`, '<= 5000', ms, ok && ms <= 5000),
    );
    this.#progress(`bulk: ${answer.published}/${dids} published in ${Math.round(ms)} ms; read back ${readBack.found}/${check.length}`);
  }

  // -----------------------------------------------------------------------------------------------
  // Admission

  async #admission(ring: RingHarness, published: Set<string>): Promise<void> {
    const { peers, dids, sample: sampleSize } = this.#s.admission;
    const publisher = ring.peers[0] as Member;
    const pats = patterns('305', Math.ceil(dids / 1000));
    this.#progress(`admission: publishing ${dids} DIDs into ${peers} peers`);
    const answer = await (await slowAdmin(publisher)).post<PublishReport>('/v1/dids', { vserviceId: 'admission', patterns: pats });
    const failedSet = new Set(answer.failed.map((f) => f.number));
    for (const num of pats.flatMap(expandPattern)) if (!failedSet.has(num)) published.add(num);

    // The ring salt does not change with the roster: keys are computed before the clock starts.
    const bootstrap = await (ring.bootstraps[0] as Member).admin();
    type Configuration = { roster: { peerId: string; virtualNodes: number }[]; parameters: { replicationFactor: number }; signed: string };
    const before = await bootstrap.get<Configuration>('/v1/configuration');
    const salt = ime.v1.RingConfiguration.decode(ime.v1.SignedRingConfiguration.decode(Buffer.from(before.signed, 'base64')).configuration).ringSalt;
    const all = [...published];
    const keys = all.map((num) => didRecordKey(salt, parseE164(num)));

    const member = await ring.createPeer({ start: false });
    this.#progress(`admission: starting ${member.name}`);
    const t0 = performance.now();
    await this.#startMember(member);
    const ready = performance.now();
    const admin = await slowAdmin(member);

    // Which of the published numbers the new peer now replicates: placement over the bootstrap's
    // roster, which lists the new peer as soon as it enrolled.
    const config = await bootstrap.get<Configuration>('/v1/configuration');
    if (!config.roster.some((e) => e.peerId === member.peerId)) throw new Error('the bootstrap configuration does not list the newly admitted peer');
    const placement = new RingPlacement(config.roster.map((e) => ({ peerId: e.peerId, virtualNodes: e.virtualNodes })));
    const n = config.parameters.replicationFactor;
    const mine = new Set(all.filter((_, i) => placement.replicasFor(keys[i] as Uint8Array, n).includes(member.peerId)));
    // Fetches from the new peer read numbers it does not replicate, so its own reads cannot fill its
    // store by read repair: what it holds comes from handoff alone.
    const probe = sample(
      all.filter((num) => !mine.has(num)),
      sampleSize,
      11,
    );
    this.#progress(`admission: ${member.name} should receive ${mine.size} of ${all.length} records; fetching ${probe.length} numbers from it until all are found`);

    let fetchOkMs: number | undefined;
    let handoffOkMs: number | undefined;
    let held = 0;
    let attempts = 0;
    let lastFetch: { found: number; failed: number } = { found: 0, failed: 0 };
    const deadline = ready + ADMISSION_LIMIT_MS;
    while ((fetchOkMs === undefined || handoffOkMs === undefined) && performance.now() < deadline) {
      await Promise.all([
        (async () => {
          if (fetchOkMs !== undefined) return;
          attempts++;
          try {
            const r = await admin.post<DidLookupReport>('/v1/dids/lookup', { numbers: probe, concurrency: 16 });
            lastFetch = { found: r.found, failed: r.failed.length };
            if (r.found === probe.length) fetchOkMs = performance.now() - ready;
          } catch {
            // not serving yet
          }
        })(),
        (async () => {
          if (handoffOkMs !== undefined) return;
          try {
            held = (await admin.get<Counters>('/v1/counters')).counters.IMEDistributedCacheStoredData ?? 0;
            if (held >= mine.size) handoffOkMs = performance.now() - ready;
          } catch {
            // not answering yet
          }
        })(),
      ]);
      await sleep(50);
    }
    const servedMs = fetchOkMs !== undefined && handoffOkMs !== undefined ? Math.max(fetchOkMs, handoffOkMs) : Number.NaN;
    this.rows.push({
      bench: 'ring',
      system: 'ours',
      peers,
      op: 'admitted-peer-serves',
      ms: Number.isNaN(servedMs) ? undefined : round3(servedMs),
      n: 1,
      note:
        `from the new peer's ready line (enrolled, admitted) until ${probe.length} fetches issued from it all succeed ` +
        `and it holds every record it now replicates (IMEDistributedCacheStoredData)`,
      dids_in_ring: all.length,
      enroll_ms: round3(ready - t0),
      fetch_ok_ms: fetchOkMs === undefined ? null : round3(fetchOkMs),
      handoff_ok_ms: handoffOkMs === undefined ? null : round3(handoffOkMs),
      expected_records: mine.size,
      held_records: held,
      fetch_attempts: attempts,
      last_fetch_found: lastFetch.found,
      last_fetch_failed: lastFetch.failed,
      ...(Number.isNaN(servedMs) ? { gave_up_after_ms: ADMISSION_LIMIT_MS } : {}),
    });
    this.targets.push(target(`ring newly admitted peer serves, ${peers}-peer ring (ms after admission)`, '<= 5000', servedMs, servedMs <= 5000));
    this.#progress(
      `admission: fetches ok after ${fetchOkMs === undefined ? 'never' : Math.round(fetchOkMs)} ms, handoff done after ${handoffOkMs === undefined ? `never (${held}/${mine.size})` : Math.round(handoffOkMs)} ms`,
    );
  }

  // -----------------------------------------------------------------------------------------------
  // Memory

  async #memory(): Promise<void> {
    const records = this.#s.memoryRecords;
    const { ring, stop } = await this.#startRing(3, 'process');
    try {
      const bootstrap = await (ring.bootstraps[0] as Member).admin();
      const config = await bootstrap.get<{ parameters: { replicationFactor: number; storageQuota: number } }>('/v1/configuration');
      const n = config.parameters.replicationFactor;
      if (config.parameters.storageQuota < records) {
        this.#progress(`memory: raising the storage quota from ${config.parameters.storageQuota} to ${records} through the bootstrap`);
        await bootstrap.put('/v1/dht/global/storagequota', { quota: records });
        await ring.converge({ timeoutMs: 60_000 });
        await waitFor(
          'every peer to see the raised quota',
          async () =>
            (await Promise.all(ring.peers.map(async (p) => (await (await p.admin()).get<Counters>('/v1/counters')).counters.IMEDistributedCacheQuota))).every(
              (q) => (q ?? 0) >= records,
            ),
          30_000,
        );
      }
      const idleRss = ring.peers.map((p) => (p.pid === undefined ? undefined : parseProcStatus(readFileSync(`/proc/${p.pid}/status`, 'utf8'))?.rssMB));
      const publisher = await slowAdmin(ring.peers[0] as Member);
      const perRequest = 100; // patterns of 1 000: the admin API's 100 000 numbers per request
      const totalPatterns = Math.ceil(records / 1000);
      this.#progress(`memory: publishing ${records} DIDs from one peer of 3 (N = ${n}), ${perRequest * 1000} per request`);
      const start = performance.now();
      let published = 0;
      const failures: string[] = [];
      for (let first = 0; first < totalPatterns; first += perRequest) {
        const answer = await publisher.post<PublishReport>('/v1/dids', { vserviceId: 'memory', patterns: patterns('415', Math.min(perRequest, totalPatterns - first), first) });
        published += answer.published;
        failures.push(...answer.failed.map((f) => f.code));
        this.#progress(`memory: ${published} published (${Math.round(performance.now() - start)} ms)`);
      }
      const publishMs = performance.now() - start;
      this.rows.push({
        bench: 'ring',
        system: 'ours',
        peers: 3,
        op: 'publish-for-memory',
        ops_per_sec: round3(published / (publishMs / 1000)),
        ms: round3(publishMs),
        n: records,
        via: 'admin-http',
        note: `${Math.ceil(totalPatterns / perRequest)} POST /v1/dids of up to ${perRequest} patterns of 3 X, one after another`,
        published,
        failed: failures.length,
        ...(failures.length > 0 ? { failure_codes: histogram(failures) } : {}),
      });

      // Every replica should hold every record (3 peers, N = 3); give in-flight writes a moment.
      const stored = async () =>
        Promise.all(ring.peers.map(async (p) => (await (await p.admin()).get<Counters>('/v1/counters')).counters.IMEDistributedCacheStoredData ?? 0));
      await waitFor('every peer to hold the published records', async () => (await stored()).every((c) => c >= published), 30_000, 500).catch(() => undefined);
      await sleep(2000);
      const rssSoon = ring.peers.map((p) => (p.pid === undefined ? undefined : parseProcStatus(readFileSync(`/proc/${p.pid}/status`, 'utf8'))));
      // Holding, not publishing: what stays resident once the ring is idle again (V8 collects and
      // gives memory back within seconds of the work stopping; the +2 s figures stay in the row).
      this.#progress(`memory: waiting ${HOLDING_SETTLE_MS / 1000} s for the idle ring before reading RSS`);
      await sleep(HOLDING_SETTLE_MS);
      const held = await stored();
      let worst = 0;
      let allHeld = true;
      let publisherRss = Number.NaN;
      for (const [i, p] of ring.peers.entries()) {
        const pid = p.pid;
        if (pid === undefined) throw new Error(`${p.name} has no process`);
        const mem = parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (!mem) throw new Error(`no VmRSS in /proc/${pid}/status`);
        const count = held[i] ?? 0;
        allHeld &&= count >= records;
        if (i === 0) publisherRss = mem.rssMB;
        else worst = Math.max(worst, mem.rssMB);
        this.rows.push({
          bench: 'ring',
          system: 'ours',
          peers: 3,
          op: 'rss',
          n: count,
          rss_mb: mem.rssMB,
          peak_rss_mb: mem.hwmMB,
          rss_anon_mb: mem.anonMB,
          rss_file_mb: mem.fileMB,
          rss_before_publication_mb: idleRss[i],
          rss_2s_after_publication_mb: rssSoon[i]?.rssMB,
          rss_anon_2s_after_publication_mb: rssSoon[i]?.anonMB,
          peer: p.name,
          role: i === 0 ? 'publisher and replica' : 'replica',
          note:
            `VmRSS of the peer process (MB of 2^20 bytes) ${HOLDING_SETTLE_MS / 1000 + 2} s after the publication (and at 2 s), with its anonymous and file-backed parts ` +
            '(the node binary and the mmap\'d database files are file-backed); n is the records it holds (IMEDistributedCacheStoredData)',
        });
        this.#progress(`memory: ${p.name} holds ${count} records, RSS ${mem.rssMB} MB (anonymous ${String(mem.anonMB)}, file ${String(mem.fileMB)}; peak ${mem.hwmMB} MB)`);
      }
      this.targets.push(
        target(`ring RSS per peer process holding ${records.toLocaleString('en-US')} records (MB, worst replica)`, '<= 150', worst, allHeld && worst <= 150),
        // The publishing peer holds the same records and has just sealed and sent all of them: shown
        // against the same goal rather than hidden.
        target(`ring RSS of the peer that published the ${records.toLocaleString('en-US')} records and holds them (MB)`, '<= 150', publisherRss, allHeld && publisherRss <= 150),
      );
    } finally {
      await stop();
    }
  }
}

export const ringSuite: Suite = {
  name: 'ring',
  description: 'fetch/store latency next to OpenDHT at 8/32/64 peers, bulk publish, memory per peer, admission',
  async run(options) {
    const cleanup = new Cleanup((line) => options.progress(`ring: ${line}`));
    cleanup.installSignalHandlers();
    const bench = new RingBench(options, cleanup);
    try {
      await bench.run();
    } finally {
      await cleanup.runAll();
      cleanup.removeSignalHandlers();
    }
    options.progress(`ring: the rows with their peer counts, cold figures and failures:\n${ringDetails(bench.rows)}`);
    return { rows: bench.rows, targets: bench.targets };
  },
};
