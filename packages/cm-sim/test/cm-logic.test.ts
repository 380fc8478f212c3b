import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { parseConfigText } from '@ime/runtime';
import type { LearnedRoute, Vcr } from '@ime/vap';
import { checkCmConfig, cmConfigSchema } from '../src/cm-config.js';
import { RouteStore } from '../src/route-store.js';
import { RouteTable, oneYearAfter, parseStoredRoutes, routeView } from '../src/route-table.js';
import { judgeRoute, trustGroupsOf, vapTrustGroups } from '../src/trust.js';
import { decideVcr, parsePstnEvent } from '../src/vcr-policy.js';
import { VcrQueue } from '../src/vcr-queue.js';
import { thrown } from '../../core/test/helpers.js';

/** The refusal code of a call that must throw an ImeError. */
const codeOf = (f: () => unknown): string => thrown(f).code;

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const noLists = { trustedDomains: [], blockedDomains: [], trustedPrefixes: [], blockedPrefixes: [] };

function pushed(number: string, domain = 'globex.example', extra: Partial<LearnedRoute> = {}): LearnedRoute {
  return { number, domain, sipUri: `sip:abc@${domain}:5060;transport=tcp`, ticket: 'dGlja2V0', learnedOnMs: NOW, expiresOnMs: oneYearAfter(NOW), ...extra };
}

describe('trust lists', () => {
  it('trusts everyone without lists, and builds one whitelist and one blacklist', () => {
    expect(trustGroupsOf(noLists)).toEqual([]);
    expect(judgeRoute([], { number: '+12125550100', domain: 'globex.example' }).trusted).toBe(true);
    const groups = trustGroupsOf({ ...noLists, blockedDomains: ['Evil.example'], blockedPrefixes: ['+1900!', '+12125550199'] });
    expect(vapTrustGroups(groups)).toEqual([
      {
        name: 'blocked',
        trusted: false,
        description: 'blocked domains and prefixes',
        elements: [
          { kind: 'domain', value: 'evil.example' },
          { kind: 'prefix', value: '+1900!' },
          { kind: 'prefix', value: '+12125550199' },
        ],
      },
    ]);
    expect(judgeRoute(groups, { number: '+12125550100', domain: 'globex.example' }).trusted).toBe(true);
    expect(judgeRoute(groups, { number: '+12125550100', domain: 'evil.example' }).reason).toBe('blacklisted');
    expect(judgeRoute(groups, { number: '+19005550100', domain: 'globex.example' }).reason).toBe('blacklisted');
    // "!" needs at least one more digit; an exact prefix matches only that number.
    expect(judgeRoute(groups, { number: '+1900', domain: 'globex.example' }).trusted).toBe(true);
    expect(judgeRoute(groups, { number: '+12125550199', domain: 'globex.example' }).reason).toBe('blacklisted');
  });

  it('refuses what is not on a whitelist once one is set', () => {
    const groups = trustGroupsOf({ ...noLists, trustedDomains: ['globex.example'], trustedPrefixes: ['+44!'] });
    expect(judgeRoute(groups, { number: '+12125550100', domain: 'globex.example' }).reason).toBe('whitelisted');
    expect(judgeRoute(groups, { number: '+442079460000', domain: 'other.example' }).reason).toBe('whitelisted');
    expect(judgeRoute(groups, { number: '+12125550100', domain: 'other.example' }).reason).toBe('not-whitelisted');
  });
});

