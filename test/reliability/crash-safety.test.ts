import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { expandPatterns, isImeError, parseEnrolledPattern } from '@ime/core';
import { type Member, RingHarness, freePorts, waitFor } from '@ime/harness';
import { openDatabase } from '@ime/runtime';
import { type LearnedRoute, VapClient, type Vcr } from '@ime/vap';
import { counters } from '../ring-test-helpers.js';
import { type LogMark, type Rng, corruptionSince, logMark, progress, readAll, seededRng, sleep, validations, waitGreen } from './reliability-helpers.js';

// Issue 8, crash safety: 20 rounds of SIGKILL at a random point (seeded, printed) of
//   (a) a bulk publication (7 rounds): the publisher itself or another peer dies; every DID whose
//       publish call returned is readable afterwards, and a publisher that died still knows every
//       number it acknowledged (what it republishes before the TTL);
//   (b) VCR ingest over VAP (7 rounds): every VCR the peer acknowledged is in its store afterwards,
//       and the stored count matches what is stored;
//   (c) bucket updates (6 rounds): the caller's peer dies while its validations fill buckets and
//       release routes; every route it reported is still there, every bucket entry and success it
//       reported is still in a bucket or became a route, no call turns into a false failure, and its
//       call manager gets every stored route back when it registers again.
// After each kill the peer starts again on the same files (its LevelDB opens), is GREEN, and its log
// says nothing of a damaged database. One ring of 5 peer processes serves every round.
//
// A kill point is a random amount of progress (k of the calls, batches or validations acknowledged)
// plus a random delay under the time one more takes, so it falls inside the work however fast or
// slow the machine is, often in the middle of a step.

const say = progress('crash');
const VAP_PASSWORD = 'crash-safety-vap-password';
const TICKET_PASSWORD = 'crash-safety-ticket-password';
const ROUNDS = { publish: 7, ingest: 7, buckets: 6 };
/** Numbers per publish call: a bulk publication is many calls, each acknowledged on its own. */
const PUBLISH_CALL = 200;
const VCR_BATCH = 25;
/** VCR batches per ingest round at most (the admin listing shows 10 000 VCRs: the whole run stays under). */
const INGEST_BATCHES = 40;
const CALLS_PER_ROUND = 8;
const A_CALLER = '+14085551000';
const MINUTE = 60_000;

interface VapSide {
  readonly name: string;
  readonly peer: Member;
  readonly port: number;
  client: VapClient | undefined;
  /** Routes pushed to this call manager over VAP, by number|domain. */
  readonly routes: Map<string, LearnedRoute>;
}

interface RouteView {
  number: string;
  domain: string;
}
interface BucketView {
  total: number;
  entries: { number: string; value: number }[];
}
interface PoolsView {
  pools: { peerId: string; defaultBucket: BucketView; numberBuckets: (BucketView & { number: string })[] }[];
}

const routeId = (r: { number: string; domain: string }) => `${r.number}|${r.domain}`;

