import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { RpcClient } from '@ime/runtime';
import { TicketVerifier, inspectTicket } from '@ime/ticket';
import {
  PVP_SUITE,
  ProverAttempt,
  VALIDATION_PROTOCOL,
  type PvpRequestBody,
  cellWidthMs,
  decodeResponse,
  encodeRequest,
  proverScalars,
} from '@ime/validator';
import { type LearnedRoute, VapClient } from '@ime/vap';
import type { TrustGroup } from '@ime/vap';
import { counters } from './ring-test-helpers.js';

// The validation rules of SPEC §6 on a real ring (peers in this process, real libp2p and LevelDB)
// with call managers speaking real VAP: each enterprise uploads its own VCRs, and the caller's peer
// validates against the callee's. Each rule uses its own callee enterprise, so pools do not mix.
const VAP_PASSWORD = 'cm-vap-password-123';
const TICKET_PASSWORD = 'ticket-password-0123456789';
const TOLERANCE_SEC = 5;
const REVALIDATE_AFTER_SEC = 4;
const MINUTE = 60_000;

interface Enterprise {
  readonly peer: Member;
  readonly domain: string;
  client: VapClient;
  readonly routes: LearnedRoute[];
}

let callSeq = 0;

describe('validation rules on a real ring', () => {
  let ring: RingHarness;
  const ent: Enterprise[] = [];

  async function enterprise(peer: Member, index: number, pattern: string, trustGroups: TrustGroup[] = []): Promise<Enterprise> {
    const admin = await peer.admin();
    const vap = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port: 0 });
    await admin.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: VAP_PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
    const client = await VapClient.connect({ host: '127.0.0.1', port: vap.boundPort, mode: 'authenticated', username: 'imeuser', password: VAP_PASSWORD });
    const domain = `enterprise-${index + 1}.example`;
    await client.publishVservice({ profileName: `p${index}`, id: `vs-${index}`, domain, sipUri: `sip:ime@cucm.${domain}:5060`, maxDidCount: 1000 });
    await client.publishEnrollment({ vserviceId: `vs-${index}`, groups: [{ name: 'main', patterns: [pattern] }], exclusions: [], trustGroups });
    const routes: LearnedRoute[] = [];
    client.onRoutes((r) => routes.push(...r));
    return { peer, domain, client, routes };
  }

  /**
   * One PSTN call as both call managers report it: the callee's VCR first (the callee has it when
   * the caller's validation runs), then the caller's. `callee` times may be skewed or its calling
   * number rewritten, as the PSTN and the clocks can make them.
   */
  async function call(
    from: Enterprise,
    to: Enterprise,
    calling: string,
    called: string,
    options: { startMs?: number; durationMs?: number; skewMs?: number; calleeSees?: string; callerOnly?: boolean } = {},
  ): Promise<void> {
    const startMs = options.startMs ?? Date.now() - 2 * MINUTE;
    const stopMs = startMs + (options.durationMs ?? 61_000);
    const callId = `call-${++callSeq}`;
    const skew = options.skewMs ?? 0;
    if (!options.callerOnly) {
      const t = await to.client.uploadVcrs([{ calling: options.calleeSees ?? calling, called, startMs: startMs + skew, stopMs: stopMs + skew, direction: 'terminating', callId }]);
      expect(t.refused).toEqual([]);
    }
    const o = await from.client.uploadVcrs([{ calling, called, startMs, stopMs, direction: 'originating', callId }]);
    expect(o.refused).toEqual([]);
  }

  interface ValidationView {
    called: string;
    domain: string;
    outcome: string;
    value?: number;
    code?: string;
    bucket?: string;
    bucketTotal?: number;
    released?: number;
  }

  async function validations(e: Enterprise): Promise<ValidationView[]> {
    return (await (await e.peer.admin()).get<{ validations: ValidationView[] }>('/v1/validator/validations')).validations;
  }

  /** Waits for the caller's next `n` validations toward `to` and returns them. */
  async function outcomes(from: Enterprise, to: Enterprise, before: number, n = 1): Promise<ValidationView[]> {
    let seen: ValidationView[] = [];
    try {
      await waitFor(`${n} validation(s) toward ${to.domain}`, async () => {
        seen = (await validations(from)).filter((v) => v.domain === to.domain).slice(before);
        return seen.length >= n;
      }, 30_000, 100);
    } catch (err) {
      const c = await counters(from.peer);
      const skipped = Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith('Validation')));
      throw new Error(`${(err as Error).message}; seen ${JSON.stringify(seen)}; counters ${JSON.stringify(skipped)}`);
    }
    return seen;
  }

  async function countToward(from: Enterprise, to: Enterprise): Promise<number> {
    return (await validations(from)).filter((v) => v.domain === to.domain).length;
  }

  async function pool(from: Enterprise, to: Enterprise) {
    const r = await (await from.peer.admin()).get<{ pools: { peerId: string; defaultBucket: { total: number }; numberBuckets: { number: string; total: number }[] }[] }>('/v1/validator/pools');
    return r.pools.find((p) => p.peerId === to.peer.peerId);
  }

  beforeAll(async () => {
    ring = await RingHarness.start({
      peers: 7,
      mode: 'in-process',
      validator: { delaySec: 0, toleranceSec: TOLERANCE_SEC, revalidateAfterSec: REVALIDATE_AFTER_SEC, terminatingPerMinute: 60, burst: 40, retryAfterErrorSec: 1, retryAfterErrorMaxSec: 2 },
    });
    await ring.converge();
    const p = ring.peers;
    ent.push(await enterprise(p[0]!, 0, '+14085551XXX')); // A: the caller
    ent.push(await enterprise(p[1]!, 1, '+12125550XXX')); // B: penalty box
    ent.push(await enterprise(p[2]!, 2, '+13125550XXX')); // C: values
    ent.push(await enterprise(p[3]!, 3, '+14155550XXX')); // D: one-hour rule, skew, caller id, guessing
    ent.push(await enterprise(p[4]!, 4, '+16175550XXX', [{ name: 'blocked', trusted: false, description: 'no A', elements: [{ kind: 'domain', value: 'enterprise-1.example' }] }])); // E: blacklists A
    ent.push(await enterprise(p[5]!, 5, '+17185550XXX', [{ name: 'partners', trusted: true, description: 'only G', elements: [{ kind: 'domain', value: 'enterprise-7.example' }] }])); // F: whitelists G only
    ent.push(await enterprise(p[6]!, 6, '+19175551XXX')); // G: a second caller
    await waitFor('every enrollment in the ring', async () => (await Promise.all(p.map((m) => counters(m)))).every((c) => c.IMEDistributedCacheQuotaUsed === 1000), 60_000, 250);
  }, 180_000);

  /** Connects the enterprise's call manager again (after its peer restarted on a new VAP port). */
  async function reconnect(e: Enterprise): Promise<void> {
    await e.client.close().catch(() => undefined);
    const { boundPort } = await (await e.peer.admin()).get<{ boundPort: number }>('/v1/vap/servers/cucm');
    e.client = await VapClient.connect({ host: '127.0.0.1', port: boundPort, mode: 'authenticated', username: 'imeuser', password: VAP_PASSWORD });
    e.client.onRoutes((r) => e.routes.push(...r));
  }

  /** Restarts a peer in this process, optionally with other validator settings. */
  async function restart(e: Enterprise, validator?: Record<string, number>): Promise<void> {
    await e.peer.stop();
    if (validator) {
      const config = JSON.parse(readFileSync(e.peer.configFile, 'utf8')) as { validator: Record<string, number> };
      config.validator = { ...config.validator, ...validator };
      writeFileSync(e.peer.configFile, JSON.stringify(config));
    }
    await e.peer.start();
    await reconnect(e);
  }

  afterAll(async () => {
    for (const e of ent) await e.client.close().catch(() => undefined);
    await ring?.stop();
    if (ring) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  it('penalty box: a failure empties B\'s pool and boxes the number; its successes then stay in its own bucket', async () => {
    const [a, b] = [ent[0]!, ent[1]!];
    // One success fills the default bucket, then A reports a call to +12125550001 that never happened.
    await call(a, b, '+14085551000', '+12125550010');
    expect((await outcomes(a, b, 0))[0]).toEqual(expect.objectContaining({ outcome: 'success', bucket: 'default', bucketTotal: 12 }));
    await call(a, b, '+14085551000', '+12125550001', { callerOnly: true });
    expect((await outcomes(a, b, 1))[0]).toEqual(expect.objectContaining({ outcome: 'failure', called: '+12125550001' }));
    const boxed = await pool(a, b);
    expect(boxed?.defaultBucket.total).toBe(0);
    expect(boxed?.numberBuckets).toEqual([{ number: '+12125550001', total: 0, entries: [] }]);

    // Successes against the boxed number accumulate only in its bucket and release only its route
    // (each after the revalidation interval: the one-hour rule holds for the number).
    const interval = () => new Promise((r) => setTimeout(r, REVALIDATE_AFTER_SEC * 1000 + 200));
    await interval();
    await call(a, b, '+14085551000', '+12125550001', { startMs: Date.now() - 10 * MINUTE });
    await outcomes(a, b, 2);
    await interval();
    await call(a, b, '+14085551000', '+12125550001', { startMs: Date.now() - 5 * MINUTE });
    const boxedRun = await outcomes(a, b, 2, 2);
    expect(boxedRun.map((v) => [v.outcome, v.bucket, v.bucketTotal, v.released])).toEqual([
      ['success', '+12125550001', 12, 0],
      ['success', '+12125550001', 0, 1],
    ]);
    await waitFor('the boxed number\'s route at A\'s call manager', () => a.routes.some((r) => r.number === '+12125550001'), 10_000);
    expect(a.routes.filter((r) => r.domain === b.domain).map((r) => r.number)).toEqual(['+12125550001']);

    // Other B numbers need the full count again in the (emptied) default bucket.
    await call(a, b, '+14085551000', '+12125550020');
    expect((await outcomes(a, b, 4))[0]).toEqual(expect.objectContaining({ outcome: 'success', bucket: 'default', bucketTotal: 12, released: 0 }));
    await call(a, b, '+14085551000', '+12125550021');
    expect((await outcomes(a, b, 5))[0]).toEqual(expect.objectContaining({ outcome: 'success', bucket: 'default', bucketTotal: 0, released: 2 }));
  }, 120_000);

  it('values with threshold 20: two 8-point successes hold, a third releases; two 12-point successes release', async () => {
    const [a, c] = [ent[0]!, ent[2]!];
    expect((await (await a.peer.admin()).get<{ threshold: number }>('/v1/validator/pools')).threshold).toBe(20);
    // Stop times that differ by more than the tolerance: only the start time is proven (8 points).
    const startOnly = { skewMs: 0, durationMs: 60_000 };
    const before = await countToward(a, c);
    for (const n of ['+13125550001', '+13125550002']) {
      await c.client.uploadVcrs([{ calling: '+14085551000', called: n, startMs: Date.now() - 3 * MINUTE, stopMs: Date.now() - 3 * MINUTE + 90_000, direction: 'terminating', callId: `c-${n}` }]);
      await a.client.uploadVcrs([{ calling: '+14085551000', called: n, startMs: Date.now() - 3 * MINUTE, stopMs: Date.now() - 3 * MINUTE + startOnly.durationMs, direction: 'originating', callId: `c-${n}` }]);
      await outcomes(a, c, before + (n.endsWith('1') ? 0 : 1));
    }
    let seen = await outcomes(a, c, before, 2);
    expect(seen.map((v) => [v.value, v.bucketTotal, v.released])).toEqual([
      [8, 8, 0],
      [8, 16, 0],
    ]);
    expect(a.routes.some((r) => r.domain === c.domain)).toBe(false);
    await c.client.uploadVcrs([{ calling: '+14085551000', called: '+13125550003', startMs: Date.now() - 3 * MINUTE, stopMs: Date.now() - MINUTE, direction: 'terminating', callId: 'c3' }]);
    await a.client.uploadVcrs([{ calling: '+14085551000', called: '+13125550003', startMs: Date.now() - 3 * MINUTE, stopMs: Date.now() - 2 * MINUTE, direction: 'originating', callId: 'c3' }]);
    seen = await outcomes(a, c, before + 2);
    expect(seen[0]).toEqual(expect.objectContaining({ value: 8, bucketTotal: 0, released: 3 }));

    // Two 12-point successes: 24 > 20.
    await call(a, c, '+14085551000', '+13125550004');
    await call(a, c, '+14085551000', '+13125550005');
    seen = await outcomes(a, c, before + 3, 2);
    expect(seen.map((v) => [v.value, v.bucketTotal, v.released])).toEqual([
      [12, 12, 0],
      [12, 0, 2],
    ]);
    await waitFor('five routes toward C', () => a.routes.filter((r) => r.domain === c.domain).length === 5, 10_000);
  }, 120_000);

  it('the one-hour rule: a second call to the same number inside the interval is not validated; after it, it is', async () => {
    const [a, d] = [ent[0]!, ent[3]!];
    const before = await countToward(a, d);
    const skippedBefore = (await counters(a.peer)).ValidationsSkippedRecentlyValidated ?? 0;
    await call(a, d, '+14085551000', '+14155550001', { startMs: Date.now() - 9 * MINUTE });
    await outcomes(a, d, before);
    await call(a, d, '+14085551000', '+14155550001', { startMs: Date.now() - 7 * MINUTE });
    await waitFor('the second call to be skipped', async () => (await counters(a.peer)).ValidationsSkippedRecentlyValidated === skippedBefore + 1, 10_000);
    expect(await countToward(a, d)).toBe(before + 1);
    await new Promise((r) => setTimeout(r, REVALIDATE_AFTER_SEC * 1000 + 200));
    await call(a, d, '+14085551000', '+14155550001', { startMs: Date.now() - 5 * MINUTE });
    expect((await outcomes(a, d, before + 1))[0]).toEqual(expect.objectContaining({ outcome: 'success', called: '+14155550001' }));
  }, 60_000);

  it('clock skew inside the tolerance validates, outside it fails; a caller id rewritten by the PSTN fails', async () => {
    const [a, d] = [ent[0]!, ent[3]!];
    const before = await countToward(a, d);
    await call(a, d, '+14085551000', '+14155550011', { skewMs: 4_000 });
    expect((await outcomes(a, d, before))[0]).toEqual(expect.objectContaining({ outcome: 'success', value: 12 }));
    await call(a, d, '+14085551000', '+14155550012', { skewMs: -3_500 });
    expect((await outcomes(a, d, before + 1))[0]).toEqual(expect.objectContaining({ outcome: 'success', value: 12 }));
    // Beyond three tolerances no time cell can meet (docs/VALIDATION-CRYPTO.md).
    await call(a, d, '+14085551000', '+14155550013', { skewMs: 3 * TOLERANCE_SEC * 1000 + 1000 });
    expect((await outcomes(a, d, before + 2))[0]).toEqual(expect.objectContaining({ outcome: 'failure' }));
    await call(a, d, '+14085551000', '+14155550014', { calleeSees: '+18005550100' });
    expect((await outcomes(a, d, before + 3))[0]).toEqual(expect.objectContaining({ outcome: 'failure' }));
  }, 60_000);

  it('trust lists: a blacklisted caller domain is blocked and counted, nothing learned; a whitelist admits only its domains', async () => {
    const [a, e, f, g] = [ent[0]!, ent[4]!, ent[5]!, ent[6]!];
    const blockedBefore = (await counters(e.peer)).ValidationsBlocked ?? 0;
    const before = await countToward(a, e);
    await call(a, e, '+14085551000', '+16175550001');
    expect((await outcomes(a, e, before))[0]).toEqual(expect.objectContaining({ outcome: 'refused', code: 'E_PVP_BLOCKED' }));
    expect((await counters(e.peer)).ValidationsBlocked).toBe(blockedBefore + 1);
    expect((await counters(e.peer)).ValidationsGranted ?? 0).toBe(0);
    expect(await pool(a, e)).toBeUndefined();

    // F trusts G only: A is refused, G validates.
    const fBefore = await countToward(a, f);
    await call(a, f, '+14085551000', '+17185550001');
    expect((await outcomes(a, f, fBefore))[0]).toEqual(expect.objectContaining({ outcome: 'refused', code: 'E_PVP_BLOCKED' }));
    const gBefore = await countToward(g, f);
    await call(g, f, '+19175551000', '+17185550002');
    expect((await outcomes(g, f, gBefore))[0]).toEqual(expect.objectContaining({ outcome: 'success' }));
    expect((await counters(f.peer)).ValidationsBlocked).toBe(1);
  }, 60_000);

  it('a peer guessing call details fails, learns nothing from the answers, and is rate-limited', async () => {
    const [a, d] = [ent[0]!, ent[3]!];
    // A real call D holds; the guesser knows the number and the minute, not the caller or the second.
    const startMs = Date.now() - 20 * MINUTE;
    await d.client.uploadVcrs([{ calling: '+14085551777', called: '+14155550099', startMs, stopMs: startMs + 30_000, direction: 'terminating', callId: 'secret-call' }]);
    const node = a.peer.node!;
    const rpc = new RpcClient(node.libp2p, VALIDATION_PROTOCOL, { timeoutMs: 5000 });
    const cellMs = cellWidthMs(TOLERANCE_SEC * 1000);
    const send = async (sessionId: Uint8Array, body: PvpRequestBody) => decodeResponse(await rpc.request(node.remotePeerId(d.peer.peerId), encodeRequest({ sessionId, body })));
    /** One session with one guess; returns the answer's shape (what the guesser can observe). */
    const guess = async (called: string, calling: string, guessStartMs: number) => {
      const sessionId = randomBytes(16);
      const windowStartMs = Math.floor(guessStartMs / 300_000) * 300_000;
      const offer = await send(sessionId, { kind: 'start', called, windowStartMs, windowMs: 300_000, cellMs, suite: PVP_SUITE });
      if (offer.body.kind !== 'offer') return { refused: offer.body.kind === 'refused' ? offer.body.code : offer.body.kind };
      const cells = Math.floor(guessStartMs / cellMs);
      const prover = ProverAttempt.start(proverScalars(`guess|${calling}|${called}|${cells}`));
      const answer = await send(sessionId, { kind: 'attempt', attempt: 1, proof: 'start-only', share: prover.share });
      if (answer.body.kind !== 'answer') return { refused: answer.body.kind === 'refused' ? answer.body.code : answer.body.kind };
      await send(sessionId, { kind: 'abandon' });
      return { offer: [offer.body.slots, offer.body.maxAttempts, offer.body.terminatorNonce.length], answer: answer.body.slots.map((s) => [s.share.length, s.confirm.length]) };
    };
    try {
      // A wrong caller and a wrong start time against the real call, and a number D holds no call for:
      // the guesser sees the same shapes in all three.
      const wrongCaller = await guess('+14155550099', '+14085550000', startMs);
      const wrongTime = await guess('+14155550099', '+14085551777', startMs + 40_000);
      const noCall = await guess('+14155550098', '+14085551777', startMs);
      expect(wrongCaller).toEqual(noCall);
      expect(wrongTime).toEqual(noCall);
      expect(noCall.offer).toEqual([3, 6, 16]);
      // Repeated guessing hits D's per-peer limit (burst 40, 60/min; each session and attempt takes one).
      const results: unknown[] = [];
      for (let i = 0; i < 40; i++) results.push(await guess('+14155550099', '+14085551777', startMs + i * 1000));
      expect(results).toContainEqual({ refused: 'E_PVP_RATE_LIMITED' });
      expect((await counters(d.peer)).BlockedValidationTermTLSLimit).toBeGreaterThan(0);
      expect((await counters(d.peer)).ValidationsGranted ?? 0).toBeLessThanOrEqual(4);
    } finally {
      rpc.stop();
    }
  }, 60_000);
  it('restart of either peer mid-way: pending validations, buckets and learned routes survive', async () => {
    const [d, g] = [ent[3]!, ent[6]!];
    // G holds its validations back, so one is still pending when it restarts.
    await restart(g, { delaySec: 3600 });
    await call(g, d, '+19175551000', '+14155550301');
    await waitFor('a pending validation on G', async () => (await counters(g.peer)).ValidationsPending === 1, 10_000);
    await restart(g, { delaySec: 0 });
    expect((await outcomes(g, d, 0))[0]).toEqual(expect.objectContaining({ outcome: 'success', called: '+14155550301', bucketTotal: 12 }));

    // D restarts between storing its VCR and the validation; G restarts with 12 in D's bucket.
    await d.client.uploadVcrs([{ calling: '+19175551000', called: '+14155550302', startMs: Date.now() - 4 * MINUTE, stopMs: Date.now() - 3 * MINUTE, direction: 'terminating', callId: 'restart-2' }]);
    await restart(d);
    await restart(g);
    expect((await pool(g, d))?.defaultBucket.total).toBe(12);
    await g.client.uploadVcrs([{ calling: '+19175551000', called: '+14155550302', startMs: Date.now() - 4 * MINUTE, stopMs: Date.now() - 3 * MINUTE, direction: 'originating', callId: 'restart-2' }]);
    expect((await outcomes(g, d, 0))[0]).toEqual(expect.objectContaining({ outcome: 'success', called: '+14155550302', released: 2 }));

    // The learned routes come back to a call manager that registers after G restarts again.
    await restart(g);
    g.routes.length = 0;
    await reconnect(g);
    await waitFor('G\'s routes pushed at registration', () => g.routes.length >= 2, 10_000);
    expect([...new Set(g.routes.map((r) => r.number))].sort()).toEqual(['+14155550301', '+14155550302']);
  }, 120_000);

  it('a claimant that cannot be reached: the call is kept, tried again, and validated once the claimant is back', async () => {
    const [f, g] = [ent[5]!, ent[6]!];
    const before = await countToward(g, f);
    const errorsBefore = (await counters(g.peer)).ValidationErrors ?? 0;
    // F holds its side of the call, then goes away before G validates.
    const startMs = Date.now() - 2 * MINUTE;
    await f.client.uploadVcrs([{ calling: '+19175551000', called: '+17185550003', startMs, stopMs: startMs + 61_000, direction: 'terminating', callId: 'unreachable-1' }]);
    await f.client.close().catch(() => undefined);
    await f.peer.stop();
    await g.client.uploadVcrs([{ calling: '+19175551000', called: '+17185550003', startMs, stopMs: startMs + 61_000, direction: 'originating', callId: 'unreachable-1' }]);
    const [first] = (await outcomes(g, f, before)) as [ValidationView & { retryAtMs?: number }];
    expect(first).toEqual(expect.objectContaining({ called: '+17185550003', outcome: 'error', code: expect.stringMatching(/^E_/), retryAtMs: expect.any(Number) }));
    const held = await counters(g.peer);
    expect(held.ValidationErrors).toBeGreaterThan(errorsBefore);
    expect(held.ValidationsPending).toBe(1);
    expect(held.ValidationsAbandoned ?? 0).toBe(0);

    await f.peer.start();
    await reconnect(f);
    await waitFor('G to validate the kept call once F is back', async () => (await validations(g)).some((v) => v.called === '+17185550003' && v.outcome === 'success'), 60_000, 250);
    expect((await counters(g.peer)).ValidationsPending).toBe(0);
    // The call was used once: F marked its VCR used, and the number now falls under the one-hour rule.
    expect((await validations(g)).filter((v) => v.called === '+17185550003' && v.outcome === 'success')).toHaveLength(1);
  }, 120_000);

  it('a ticket password change raises TicketPasswordChanged; tickets of the old epoch verify during the grace period only', async () => {
    const [a, c] = [ent[0]!, ent[2]!];
    const old = a.routes.find((r) => r.domain === c.domain);
    expect(old).toBeDefined();
    expect(inspectTicket(old!.ticket).epoch).toBe(1);
    const admin = await c.peer.admin();
    await admin.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: VAP_PASSWORD, ticketPassword: 'new-ticket-password-987654', epoch: 2 });
    const alerts = await admin.get<{ active: { name: string; details: Record<string, unknown> }[] }>('/v1/alerts');
    expect(alerts.active).toContainEqual(expect.objectContaining({ name: 'TicketPasswordChanged', details: expect.objectContaining({ previousEpoch: 1, epoch: 2 }) }));

    // New tickets are signed under epoch 2.
    const before = await countToward(a, c);
    await call(a, c, '+14085551000', '+13125550006');
    await call(a, c, '+14085551000', '+13125550007');
    await outcomes(a, c, before, 2);
    await waitFor('the new routes', () => a.routes.some((r) => r.number === '+13125550007'), 10_000);
    const fresh = a.routes.find((r) => r.number === '+13125550007')!;
    expect(inspectTicket(fresh.ticket).epoch).toBe(2);

    const retiredAtMs = Date.now();
    const edge = new TicketVerifier({ current: { password: 'new-ticket-password-987654', epoch: 2 }, previous: { password: TICKET_PASSWORD, epoch: 1, retiredAtMs }, graceMs: 7 * 24 * 3600 * 1000 });
    const request = (r: LearnedRoute, nowMs: number) => ({ callingDomain: a.domain, calledNumber: r.number, nowMs });
    expect(edge.verify(fresh.ticket, request(fresh, retiredAtMs)).valid).toBe(true);
    expect(edge.verify(old!.ticket, request(old!, retiredAtMs + 3600_000)).valid).toBe(true);
    expect(edge.verify(old!.ticket, request(old!, retiredAtMs + 8 * 24 * 3600 * 1000))).toEqual(expect.objectContaining({ valid: false, reason: 'unknown-epoch' }));
  }, 60_000);
});