describe('learned routes table', () => {
  it('learns, updates (keeping Admin Enabled), expires after a year and counts domains', () => {
    const t = new RouteTable();
    expect(t.apply(pushed('+12125550100'), [], NOW).kind).toBe('learned');
    expect(t.apply(pushed('+12125550101'), [], NOW).kind).toBe('learned');
    expect(t.apply(pushed('+442079460000', 'initech.example'), [], NOW).kind).toBe('learned');
    expect(t.domainCount(NOW)).toBe(2);
    t.setAdminEnabled('+12125550100', false, NOW);
    const again = t.apply(pushed('+12125550100', 'globex.example', { ticket: 'bmV3' }), [], NOW + 1000);
    expect(again).toMatchObject({ kind: 'updated', route: { ticket: 'bmV3', adminEnabled: false } });
    expect(routeView(t.get('+12125550100', NOW) as never)).toEqual({
      number: '+12125550100',
      domain: 'globex.example',
      sipUri: 'sip:abc@globex.example:5060;transport=tcp',
      ticket: 'bmV3',
      learnedOn: '2026-01-15T12:00:00.000Z',
      expiresOn: '2027-01-15T12:00:00.000Z',
      adminEnabled: false,
    });
    const later = oneYearAfter(NOW);
    expect(t.size(later - 1)).toBe(3);
    expect(t.size(later)).toBe(0);
    expect(t.get('+12125550101', later)).toBeUndefined();
    expect(t.sweep(later)).toBe(3);
    expect(t.all()).toEqual([]);
  });

  it('caps the expiry at a year after learning, and takes an earlier one from the peer', () => {
    const t = new RouteTable();
    const long = t.apply(pushed('+12125550100', 'globex.example', { expiresOnMs: NOW + 5 * 365 * 86_400_000 }), [], NOW);
    expect(long.kind === 'learned' && long.route.expiresOnMs).toBe(oneYearAfter(NOW));
    const short = t.apply(pushed('+12125550101', 'globex.example', { expiresOnMs: NOW + 86_400_000 }), [], NOW);
    expect(short.kind === 'learned' && short.route.expiresOnMs).toBe(NOW + 86_400_000);
    expect(t.apply(pushed('+12125550102', 'globex.example', { learnedOnMs: NOW - 400 * 86_400_000, expiresOnMs: NOW - 1 }), [], NOW)).toMatchObject({
      kind: 'rejected',
      reason: 'expired',
    });
  });

  it('rejects blacklisted and malformed routes without storing them', () => {
    const groups = trustGroupsOf({ ...noLists, blockedDomains: ['evil.example'], blockedPrefixes: ['+1900!'] });
    const t = new RouteTable();
    expect(t.apply(pushed('+12125550100', 'evil.example'), groups, NOW)).toMatchObject({ kind: 'rejected', reason: 'blacklisted', detail: 'blocked: evil.example' });
    expect(t.apply(pushed('+19005550100'), groups, NOW)).toMatchObject({ kind: 'rejected', reason: 'blacklisted' });
    expect(t.apply(pushed('12125550100'), groups, NOW)).toMatchObject({ kind: 'rejected', reason: 'invalid-number' });
    expect(t.apply(pushed('+12125550100', 'bad domain'), groups, NOW)).toMatchObject({ kind: 'rejected', reason: 'invalid-domain' });
    expect(t.apply(pushed('+12125550100', 'globex.example', { ticket: 'not base64url!' }), groups, NOW)).toMatchObject({ kind: 'rejected', reason: 'invalid-ticket' });
    expect(t.apply(pushed('+12125550100', 'globex.example', { sipUri: 'http://x' }), groups, NOW)).toMatchObject({ kind: 'rejected', reason: 'invalid-sip-uri' });
    expect(t.size(NOW)).toBe(0);
    expect(codeOf(() => t.setAdminEnabled('+12125550100', false, NOW))).toBe('E_CM_ROUTE_NOT_FOUND');
  });

  it('persists across a restart and refuses a damaged file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-cm-routes-'));
    try {
      const store = new RouteStore(join(dir, 'sub', 'routes.json'));
      expect(await store.load()).toEqual([]);
      const t = new RouteTable();
      t.apply(pushed('+12125550100'), [], NOW);
      t.setAdminEnabled('+12125550100', false, NOW);
      await store.save(t.all());
      const back = new RouteTable(await new RouteStore(store.path).load());
      expect(back.list(NOW)).toEqual(t.list(NOW));
      writeFileSync(store.path, '{"routes":[{"number":"12"}]}');
      await expect(store.load()).rejects.toMatchObject({ code: 'E_CM_ROUTES_FILE' });
      writeFileSync(store.path, 'not json');
      await expect(store.load()).rejects.toMatchObject({ code: 'E_CM_ROUTES_FILE' });
      expect(codeOf(() => parseStoredRoutes([]))).toBe('E_CM_ROUTES_FILE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('VCR policy', () => {
  const event = { callId: 'call-1', direction: 'originating', calling: '+14085551000', called: '+12125550100', startMs: NOW, stopMs: NOW + 60_000, answered: true };
  const none = { isExcluded: () => false, hasRoute: () => false };

  it('uploads an answered PSTN call between +E.164 numbers, from either side', () => {
    expect(decideVcr(parsePstnEvent(event), none)).toEqual({
      upload: { calling: '+14085551000', called: '+12125550100', startMs: NOW, stopMs: NOW + 60_000, direction: 'originating', callId: 'call-1' },
    });
    expect(decideVcr(parsePstnEvent({ ...event, direction: 'terminating' }), { ...none, hasRoute: () => true })).toMatchObject({ upload: { direction: 'terminating' } });
  });

  it('skips with a reason', () => {
    expect(decideVcr(parsePstnEvent({ ...event, viaIme: true }), none)).toEqual({ skip: 'ime-call' });
    expect(decideVcr(parsePstnEvent({ ...event, answered: false }), none)).toEqual({ skip: 'unanswered' });
    expect(decideVcr(parsePstnEvent({ ...event, direction: 'terminating', calling: '' }), none)).toEqual({ skip: 'not-e164' });
    expect(decideVcr(parsePstnEvent({ ...event, called: '2125550100' }), none)).toEqual({ skip: 'not-e164' });
    expect(decideVcr(parsePstnEvent(event), { ...none, isExcluded: (n) => n === '+14085551000' })).toEqual({ skip: 'excluded' });
    expect(decideVcr(parsePstnEvent(event), { ...none, hasRoute: (n) => n === '+12125550100' })).toEqual({ skip: 'route-learned' });
  });

  it('refuses malformed events with a code', () => {
    expect(codeOf(() => parsePstnEvent({ ...event, direction: 'sideways' }))).toBe('E_CM_BAD_EVENT');
    expect(codeOf(() => parsePstnEvent({ ...event, stopMs: NOW - 1 }))).toBe('E_CM_BAD_EVENT');
    expect(codeOf(() => parsePstnEvent({ ...event, callId: 'a b' }))).toBe('E_CM_BAD_EVENT');
    expect(codeOf(() => parsePstnEvent({ ...event, answered: 'yes' }))).toBe('E_CM_BAD_EVENT');
    expect(codeOf(() => parsePstnEvent(null))).toBe('E_CM_BAD_EVENT');
  });
});

describe('VCR queue', () => {
  const vcr = (i: number): Vcr => ({ calling: '+14085551000', called: '+12125550100', startMs: i, stopMs: i + 1, direction: 'originating', callId: `c${i}` });

  it('is bounded by dropping the oldest, ignores repeats, and requeues at the front', () => {
    const q = new VcrQueue(3);
    expect([1, 2, 3].map((i) => q.push(vcr(i)))).toEqual([0, 0, 0]);
    expect(q.push(vcr(3))).toBe(0);
    expect(q.push(vcr(4))).toBe(1);
    expect(q.dropped).toBe(1);
    const batch = q.take(2);
    expect(batch.map((v) => v.callId)).toEqual(['c2', 'c3']);
    q.push(vcr(5));
    expect(q.requeue(batch)).toBe(1);
    // The oldest go first, requeued ones included.
    expect(q.take(10).map((v) => v.callId)).toEqual(['c3', 'c4', 'c5']);
    expect(() => new VcrQueue(0)).toThrow(RangeError);
  });
});

describe('call manager configuration', () => {
  const minimal = {
    name: 'cucm-acme',
    domain: 'Acme.example',
    enrolledPatterns: ['+14085551xxx'],
    vap: { primary: '127.0.0.1:5620', username: 'vapuser', passwordFile: 'pw' },
  };
  const load = (extra: Record<string, unknown> = {}, vap: Record<string, unknown> = {}) =>
    parseConfigText(JSON.stringify({ ...minimal, ...extra, vap: { ...minimal.vap, ...vap } }), 'json', cmConfigSchema, { baseDir: '/etc/ime' });

  it('fills defaults and derives a stable Vservice', () => {
    const c = load();
    expect(c.vap.mode).toBe('authenticated');
    expect(c.vap.reconnectIntervalSec).toBe(120);
    expect(c.vap.passwordFile).toBe('/etc/ime/pw');
    expect(c.admin.listen).toBe('127.0.0.1:9622');
    const s = checkCmConfig(c);
    expect(s.patterns).toEqual(['+14085551XXX']);
    expect(s.pstnLines).toEqual(['+14085551XXX']);
    expect(s.vservice).toMatchObject({ profileName: 'cucm-acme', domain: 'acme.example', maxDidCount: 100 });
    expect(s.vservice.id).toMatch(/^[0-9a-f]{16}$/);
    expect(s.vservice.sipUri).toMatch(/^sip:[0-9a-f-]{36}@acme\.example:5060;transport=tcp$/);
    expect(checkCmConfig(load()).vservice).toEqual(s.vservice);
    expect(s.targets).toEqual([{ label: 'primary', host: '127.0.0.1', port: 5620 }]);
    expect(s.certificateFile).toBe('/etc/ime/data/vap-client.crt');
  });

  it('refuses what the guide does not allow, naming the key', () => {
    const keyOf = (f: () => unknown): unknown => {
      try {
        f();
      } catch (err) {
        return [(err as ImeError).code, (err as ImeError).details?.key];
      }
      throw new Error('expected a refusal');
    };
    expect(keyOf(() => checkCmConfig(load({ enrolledPatterns: ['+1408XXXX'] })))).toEqual(['E_CONFIG_RANGE', 'enrolledPatterns.0']);
    expect(keyOf(() => checkCmConfig(load({ exclusions: ['+1408555100X'] })))).toEqual(['E_CONFIG_RANGE', 'exclusions.0']);
    expect(keyOf(() => checkCmConfig(load({ blockedPrefixes: ['+1!2'] })))).toEqual(['E_CONFIG_RANGE', 'blockedPrefixes.0']);
    expect(keyOf(() => checkCmConfig(load({ trustedDomains: ['+1408'] })))).toEqual(['E_CONFIG_RANGE', 'trustedDomains.0']);
    expect(keyOf(() => checkCmConfig(load({}, { secondary: '127.0.0.1:5620' })))).toEqual(['E_CONFIG_RANGE', 'vap.secondary']);
    expect(keyOf(() => checkCmConfig(load({}, { primary: '127.0.0.1:0' })))).toEqual(['E_CONFIG_RANGE', 'vap.primary']);
    expect(keyOf(() => checkCmConfig(load({}, { mode: 'encrypted' })))).toEqual(['E_CONFIG_MISSING', 'vap.tls.peerCertificateFile']);
    expect(keyOf(() => checkCmConfig(load({ pstn: { admin: 'http://127.0.0.1:9623' } })))).toEqual(['E_CONFIG_MISSING', 'pstn.tokenFile']);
    expect(codeOf(() => load({}, { reconnectIntervalSec: 0 }))).toBe('E_CONFIG_RANGE');
    expect(codeOf(() => load({}, { password: 'secret' }))).toBe('E_CONFIG_UNKNOWN_KEY');
  });
});
