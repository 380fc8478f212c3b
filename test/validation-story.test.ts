import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { counters } from './ring-test-helpers.js';

// SPEC §6–§7 end to end, every component its own process: enterprise A (peer 0, call manager cm-a)
// calls enterprise B (peer 1, cm-b) over the simulated PSTN. Both call managers upload their VCRs over
// VAP; A's validator finds B as the claimant of each called number in the ring, proves each call to
// B's validator (and B proves it back), fills B's pool and, once the bucket overflows, hands A's call
// manager the routes with B's tickets, which B's edge check (`ime ticket verify`) accepts for A only.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'packages/cli/bin/ime.js');
const VAP_PASSWORD = 'cm-vap-password-123';
const TICKET_PASSWORD = { a: 'ticket-password-of-a-0123', b: 'ticket-password-of-b-4567' };
const A_DOMAIN = 'enterprise-1.example';
const B_DOMAIN = 'enterprise-2.example';
const A_CALLER = '+14085551234';
const B_NUMBERS = ['+12125550101', '+12125550102', '+12125550103'];
const B_FOURTH = '+12125550104';

interface RouteView {
  number: string;
  domain: string;
  sipUri: string;
  ticket: string;
  learnedOn: string;
  expiresOn: string;
  adminEnabled: boolean;
}

function verify(ticket: string, callingDomain: string, called: string): { status: number | null; verdict: Record<string, unknown> } {
  const r = spawnSync(
    process.execPath,
    [bin, 'ticket', 'verify', '--ticket', ticket, '--password', TICKET_PASSWORD.b, '--epoch', '1', '--calling-domain', callingDomain, '--called', called, '--json'],
    { encoding: 'utf8', timeout: 20_000 },
  );
  const lines = r.stdout.trim().split('\n');
  return { status: r.status, verdict: JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown> };
}

describe('validation story: PSTN calls from A to B become routes and tickets on A', () => {
  let ring: RingHarness;
  let pstn: Member;
  const cms: Record<'a' | 'b', Member> = {} as Record<'a' | 'b', Member>;

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 3, mode: 'process', keep: true });
    await ring.converge();
    pstn = await ring.startSimulator('pstn', 'pstn', { clockSkewMs: 0 });
    const enterprises = [
      { key: 'a' as const, peer: ring.peers[0]!, pattern: '+14085551XXX', domain: A_DOMAIN },
      { key: 'b' as const, peer: ring.peers[1]!, pattern: '+12125550XXX', domain: B_DOMAIN },
    ];
    for (const e of enterprises) {
      const admin = await e.peer.admin();
      const vap = await admin.post<{ boundPort: number }>('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port: 0 });
      await admin.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: VAP_PASSWORD, ticketPassword: TICKET_PASSWORD[e.key], epoch: 1 });
      const dir = join(ring.dir, `cm-${e.key}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'vap.password'), `${VAP_PASSWORD}\n`, { mode: 0o600 });
      cms[e.key] = await ring.startSimulator('cm', `cm-${e.key}`, {
        domain: e.domain,
        enrolledPatterns: [e.pattern],
        vservice: { maxDidCount: 10_000 },
        vap: { primary: `127.0.0.1:${vap.boundPort}`, username: 'imeuser', passwordFile: 'vap.password', reconnectIntervalSec: 1 },
        pstn: { admin: pstn.ready.admin, tokenFile: pstn.ready.tokenFile },
      });
    }
    await waitFor('both call managers to publish their enrollment', async () => {
      const c = await Promise.all(ring.peers.slice(0, 2).map((p) => counters(p)));
      return c.every((x) => x.ClientsRegistered === 1 && x.IMEDistributedCacheQuotaUsed === 1000);
    }, 60_000, 250);
    // Three 12-point successes release (36 > 24) where two do not (24): the guide's default of
    // three validations before a route is learned (L257–L265).
    await (await ring.peers[0]!.admin()).put('/v1/validator/bucketentropy', { value: 24 });
  }, 240_000);

  afterAll(async () => {
    await ring?.stop();
    if (ring && !process.env.IME_KEEP_RING) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  const routesOfA = async () => (await (await cms.a.admin()).get<{ routes: RouteView[] }>('/v1/routes')).routes;

  it('three calls to three B numbers teach A three routes, each with a ticket B\'s edge accepts for A only', async () => {
    const calls = await pstn.admin();
    for (const number of B_NUMBERS) await calls.post('/v1/calls', { from: A_CALLER, to: number, durationSec: 60 });

    await waitFor('A\'s call manager to learn three routes', async () => (await routesOfA()).length === 3, 60_000, 250);
    const routes = (await routesOfA()).sort((x, y) => x.number.localeCompare(y.number));
    expect(routes.map((r) => r.number)).toEqual(B_NUMBERS);
    for (const r of routes) {
      expect(r.domain).toBe(B_DOMAIN);
      expect(r.sipUri).toMatch(/^sip:/);
      expect(r.adminEnabled).toBe(true);
      // Learned now, valid one year (guide L4398).
      const years = (Date.parse(r.expiresOn) - Date.parse(r.learnedOn)) / (365 * 24 * 3600 * 1000);
      expect(years).toBeGreaterThan(0.99);
      expect(years).toBeLessThan(1.01);
    }

    // B's edge: A's domain calling that number is admitted; another domain or another number is not.
    for (const r of routes) {
      const ok = verify(r.ticket, A_DOMAIN, r.number);
      expect(ok.status).toBe(0);
      expect(ok.verdict).toEqual(expect.objectContaining({ valid: true }));
      const otherDomain = verify(r.ticket, 'enterprise-3.example', r.number);
      expect(otherDomain.status).not.toBe(0);
      expect(otherDomain.verdict).toEqual(expect.objectContaining({ valid: false, reason: 'domain-mismatch' }));
      const otherNumber = verify(r.ticket, A_DOMAIN, B_FOURTH);
      expect(otherNumber.status).not.toBe(0);
      expect(otherNumber.verdict).toEqual(expect.objectContaining({ valid: false, reason: 'number-not-permitted' }));
    }

    const a = await counters(ring.peers[0]!);
    const b = await counters(ring.peers[1]!);
    expect(a.ValidationAttempts).toBe(3);
    expect(a.ValidationsSucceeded).toBe(3);
    expect(a.RoutesReleased).toBe(3);
    expect(a.ValidationsAwaitingConfirmation).toBe(0);
    expect(b.ValidationsGranted).toBe(3);
    expect(b.TerminatingVCRs).toBe(3);
  }, 90_000);

  it('a fourth number with one call waits in the bucket and has no route', async () => {
    await (await pstn.admin()).post('/v1/calls', { from: A_CALLER, to: B_FOURTH, durationSec: 45 });
    await waitFor('A to validate the fourth number', async () => (await counters(ring.peers[0]!)).ValidationsSucceeded === 4, 60_000, 250);
    const pools = await (await ring.peers[0]!.admin()).get<{ threshold: number; awaitingConfirmation: number; pools: { domain: string; defaultBucket: { total: number; entries: { number: string }[] } }[] }>('/v1/validator/pools');
    expect(pools.threshold).toBe(24);
    expect(pools.awaitingConfirmation).toBe(1);
    expect(pools.pools).toEqual([expect.objectContaining({ domain: B_DOMAIN, defaultBucket: { total: 12, entries: [expect.objectContaining({ number: B_FOURTH })] } })]);
    expect((await routesOfA()).map((r) => r.number)).not.toContain(B_FOURTH);
  }, 90_000);
});
