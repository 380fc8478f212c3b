import { readFileSync, rmSync } from 'node:fs';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { VapClient } from '@ime/vap';
import { type Row, type Suite, type SuiteOptions, type Target, round3, target } from '../harness.js';
import { Cleanup, runWithCleanup } from '../ring/cleanup.js';
import { processCpuMs } from '../ring/proc.js';
import { PRODUCTION_TUNING } from '../ring/production.js';
import { parseProcStatus, patterns, sample, expandPattern } from '../ring/stats.js';

/**
 * VAP (issue #5): call managers registered and keeping alive on one peer, VCR ingest from ten
 * connections, and a call manager's enrollment of 100 000 DIDs published into a 16-peer ring. The
 * peers are real processes (`ime peer start`) with production timers; the call managers are VAP
 * clients in this process, speaking the real protocol over TCP.
 */

interface Sizes {
  readonly callManagers: number;
  readonly keepaliveSec: number;
  readonly vcrs: number;
  readonly vcrBatch: number;
  readonly vcrConnections: number;
  readonly publication: { readonly peers: number; readonly patterns: number };
}

const FULL: Sizes = { callManagers: 1000, keepaliveSec: 5, vcrs: 200_000, vcrBatch: 500, vcrConnections: 10, publication: { peers: 16, patterns: 100 } };
const QUICK: Sizes = { callManagers: 100, keepaliveSec: 2, vcrs: 20_000, vcrBatch: 500, vcrConnections: 10, publication: { peers: 8, patterns: 10 } };

const PASSWORD = 'bench-vap-password';
const TICKET_PASSWORD = 'bench-ticket-password-0123';
/** Registrations in flight at once: enough to keep the peer busy, few enough not to time out. */
const REGISTER_CONCURRENCY = 32;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function memoryOf(pid: number | undefined): { rssMB: number; anonMB: number | undefined } | undefined {
  if (pid === undefined) return undefined;
  const m = parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? { rssMB: m.rssMB, anonMB: m.anonMB } : undefined;
}

class VapBench {
  readonly rows: Row[] = [];
  readonly targets: Target[] = [];
  readonly #s: Sizes;
  readonly #o: SuiteOptions;
  readonly #cleanup: Cleanup;

  constructor(options: SuiteOptions, cleanup: Cleanup) {
    this.#o = options;
    this.#s = options.quick ? QUICK : FULL;
    this.#cleanup = cleanup;
  }

