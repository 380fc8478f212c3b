import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdminClient, parseConfigText } from '@ime/runtime';
// A relative import: @ime/pstn-sim is not a dependency of this package, only of these tests.
import { type CallRecord, PstnSwitch, pstnConfigSchema } from '@ime/pstn-sim';
import type { LearnedRoute } from '@ime/vap';
import type { CmStatus } from '../src/cm-simulator.js';
import type { RouteView } from '../src/route-table.js';
import { PASSWORD, type StartedCm, TestBackend, type TestVapServer, codeOf, removeTempDirs, startCm, startVapServer, tempDir, waitFor } from './cm-fixture.js';

/**
 * Two call managers (acme, globex) registered with a real VAP server, attached to a real PSTN
 * switch: publication, routes, VCRs from PSTN calls and from `POST /v1/vcrs`, and the over-quota
 * refusal.
 */

const YEAR_MS = 365 * 86_400_000;

function route(number: string, domain: string, ticket = 'dGlja2V0LWZvci0'): LearnedRoute {
  const now = Date.now();
  return { number, domain, sipUri: `sip:abc@${domain}:5060;transport=tcp`, ticket, learnedOnMs: now, expiresOnMs: now + YEAR_MS };
}

describe('call-manager simulator with a VAP server and the PSTN switch', () => {
  const backend = new TestBackend();
  let vap: TestVapServer;
  let pstn: PstnSwitch;
  let pstnAdmin: AdminClient;
  let acme: StartedCm;
  let globex: StartedCm;

  const counters = async (c: StartedCm): Promise<Record<string, number>> => (await c.admin.get<{ counters: Record<string, number> }>('/v1/counters')).counters;
  const status = (c: StartedCm): Promise<CmStatus> => c.admin.get<CmStatus>('/v1/status');
  const call = async (body: Record<string, unknown>): Promise<CallRecord> => (await pstnAdmin.post<{ call: CallRecord }>('/v1/calls', body)).call;

  beforeAll(async () => {
    vap = await startVapServer({ backend });
    const pstnDir = tempDir();
    pstn = await PstnSwitch.start(parseConfigText('{"dataDir":"data","admin":{"listen":"127.0.0.1:0"}}', 'json', pstnConfigSchema, { baseDir: pstnDir }));
    pstnAdmin = await AdminClient.fromTokenFile(pstn.adminUrl, pstn.adminTokenFile);
    const common = { vap: { primary: `127.0.0.1:${vap.port}` }, pstn: { admin: pstn.adminUrl, tokenFile: pstn.adminTokenFile } };
    [acme, globex] = await Promise.all([
      startCm({
        ...common,
        exclusions: ['+14085551999'],
        blockedDomains: ['evil.example'],
        blockedPrefixes: ['+1900!'],
        fallbackNumber: '+14085551998',
      }),
      startCm({ ...common, name: 'cucm-globex', domain: 'globex.example', enrolledPatterns: ['+12125550XXX'] }),
    ]);
    await Promise.all([acme.cm.firstConnection(), globex.cm.firstConnection()]);
    // Published once each simulator has the peer's answer, not merely once the peer has the request.
    await waitFor(() => [acme, globex].every((c) => c.cm.status().enrollment.accepted !== null), 5000, 'both enrollments');
  });

  afterAll(async () => {
    await Promise.all([acme?.cm.stop(), globex?.cm.stop()]);
    await pstn?.stop();
    await vap?.stop();
    removeTempDirs();
  });

  it('registers and publishes its Vservice and enrollment', async () => {
    const s = await status(acme);
    expect(s).toMatchObject({ state: 'registered', serviceStatus: 1, peerId: '12D3KooWTestPeer', ringHealth: 2, server: { label: 'primary' } });
    expect(s.vservice.published).toBe(true);
    const v = backend.vservices.find((x) => x.domain === 'acme.example');
    expect(v).toEqual({ profileName: 'cucm-acme', id: s.vservice.id, domain: 'acme.example', sipUri: s.vservice.sipUri, maxDidCount: 100 });
    const e = backend.enrollments.find((x) => x.vserviceId === s.vservice.id);
    expect(e).toEqual({
      vserviceId: s.vservice.id,
      groups: [{ name: 'default', patterns: ['+14085551XXX'] }],
      exclusions: ['+14085551999'],
      trustGroups: [
        {
          name: 'blocked',
          trusted: false,
          description: 'blocked domains and prefixes',
          elements: [
            { kind: 'domain', value: 'evil.example' },
            { kind: 'prefix', value: '+1900!' },
          ],
        },
      ],
    });
    const c = await counters(acme);
    expect(c).toMatchObject({ IMEServiceStatus: 1, VAPStatus: 1, RoutesPublished: 999, ReconnectAttempts: 0 });
    expect(s.pstn).toMatchObject({ attached: true, lines: ['+14085551XXX'] });
    expect(await acme.admin.getText('/metrics')).toMatch(/# TYPE RoutesPublished gauge\nRoutesPublished 999\n/);
  });

  it('learns pushed routes, rejects blacklisted ones, and lets the admin switch a route off', async () => {
    const session = backend.sessions.find((s) => s.info().vserviceIds.includes(acme.cm.settings.vservice.id));
    expect(session).toBeDefined();
    session?.pushRoutes([route('+12125550100', 'globex.example'), route('+12125550101', 'evil.example'), route('+19005550100', 'globex.example')]);
    await waitFor(async () => (await counters(acme)).RoutesRejected === 2, 3000, 'routes judged');
    const r = await acme.admin.get<{ routes: RouteView[] }>('/v1/routes');
    expect(r.routes).toHaveLength(1);
    const only = r.routes[0] as RouteView;
    expect(Object.keys(only)).toEqual(['number', 'domain', 'sipUri', 'ticket', 'learnedOn', 'expiresOn', 'adminEnabled']);
    expect(only).toMatchObject({ number: '+12125550100', domain: 'globex.example', ticket: 'dGlja2V0LWZvci0', adminEnabled: true });
    expect(Date.parse(only.expiresOn) - Date.parse(only.learnedOn)).toBe(YEAR_MS);
    expect(await counters(acme)).toMatchObject({ RoutesLearned: 1, RoutesRejected: 2, DomainsUnique: 1 });
    expect((await status(acme)).routeRejections).toEqual({ blacklisted: 2 });

    const off = await acme.admin.request<{ route: RouteView }>('PATCH', `/v1/routes/${encodeURIComponent('+12125550100')}`, { adminEnabled: false });
    expect(off.route.adminEnabled).toBe(false);
    const stored = JSON.parse(readFileSync(join(acme.dir, 'data', 'routes.json'), 'utf8')) as { routes: { number: string; adminEnabled: boolean }[] };
    expect(stored.routes).toEqual([expect.objectContaining({ number: '+12125550100', adminEnabled: false })]);
    // Pushed again, it keeps the admin's choice.
    session?.pushRoutes([route('+12125550100', 'globex.example', 'bmV3LXRpY2tldA')]);
    await waitFor(async () => (await acme.admin.get<{ routes: RouteView[] }>('/v1/routes')).routes[0]?.ticket === 'bmV3LXRpY2tldA', 3000, 'route updated');
    expect((await acme.admin.get<{ routes: RouteView[] }>('/v1/routes')).routes[0]?.adminEnabled).toBe(false);
    expect(await codeOf(acme.admin.request('PATCH', `/v1/routes/${encodeURIComponent('+12125550199')}`, { adminEnabled: true }))).toBe('E_CM_ROUTE_NOT_FOUND');
    expect(await codeOf(acme.admin.request('PATCH', `/v1/routes/${encodeURIComponent('+12125550100')}`, { adminEnabled: 'no' }))).toBe('E_ADMIN_BAD_REQUEST');
    expect(await codeOf(acme.admin.request('PATCH', '/v1/routes/12125550100', { adminEnabled: true }))).toBe('E_E164_MISSING_PLUS');
  });

  it('uploads VCRs on both sides after a PSTN call, and skips what it must', async () => {
    const before = backend.vcrs.length;
    const c = await call({ from: '+14085551000', to: '+12125550150', durationSec: 90 });
    expect(c.originating.answer).toMatchObject({ vcr: 'sent', viaIme: false });
    expect(c.terminating.answer).toMatchObject({ vcr: 'sent' });
    const fresh = backend.vcrs.slice(before);
    expect(fresh).toEqual(
      expect.arrayContaining([
        { calling: '+14085551000', called: '+12125550150', startMs: c.startMs, stopMs: c.stopMs, direction: 'originating', callId: c.callId },
        { calling: '+14085551000', called: '+12125550150', startMs: c.startMs, stopMs: c.stopMs, direction: 'terminating', callId: c.callId },
      ]),
    );
    expect(fresh).toHaveLength(2);

    const withheld = await call({ from: '+14085551001', to: '+12125550151', callerId: 'withheld' });
    expect(withheld.terminating.answer).toMatchObject({ vcr: 'skipped', reason: 'not-e164' });
    expect(withheld.originating.answer).toMatchObject({ vcr: 'sent' });
    const unanswered = await call({ from: '+14085551002', to: '+12125550152', answered: false });
    expect(unanswered.originating.answer).toMatchObject({ vcr: 'skipped', reason: 'unanswered' });
    expect(unanswered.terminating.answer).toMatchObject({ vcr: 'skipped', reason: 'unanswered' });
    // The route to +12125550100 is learned but switched off: the call stays on the PSTN, no VCR.
    const learned = await call({ from: '+14085551003', to: '+12125550100' });
    expect(learned.route).toBe('pstn');
    expect(learned.originating.answer).toMatchObject({ vcr: 'skipped', reason: 'route-learned' });
    expect(learned.terminating.answer).toMatchObject({ vcr: 'sent' });
    // Switched on, the call goes over IME: no VCR on either side, IME call counters move.
    await acme.admin.request('PATCH', `/v1/routes/${encodeURIComponent('+12125550100')}`, { adminEnabled: true });
    const ime = await call({ from: '+14085551003', to: '+12125550100' });
    expect(ime.route).toBe('ime');
    expect(ime.originating.answer).toMatchObject({ vcr: 'skipped', reason: 'ime-call', viaIme: true });
    expect(ime.terminating.answer).toMatchObject({ vcr: 'skipped', reason: 'ime-call' });

    const a = await counters(acme);
    const g = await counters(globex);
    expect(a).toMatchObject({ VCRUploadRequests: 2, VCRsSkipped: 3, CallsSetup: 1 });
    expect(g).toMatchObject({ VCRUploadRequests: 2, VCRsSkipped: 3, CallsReceived: 1, CallsAttempted: 1, CallsAccepted: 1 });
    expect((await status(acme)).vcrSkips).toMatchObject({ unanswered: 1, 'route-learned': 1, 'ime-call': 1, 'not-e164': 0 });
    expect((await status(globex)).vcrSkips).toMatchObject({ unanswered: 1, 'not-e164': 1, 'ime-call': 1 });
  });

  it('takes PSTN events only with the callback token the switch was given', async () => {
    const url = acme.cm.callbackUrl as string;
    const event = { callId: 'x-1', direction: 'originating', calling: '+14085551000', called: '+12125550160', startMs: 1, stopMs: 2, answered: true };
    const adminToken = readFileSync(acme.cm.adminTokenFile, 'utf8').trim();
    const withAdminToken = new AdminClient({ url: url.replace(/\/v1\/pstn\/events$/, ''), token: adminToken });
    expect(await codeOf(withAdminToken.post('/v1/pstn/events', event))).toBe('E_ADMIN_AUTH');
    // The switch's own token reaches it, and only this route exists there.
    const switchToken = readFileSync(join(acme.dir, 'data', 'pstn-callback.token'), 'utf8').trim();
    const asSwitch = new AdminClient({ url: url.replace(/\/v1\/pstn\/events$/, ''), token: switchToken });
    expect(await asSwitch.post('/v1/pstn/events', event)).toMatchObject({ ok: true, vcr: 'sent' });
    expect(await codeOf(asSwitch.get('/v1/routes'))).toBe('E_ADMIN_NOT_FOUND');
    expect(await codeOf(asSwitch.post('/v1/pstn/events', { ...event, direction: 'up' }))).toBe('E_CM_BAD_EVENT');
  });

  it('uploads a VCR on request and reports the IME server\'s refusal as the command\'s', async () => {
    const before = backend.vcrs.length;
    const ok = await globex.admin.post<{ accepted: number; vcr: { start: string; stop: string; direction: string } }>('/v1/vcrs', {
      calling: '+33140000000',
      called: '+12125550170',
      start: '2026-11-24T10:00:00Z',
      stop: '2026-11-24T10:01:00Z',
      direction: 'terminating',
    });
    expect(ok).toMatchObject({ accepted: 1, vcr: { start: '2026-11-24T10:00:00.000Z', stop: '2026-11-24T10:01:00.000Z', direction: 'terminating' } });
    expect(backend.vcrs.slice(before)).toEqual([expect.objectContaining({ calling: '+33140000000', startMs: Date.parse('2026-11-24T10:00:00Z') })]);
    expect(await codeOf(globex.admin.post('/v1/vcrs', { calling: '0140000000', called: '+12125550170', start: '2026-11-24T10:00:00Z', stop: '2026-11-24T10:01:00Z' }))).toBe(
      'E_VCR_NOT_E164',
    );
    expect(await codeOf(globex.admin.post('/v1/vcrs', { calling: '+33140000000', called: '+12125550170', start: 'yesterday', stop: '2026-11-24T10:01:00Z' }))).toBe(
      'E_CM_BAD_TIME',
    );
    expect((await counters(globex)).VCRsRefused).toBe(1);
    expect((await status(globex)).lastVcrRefusals.at(-1)).toMatchObject({ code: 'E_VCR_NOT_E164' });
  });

  it('raises IMEOverQuota when the IME server refuses the enrollment, and on its notice', async () => {
    backend.quota = 500;
    const big = await startCm({ name: 'cucm-big', domain: 'big.example', enrolledPatterns: ['+13105551XXX'], vap: { primary: `127.0.0.1:${vap.port}` } });
    try {
      await big.cm.firstConnection();
      await waitFor(() => big.cm.alerts.isActive('IMEOverQuota'), 3000, 'IMEOverQuota');
      const alerts = await big.admin.get<{ alerts: { name: string; severity: string; details: Record<string, unknown> }[] }>('/v1/alerts');
      expect(alerts.alerts.find((a) => a.name === 'IMEOverQuota')).toMatchObject({ severity: 'critical', details: { detail: '1000 DIDs would exceed the quota of 500' } });
      expect((await counters(big)).RoutesPublished).toBe(0);
      // Still registered: over quota is a refusal, not a lost connection.
      expect((await status(big)).state).toBe('registered');
      backend.session.notice({ kind: 'over-quota', detail: 'quota 500, used 620' });
      await waitFor(() => big.cm.alerts.list().filter((a) => a.name === 'IMEOverQuota').length === 2, 3000, 'second IMEOverQuota');
      expect(big.cm.alerts.list()[0]?.details).toMatchObject({ detail: 'quota 500, used 620' });
    } finally {
      backend.quota = 100_000;
      await big.cm.stop();
    }
  });

  it('never writes the VAP password or the tokens to its logs', () => {
    const tokens = [readFileSync(acme.cm.adminTokenFile, 'utf8').trim(), readFileSync(join(acme.dir, 'data', 'pstn-callback.token'), 'utf8').trim()];
    for (const line of [...acme.logs, ...globex.logs]) {
      expect(line).not.toContain(PASSWORD);
      for (const t of tokens) expect(line).not.toContain(t);
    }
    expect(acme.logs.length).toBeGreaterThan(5);
  });
});
