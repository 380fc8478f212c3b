import { describe, expect, it } from '@jest/globals';
import { parseConfigText } from '@ime/runtime';
import { LineTable } from '../src/line-table.js';
import { parseCallRequest, planCall } from '../src/call-plan.js';
import { pstnConfigSchema } from '../src/pstn-config.js';
import { randomSkew, seededRandom } from '../src/random.js';
import { thrown } from '../../core/test/helpers.js';

/** The refusal code of a call that must throw an ImeError. */
const codeOf = (f: () => unknown): string => thrown(f).code;

const TOKEN = 'a'.repeat(32);
const line = (domain: string, patterns: unknown, exclusions?: unknown) => ({
  domain,
  patterns,
  ...(exclusions === undefined ? {} : { exclusions }),
  callbackUrl: `http://127.0.0.1:1/${domain}`,
  callbackToken: TOKEN,
});

describe('line table', () => {
  it('routes a number to the most specific matching pattern, honouring exclusions', () => {
    const t = new LineTable();
    t.attach(line('acme.example', ['+14085551XXX']), 0);
    t.attach(line('ported.example', ['+140855512XX', '+14085551299']), 0);
    expect(t.ownerOf('+14085551000')?.line.domain).toBe('acme.example');
    expect(t.ownerOf('+14085551234')?.line.domain).toBe('ported.example');
    expect(t.ownerOf('+14085551299')?.pattern.text).toBe('+14085551299');
    // Same length only: a pattern names numbers of one length.
    expect(t.ownerOf('+140855512345')).toBeUndefined();
    expect(t.ownerOf('+14085552000')).toBeUndefined();
    t.attach(line('acme.example', ['+14085551XXX'], ['+14085551007']), 0);
    expect(t.ownerOf('+14085551007')).toBeUndefined();
    expect(t.ownerOf('+14085551008')?.line.domain).toBe('acme.example');
  });

  it('keeps an identical pattern with the first subscriber and says it is shadowed', () => {
    const t = new LineTable();
    expect(t.attach(line('acme.example', ['+14085551XXX']), 0).shadowed).toEqual([]);
    const fraud = t.attach(line('fraud.example', ['+14085551XXX', '+1212555XXX']), 0);
    expect(fraud.shadowed).toEqual(['+14085551XXX']);
    expect(t.ownerOf('+14085551000')?.line.domain).toBe('acme.example');
    // Re-attaching keeps seniority: acme still wins after replacing its lines.
    expect(t.attach(line('ACME.example.', ['+14085551XXX']), 5).replaced).toBe(true);
    expect(t.ownerOf('+14085551000')?.line.domain).toBe('acme.example');
    expect(t.size).toBe(2);
    expect(t.detach('fraud.example')).toBe(true);
    expect(t.detach('fraud.example')).toBe(false);
    expect(t.list().map((l) => l.domain)).toEqual(['acme.example']);
    expect(JSON.stringify(t.list())).not.toContain(TOKEN);
  });

  it('refuses bad attachments with codes', () => {
    const t = new LineTable();
    expect(codeOf(() => t.attach(line('bad domain', ['+1408XXX']), 0))).toBe('E_DOMAIN_INVALID_CHARACTER');
    expect(codeOf(() => t.attach(line('a.example', []), 0))).toBe('E_PSTN_PATTERNS');
    expect(codeOf(() => t.attach(line('a.example', '+1408XXX'), 0))).toBe('E_PSTN_PATTERNS');
    expect(codeOf(() => t.attach(line('a.example', ['+1408XXXX']), 0))).toBe('E_PATTERN_TOO_MANY_WILDCARDS');
    expect(codeOf(() => t.attach(line('a.example', ['1408XXX']), 0))).toBe('E_PATTERN_MISSING_PLUS');
    expect(codeOf(() => t.attach(line('a.example', ['+1408XXX'], ['+1408555X']), 0))).toBe('E_EXCLUSION_WILDCARD');
    expect(codeOf(() => t.attach({ ...line('a.example', ['+1408XXX']), callbackUrl: 'ftp://x' }, 0))).toBe('E_PSTN_CALLBACK_URL');
    expect(codeOf(() => t.attach({ ...line('a.example', ['+1408XXX']), callbackUrl: 'http://u:p@h/' }, 0))).toBe('E_PSTN_CALLBACK_URL');
    expect(codeOf(() => t.attach({ ...line('a.example', ['+1408XXX']), callbackToken: 'short' }, 0))).toBe('E_PSTN_CALLBACK_TOKEN');
    expect(t.size).toBe(0);
  });
});