describe('crash safety: SIGKILL during bulk publication, VCR ingest and bucket updates', () => {
  let ring: RingHarness;
  let rng: Rng;
  let a: VapSide; // the caller: its peer keeps the pools and routes
  let b: VapSide; // the callee
  let ingest: VapSide;
  /** Numbers each publisher acknowledged, over all rounds. */
  const acknowledged = new Map<Member, Set<string>>();
  const ackedVcrs = new Set<string>();
  /** Time one step takes undisturbed (a publish call, a VCR batch, a validation). */
  let publishCallMs = 0;
  let batchMs = 0;
  let validationMs = 0;
  let callSeq = 0;
  let nextCalled = 100;
  const victims = new Set<Member>();

  async function connect(side: VapSide): Promise<void> {
    await side.client?.close().catch(() => undefined);
    side.client = undefined;
    // The peer's VAP server instance starts again on its configured port once the peer is up.
    let client: VapClient | undefined;
    await waitFor(`${side.name}'s call manager to register`, async () => {
      client = await VapClient.connect({ host: '127.0.0.1', port: side.port, mode: 'authenticated', username: 'imeuser', password: VAP_PASSWORD });
      return true;
    }, 30_000, 200);
    const c = client as VapClient;
    c.onRoutes((routes) => {
      for (const r of routes) side.routes.set(routeId(r), r);
    });
    side.client = c;
  }

  async function vapSide(name: string, peer: Member, port: number): Promise<VapSide> {
    const admin = await peer.admin();
    await admin.post('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port });
    await admin.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: VAP_PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
    const side: VapSide = { name, peer, port, client: undefined, routes: new Map() };
    await connect(side);
    return side;
  }

  async function enroll(side: VapSide, index: number, pattern: string): Promise<void> {
    const domain = `enterprise-${index + 1}.example`;
    const c = side.client as VapClient;
    await c.publishVservice({ profileName: side.name, id: `vs-${side.name}`, domain, sipUri: `sip:ime@cucm.${domain}:5060`, maxDidCount: 1000 });
    await c.publishEnrollment({ vserviceId: `vs-${side.name}`, groups: [{ name: 'main', patterns: [pattern] }], exclusions: [], trustGroups: [] });
  }

  /**
   * Kills `victim` once `reached()` (or the work ended), after a further random delay under `stepMs`.
   * Returns the delay, for the round's report.
   */
  async function killAt(victim: Member, reached: () => boolean, ended: () => boolean, stepMs: number): Promise<number> {
    await waitFor(`${victim.name}'s kill point`, () => reached() || ended(), 120_000, 2);
    const jitter = rng.int(0, Math.max(1, Math.ceil(stepMs)));
    await sleep(jitter);
    await victim.kill();
    victims.add(victim);
    return jitter;
  }

  /** After a kill: the same files start again, the peer is GREEN, and nothing in its log speaks of damage. */
  async function restart(victim: Member, mark: LogMark): Promise<void> {
    const started = Date.now();
    await victim.start();
    await waitGreen(victim);
    expect({ peer: victim.name, corruption: corruptionSince(victim, mark) }).toEqual({ peer: victim.name, corruption: [] });
    await ring.converge({ timeoutMs: 90_000 });
    say(`  ${victim.name} started again on its files and GREEN in ${((Date.now() - started) / 1000).toFixed(1)} s; ring converged`);
  }

  beforeAll(async () => {
    rng = seededRng(say);
    ring = await RingHarness.start({
      peers: 5,
      mode: 'process',
      keep: true,
      // Validations start as soon as the caller's VCR is in, one at a time (so a kill can fall between
      // two bucket updates, not only after a burst of them); one that could not run is retried soon.
      validator: { delaySec: 0, concurrency: 1, retryAfterErrorSec: 1, retryAfterErrorMaxSec: 2 },
    });
    await ring.converge();
    const [portA, portB, portIngest] = await freePorts(3);
    a = await vapSide('a', ring.peers[0]!, portA!);
    b = await vapSide('b', ring.peers[1]!, portB!);
    ingest = await vapSide('ingest', ring.peers[2]!, portIngest!);
    await enroll(a, 0, '+14085551XXX');
    await enroll(b, 1, '+12125550XXX');
    await waitFor('both enrollments in the ring', async () => {
      const c = await Promise.all([counters(a.peer), counters(b.peer)]);
      return c.every((x) => x.IMEDistributedCacheQuotaUsed === 1000);
    }, 60_000, 250);
    // Three 12-point successes (36) exceed 30: a bucket releases every third success.
    await (await a.peer.admin()).put('/v1/validator/bucketentropy', { value: 30 });
    say('ring of 5 peer processes up; call managers of enterprise-1 (caller) and enterprise-2 registered; an ingest call manager on peer-3');
  }, 240_000);

  afterAll(async () => {
    for (const side of [a, b, ingest]) await side?.client?.close().catch(() => undefined);
    await ring?.stop();
    if (ring && !process.env.IME_KEEP_RING) rmSync(ring.dir, { recursive: true, force: true });
  }, 120_000);

  // ---------------------------------------------------------------------------------------------
  // (a) bulk publication

  /** Work a kill interrupts: what the component acknowledged so far, whether it ended, and why it stopped. */
  interface Progress {
    readonly acked: string[];
    calls: number;
    ended: boolean;
    stoppedBy?: string;
  }

  /** Publishes call after call until done or a call fails (its peer died), noting what each returned. */
  function publishInCalls(publisher: Member, numbers: readonly string[]): { progress: Progress; done: Promise<void> } {
    const progress: Progress = { acked: [], calls: 0, ended: false };
    const done = (async () => {
      const admin = await publisher.admin();
      for (let i = 0; i < numbers.length; i += PUBLISH_CALL) {
        const call = numbers.slice(i, i + PUBLISH_CALL);
        let report: { published: number; failed: { number: string }[] };
        try {
          report = await admin.post('/v1/dids', { vserviceId: 'crash-safety', numbers: call });
        } catch (err) {
          progress.stoppedBy = isImeError(err) ? err.code : String(err);
          break;
        }
        const failed = new Set(report.failed.map((f) => f.number));
        progress.acked.push(...call.filter((n) => !failed.has(n)));
        progress.calls++;
      }
    })().finally(() => {
      progress.ended = true;
    });
    return { progress, done };
  }

  function remember(publisher: Member, numbers: readonly string[]): void {
    const set = acknowledged.get(publisher) ?? new Set<string>();
    for (const n of numbers) set.add(n);
    acknowledged.set(publisher, set);
  }

  const roundNumbers = (round: number) => expandPatterns([parseEnrolledPattern(`+3222${round}0XXX`), parseEnrolledPattern(`+3222${round}1XXX`)]);

  it(`(a) ${ROUNDS.publish} rounds: a peer killed during a bulk publication loses no acknowledged DID`, async () => {
    const others = ring.peers.slice(2);
    // How long an undisturbed publication of the same size takes: the kills fall inside one.
    const calls = 2000 / PUBLISH_CALL;
    const started = Date.now();
    const warm = publishInCalls(others[0]!, roundNumbers(9));
    await warm.done;
    publishCallMs = (Date.now() - started) / calls;
    expect(warm.progress.acked).toHaveLength(2000);
    remember(others[0]!, warm.progress.acked);
    say(`(a) an undisturbed publication of 2000 DIDs in ${calls} calls takes ${Math.round(publishCallMs * calls)} ms`);

    for (let round = 1; round <= ROUNDS.publish; round++) {
      const publisher = rng.pick(others);
      const victim = rng.next() < 0.5 ? publisher : rng.pick(others.filter((p) => p !== publisher));
      const k = rng.int(0, calls);
      const numbers = roundNumbers(round);
      const heldBefore = (await counters(victim)).IMEDistributedCacheStoredData ?? 0;
      const mark = logMark(victim);
      const { progress, done } = publishInCalls(publisher, numbers);
      const jitter = await killAt(victim, () => progress.calls >= k, () => progress.ended, publishCallMs);
      await done;
      const { acked, stoppedBy } = progress;
      remember(publisher, acked);
      say(`(a) round ${round}: ${publisher.name} publishing, ${victim === publisher ? 'itself' : victim.name} killed ${jitter} ms after call ${k}/${calls} returned; ${acked.length}/2000 acknowledged${stoppedBy ? `, then ${stoppedBy}` : ''}`);
      await restart(victim, mark);

      // Every acknowledged DID of the round, read through a survivor and through the restarted peer.
      const reader = ring.peers.find((p) => p !== victim && p !== publisher)!;
      for (const via of [reader, victim]) {
        const r = await readAll(via, acked);
        expect({ round, via: via.name, found: r.found, missing: r.missing.slice(0, 5), failed: r.failed.slice(0, 5) }).toEqual({ round, via: via.name, found: acked.length, missing: [], failed: [] });
      }
      // The victim's own store came back whole, and a publisher that died still counts as its own
      // every number it acknowledged (it republishes them before their TTL).
      const after = await counters(victim);
      expect(after.IMEDistributedCacheStoredData ?? 0).toBeGreaterThanOrEqual(heldBefore);
      if (victim === publisher) expect(after.IMEDistributedCacheQuotaUsed ?? 0).toBeGreaterThanOrEqual(acknowledged.get(publisher)?.size ?? 0);
    }

    // At the end, every DID acknowledged in any round is still readable.
    const all = [...acknowledged.values()].flatMap((s) => [...s]);
    const r = await readAll(ring.peers[0]!, all);
    expect({ found: r.found, missing: r.missing.slice(0, 5), failed: r.failed.slice(0, 5) }).toEqual({ found: all.length, missing: [], failed: [] });
    say(`(a) all ${all.length} acknowledged DIDs readable after ${ROUNDS.publish} kills`);
  }, 300_000);

  // ---------------------------------------------------------------------------------------------
  // (b) VCR ingest over VAP

  function terminatingVcrs(prefix: string, n: number): Vcr[] {
    const startMs = Date.now() - 10 * MINUTE;
    return Array.from({ length: n }, (_, j) => ({
      calling: '+19175551000',
      called: `+1617555${String(j % 10_000).padStart(4, '0')}`,
      startMs: startMs + j,
      stopMs: startMs + j + MINUTE,
      direction: 'terminating' as const,
      callId: `${prefix}-${j}`,
    }));
  }

  /** Uploads batch after batch until done or the connection dies, noting the call ids the peer acknowledged. */
  function upload(prefix: string, batches: number): { progress: Progress; done: Promise<void> } {
    const progress: Progress = { acked: [], calls: 0, ended: false };
    const client = ingest.client as VapClient;
    const done = (async () => {
      for (let i = 0; i < batches; i++) {
        const batch = terminatingVcrs(`${prefix}-${i}`, VCR_BATCH);
        let ack: { accepted: number; refused: readonly unknown[] };
        try {
          ack = await client.uploadVcrs(batch);
        } catch (err) {
          progress.stoppedBy = isImeError(err) ? err.code : String(err);
          break;
        }
        expect(ack).toEqual({ accepted: VCR_BATCH, refused: [] });
        progress.acked.push(...batch.map((v) => v.callId));
        progress.calls++;
      }
    })().finally(() => {
      progress.ended = true;
    });
    return { progress, done };
  }

  async function storedVcrs(): Promise<{ ids: Set<string>; listed: number; counted: number }> {
    const r = await (await ingest.peer.admin()).get<{ counts: { terminating: number }; vcrs: { callId: string }[] }>('/v1/vcrs?direction=terminating&limit=10000');
    return { ids: new Set(r.vcrs.map((v) => v.callId)), listed: r.vcrs.length, counted: r.counts.terminating };
  }

  it(`(b) ${ROUNDS.ingest} rounds: a peer killed during VCR ingest keeps every VCR it acknowledged`, async () => {
    if (ingest.client?.closed !== false) await connect(ingest);
    const started = Date.now();
    const warm = upload('warm', INGEST_BATCHES);
    await warm.done;
    batchMs = (Date.now() - started) / INGEST_BATCHES;
    for (const id of warm.progress.acked) ackedVcrs.add(id);
    say(`(b) an undisturbed ingest of ${INGEST_BATCHES * VCR_BATCH} VCRs in batches of ${VCR_BATCH} takes ${Math.round(batchMs * INGEST_BATCHES)} ms`);

    for (let round = 1; round <= ROUNDS.ingest; round++) {
      const victim = ingest.peer;
      const k = rng.int(0, INGEST_BATCHES);
      const mark = logMark(victim);
      const { progress, done } = upload(`r${round}`, INGEST_BATCHES);
      const jitter = await killAt(victim, () => progress.calls >= k, () => progress.ended, batchMs);
      await done;
      const { acked, stoppedBy } = progress;
      for (const id of acked) ackedVcrs.add(id);
      say(`(b) round ${round}: ${victim.name} killed ${jitter} ms after batch ${k}/${INGEST_BATCHES} was acknowledged; ${acked.length}/${INGEST_BATCHES * VCR_BATCH} VCRs acknowledged${stoppedBy ? `, then ${stoppedBy}` : ''}`);
      await restart(victim, mark);
      await connect(ingest);

      const stored = await storedVcrs();
      const lost = [...ackedVcrs].filter((id) => !stored.ids.has(id));
      expect({ round, lost: lost.slice(0, 5), lostCount: lost.length }).toEqual({ round, lost: [], lostCount: 0 });
      // The count is written in the same batch as the VCRs: it says exactly what is stored.
      expect({ round, counted: stored.counted }).toEqual({ round, counted: stored.listed });
    }
    say(`(b) all ${ackedVcrs.size} acknowledged VCRs in ${ingest.peer.name}'s store after ${ROUNDS.ingest} kills`);
  }, 300_000);

  // ---------------------------------------------------------------------------------------------
  // (c) bucket updates

  /** PSTN calls from A to new B numbers, as both call managers report them (the callee's VCR first). */
  async function calls(n: number): Promise<string[]> {
    const called = Array.from({ length: n }, () => `+12125550${String(nextCalled++).padStart(3, '0')}`);
    const startMs = Date.now() - 2 * MINUTE;
    const vcrs = called.map((number) => ({ calling: A_CALLER, called: number, startMs, stopMs: startMs + 61_000, callId: `call-${++callSeq}` }));
    expect((await (b.client as VapClient).uploadVcrs(vcrs.map((v) => ({ ...v, direction: 'terminating' as const })))).refused).toEqual([]);
    expect((await (a.client as VapClient).uploadVcrs(vcrs.map((v) => ({ ...v, direction: 'originating' as const })))).refused).toEqual([]);
    return called;
  }

  async function pending(): Promise<number> {
    return (await counters(a.peer)).ValidationsPending ?? 0;
  }

  /** Runs the due validations now rather than at the validator's next tick (the answer is not awaited: the peer may die first). */
  async function runValidations(): Promise<void> {
    const admin = await a.peer.admin();
    admin.post('/v1/validator/run', {}).catch(() => undefined);
  }

  interface Reported {
    routes: Set<string>;
    /** Numbers waiting in a bucket of B's pool. */
    inBuckets: Set<string>;
    successes: Set<string>;
    snapshots: number;
  }

  /** What A's peer reports while its validations run, polled until `stop` (the last answers before the kill). */
  function watchReports(): { reported: Reported; stop: () => Promise<void> } {
    const reported: Reported = { routes: new Set(), inBuckets: new Set(), successes: new Set(), snapshots: 0 };
    let stopped = false;
    const loop = (async () => {
      const admin = await a.peer.admin();
      while (!stopped) {
        let pools: PoolsView;
        let routes: { routes: RouteView[] };
        let history: Awaited<ReturnType<typeof validations>>;
        try {
          [pools, routes, history] = await Promise.all([
            admin.get<PoolsView>('/v1/validator/pools'),
            admin.get<{ routes: RouteView[] }>('/v1/validator/routes'),
            validations(a.peer),
          ]);
        } catch {
          // The peer was killed meanwhile: every answer that did arrive was given before it died.
          await sleep(30);
          continue;
        }
        const pool = pools.pools.find((p) => p.peerId === b.peer.peerId);
        reported.inBuckets = new Set(pool ? [pool.defaultBucket, ...pool.numberBuckets].flatMap((bk) => bk.entries.map((e) => e.number)) : []);
        for (const r of routes.routes) reported.routes.add(routeId(r));
        for (const v of history) if (v.outcome === 'success') reported.successes.add(v.called);
        reported.snapshots++;
        await sleep(30);
      }
    })();
    return {
      reported,
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  it(`(c) ${ROUNDS.buckets} rounds: the caller's peer killed during bucket updates keeps every route and bucket entry it reported`, async () => {
    for (const side of [a, b]) if (side.client?.closed !== false) await connect(side);
    await calls(CALLS_PER_ROUND);
    const started = Date.now();
    await runValidations();
    await waitFor('the warm-up validations', async () => (await pending()) === 0, 60_000, 20);
    validationMs = (Date.now() - started) / CALLS_PER_ROUND;
    say(`(c) ${CALLS_PER_ROUND} undisturbed validations (pools and routes updated) take ${Math.round(validationMs * CALLS_PER_ROUND)} ms`);

    for (let round = 1; round <= ROUNDS.buckets; round++) {
      const victim = a.peer;
      const k = rng.int(0, CALLS_PER_ROUND);
      const watch = watchReports();
      const mark = logMark(victim);
      const called = await calls(CALLS_PER_ROUND);
      await runValidations();
      const { reported } = watch;
      const doneHere = () => called.filter((n) => reported.successes.has(n)).length;
      // What was reported up to the kill is what must survive it: reports stop just before.
      const jitter = await killAt(victim, () => doneHere() >= k, () => false, validationMs).finally(() => watch.stop());
      say(`(c) round ${round}: ${victim.name} killed ${jitter} ms after ${doneHere()}/${CALLS_PER_ROUND} of the round's validations were reported (kill point ${k}); it had reported ${reported.routes.size} route(s), ${reported.inBuckets.size} number(s) in buckets, ${reported.successes.size} success(es) since its start`);
      await restart(victim, mark);
      await connect(a);
      // What was pending when it died is validated now, or skipped when it had already started (the
      // one-hour rule was written first): nothing is proven twice.
      await waitFor('the pending validations after the restart', async () => (await pending()) === 0, 60_000, 100);

      const admin = await victim.admin();
      const routes = new Set((await admin.get<{ routes: RouteView[] }>('/v1/validator/routes')).routes.map(routeId));
      const pool = (await admin.get<PoolsView>('/v1/validator/pools')).pools.find((p) => p.peerId === b.peer.peerId);
      const inBuckets = new Set(pool ? [pool.defaultBucket, ...pool.numberBuckets].flatMap((bk) => bk.entries.map((e) => e.number)) : []);
      const routed = new Set([...routes].map((id) => id.split('|')[0]));
      const kept = (n: string) => inBuckets.has(n) || routed.has(n);
      expect({
        round,
        routesLost: [...reported.routes].filter((id) => !routes.has(id)),
        bucketEntriesLost: [...reported.inBuckets].filter((n) => !kept(n)),
        successesLost: [...reported.successes].filter((n) => !kept(n)),
        // Every call was real: a crash must not turn one into a failure (and so a penalty box).
        failures: (await validations(victim)).filter((v) => v.outcome === 'failure').map((v) => v.called),
        penaltyBoxes: pool?.numberBuckets.map((bk) => bk.number) ?? [],
      }).toEqual({ round, routesLost: [], bucketEntriesLost: [], successesLost: [], failures: [], penaltyBoxes: [] });
      // Its call manager registered again and got every stored route.
      await waitFor('every stored route pushed to the call manager', () => [...routes].every((id) => a.routes.has(id)), 20_000, 100);
    }
    const routes = (await (await a.peer.admin()).get<{ routes: RouteView[] }>('/v1/validator/routes')).routes;
    say(`(c) ${routes.length} routes learned over ${ROUNDS.buckets} kills; all at the call manager`);
    expect(routes.length).toBeGreaterThan(0);
  }, 300_000);

  it('every killed peer\'s database reads through from end to end once the ring is stopped', async () => {
    await ring.stop();
    for (const victim of victims) {
      const db = await openDatabase(join(victim.dir, 'data', 'db'));
      let entries = 0;
      try {
        // Values too: every block of every table file is read.
        for await (const [, value] of db.iterator()) if (value.length >= 0) entries++;
      } finally {
        await db.close();
      }
      say(`${victim.name}: database opens and reads through (${entries} keys)`);
      expect(entries).toBeGreaterThan(0);
    }
    expect(victims.size).toBeGreaterThan(0);
  }, 120_000);
});
