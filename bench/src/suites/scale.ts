import '@ime/core/polyfill';
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Member, type ReadyInfo, RingHarness, freePorts, waitFor } from '@ime/harness';
import type { DidLookupReport, PublishReport } from '@ime/peer';
import { AdminClient } from '@ime/runtime';
import { createVapCertificate } from '@ime/vap';
import { type Row, type Suite, type SuiteOptions, type Target, round3, target } from '../harness.js';
import { type Cleanup, Interrupted, runWithCleanup } from '../ring/cleanup.js';
import { processCpuMs } from '../ring/proc.js';
import { PRODUCTION_TUNING } from '../ring/production.js';
import { deal, errorCode, expandPattern, histogram, latencies, parseProcStatus, patterns, roles, sample } from '../ring/stats.js';

/**
 * Scale (issue #8): a ring of 256 peers, many peers per process — each peer with its own libp2p host
 * on a real loopback socket, its own LevelDB database and admin listener, and the product's
 * production timers — into which several peers publish 1 000 000 DIDs at once, through the admin API
 * as an operator's tooling does (`POST /v1/dids` with patterns, the path of the ring suite's bulk
 * row). Then non-publishing peers fetch a sample of the published numbers, one at a time and
 * concurrently (`POST /v1/dids/lookup`, each fetch timed inside the reading peer), and the suite
 * reports the publication's time, the fetch latencies, the memory of the processes (and per peer),
 * and the databases' bytes on disk per peer.
 *
 * Why several processes: memory would allow all 256 peers in one process (a peer there costs some
 * ten MB), but not its single event loop. Every roster change is pushed to every peer and gossiped on
 * to each one's ≈ 30 ring neighbours, each copy decoded and verified — a few ms for a peer in its own
 * process, seconds of blocking for 256 in one loop. One process starting its peers as an operator
 * would (automatic admission) slowed with every batch and failed from about the 100th peer on: those
 * starting could not reach the bootstrap within the connect timeout. So the peers live in worker
 * processes of 64 (this module, forked with --scale-worker), which also use both cores, the bootstrap
 * in this process, and the suite talks to every peer through its admin API, as to peer processes. The
 * ring uses manual admission: once every peer has enrolled, the suite admits them in waves of 32
 * (spread over the processes), the ring converging between waves — a handful of configurations
 * instead of one per enrolment, and never thousands of new connections at once.
 */

interface Sizes {
  readonly peers: number;
  readonly peersPerProcess: number;
  /** Peers publishing at once, each its own share of the DIDs (within the default quota of 100 000). */
  readonly publishers: number;
  readonly didsPerPublisher: number;
  /** Timed fetches in each of the two runs (concurrency 1, then concurrent). */
  readonly fetchSample: number;
  /** Untimed fetches per reader first, on other numbers: the fetch path is cold after publishing. */
  readonly warmupPerReader: number;
  /** Fetches in flight per reader in the concurrent run. */
  readonly concurrencyPerReader: number;
  /**
   * Bounds on a run that cannot keep up (an overloaded machine): after this long no new publication
   * request, and no new lookup request, is sent; what was not sent is counted as such in the rows.
   */
  readonly publishLimitMs: number;
  readonly fetchLimitMs: number;
}

const FULL: Sizes = {
  peers: 256,
  peersPerProcess: 64,
  publishers: 10,
  didsPerPublisher: 100_000,
  fetchSample: 2000,
  warmupPerReader: 100,
  concurrencyPerReader: 8,
  publishLimitMs: 20 * 60_000,
  fetchLimitMs: 10 * 60_000,
};
const QUICK: Sizes = {
  peers: 64,
  peersPerProcess: 32,
  publishers: 4,
  didsPerPublisher: 25_000,
  fetchSample: 1000,
  warmupPerReader: 50,
  concurrencyPerReader: 8,
  publishLimitMs: 5 * 60_000,
  fetchLimitMs: 3 * 60_000,
};
/** Numbers per lookup request at concurrency 1 (per reader in the concurrent run: × its concurrency). */
const LOOKUP_CHUNK = 25;

/**
 * Patterns of 3 X per publication request (the admin API takes up to 100): 5 000 DIDs. The admin
 * client's HTTP layer waits at most 300 s for an answer's headers whatever its own timeout, and with
 * 256 peers on two cores a publisher's share of the ring's throughput can be 100 DIDs/s.
 */
const PATTERNS_PER_REQUEST = 5;
/** Peers a worker starts at once: more make the bootstrap answer enrolments later than the timeout. */
const START_BATCH = 16;
/**
 * Peers admitted at once, the ring converging between waves. All 256 at once open ≈ 4 000 connections
 * together; on two cores the handshakes, configuration copies and probes then outlast the timeouts,
 * connections are dropped and dialled again, and the ring did not settle within minutes here.
 */
const ADMISSION_WAVE = 32;
/** How long one admission wave may take to converge. */
const CONVERGE_LIMIT_MS = 600_000;
/** Checks in a row, a second apart, that must find the ring converged: a whole probe interval (5 s). */
const STABLE_CHECKS = 6;
/** How long the idle ring's CPU is sampled. */
const IDLE_SAMPLE_MS = 5000;
/** Tries to start a member before the run fails (each retry is counted in the ring-start row). */
const START_ATTEMPTS = 5;
const PROGRESS_EVERY_MS = 10_000;
const AREA = '415';
const MB = 2 ** 20;
const WORKER_FLAG = '--scale-worker';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Several lookup answers of one reader together, and the numbers it never asked for. */
interface Lookups {
  found: number;
  readonly missing: string[];
  readonly failed: { number: string; code: string }[];
  readonly latenciesMs: number[];
  notSent: number;
}

/** Several readers' lookups: the fetch latencies, how many were found, and the row fields saying so. */
function lookupOutcome(answers: readonly Lookups[], limitMs: number): { found: number; timing: ReturnType<typeof latencies>; fields: Record<string, unknown> } {
  const found = answers.reduce((total, a) => total + a.found, 0);
  const errors = answers.flatMap((a) => a.failed.map((f) => f.code));
  const notSent = answers.reduce((total, a) => total + a.notSent, 0);
  return {
    found,
    timing: latencies(answers.flatMap((a) => a.latenciesMs)),
    fields: {
      found,
      not_found: answers.reduce((total, a) => total + a.missing.length, 0),
      errors: errors.length,
      ...(errors.length > 0 ? { error_codes: histogram(errors) } : {}),
      ...(notSent > 0 ? { not_sent: notSent, gave_up_after_ms: limitMs } : {}),
    },
  };
}