  #progress(line: string): void {
    this.#o.progress(`vap: ${line}`);
  }

  async #ring(peers: number): Promise<{ ring: RingHarness; stop: () => Promise<void> }> {
    const ring = await RingHarness.start({ peers: 0, mode: 'process', tuning: PRODUCTION_TUNING, logLevel: 'warn' });
    const stop = this.#cleanup.add(`${peers}-peer ring`, async () => {
      await ring.stop();
      rmSync(ring.dir, { recursive: true, force: true });
    });
    // Created one after another (each takes the next name and ports), started four at a time.
    const members: Member[] = [];
    for (let i = 0; i < peers; i++) members.push(await ring.createPeer({ start: false }));
    for (let i = 0; i < members.length; i += 4) await Promise.all(members.slice(i, i + 4).map((m) => m.start()));
    await ring.converge({ timeoutMs: 180_000 });
    return { ring, stop };
  }

  /** A VAP instance on the peer with credentials; returns its port. */
  async #vapServer(peer: Member, maxConnections: number, keepaliveSec: number): Promise<number> {
    const admin = await peer.admin();
    const added = await admin.post<{ boundPort: number }>('/v1/vap/servers', {
      name: 'bench',
      host: '127.0.0.1',
      port: 0,
      maxConnectionsAllowed: maxConnections,
      keepaliveIntervalSec: keepaliveSec,
    });
    await admin.post('/v1/vap/credentials', { server: 'bench', username: 'bench', password: PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
    return added.boundPort;
  }

  #connect(port: number): Promise<VapClient> {
    return VapClient.connect({ host: '127.0.0.1', port, mode: 'authenticated', username: 'bench', password: PASSWORD, requestTimeoutMs: 120_000 });
  }

  async run(): Promise<void> {
    const { ring, stop } = await this.#ring(1);
    try {
      const peer = ring.peers[0] as Member;
      await this.#registrations(peer);
      await this.#vcrIngest(peer);
    } finally {
      await stop();
    }
    await this.#publication();
  }

  async #registrations(peer: Member): Promise<void> {
    const { callManagers: count, keepaliveSec } = this.#s;
    const port = await this.#vapServer(peer, count + 16, keepaliveSec);
    const before = memoryOf(peer.pid);
    const cpuBefore = processCpuMs(peer.pid);
    this.#progress(`registering ${count} call managers on one peer (keepalive ${keepaliveSec} s)`);
    const clients: VapClient[] = [];
    const closed: string[] = [];
    const failures: string[] = [];
    let next = 0;
    const start = performance.now();
    const worker = async () => {
      while (next < count) {
        next++;
        try {
          const c = await this.#connect(port);
          c.onClose((code, message) => closed.push(`${code}: ${message}`));
          clients.push(c);
        } catch (err) {
          failures.push((err as { code?: string }).code ?? 'E_INTERNAL');
        }
      }
    };
    await Promise.all(Array.from({ length: REGISTER_CONCURRENCY }, worker));
    const registerMs = performance.now() - start;
    const cpuRegister = processCpuMs(peer.pid) - cpuBefore;
    this.#progress(`${clients.length} registered in ${Math.round(registerMs)} ms (${failures.length} failed); holding for ${3 * keepaliveSec + 2} s of keepalives`);
    const holdStart = processCpuMs(peer.pid);
    const holdMs = (3 * keepaliveSec + 2) * 1000;
    await sleep(holdMs);
    const cpuHold = processCpuMs(peer.pid) - holdStart;
    const closedDuringHold = [...closed];
    const admin = await peer.admin();
    const counters = (await admin.get<{ counters: Record<string, number> }>('/v1/counters')).counters;
    const registered = counters.ClientsRegistered ?? 0;
    const after = memoryOf(peer.pid);
    await Promise.all(clients.map((c) => c.close()));
    const allStayed = failures.length === 0 && closedDuringHold.length === 0 && registered === count;
    this.rows.push({
      bench: 'vap',
      system: 'ours',
      op: 'register',
      n: clients.length,
      ms: round3(registerMs),
      ops_per_sec: round3(clients.length / (registerMs / 1000)),
      failed: failures.length,
      registered_after_hold: registered,
      closed_during_hold: closedDuringHold.length,
      hold_ms: holdMs,
      keepalive_sec: keepaliveSec,
      peer_rss_before_mb: before?.rssMB,
      peer_rss_mb: after?.rssMB,
      peer_rss_anon_mb: after?.anonMB,
      peer_cpu_ms_registering: round3(cpuRegister),
      peer_cpu_cores_holding: round3(cpuHold / holdMs),
      note: `${REGISTER_CONCURRENCY} registrations in flight (digest over TCP); then every client keeps alive for 3 intervals + 2 s; ClientsRegistered read from the peer`,
    });
    this.targets.push(target(`${count} call managers registered and keeping alive on one peer (registered after ${holdMs / 1000} s)`, `= ${count}`, registered, allStayed));
    this.#progress(`after the hold: ${registered} registered, ${closedDuringHold.length} closed${closedDuringHold.length > 0 ? ` (first: ${closedDuringHold[0]})` : ''}; peer RSS ${after?.rssMB ?? '?'} MB (was ${before?.rssMB ?? '?'} MB)`);
    await waitFor('the peer to see the call managers leave', async () => ((await admin.get<{ counters: Record<string, number> }>('/v1/counters')).counters.ClientsRegistered ?? 0) === 0, 30_000, 200).catch(() => undefined);
  }

  async #vcrIngest(peer: Member): Promise<void> {
    const { vcrs: total, vcrBatch: batch, vcrConnections: connections } = this.#s;
    const admin = await peer.admin();
    const port = (await admin.get<{ boundPort: number }>('/v1/vap/servers/bench')).boundPort;
    const clients = await Promise.all(Array.from({ length: connections }, () => this.#connect(port)));
    const now = Date.now();
    // Terminating VCRs of distinct calls: what a busy enterprise's call managers upload.
    const make = (i: number) => ({
      calling: `+1650${String(1_000_000 + (i % 8_999_999)).padStart(7, '0')}`,
      called: `+1212${String(5_000_000 + (i % 4_999_999)).padStart(7, '0')}`,
      startMs: now - 3_600_000 + (i % 3_000_000),
      stopMs: now - 3_600_000 + (i % 3_000_000) + 60_000,
      direction: 'terminating' as const,
      callId: `bench-${i}`,
    });
    const batches: ReturnType<typeof make>[][] = [];
    for (let i = 0; i < total; i += batch) batches.push(Array.from({ length: Math.min(batch, total - i) }, (_, j) => make(i + j)));
    this.#progress(`uploading ${total} VCRs over ${connections} connections, ${batch} per UploadVcr`);
    const cpuBefore = processCpuMs(peer.pid);
    let next = 0;
    let accepted = 0;
    let refused = 0;
    const start = performance.now();
    await Promise.all(
      clients.map(async (c) => {
        while (next < batches.length) {
          const b = batches[next++] as ReturnType<typeof make>[];
          const ack = await c.uploadVcrs(b);
          accepted += ack.accepted;
          refused += ack.refused.length;
        }
      }),
    );
    const ms = performance.now() - start;
    const cpu = processCpuMs(peer.pid) - cpuBefore;
    await Promise.all(clients.map((c) => c.close()));
    const stored = (await admin.get<{ counts: { terminating: number } }>('/v1/vcrs?limit=1')).counts.terminating;
    const rate = accepted / (ms / 1000);
    this.rows.push({
      bench: 'vap',
      system: 'ours',
      op: 'vcr-ingest',
      n: accepted,
      ms: round3(ms),
      ops_per_sec: round3(rate),
      refused,
      stored,
      connections,
      batch,
      peer_cpu_us_per_vcr: round3((cpu * 1000) / Math.max(1, accepted)),
      note: 'UploadVcr frames acknowledged after the batch is written to LevelDB (one batch write per frame); stored = TerminatingVCRs afterwards',
    });
    this.targets.push(target('VCR ingest on one peer from 10 connections, accepted and persisted (VCRs/s)', '>= 20000', round3(rate), rate >= 20_000 && stored >= total && refused === 0));
    this.#progress(`${accepted} accepted in ${Math.round(ms)} ms: ${Math.round(rate)} VCRs/s; ${stored} stored`);
  }

  async #publication(): Promise<void> {
    const { peers, patterns: count } = this.#s.publication;
    const dids = count * 1000;
    const { ring, stop } = await this.#ring(peers);
    try {
      const peer = ring.peers[0] as Member;
      const port = await this.#vapServer(peer, 16, 30);
      const client = await this.#connect(port);
      const domain = (JSON.parse(readFileSync(peer.configFile, 'utf8')) as { domain: string }).domain;
      await client.publishVservice({ profileName: 'bench', id: 'bench-vs', domain, sipUri: 'sip:ime@cucm.bench.example:5060', maxDidCount: dids });
      const pats = patterns('408', count);
      this.#progress(`publishing an enrollment of ${dids} DIDs (${count} patterns of 3 X) over VAP into ${peers} peers`);
      const start = performance.now();
      const ack = await client.publishEnrollment({ vserviceId: 'bench-vs', groups: [{ name: 'bench', patterns: pats }], exclusions: [], trustGroups: [] });
      const ms = performance.now() - start;
      await client.close();
      const check = sample(pats.flatMap((p) => expandPattern(p)), 1000);
      const readBack = await (await (ring.peers[Math.floor(peers / 2)] as Member).admin()).post<{ found: number }>('/v1/dids/lookup', { numbers: check });
      this.rows.push({
        bench: 'vap',
        system: 'ours',
        peers,
        op: 'enrollment-publish',
        n: ack.accepted,
        ms: round3(ms),
        ops_per_sec: round3(ack.accepted / (ms / 1000)),
        refused: ack.refused.length,
        read_back: `${readBack.found}/${check.length}`,
        note: 'PublishVservice then one PublishEnrollment; timed from sending the enrollment to its Ack (the peer expands, seals and stores every DID on W = 2 replicas before answering)',
      });
      const ok = ack.accepted === dids && readBack.found === check.length;
      this.targets.push(target(`call manager enrollment of ${dids.toLocaleString('en-US')} DIDs published into ${peers} peers (ms)`, '<= 10000', round3(ms), ok && ms <= 10_000));
      this.#progress(`${ack.accepted}/${dids} published in ${Math.round(ms)} ms; read back ${readBack.found}/${check.length}`);
    } finally {
      await stop();
    }
  }
}

export const vapSuite: Suite = {
  name: 'vap',
  description: '1 000 call managers on one peer, VCR ingest, enrollment of 100 000 DIDs into 16 peers',
  run(options) {
    return runWithCleanup('vap', options.progress, (cleanup) => new VapBench(options, cleanup));
  },
};