describe('call requests and plans', () => {
  it('fills defaults and checks every field', () => {
    expect(parseCallRequest({ from: '+14085551000', to: '+12125550100' })).toEqual({
      from: '+14085551000',
      to: '+12125550100',
      durationSec: 60,
      presentedCallerId: '+14085551000',
      answered: true,
    });
    expect(parseCallRequest({ from: '+14085551000', to: '+12125550100', callerId: 'withheld' }).presentedCallerId).toBe('');
    expect(parseCallRequest({ from: '+14085551000', to: '+12125550100', callerId: '+14085550000' }).presentedCallerId).toBe('+14085550000');
    expect(codeOf(() => parseCallRequest({ from: '14085551000', to: '+12125550100' }))).toBe('E_E164_MISSING_PLUS');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+1212555010x' }))).toBe('E_E164_INVALID_CHARACTER');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+14085551000' }))).toBe('E_PSTN_SAME_NUMBER');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+12125550100', durationSec: -1 }))).toBe('E_PSTN_DURATION');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+12125550100', durationSec: 1.5 }))).toBe('E_PSTN_DURATION');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+12125550100', callerId: 'anonymous' }))).toBe('E_PSTN_CALLER_ID');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+12125550100', answered: 'yes' }))).toBe('E_ADMIN_BAD_REQUEST');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+12125550100', skewMs: 3_600_001 }))).toBe('E_PSTN_SKEW');
    expect(codeOf(() => parseCallRequest({ from: '+14085551000', to: '+12125550100', colour: 'red' }))).toBe('E_ADMIN_BAD_REQUEST');
    expect(codeOf(() => parseCallRequest([]))).toBe('E_ADMIN_BAD_REQUEST');
  });

  it('tells the originating side the true times and the terminating side skewed ones', () => {
    const req = parseCallRequest({ from: '+14085551000', to: '+12125550100', durationSec: 90, callerId: 'withheld', answered: false });
    const plan = planCall(req, 'call-1', 1_000_000, -250);
    expect(plan.originating).toEqual({ callId: 'call-1', direction: 'originating', calling: '+14085551000', called: '+12125550100', startMs: 1_000_000, stopMs: 1_090_000, answered: false });
    expect(plan.terminating).toEqual({ callId: 'call-1', direction: 'terminating', calling: '', called: '+12125550100', startMs: 999_750, stopMs: 1_089_750, answered: false });
  });

  it('draws skews within the bound, reproducibly from a seed', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 2000 }, () => randomSkew(a, 300));
    expect(Array.from({ length: 2000 }, () => randomSkew(b, 300))).toEqual(xs);
    expect(Math.max(...xs)).toBeLessThanOrEqual(300);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(-300);
    // Both ends of the range are reached, so the bound is really exercised.
    expect(Math.max(...xs)).toBeGreaterThan(280);
    expect(Math.min(...xs)).toBeLessThan(-280);
    expect(randomSkew(a, 0)).toBe(0);
  });

  it('has a configuration schema whose default file loads', () => {
    const c = parseConfigText('{}', 'json', pstnConfigSchema, { baseDir: '/tmp' });
    expect(c.clockSkewMs).toBe(0);
    expect(c.admin.listen).toBe('127.0.0.1:9623');
    expect(c.seed).toBeUndefined();
    expect(codeOf(() => parseConfigText('{"clockSkewMs": -1}', 'json', pstnConfigSchema))).toBe('E_CONFIG_RANGE');
  });
});