function mb(bytes: number): number {
  return round3(bytes / MB);
}

/** Bytes of the files under `dir` (a LevelDB directory: tables, log, manifest). */
export function bytesOnDisk(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += bytesOnDisk(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

/** Mean, smallest and largest of some figures (NaN for none). */
export function spread(values: readonly number[]): { mean: number; min: number; max: number } {
  if (values.length === 0) return { mean: Number.NaN, min: Number.NaN, max: Number.NaN };
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return { mean: round3(sum / values.length), min: round3(min), max: round3(max) };
}

/**
 * The requests (lists of at most PATTERNS_PER_REQUEST patterns of 3 X) publisher `j` sends for its
 * `didsPerPublisher` DIDs; publishers' numbers are disjoint.
 */
export function publisherRequests(j: number, didsPerPublisher: number): string[][] {
  if (!Number.isSafeInteger(didsPerPublisher) || didsPerPublisher <= 0 || didsPerPublisher % 1000 !== 0) {
    throw new RangeError('DIDs per publisher must be a positive multiple of 1 000 (patterns of 3 X)');
  }
  const count = didsPerPublisher / 1000;
  const out: string[][] = [];
  for (let first = 0; first < count; first += PATTERNS_PER_REQUEST) out.push(patterns(AREA, Math.min(PATTERNS_PER_REQUEST, count - first), j * count + first));
  return out;
}

/** Peer indexes 0…peers−1 in consecutive groups of at most `perProcess`, one group per process. */
export function processGroups(peers: number, perProcess: number): number[][] {
  if (!(peers > 0) || !(perProcess > 0)) throw new RangeError('peers and peers per process must be positive');
  const groups: number[][] = [];
  for (let first = 0; first < peers; first += perProcess) groups.push(Array.from({ length: Math.min(perProcess, peers - first) }, (_, i) => first + i));
  return groups;
}

/**
 * Peer indexes in admission waves of at most `size`, each wave spread over the whole list (so over
 * every process): wave k holds the indexes i with i mod waves = k.
 */
export function admissionWaves(peers: number, size: number): number[][] {
  if (!(peers > 0) || !(size > 0)) throw new RangeError('peers and the wave size must be positive');
  const count = Math.ceil(peers / size);
  return Array.from({ length: count }, (_, k) => Array.from({ length: peers }, (_, i) => i).filter((i) => i % count === k));
}

interface MemoryFigures {
  readonly rss_mb: number;
  readonly peak_rss_mb: number;
  readonly rss_anon_mb: number | undefined;
  readonly rss_file_mb: number | undefined;
  readonly heap_used_mb: number;
  readonly heap_total_mb: number;
  readonly external_mb: number;
  readonly array_buffers_mb: number;
}

function memoryNow(): MemoryFigures {
  const u = process.memoryUsage();
  const status = parseProcStatus(readFileSync('/proc/self/status', 'utf8'));
  return {
    rss_mb: mb(u.rss),
    peak_rss_mb: status?.hwmMB ?? mb(u.rss),
    rss_anon_mb: status?.anonMB,
    rss_file_mb: status?.fileMB,
    heap_used_mb: mb(u.heapUsed),
    heap_total_mb: mb(u.heapTotal),
    external_mb: mb(u.external),
    array_buffers_mb: mb(u.arrayBuffers),
  };
}

// -------------------------------------------------------------------------------------------------
// The worker: a process holding many in-process peers, driven over the fork IPC channel.

interface MemberSpec {
  readonly name: string;
  readonly configFile: string;
  readonly dir: string;
}

type ToWorker = { type: 'start'; members: MemberSpec[]; batch: number } | { type: 'status'; id: number } | { type: 'stop' };

type FromWorker =
  | { type: 'baseline'; memory: MemoryFigures }
  | { type: 'started'; name: string; ready: ReadyInfo; retries: number }
  | { type: 'failed'; name: string; error: string }
  | { type: 'retry'; name: string; why: string }
  | { type: 'status'; id: number; memory: MemoryFigures; peers: Record<string, PeerState> };

/** What the suite follows of each peer (from the peer itself: no admin request per peer and check). */
interface PeerState {
  readonly records: number;
  readonly health: string;
  readonly sequence: number;
  readonly peerCount: number;
  readonly livePeers: number;
}

/**
 * Starts an in-process member, up to START_ATTEMPTS times: its port may have been taken since it was
 * chosen (it moves to new ones), or the bootstrap may not have answered in time on a busy machine.
 * (The ring suite does the same for its rings, privately.)
 */
async function startMember(m: Member, onRetry: (why: string) => void): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      await m.start();
      return attempt - 1;
    } catch (err) {
      const text = `${errorCode(err)} ${err instanceof Error ? (err.message.split('\n')[0] ?? '') : ''}`;
      const portTaken = /EADDRINUSE/.test(text);
      const unreachable = /E_RPC_UNREACHABLE|E_RPC_TIMEOUT|E_ENROLL_UNREACHABLE|cannot reach/.test(text);
      if (attempt >= START_ATTEMPTS || !(portTaken || unreachable)) throw err;
      onRetry(text);
      if (portTaken) {
        const [ringPort, adminPort] = await freePorts(2);
        const config = JSON.parse(readFileSync(m.configFile, 'utf8')) as { listen: string[]; admin: Record<string, unknown> };
        config.listen = [`/ip4/127.0.0.1/tcp/${String(ringPort)}`];
        config.admin = { ...config.admin, listen: `127.0.0.1:${String(adminPort)}` };
        writeFileSync(m.configFile, `${JSON.stringify(config, null, 2)}\n`);
      } else {
        // Other peers' enrolments keep the machine busy for a while: back off.
        await sleep(1000 * 2 ** (attempt - 1));
      }
    }
  }
}

