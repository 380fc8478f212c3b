import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminClient, parseConfigText } from '@ime/runtime';
import type { CallNotification } from '../src/call-plan.js';
import { pstnConfigSchema } from '../src/pstn-config.js';
import { type CallRecord, PstnSwitch } from '../src/pstn-switch.js';
import { rejected } from '../../core/test/helpers.js';

/** A call manager's callback endpoint as the switch sees it: records what arrives, checks the bearer. */
class Recorder {
  readonly received: CallNotification[] = [];
  readonly refusedTokens: string[] = [];
  url = '';
  answer: Record<string, unknown> = { ok: true };
  readonly #server: Server;

  constructor(readonly token: string) {
    this.#server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        const auth = req.headers.authorization ?? '';
        res.setHeader('content-type', 'application/json');
        if (auth !== `Bearer ${this.token}`) {
          this.refusedTokens.push(auth);
          res.statusCode = 401;
          res.end(JSON.stringify({ error: { code: 'E_ADMIN_AUTH', message: 'wrong token' } }));
          return;
        }
        this.received.push(JSON.parse(body) as CallNotification);
        res.end(JSON.stringify(this.answer));
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1/pstn/events`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** The refusal code of a call that must reject with an ImeError. */
const codeOf = async (p: Promise<unknown>): Promise<string> => (await rejected(p)).code;

const SKEW = 400;

describe('the PSTN switch over HTTP on 127.0.0.1', () => {
  let dir: string;
  let sw: PstnSwitch;
  let admin: AdminClient;
  const acme = new Recorder('acme-callback-token-0123456789');
  const globex = new Recorder('globex-callback-token-0123456789');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ime-pstn-'));
    await Promise.all([acme.start(), globex.start()]);
    const config = parseConfigText(
      JSON.stringify({ dataDir: 'data', admin: { listen: '127.0.0.1:0' }, clockSkewMs: SKEW, seed: 7, maxRecentCalls: 5, callbackTimeoutMs: 2000 }),
      'json',
      pstnConfigSchema,
      { baseDir: dir },
    );
    sw = await PstnSwitch.start(config);
    admin = await AdminClient.fromTokenFile(sw.adminUrl, sw.adminTokenFile);
    await admin.post('/v1/lines', { domain: 'acme.example', patterns: ['+14085551XXX'], exclusions: ['+14085551999'], callbackUrl: acme.url, callbackToken: acme.token });
    await admin.post('/v1/lines', { domain: 'globex.example', patterns: ['+12125550XXX'], callbackUrl: globex.url, callbackToken: globex.token });
  });

  afterAll(async () => {
    await sw.stop();
    await Promise.all([acme.stop(), globex.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async (body: Record<string, unknown>): Promise<CallRecord> => (await admin.post<{ call: CallRecord }>('/v1/calls', body)).call;

  it('lists attached lines without their tokens', async () => {
    const r = await admin.get<{ lines: { domain: string; patterns: string[]; exclusions: string[] }[] }>('/v1/lines');
    expect(r.lines.map((l) => [l.domain, l.patterns, l.exclusions])).toEqual([
      ['acme.example', ['+14085551XXX'], ['+14085551999']],
      ['globex.example', ['+12125550XXX'], []],
    ]);
    expect(JSON.stringify(r)).not.toContain(acme.token);
  });

  it('tells both call managers about a call, each from its own side', async () => {
    const before = Date.now();
    const c = await call({ from: '+14085551000', to: '+12125550100', durationSec: 120 });
    expect(c.route).toBe('pstn');
    expect(c.originating).toMatchObject({ domain: 'acme.example', attached: true, notified: true });
    expect(c.terminating).toMatchObject({ domain: 'globex.example', attached: true, notified: true });
    expect(c.stopMs - c.startMs).toBe(120_000);
    expect(c.startMs).toBeGreaterThanOrEqual(before);
    const o = acme.received.at(-1) as CallNotification;
    const t = globex.received.at(-1) as CallNotification;
    expect(o).toEqual({ callId: c.callId, direction: 'originating', calling: '+14085551000', called: '+12125550100', startMs: c.startMs, stopMs: c.stopMs, answered: true, viaIme: false });
    expect(t).toMatchObject({ callId: c.callId, direction: 'terminating', calling: '+14085551000', called: '+12125550100', answered: true });
    expect(t.startMs - o.startMs).toBe(c.skewMs);
    expect(t.stopMs - o.stopMs).toBe(c.skewMs);
    expect(Math.abs(c.skewMs)).toBeLessThanOrEqual(SKEW);
    expect(acme.refusedTokens).toEqual([]);
  });

  it('keeps every skew within ±clockSkewMs, and a fixed skew when asked', async () => {
    const skews: number[] = [];
    for (let i = 0; i < 12; i++) skews.push((await call({ from: '+12125550101', to: '+14085551001' })).skewMs);
    expect(skews.every((s) => Math.abs(s) <= SKEW)).toBe(true);
    expect(new Set(skews).size).toBeGreaterThan(1);
    const fixed = await call({ from: '+12125550101', to: '+14085551001', skewMs: -1500 });
    expect(fixed.skewMs).toBe(-1500);
    const t = acme.received.at(-1) as CallNotification;
    expect(t.startMs).toBe(fixed.startMs - 1500);
  });

  it('shows the terminating side an empty caller id when withheld, and a rewritten one when presented', async () => {
    await call({ from: '+14085551002', to: '+12125550102', callerId: 'withheld' });
    expect((globex.received.at(-1) as CallNotification).calling).toBe('');
    expect((acme.received.at(-1) as CallNotification).calling).toBe('+14085551002');
    const c = await call({ from: '+14085551002', to: '+12125550102', callerId: '+14085550000' });
    expect(c.callerId).toBe('+14085550000');
    expect((globex.received.at(-1) as CallNotification).calling).toBe('+14085550000');
    expect((acme.received.at(-1) as CallNotification).calling).toBe('+14085551002');
  });

  it('reports an unanswered call as such to both sides', async () => {
    const c = await call({ from: '+14085551003', to: '+12125550103', answered: false, durationSec: 0 });
    expect(c.answered).toBe(false);
    expect((acme.received.at(-1) as CallNotification).answered).toBe(false);
    expect((globex.received.at(-1) as CallNotification).answered).toBe(false);
  });

  it('reports a side nobody owns, and refuses a call where neither side is known', async () => {
    const n = globex.received.length;
    const c = await call({ from: '+14085551004', to: '+33140000000' });
    expect(c.terminating).toMatchObject({ domain: null, attached: false, notified: false });
    expect(c.originating.notified).toBe(true);
    expect(globex.received.length).toBe(n);
    // An excluded number is nobody's either.
    const x = await call({ from: '+14085551999', to: '+12125550104' });
    expect(x.originating).toMatchObject({ attached: false, notified: false });
    expect(await codeOf(call({ from: '+33140000001', to: '+33140000000' }))).toBe('E_PSTN_UNKNOWN_SUBSCRIBER');
  });

  it('passes the originating side\'s IME routing to the terminating side', async () => {
    acme.answer = { ok: true, viaIme: true };
    try {
      const c = await call({ from: '+14085551005', to: '+12125550105' });
      expect(c.route).toBe('ime');
      expect((globex.received.at(-1) as CallNotification).viaIme).toBe(true);
      expect(c.originating.answer).toEqual({ ok: true, viaIme: true });
    } finally {
      acme.answer = { ok: true };
    }
  });

  it('refuses bad input with codes', async () => {
    expect(await codeOf(call({ from: '4085551000', to: '+12125550100' }))).toBe('E_E164_MISSING_PLUS');
    expect(await codeOf(call({ from: '+14085551000', to: '+12125550100', durationSec: 'long' }))).toBe('E_PSTN_DURATION');
    expect(await codeOf(call({ from: '+14085551000', to: '+12125550100', callerId: '12' }))).toBe('E_PSTN_CALLER_ID');
    expect(await codeOf(admin.post('/v1/lines', { domain: 'x.example', patterns: ['+XX'], callbackUrl: acme.url, callbackToken: acme.token }))).toBe(
      'E_PATTERN_NO_DIGITS',
    );
    expect(await codeOf(admin.post('/v1/lines', { domain: 'x.example', patterns: ['+1408XXX'], callbackUrl: 'nope', callbackToken: acme.token }))).toBe(
      'E_PSTN_CALLBACK_URL',
    );
    expect(await codeOf(admin.request('DELETE', '/v1/lines/nobody.example'))).toBe('E_PSTN_LINE_NOT_FOUND');
  });

  it('requires the admin token', async () => {
    const wrong = new AdminClient({ url: sw.adminUrl, token: 'not-the-token-0123456789' });
    expect(await codeOf(wrong.post('/v1/calls', { from: '+14085551000', to: '+12125550100' }))).toBe('E_ADMIN_AUTH');
    expect(await codeOf(wrong.get('/v1/lines'))).toBe('E_ADMIN_AUTH');
  });

  it('reports a call manager that refuses or cannot be reached, without failing the call', async () => {
    await admin.post('/v1/lines', { domain: 'globex.example', patterns: ['+12125550XXX'], callbackUrl: globex.url, callbackToken: 'stale-token-0123456789abcdef' });
    const refused = await call({ from: '+14085551006', to: '+12125550106' });
    expect(refused.terminating).toMatchObject({ attached: true, notified: false, error: { code: 'E_ADMIN_AUTH' } });
    expect(globex.refusedTokens.at(-1)).toBe('Bearer stale-token-0123456789abcdef');
    await admin.post('/v1/lines', { domain: 'globex.example', patterns: ['+12125550XXX'], callbackUrl: 'http://127.0.0.1:1/x', callbackToken: globex.token });
    const down = await call({ from: '+14085551006', to: '+12125550106' });
    expect(down.terminating).toMatchObject({ attached: true, notified: false, error: { code: 'E_PSTN_CALLBACK_UNREACHABLE' } });
    expect(down.originating.notified).toBe(true);
    // The operator sees which enterprise missed a call, and why (`ime show alerts` on the switch).
    const { alerts, active } = await admin.get<{ alerts: { name: string; severity: string; key?: string; details: Record<string, unknown> }[]; active: unknown[] }>('/v1/alerts');
    // The refused notification raised it; the unreachable one a moment later is within the minute's
    // throttle, so it is not recorded again, but the alert stays active.
    const raised = alerts.filter((a) => a.name === 'PstnNotificationFailed');
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ severity: 'warning', key: 'globex.example', details: { domain: 'globex.example', direction: 'terminating', code: 'E_ADMIN_AUTH' } });
    expect(active).toHaveLength(1);
  });

  it('keeps a bounded list of recent calls, newest first, and counts', async () => {
    const r = await admin.get<{ calls: CallRecord[] }>('/v1/calls');
    expect(r.calls).toHaveLength(5);
    expect(r.calls[0]?.from).toBe('+14085551006');
    const counters = (await admin.get<{ counters: Record<string, number> }>('/v1/counters')).counters;
    expect(counters.PstnCallsPlaced).toBeGreaterThan(15);
    expect(counters.PstnNotificationsFailed).toBe(2);
    expect(counters.PstnLinesAttached).toBe(2);
    expect(await admin.getText('/metrics')).toContain('# TYPE PstnCallsPlaced counter');
  });
});
