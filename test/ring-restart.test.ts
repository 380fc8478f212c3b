import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expandPatterns, parseEnrolledPattern } from '@ime/core';
import { RingHarness, waitFor } from '@ime/harness';
import { counters, lookup, summary } from './ring-test-helpers.js';

// Restart (issue #4): a peer killed with SIGKILL, in the middle of a publication, keeps every write
// it acknowledged, and rejoins the ring GREEN when restarted.
describe('a peer killed and restarted', () => {
  let ring: RingHarness;

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 5, mode: 'process' });
    await ring.converge();
  }, 180_000);

  afterAll(async () => {
    await ring?.stop();
  }, 60_000);

  it('keeps every acknowledged write and rejoins GREEN', async () => {
    const publisher = await ring.peers[0]!.admin();
    const first = expandPatterns([parseEnrolledPattern('+3222001XXX'), parseEnrolledPattern('+3222002XXX')]);
    expect((await publisher.post<{ published: number }>('/v1/dids', { vserviceId: 'before-kill', numbers: first })).published).toBe(2000);

    const victim = ring.peers[2]!;
    const heldBefore = (await counters(victim)).IMEDistributedCacheStoredData ?? 0;
    expect(heldBefore).toBeGreaterThan(0);

    // Kill it while a second publication is under way: what that publication acknowledges is
    // stored on W replicas, whether or not the victim was one of them.
    const second = expandPatterns([parseEnrolledPattern('+3222003XXX'), parseEnrolledPattern('+3222004XXX')]);
    const publishing = publisher.post<{ published: number; failed: { number: string }[] }>('/v1/dids', { vserviceId: 'during-kill', numbers: second });
    await new Promise((r) => setTimeout(r, 30));
    await victim.kill();
    const report = await publishing;
    const failed = new Set(report.failed.map((f) => f.number));
    const acknowledged = [...first, ...second.filter((n) => !failed.has(n))];
    expect(report.published + report.failed.length).toBe(2000);

    await victim.start();
    await waitFor(`${victim.name} GREEN again`, async () => (await summary(victim)).health === 'GREEN', 60_000, 200);
    // Its own database came back whole: what it held before the kill is still there.
    expect((await counters(victim)).IMEDistributedCacheStoredData ?? 0).toBeGreaterThanOrEqual(heldBefore);
    const result = await lookup(victim, acknowledged);
    expect({ found: result.found, missing: result.missing.slice(0, 5) }).toEqual({ found: acknowledged.length, missing: [] });
    await ring.converge();
  }, 180_000);
});
