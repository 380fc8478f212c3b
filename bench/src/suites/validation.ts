import { rmSync } from 'node:fs';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { VapClient } from '@ime/vap';
import { DEFAULT_TERMINATOR_POLICY, bareAttemptCost } from '@ime/validator';
import { type Row, type Suite, type SuiteOptions, type Target, round3, target } from '../harness.js';
import { Cleanup, runWithCleanup } from '../ring/cleanup.js';
import { PRODUCTION_TUNING } from '../ring/production.js';
import { processCpuMs } from '../ring/proc.js';

/**
 * Validation (issue #6): validations per second between two peers, VCR in → route and ticket out,
 * and the CPU time per validation next to the cost of the key exchange's cryptography alone, measured
 * in the same run. Two enterprises' peers are real processes (production ring timers); their call
 * managers are VAP clients in this process. The callee's VCRs are uploaded first, then the caller's;
 * the clock runs from the caller's upload to the last route released. The bucket threshold is 0, so
 * every success releases its route at once (each route carries its ticket).
 */

interface Sizes {
  readonly validations: number;
  readonly bareRounds: number;
}

const FULL: Sizes = { validations: 2000, bareRounds: 200 };
const QUICK: Sizes = { validations: 200, bareRounds: 40 };

const PASSWORD = 'bench-vap-password';
const TICKET_PASSWORD = 'bench-ticket-password-0123';
const CALLER = '+14085551000';
/** Callee numbers: ten patterns of a thousand. */
const CALLEE_PATTERNS = Array.from({ length: 10 }, (_, i) => `+1212555${i}XXX`);

async function enterprise(peer: Member, index: number, patterns: string[]): Promise<VapClient> {
  const admin = await peer.admin();
  const { boundPort } = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'bench', host: '127.0.0.1', port: 0 });
  await admin.post('/v1/vap/credentials', { server: 'bench', username: 'bench', password: PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
  const client = await VapClient.connect({ host: '127.0.0.1', port: boundPort, mode: 'authenticated', username: 'bench', password: PASSWORD, requestTimeoutMs: 120_000 });
  const domain = `enterprise-${index + 1}.example`;
  await client.publishVservice({ profileName: 'bench', id: `bench-${index}`, domain, sipUri: `sip:ime@cucm.${domain}:5060`, maxDidCount: 20_000 });
  await client.publishEnrollment({ vserviceId: `bench-${index}`, groups: [{ name: 'bench', patterns }], exclusions: [], trustGroups: [] });
  return client;
}

class ValidationBench {
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

  async run(): Promise<void> {
    const slots = DEFAULT_TERMINATOR_POLICY.slots;
    // The cryptography alone: one attempt, both sides, the default number of slots.
    await bareAttemptCost(slots);
    let bareTotal = 0;
    for (let i = 0; i < this.#s.bareRounds; i++) bareTotal += await bareAttemptCost(slots);
    const bareMs = bareTotal / this.#s.bareRounds;
    this.#o.progress(`validation: bare key exchange, ${slots} slots, both sides: ${bareMs.toFixed(2)} ms`);
    this.rows.push({ bench: 'validation', system: 'bare SPAKE2+ (both sides)', op: `one attempt, ${slots} slots`, n: this.#s.bareRounds, ms: round3(bareMs), ops_per_sec: round3(1000 / bareMs) });

    const ring = await RingHarness.start({
      peers: 0,
      mode: 'process',
      tuning: PRODUCTION_TUNING,
      logLevel: 'warn',
      validator: { delaySec: 0, concurrency: 16, originatingPerMinute: 1_000_000, terminatingPerMinute: 1_000_000, burst: 1_000_000, pendingHighWatermark: 1_000_000, pendingLowWatermark: 0 },
    });
    this.#cleanup.add('validation ring', async () => {
      await ring.stop();
      rmSync(ring.dir, { recursive: true, force: true });
    });
    const a = await ring.createPeer();
    const b = await ring.createPeer();
    await ring.converge({ timeoutMs: 120_000 });
    const caller = await enterprise(a, 0, ['+14085551XXX']);
    const callee = await enterprise(b, 1, CALLEE_PATTERNS);
    this.#cleanup.add('call managers', async () => {
      await caller.close().catch(() => undefined);
      await callee.close().catch(() => undefined);
    });
    await (await a.admin()).put('/v1/validator/bucketentropy', { value: 0 });
    let routes = 0;
    caller.onRoutes((r) => {
      routes += r.length;
    });

    const n = this.#s.validations;
    const now = Date.now();
    const calls = Array.from({ length: n }, (_, i) => {
      const startMs = now - 30 * 60_000 + i * 500;
      return { calling: CALLER, called: `+1212555${String(i).padStart(4, '0')}`, startMs, stopMs: startMs + 60_000 + (i % 50) * 1000, callId: `bench-${i}` };
    });
    for (let i = 0; i < n; i += 500) await callee.uploadVcrs(calls.slice(i, i + 500).map((c) => ({ ...c, direction: 'terminating' as const })));
    this.#o.progress(`validation: ${n} terminating VCRs stored on the callee's peer; uploading the caller's`);
    const cpu0 = processCpuMs(a.pid) + processCpuMs(b.pid);
    const t0 = performance.now();
    for (let i = 0; i < n; i += 500) await caller.uploadVcrs(calls.slice(i, i + 500).map((c) => ({ ...c, direction: 'originating' as const })));
    let succeeded = 0;
    let failed = 0;
    await waitFor(
      `${n} validations`,
      async () => {
        const c = (await (await a.admin()).get<{ counters: Record<string, number> }>('/v1/counters')).counters;
        succeeded = c.ValidationsSucceeded ?? 0;
        failed = (c.ValidationsFailed ?? 0) + (c.ValidationErrors ?? 0) + (c.ValidationsRefused ?? 0);
        return succeeded + failed >= n && routes >= succeeded;
      },
      600_000,
      100,
    );
    const ms = performance.now() - t0;
    const cpu = processCpuMs(a.pid) + processCpuMs(b.pid) - cpu0;
    const rate = (succeeded * 1000) / ms;
    const cpuPer = cpu / n;
    this.#o.progress(`validation: ${succeeded}/${n} succeeded in ${Math.round(ms)} ms (${rate.toFixed(0)}/s), ${cpuPer.toFixed(2)} ms CPU each`);
    this.rows.push({ bench: 'validation', system: 'ours', op: 'validations, VCR in → route and ticket out', n, ops_per_sec: round3(rate), ms: round3(ms) });
    this.rows.push({ bench: 'validation', system: 'ours', op: 'CPU per validation, both peers (ms)', n, ms: round3(cpuPer) });
    this.rows.push({ bench: 'validation', system: 'ours', op: 'CPU per validation ÷ bare key exchange', n, ms: round3(cpuPer / bareMs) });
    this.targets.push(target('validations per second between two peers (VCR in → route and ticket out)', '>= 500', round3(rate), rate >= 500 && failed === 0));
    this.targets.push(target('CPU per validation ÷ the key exchange cryptography alone', '<= 1.5', round3(cpuPer / bareMs), cpuPer / bareMs <= 1.5 && failed === 0));
  }
}

export const validationSuite: Suite = {
  name: 'validation',
  description: 'validations per second between two peers and CPU per validation against the bare key exchange',
  run(options) {
    return runWithCleanup('validation', options.progress, (cleanup) => new ValidationBench(options, cleanup));
  },
};