function runWorker(): void {
  const members: Member[] = [];
  const send = (msg: FromWorker) => process.send?.(msg);
  let stopping: Promise<void> | undefined;
  const stopAll = () => (stopping ??= Promise.all(members.map((m) => m.stop().catch(() => undefined))).then(() => undefined));
  const exitAfterStop = () => void stopAll().finally(() => process.exit(0));
  // Ctrl-C reaches the whole process group; a parent that went away leaves the channel closed.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, exitAfterStop);
  process.on('disconnect', exitAfterStop);

  process.on('message', (raw: unknown) => {
    const msg = raw as ToWorker;
    if (msg.type === 'start') {
      void (async () => {
        for (let i = 0; i < msg.members.length; i += msg.batch) {
          await Promise.all(
            msg.members.slice(i, i + msg.batch).map(async (spec) => {
              const m = new Member('peer', spec.name, 'in-process', spec.configFile, spec.dir);
              members.push(m);
              try {
                const retries = await startMember(m, (why) => send({ type: 'retry', name: spec.name, why }));
                send({ type: 'started', name: spec.name, ready: m.ready, retries });
              } catch (err) {
                send({ type: 'failed', name: spec.name, error: `${errorCode(err)}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` });
              }
            }),
          );
        }
      })();
    } else if (msg.type === 'status') {
      const peers: Record<string, PeerState> = {};
      for (const m of members) {
        if (!m.node) continue;
        const summary = m.node.summary();
        peers[m.name] = {
          records: m.node.counters.get('IMEDistributedCacheStoredData'),
          health: summary.health,
          sequence: summary.sequence,
          peerCount: summary.peerCount,
          livePeers: summary.livePeers,
        };
      }
      send({ type: 'status', id: msg.id, memory: memoryNow(), peers });
    } else if (msg.type === 'stop') {
      exitAfterStop();
    }
  });
  send({ type: 'baseline', memory: memoryNow() });
}

/** The parent's handle on one worker process. */
class Worker {
  readonly index: number;
  readonly child: ChildProcess;
  readonly stderrFile: string;
  baseline: MemoryFigures | undefined;
  readonly #waiting = new Map<number, (m: Extract<FromWorker, { type: 'status' }>) => void>();
  #nextId = 0;
  #exited = false;
  readonly exited: Promise<number | null>;
  readonly #listeners: ((m: FromWorker) => void)[] = [];

  constructor(index: number, dir: string) {
    this.index = index;
    this.stderrFile = join(dir, `worker-${index + 1}.stderr.log`);
    const stderr = openSync(this.stderrFile, 'a');
    this.child = fork(fileURLToPath(import.meta.url), [WORKER_FLAG], { stdio: ['ignore', 'ignore', stderr, 'ipc'] });
    closeSync(stderr);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    void this.exited.then(() => (this.#exited = true));
    this.child.on('message', (raw) => {
      const msg = raw as FromWorker;
      if (msg.type === 'baseline') this.baseline = msg.memory;
      if (msg.type === 'status') this.#waiting.get(msg.id)?.(msg);
      for (const l of this.#listeners) l(msg);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  on(listener: (m: FromWorker) => void): void {
    this.#listeners.push(listener);
  }

  stderrTail(): string {
    return existsSync(this.stderrFile) ? readFileSync(this.stderrFile, 'utf8').trim().split('\n').slice(-10).join('\n') : '';
  }

  /** Resolves once the worker has loaded (its baseline message); rejects if it exits first. */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.baseline !== undefined) return resolve();
      this.on((msg) => msg.type === 'baseline' && resolve());
      void this.exited.then(() => reject(new Error(`worker ${this.index + 1} exited while loading: ${this.stderrTail()}`)));
    });
  }

  send(msg: ToWorker): void {
    if (this.#exited || !this.child.connected) throw new Error(`worker ${this.index + 1} is gone: ${this.stderrTail()}`);
    this.child.send(msg);
  }

  async status(): Promise<Extract<FromWorker, { type: 'status' }>> {
    const id = this.#nextId++;
    const answer = new Promise<Extract<FromWorker, { type: 'status' }>>((resolve, reject) => {
      this.#waiting.set(id, resolve);
      void this.exited.then(() => reject(new Error(`worker ${this.index + 1} exited: ${this.stderrTail()}`)));
    });
    // When the send below throws, nobody awaits the answer: its rejection at the worker's exit must
    // not become an unhandled one (which would end this process before its clean-up).
    answer.catch(() => undefined);
    this.send({ type: 'status', id });
    try {
      return await answer;
    } finally {
      this.#waiting.delete(id);
    }
  }

  /** Stops its peers cleanly (the stop message, or SIGTERM), then SIGKILL if it hangs. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    try {
      this.send({ type: 'stop' });
    } catch {
      this.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    await this.exited;
    clearTimeout(timer);
  }
}

// -------------------------------------------------------------------------------------------------
// The benchmark.

interface PeerHandle {
  readonly name: string;
  readonly dir: string;
  ready: ReadyInfo | undefined;
}

class ScaleBench {
  readonly rows: Row[] = [];
  readonly targets: Target[] = [];
  readonly #s: Sizes;
  readonly #o: SuiteOptions;
  readonly #cleanup: Cleanup;
  readonly #workers: Worker[] = [];
  readonly #peers: PeerHandle[] = [];
  readonly #admins = new Map<number, AdminClient>();
  #publishFailures = 0;

  constructor(options: SuiteOptions, cleanup: Cleanup) {
    this.#o = options;
    const sizes = options.quick ? QUICK : FULL;
    // IME_BENCH_SCALE_PER_PROCESS (1 to the peer count) puts more or fewer peers in each process,
    // e.g. all of them in one to see what one event loop can carry.
    const perProcess = process.env.IME_BENCH_SCALE_PER_PROCESS;
    if (perProcess !== undefined) {
      const n = Number(perProcess);
      if (!Number.isSafeInteger(n) || n < 1 || n > sizes.peers) throw new RangeError(`IME_BENCH_SCALE_PER_PROCESS must be an integer from 1 to ${sizes.peers}`);
      this.#s = { ...sizes, peersPerProcess: n };
    } else {
      this.#s = sizes;
    }
    this.#cleanup = cleanup;
  }

  #progress(line: string): void {
    this.#o.progress(`scale: ${line}`);
  }

  /** After Ctrl-C or SIGTERM the clean-up is under way: measure nothing more. */
  #stopIfInterrupted(): void {
    const signal = this.#cleanup.interrupted;
    if (signal !== undefined) throw new Interrupted(signal);
  }

  get #dids(): number {
    return this.#s.publishers * this.#s.didsPerPublisher;
  }

