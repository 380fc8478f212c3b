import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { counters } from './ring-test-helpers.js';

// SPEC §5 end to end, every component its own process: two enterprises' peers in one ring, a
// call-manager simulator on each (over VAP), and the simulated PSTN. A PSTN call from one enterprise
// to the other leaves one originating VCR on the caller's peer and one terminating VCR, with the
// same times, on the callee's peer; the call managers' counters say so.
const PASSWORD = 'cm-vap-password-123';
const TICKET_PASSWORD = 'ticket-password-0123456789';

interface StoredVcr {
  calling: string;
  called: string;
  startMs: number;
  stopMs: number;
  direction: string;
}

async function vcrs(peer: Member, direction: 'originating' | 'terminating'): Promise<{ counts: { terminating: number; originating: number }; vcrs: StoredVcr[] }> {
  return (await peer.admin()).get(`/v1/vcrs?direction=${direction}`);
}

describe('a PSTN call between two simulated enterprises', () => {
  let ring: RingHarness;
  let pstn: Member;
  const cms: Member[] = [];

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 3, mode: 'process', keep: true });
    await ring.converge();
    pstn = await ring.startSimulator('pstn', 'pstn', { clockSkewMs: 0 });
    const enterprises = [
      { peer: ring.peers[0]!, name: 'cm-one', pattern: '+14085551XXX' },
      { peer: ring.peers[1]!, name: 'cm-two', pattern: '+12125550XXX' },
    ];
    for (const [i, e] of enterprises.entries()) {
      const admin = await e.peer.admin();
      const vap = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port: 0 });
      await admin.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
      const dir = join(ring.dir, e.name);
      rmSync(dir, { recursive: true, force: true });
      const cm = await (async () => {
        // The password file sits next to the configuration the harness writes.
        const { mkdirSync } = await import('node:fs');
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'vap.password'), `${PASSWORD}\n`, { mode: 0o600 });
        return ring.startSimulator('cm', e.name, {
          domain: `enterprise-${i + 1}.example`,
          enrolledPatterns: [e.pattern],
          vservice: { maxDidCount: 10_000 },
          vap: { primary: `127.0.0.1:${vap.boundPort}`, username: 'imeuser', passwordFile: 'vap.password', reconnectIntervalSec: 1 },
          pstn: { admin: pstn.ready.admin, tokenFile: pstn.ready.tokenFile },
        });
      })();
      cms.push(cm);
    }
    // Both call managers registered and their enrollments published into the ring.
    await waitFor('both call managers to publish their enrollment', async () => {
      const c = await Promise.all(ring.peers.slice(0, 2).map((p) => counters(p)));
      return c.every((x) => x.ClientsRegistered === 1 && x.IMEDistributedCacheQuotaUsed === 1000);
    }, 60_000, 250);
  }, 240_000);

  afterAll(async () => {
    await ring?.stop();
    if (ring) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  it('leaves one originating VCR on the caller\'s peer and one terminating VCR on the callee\'s', async () => {
    const placed = await (await pstn.admin()).post<{ call: { callId: string } }>('/v1/calls', { from: '+14085551234', to: '+12125550777', durationSec: 90 });
    expect(placed.call.callId).toEqual(expect.any(String));

    await waitFor('both VCRs to reach their peers', async () => {
      const [o, t] = await Promise.all([vcrs(ring.peers[0]!, 'originating'), vcrs(ring.peers[1]!, 'terminating')]);
      return o.counts.originating === 1 && t.counts.terminating === 1;
    }, 30_000, 200);

    const originating = await vcrs(ring.peers[0]!, 'originating');
    const terminating = await vcrs(ring.peers[1]!, 'terminating');
    expect(originating.counts).toEqual({ originating: 1, terminating: 0 });
    expect(terminating.counts).toEqual({ originating: 0, terminating: 1 });
    const [o] = originating.vcrs;
    const [t] = terminating.vcrs;
    expect(o).toEqual(expect.objectContaining({ calling: '+14085551234', called: '+12125550777', direction: 'originating' }));
    expect(t).toEqual(expect.objectContaining({ calling: '+14085551234', called: '+12125550777', direction: 'terminating' }));
    expect(o!.stopMs - o!.startMs).toBe(90_000);
    expect([t!.startMs, t!.stopMs]).toEqual([o!.startMs, o!.stopMs]); // no clock skew configured
    // The third peer heard of no call.
    expect((await vcrs(ring.peers[2]!, 'terminating')).counts).toEqual({ originating: 0, terminating: 0 });

    const cmCounters = await Promise.all(cms.map(async (cm) => (await cm.admin()).get<{ counters: Record<string, number> }>('/v1/counters')));
    expect(cmCounters.map((c) => c.counters.VCRUploadRequests)).toEqual([1, 1]);
    expect(cmCounters.map((c) => c.counters.RoutesPublished)).toEqual([1000, 1000]);
  }, 60_000);

  it('uploads no VCR for a withheld caller id on the terminating side, nor for an unanswered call', async () => {
    const admin = await pstn.admin();
    await admin.post('/v1/calls', { from: '+14085551235', to: '+12125550778', callerId: 'withheld' });
    await admin.post('/v1/calls', { from: '+14085551236', to: '+12125550779', answered: false });
    await waitFor('the withheld call\'s originating VCR', async () => (await vcrs(ring.peers[0]!, 'originating')).counts.originating === 2, 30_000, 200);
    // Give the terminating side the same time to (wrongly) upload; it must not.
    await new Promise((r) => setTimeout(r, 500));
    expect((await vcrs(ring.peers[1]!, 'terminating')).counts.terminating).toBe(1);
    expect((await vcrs(ring.peers[0]!, 'originating')).counts.originating).toBe(2);
  }, 60_000);
});