  /** An admin client with a long timeout: publications and lookups of thousands take a while. */
  async #admin(i: number): Promise<AdminClient> {
    let a = this.#admins.get(i);
    if (!a) {
      const ready = this.#peers[i]?.ready;
      if (!ready) throw new Error(`peer ${i + 1} has not started`);
      a = await AdminClient.fromTokenFile(ready.admin, ready.tokenFile, { timeoutMs: 3_600_000 });
      this.#admins.set(i, a);
    }
    return a;
  }

  async #statuses(): Promise<Extract<FromWorker, { type: 'status' }>[]> {
    return Promise.all(this.#workers.map((w) => w.status()));
  }

  /** Each peer's state, in peer order (undefined for one not running). */
  async #peerStates(): Promise<(PeerState | undefined)[]> {
    const states = new Map<string, PeerState>();
    for (const st of await this.#statuses()) for (const [name, state] of Object.entries(st.peers)) states.set(name, state);
    return this.#peers.map((p) => states.get(p.name));
  }

  async #storedRecords(): Promise<number[]> {
    return (await this.#peerStates()).map((st) => st?.records ?? 0);
  }

  async run(): Promise<void> {
    const s = this.#s;
    const groups = processGroups(s.peers, s.peersPerProcess);
    this.#progress(
      `${s.peers} peers in ${groups.length} processes of up to ${s.peersPerProcess}, the bootstrap in this one; ` +
        `${s.publishers} publishers × ${s.didsPerPublisher.toLocaleString('en-US')} DIDs = ${this.#dids.toLocaleString('en-US')}`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'ime-bench-scale-'));
    const removeDir = this.#cleanup.add(`temporary directory ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    const started = performance.now();
    // Manual admission: the peers enrol as they start and are admitted in waves once all have (see
    // the module comment).
    const ring = await RingHarness.start({ peers: 0, mode: 'in-process', dir: join(dir, 'ring'), tuning: PRODUCTION_TUNING, logLevel: 'warn', admission: 'manual' });
    const stopRing = this.#cleanup.add('the bootstrap', () => ring.stop());
    const stopWorkers = this.#cleanup.add(`${s.peers} peers in ${groups.length} processes`, async () => {
      const t = performance.now();
      await Promise.all(this.#workers.map((w) => w.stop()));
      this.#progress(`stopped ${s.peers} peers in ${Math.round(performance.now() - t)} ms`);
    });
    try {
      // Configurations and enrolment tokens come from the harness; the workers start the peers. The
      // peers share one VAP certificate from their configuration: a peer without one makes an RSA key
      // at its first start, synchronously — once per machine in production, but 64 of them back to
      // back would stall a worker's event loop for seconds while its other peers enrol. The suite
      // has no call managers, so nothing it measures uses the certificate.
      const vap = createVapCertificate({ commonName: 'scale.bench.example' });
      const certificateFile = join(dir, 'vap-cert.pem');
      const keyFile = join(dir, 'vap-key.pem');
      writeFileSync(certificateFile, vap.certPem);
      writeFileSync(keyFile, vap.keyPem, { mode: 0o600 });
      for (let i = 0; i < s.peers; i++) {
        const m = await ring.createPeer({ start: false });
        const config = JSON.parse(readFileSync(m.configFile, 'utf8')) as { vap?: Record<string, unknown> };
        writeFileSync(m.configFile, `${JSON.stringify({ ...config, vap: { ...config.vap, certificateFile, keyFile } }, null, 2)}\n`);
        this.#peers.push({ name: m.name, dir: m.dir, ready: undefined });
      }
      await this.#startPeers(ring, groups, dir);
      const startMs = performance.now() - started;
      const idle = await this.#statuses();
      const idleRss = idle.reduce((sum, st) => sum + st.memory.rss_mb, 0);
      this.#progress(`${s.peers} peers up and converged in ${Math.round(startMs / 1000)} s; the peer processes' RSS ${round3(idleRss)} MB`);

      const { publishers, readers } = roles(s.peers, s.publishers);
      this.#stopIfInterrupted();
      const published = await this.#publish(ring, publishers);
      this.#stopIfInterrupted();
      const fetched = await this.#fetch(readers, published);
      this.#stopIfInterrupted();
      await this.#memory(idle);
      this.#disk(publishers);

      this.targets.push(
        target(
          `scale: DIDs published into a ${s.peers}-peer ring (${s.publishers} publishers at once), all stored`,
          `= ${this.#dids}`,
          published.length,
          published.length === this.#dids && this.#publishFailures === 0,
        ),
        target(
          `scale: sampled fetches from non-publishing peers that found their number (of ${fetched.total})`,
          `= ${fetched.total}`,
          fetched.found,
          fetched.total > 0 && fetched.found === fetched.total,
        ),
      );
    } finally {
      await stopWorkers();
      await stopRing();
      await removeDir();
    }
  }

  async #startPeers(ring: RingHarness, groups: readonly number[][], dir: string): Promise<void> {
    const s = this.#s;
    const started = performance.now();
    let retries = 0;
    let count = 0;
    let allStarted!: () => void;
    let failed!: (err: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      allStarted = resolve;
      failed = reject;
    });
    // A worker may fail before the wait below begins; the rejection is still seen there.
    done.catch(() => undefined);
    for (const [w, group] of groups.entries()) {
      const worker = new Worker(w, dir);
      this.#workers.push(worker);
      void worker.exited.then(() => failed(new Error(`worker ${w + 1} exited while its peers started: ${worker.stderrTail()}`)));
      worker.on((msg) => {
        if (msg.type === 'started') {
          const peer = this.#peers.find((p) => p.name === msg.name);
          if (peer) peer.ready = msg.ready;
          retries += msg.retries;
          count++;
          if (count % 32 === 0 || count === s.peers) this.#progress(`${count}/${s.peers} peers started (${Math.round((performance.now() - started) / 1000)} s)`);
          if (count === s.peers) allStarted();
        } else if (msg.type === 'retry') {
          this.#progress(`${msg.name} did not start (${msg.why}); starting it again`);
        } else if (msg.type === 'failed') {
          failed(new Error(`${msg.name} did not start: ${msg.error}`));
        }
      });
      await worker.ready();
      worker.send({
        type: 'start',
        batch: START_BATCH,
        members: group.map((i) => {
          const p = this.#peers[i] as PeerHandle;
          return { name: p.name, configFile: join(p.dir, 'peer.json'), dir: p.dir };
        }),
      });
    }
    await done;
    const bootstrap = await (ring.bootstraps[0] as Member).admin();
    const waves = admissionWaves(s.peers, ADMISSION_WAVE);
    this.#progress(`${s.peers} peers enrolled (${Math.round((performance.now() - started) / 1000)} s); admitting them in ${waves.length} waves of up to ${ADMISSION_WAVE}`);
    const admitted: number[] = [];
    for (const [k, wave] of waves.entries()) {
      this.#stopIfInterrupted();
      // Admissions in flight together share the bootstrap's coalesced configurations.
      await Promise.all(wave.map((i) => bootstrap.post(`/v1/peers/${(this.#peers[i]?.ready as ReadyInfo).peerId}/admit`, {})));
      admitted.push(...wave);
      const t = performance.now();
      await this.#converge(ring, admitted);
      this.#progress(`wave ${k + 1}/${waves.length}: ${admitted.length} peers admitted, converged in ${Math.round((performance.now() - t) / 1000)} s`);
    }
    const startMs = performance.now() - started;
    // What the ring itself keeps busy while nobody asks anything of it (probes, configuration polls):
    // the measured operations below compete with it for the machine's cores.
    const pids = this.#workers.map((w) => w.pid);
    const cpuBefore = pids.map(processCpuMs);
    const idleFrom = performance.now();
    await sleep(IDLE_SAMPLE_MS);
    const idleCores = round3(pids.reduce<number>((sum, pid, i) => sum + processCpuMs(pid) - (cpuBefore[i] ?? 0), 0) / (performance.now() - idleFrom));
    this.#progress(`the idle ring keeps ${idleCores} cores busy`);
    this.rows.push({
      bench: 'scale',
      system: 'ours',
      peers: s.peers,
      op: 'ring-start',
      ms: round3(startMs),
      n: s.peers,
      note:
        `${s.peers} peers in ${groups.length} processes, each starting ${START_BATCH} at a time and enrolling (manual admission), ` +
        `then admitted in waves of ${ADMISSION_WAVE}, the ring converging after each, until every peer is GREEN with the full roster`,
      processes: groups.length,
      peers_per_process: s.peersPerProcess,
      start_retries: retries,
      idle_ring_cpu_cores: idleCores,
      loadavg_1m: round3(loadavg()[0] ?? Number.NaN),
    });
  }

  /**
   * Every admitted peer GREEN, on the bootstrap's latest configuration, with every admitted peer on
   * its roster — and still so on STABLE_CHECKS checks in a row: after admissions, many connections
   * open at once and health flaps while probes wait behind handshakes, and a publication that began
   * in that window would place records by views that are about to change.
   */
  async #converge(ring: RingHarness, admitted: readonly number[]): Promise<void> {
    const bootstrap = await (ring.bootstraps[0] as Member).admin();
    let stable = 0;
    let last = '';
    let lastAt = 0;
    await waitFor(
      `${admitted.length} peers GREEN with ${admitted.length} members`,
      async () => {
        // Ends the wait at once after Ctrl-C; the caller then stops.
        if (this.#cleanup.interrupted !== undefined) return true;
        const { sequence } = await bootstrap.get<{ sequence: number }>('/v1/summary');
        const states = await this.#peerStates();
        const mine = admitted.map((i) => states[i]);
        const ok = mine.filter((x) => x !== undefined && x.health === 'GREEN' && x.sequence === sequence && x.peerCount === admitted.length).length;
        stable = ok === admitted.length ? stable + 1 : 0;
        const fewestLive = Math.min(...mine.map((x) => x?.livePeers ?? 0));
        const line = `${ok}/${admitted.length} admitted peers GREEN on configuration ${sequence} with all of them on the roster (fewest seen live by a peer: ${fewestLive})`;
        // A line when the figures change, and at least every 10 s while they do not.
        if (line !== last || performance.now() - lastAt > PROGRESS_EVERY_MS) {
          this.#progress(line);
          last = line;
          lastAt = performance.now();
        }
        return stable >= STABLE_CHECKS;
      },
      CONVERGE_LIMIT_MS,
      1000,
    );
    this.#stopIfInterrupted();
  }

  /** Every publisher publishes its share at once; returns the numbers the ring took. */
  async #publish(ring: RingHarness, publishers: readonly number[]): Promise<string[]> {
    const s = this.#s;
    const bootstrap = await (ring.bootstraps[0] as Member).admin();
    const { parameters } = await bootstrap.get<{ parameters: { replicationFactor: number; storageQuota: number } }>('/v1/configuration');
    if (parameters.storageQuota < s.didsPerPublisher) {
      throw new Error(`the ring's storage quota (${parameters.storageQuota}) is below the DIDs per publisher (${s.didsPerPublisher})`);
    }
    const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
    const storedBefore = sum(await this.#storedRecords());
    const expected = this.#dids * parameters.replicationFactor;
    this.#progress(
      `publishing ${this.#dids.toLocaleString('en-US')} DIDs from ${publishers.length} peers at once (POST /v1/dids, ` +
        `${PATTERNS_PER_REQUEST} patterns of 3 X per request), N = ${parameters.replicationFactor}`,
    );
    const load = round3(loadavg()[0] ?? Number.NaN);
    const start = performance.now();
    let ticking = false;
    const ticker = setInterval(() => {
      if (ticking) return;
      ticking = true;
      void this.#statuses()
        .then((statuses) => {
          const stored = sum(statuses.flatMap((st) => Object.values(st.peers).map((p) => p.records))) - storedBefore;
          const elapsed = (performance.now() - start) / 1000;
          const rss = sum(statuses.map((st) => st.memory.rss_mb));
          this.#progress(
            `publishing: ${stored.toLocaleString('en-US')} of ${expected.toLocaleString('en-US')} replica records stored ` +
              `(${Math.round((100 * stored) / expected)} %, ≈ ${Math.round(stored / parameters.replicationFactor / elapsed)} DIDs/s) after ${Math.round(elapsed)} s; ` +
              `peer processes' RSS ${Math.round(rss)} MB`,
          );
        })
        .catch(() => undefined)
        .finally(() => (ticking = false));
    }, PROGRESS_EVERY_MS);
    const deadline = start + s.publishLimitMs;
    const answers = await Promise.all(
      publishers.map(async (p, j) => {
        const admin = await this.#admin(p);
        const out: { requested: number; notSent: number; numbers: string[]; failed: { number: string; code: string }[] } = { requested: 0, notSent: 0, numbers: [], failed: [] };
        for (const pats of publisherRequests(j, s.didsPerPublisher)) {
          this.#stopIfInterrupted();
          const all = pats.flatMap(expandPattern);
          if (performance.now() > deadline) {
            out.notSent += all.length;
            continue;
          }
          let answer: PublishReport;
          try {
            answer = await admin.post<PublishReport>('/v1/dids', { vserviceId: 'scale', patterns: pats });
          } catch (err) {
            // A request that fails as a whole counts all its numbers as failed; the others go on.
            const code = errorCode(err);
            this.#progress(`${(this.#peers[p] as PeerHandle).name}: a request of ${all.length} DIDs failed (${code}: ${err instanceof Error ? err.message : String(err)})`);
            answer = { requested: all.length, published: 0, failed: all.map((number) => ({ number, code, message: '' })) };
          }
          out.requested += answer.requested;
          out.failed.push(...answer.failed.map((f) => ({ number: f.number, code: f.code })));
          const failed = new Set(answer.failed.map((f) => f.number));
          for (const num of all) if (!failed.has(num)) out.numbers.push(num);
        }
        this.#progress(
          `${(this.#peers[p] as PeerHandle).name} published ${out.numbers.length.toLocaleString('en-US')} of ${out.requested.toLocaleString('en-US')} ` +
            `(${Math.round((performance.now() - start) / 1000)} s)`,
        );
        return out;
      }),
    ).finally(() => clearInterval(ticker));
    const ms = performance.now() - start;
    const numbers = answers.flatMap((a) => a.numbers);
    const failed = answers.flatMap((a) => a.failed);
    const requested = answers.reduce((total, a) => total + a.requested, 0);
    const notSent = answers.reduce((total, a) => total + a.notSent, 0);
    this.#publishFailures = failed.length + notSent;
    // W of N replicas acknowledged each record before its request answered; the rest follow.
    const stored = sum(await this.#storedRecords()) - storedBefore;
    this.rows.push({
      bench: 'scale',
      system: 'ours',
      peers: s.peers,
      op: 'publish',
      ops_per_sec: round3(numbers.length / (ms / 1000)),
      ms: round3(ms),
      n: requested + notSent,
      via: 'admin-http',
      note:
        `${publishers.length} peers publish at once, each POST /v1/dids with up to ${PATTERNS_PER_REQUEST} patterns of 3 X per request; ` +
        'timed from the first request until the last answer',
      publishers: publishers.length,
      published: numbers.length,
      failed: failed.length,
      ...(notSent > 0 ? { not_sent: notSent, gave_up_after_ms: s.publishLimitMs } : {}),
      ...(failed.length > 0 ? { failure_codes: histogram(failed.map((f) => f.code)) } : {}),
      replication_factor: parameters.replicationFactor,
      replica_records_stored: stored,
      replica_records_expected: numbers.length * parameters.replicationFactor,
      loadavg_1m: load,
    });
    this.#progress(
      `published ${numbers.length.toLocaleString('en-US')}/${(requested + notSent).toLocaleString('en-US')} in ${Math.round(ms / 1000)} s ` +
        `(${Math.round(numbers.length / (ms / 1000))} DIDs/s); ${failed.length} failed` +
        (notSent > 0 ? `; ${notSent} not sent: the publication stopped after ${s.publishLimitMs / 60_000} minutes` : ''),
    );
    return numbers;
  }

  /** One reader's lookups; a request that fails as a whole counts each of its numbers as failed. */
  async #lookup(reader: number, numbers: readonly string[], concurrency: number, timings: boolean): Promise<DidLookupReport> {
    try {
      return await (await this.#admin(reader)).post<DidLookupReport>('/v1/dids/lookup', { numbers, concurrency, timings });
    } catch (err) {
      const code = errorCode(err);
      this.#progress(`${(this.#peers[reader] as PeerHandle).name}: a lookup of ${numbers.length} numbers failed (${code})`);
      return { total: numbers.length, found: 0, missing: [], failed: numbers.map((number) => ({ number, code })), ...(timings ? { latenciesMs: [] } : {}) };
    }
  }

  /**
   * One reader's lookups of `numbers`, in requests of LOOKUP_CHUNK × concurrency (each well inside the
   * admin API's HTTP limits on a slow ring); none is sent after `deadline` (counted as not sent).
   */
  async #lookups(reader: number, numbers: readonly string[], concurrency: number, timings: boolean, deadline: number): Promise<Lookups> {
    const out: Lookups = { found: 0, missing: [], failed: [], latenciesMs: [], notSent: 0 };
    const size = LOOKUP_CHUNK * concurrency;
    for (let i = 0; i < numbers.length; i += size) {
      const chunk = numbers.slice(i, i + size);
      if (performance.now() > deadline) {
        out.notSent += chunk.length;
        continue;
      }
      const a = await this.#lookup(reader, chunk, concurrency, timings);
      out.found += a.found;
      out.missing.push(...a.missing);
      out.failed.push(...a.failed);
      out.latenciesMs.push(...(a.latenciesMs ?? []));
    }
    return out;
  }

  /** Warm-up, then the timed fetches at concurrency 1 and concurrently, each number read once. */
  async #fetch(readers: readonly number[], published: readonly string[]): Promise<{ total: number; found: number }> {
    const s = this.#s;
    const warmupCount = s.warmupPerReader * readers.length;
    const picked = sample(published, warmupCount + 2 * s.fetchSample, 3);
    const warm = picked.slice(0, warmupCount);
    const sequential = picked.slice(warmupCount, warmupCount + s.fetchSample);
    const concurrent = picked.slice(warmupCount + s.fetchSample);
    const reader = (r: number) => readers[r] as number;

    const deadline = performance.now() + s.fetchLimitMs;
    this.#progress(`fetch warm-up: ${warmupCount} fetches of other numbers by ${readers.length} non-publishing peers`);
    const warmAnswers = await Promise.all(deal(warm, readers.length).map((list, r) => this.#lookups(reader(r), list, 1, false, deadline)));

    this.#progress(`fetch: ${sequential.length} numbers one at a time (concurrency 1), reader after reader`);
    const seqAnswers: Lookups[] = [];
    for (const [r, list] of deal(sequential, readers.length).entries()) seqAnswers.push(await this.#lookups(reader(r), list, 1, true, deadline));
    const { found: seqFound, timing: seq, fields: seqFields } = lookupOutcome(seqAnswers, s.fetchLimitMs);
    this.rows.push({
      bench: 'scale',
      system: 'ours',
      peers: s.peers,
      op: 'fetch',
      ...seq,
      n: sequential.length,
      via: 'in-peer',
      note: `POST /v1/dids/lookup {concurrency: 1, timings: true} of ${LOOKUP_CHUNK} numbers, one reader at a time: each fetch timed inside the reading peer`,
      concurrency: 1,
      readers: readers.length,
      ...seqFields,
      warmup_fetches: warmupCount,
      warmup_failures: warmAnswers.reduce((total, a) => total + a.missing.length + a.failed.length + a.notSent, 0),
      loadavg_1m: round3(loadavg()[0] ?? Number.NaN),
    });
    this.#progress(`fetch (concurrency 1): p50 ${seq.p50_ms} ms, p95 ${seq.p95_ms} ms, p99 ${seq.p99_ms} ms; ${seqFound}/${sequential.length} found`);

    const inFlight = readers.length * s.concurrencyPerReader;
    this.#progress(`fetch: ${concurrent.length} other numbers, ${readers.length} readers at once with ${s.concurrencyPerReader} each in flight (${inFlight} in all)`);
    const start = performance.now();
    const answers = await Promise.all(deal(concurrent, readers.length).map((list, r) => this.#lookups(reader(r), list, s.concurrencyPerReader, true, deadline)));
    const ms = performance.now() - start;
    const { found: concFound, timing: conc, fields: concFields } = lookupOutcome(answers, s.fetchLimitMs);
    this.rows.push({
      bench: 'scale',
      system: 'ours',
      peers: s.peers,
      op: 'fetch-concurrent',
      // Fetches that found their number, per second: failures answered fast must not raise the rate.
      ops_per_sec: round3(concFound / (ms / 1000)),
      ms: round3(ms),
      ...conc,
      n: concurrent.length,
      via: 'in-peer',
      note: `POST /v1/dids/lookup {concurrency: ${s.concurrencyPerReader}, timings: true} to ${readers.length} readers at once; ms is the whole run`,
      concurrency: inFlight,
      readers: readers.length,
      ...concFields,
    });
    this.#progress(
      `fetch (${inFlight} in flight): ${Math.round(concFound / (ms / 1000))} fetches/s found, p50 ${conc.p50_ms} ms, p95 ${conc.p95_ms} ms, ` +
        `p99 ${conc.p99_ms} ms; ${concFound}/${concurrent.length} found`,
    );
    return { total: sequential.length + concurrent.length, found: seqFound + concFound };
  }

  async #memory(idle: readonly Extract<FromWorker, { type: 'status' }>[]): Promise<void> {
    const peers = this.#s.peers;
    const statuses = await this.#statuses();
    const sum = (f: (x: MemoryFigures) => number | undefined, of: readonly MemoryFigures[]) => round3(of.reduce((total, m) => total + (f(m) ?? 0), 0));
    const now = statuses.map((st) => st.memory);
    const baseline = this.#workers.map((w) => w.baseline as MemoryFigures);
    const idleMemory = idle.map((st) => st.memory);
    const rss = sum((m) => m.rss_mb, now);
    const baselineRss = sum((m) => m.rss_mb, baseline);
    const idleRss = sum((m) => m.rss_mb, idleMemory);
    const held = spread((await this.#storedRecords()).map(Number));
    const bootstrapProcess = memoryNow();
    this.rows.push({
      bench: 'scale',
      system: 'ours',
      peers,
      op: 'memory',
      n: peers,
      note:
        `the ${this.#workers.length} peer processes together after the publication and the fetches: VmRSS with its anonymous and file-backed parts, ` +
        'peak (VmHWM, summed), V8 heap; per peer = RSS / peers, and (RSS − the processes\' baseline before their peers started) / peers; ' +
        'the bootstrap process separately',
      processes: this.#workers.length,
      rss_mb: rss,
      peak_rss_mb: sum((m) => m.peak_rss_mb, now),
      rss_anon_mb: sum((m) => m.rss_anon_mb, now),
      rss_file_mb: sum((m) => m.rss_file_mb, now),
      heap_used_mb: sum((m) => m.heap_used_mb, now),
      heap_total_mb: sum((m) => m.heap_total_mb, now),
      external_mb: sum((m) => m.external_mb, now),
      array_buffers_mb: sum((m) => m.array_buffers_mb, now),
      rss_per_process_mb: now.map((m) => m.rss_mb),
      baseline_rss_mb: baselineRss,
      idle_ring_rss_mb: idleRss,
      rss_per_peer_mb: round3(rss / peers),
      rss_per_peer_above_baseline_mb: round3((rss - baselineRss) / peers),
      idle_rss_per_peer_above_baseline_mb: round3((idleRss - baselineRss) / peers),
      heap_used_per_peer_mb: round3((sum((m) => m.heap_used_mb, now) - sum((m) => m.heap_used_mb, baseline)) / peers),
      records_per_peer_mean: held.mean,
      records_per_peer_min: held.min,
      records_per_peer_max: held.max,
      bootstrap_process_rss_mb: bootstrapProcess.rss_mb,
    });
    this.#progress(
      `memory: peer processes' RSS ${rss} MB (baseline ${baselineRss}, idle ring ${idleRss}); ${round3(rss / peers)} MB per peer, ` +
        `${round3((rss - baselineRss) / peers)} MB above the baseline; records per peer ${held.mean} (${held.min}–${held.max}); bootstrap process ${bootstrapProcess.rss_mb} MB`,
    );
  }

  #disk(publishers: readonly number[]): void {
    const bytes = this.#peers.map((p) => bytesOnDisk(join(p.dir, 'data', 'db')));
    const isPublisher = new Set(publishers);
    const all = spread(bytes.map(mb));
    const pubs = spread(bytes.filter((_, i) => isPublisher.has(i)).map(mb));
    const others = spread(bytes.filter((_, i) => !isPublisher.has(i)).map(mb));
    this.rows.push({
      bench: 'scale',
      system: 'ours',
      peers: this.#s.peers,
      op: 'leveldb-disk',
      n: bytes.length,
      note: "bytes of each peer's LevelDB directory (tables, write-ahead log, manifest) after the run, MB of 2^20 bytes; publishers also keep their own numbers",
      db_mb_per_peer_mean: all.mean,
      db_mb_per_peer_min: all.min,
      db_mb_per_peer_max: all.max,
      db_mb_total: round3(bytes.reduce((total, b) => total + b, 0) / MB),
      db_mb_publisher_mean: pubs.mean,
      db_mb_non_publisher_mean: others.mean,
    });
    this.#progress(`LevelDB on disk: ${all.mean} MB per peer (${all.min}–${all.max}); publishers ${pubs.mean} MB, the others ${others.mean} MB`);
  }
}

// -------------------------------------------------------------------------------------------------
// Rendering

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(round3(v));
  if (Array.isArray(v)) return v.map(cell).join(' / ');
  if (typeof v === 'object') return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}: ${String(x)}`).join(', ');
  return String(v);
}

/** The machine's load when the figure was taken: the ring shares two cores with whatever else runs. */
function load(r: Row): string {
  return typeof r.loadavg_1m === 'number' ? `; load average ${cell(r.loadavg_1m)}` : '';
}

function scaleDetail(r: Row): string {
  if (typeof r.error === 'string') return `FAILED: ${r.error}`;
  const outcome = (found: unknown) =>
    `found ${cell(found)}/${cell(r.n)}${Number(r.not_found) > 0 ? `, ${cell(r.not_found)} not found` : ''}` +
    `${Number(r.errors) > 0 ? `, ${cell(r.errors)} errors (${cell(r.error_codes)})` : ''}` +
    `${Number(r.not_sent) > 0 ? `, ${cell(r.not_sent)} not asked (stopped after ${cell(Number(r.gave_up_after_ms) / 60_000)} minutes)` : ''}`;
  switch (r.op) {
    case 'ring-start':
      return (
        `${cell(r.peers)} peers in ${cell(r.processes)} processes (the bootstrap in another), until all GREEN with the full roster; ` +
        `members started again: ${cell(r.start_retries)}; the idle ring then kept ${cell(r.idle_ring_cpu_cores)} cores busy${load(r)}`
      );
    case 'publish':
      return (
        `${cell(r.publishers)} publishers at once, N = ${cell(r.replication_factor)}; ${cell(r.published)} published, ${cell(r.failed)} failed` +
        `${Number(r.not_sent) > 0 ? `, ${cell(r.not_sent)} not sent (stopped after ${cell(Number(r.gave_up_after_ms) / 60_000)} minutes)` : ''}` +
        `${r.failure_codes ? ` (${cell(r.failure_codes)})` : ''}; replica records stored ${cell(r.replica_records_stored)} of ${cell(r.replica_records_expected)}${load(r)}`
      );
    case 'fetch':
      return `one at a time by ${cell(r.readers)} non-publishing peers, after ${cell(r.warmup_fetches)} warm-up fetches of other numbers; ${outcome(r.found)}${load(r)}`;
    case 'fetch-concurrent':
      return `${cell(r.concurrency)} in flight over ${cell(r.readers)} readers (ms: the whole run); ${outcome(r.found)}`;
    case 'memory':
      return (
        `${cell(r.processes)} peer processes: RSS ${cell(r.rss_mb)} MB (${cell(r.rss_per_process_mb)}; anonymous ${cell(r.rss_anon_mb)}, ` +
        `file-backed ${cell(r.rss_file_mb)}), V8 heap used ${cell(r.heap_used_mb)} MB. Per peer: RSS / peers ${cell(r.rss_per_peer_mb)} MB, ` +
        `above the processes' baseline ${cell(r.rss_per_peer_above_baseline_mb)} MB (idle ring before publishing: ` +
        `${cell(r.idle_rss_per_peer_above_baseline_mb)} MB); baseline ${cell(r.baseline_rss_mb)} MB in all; ` +
        `records per peer ${cell(r.records_per_peer_mean)} (${cell(r.records_per_peer_min)}–${cell(r.records_per_peer_max)}); ` +
        `bootstrap process ${cell(r.bootstrap_process_rss_mb)} MB`
      );
    case 'leveldb-disk':
      return (
        `per peer ${cell(r.db_mb_per_peer_mean)} MB (${cell(r.db_mb_per_peer_min)}–${cell(r.db_mb_per_peer_max)}); publishers ${cell(r.db_mb_publisher_mean)} MB, ` +
        `the others ${cell(r.db_mb_non_publisher_mean)} MB; ${cell(r.db_mb_total)} MB in all`
      );
    default:
      return '';
  }
}

/** The scale rows with what the shared table has no column for, as markdown (bench/README.md). */
export function scaleDetails(rows: readonly Row[]): string {
  const md = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    md(['op', 'peers', 'ops/s', 'ms', 'p50 ms', 'p95 ms', 'p99 ms', 'n', 'details']),
    md(Array(9).fill('---')),
    ...rows
      .filter((r) => r.bench === 'scale')
      .map((r) => md([r.op, cell(r.peers), cell(r.ops_per_sec), cell(r.ms), cell(r.p50_ms), cell(r.p95_ms), cell(r.p99_ms), cell(r.n), scaleDetail(r)])),
  ].join('\n');
}

export const scaleSuite: Suite = {
  name: 'scale',
  description:
    'a 256-peer ring, many peers per process (64 peers with --quick): 1 000 000 DIDs (100 000) published by several peers at once, ' +
    'fetch latency, memory and disk per peer',
  async run(options) {
    const result = await runWithCleanup('scale', options.progress, (cleanup) => new ScaleBench(options, cleanup));
    options.progress(`scale: the rows with their details:\n${scaleDetails(result.rows)}`);
    return result;
  },
};

if (process.argv.includes(WORKER_FLAG) && process.argv[1] === fileURLToPath(import.meta.url)) runWorker();
