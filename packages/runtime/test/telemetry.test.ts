import { describe, expect, it } from '@jest/globals';
import type { LogEntry } from '../src/logger.js';
import { Logger } from '../src/logger.js';
import { Alerts, Counters } from '../src/telemetry.js';

describe('counters', () => {
  it('counts, sets gauges, computes gauges and snapshots by the guide names', () => {
    let stored = 7;
    const c = new Counters()
      .define('IMEDistributedCacheStores', 'DID records stored by this peer')
      .define('IMEDistributedCacheNodeCount', 'Peers in the ring', 'gauge')
      .gauge('IMEDistributedCacheStoredData', 'Records held', () => stored);
    c.inc('IMEDistributedCacheStores');
    c.inc('IMEDistributedCacheStores', 4);
    c.set('IMEDistributedCacheNodeCount', 12);
    stored = 9;
    expect(c.get('IMEDistributedCacheStores')).toBe(5);
    expect(c.snapshot()).toEqual({ IMEDistributedCacheStores: 5, IMEDistributedCacheNodeCount: 12, IMEDistributedCacheStoredData: 9 });
    expect(c.list().map((m) => [m.name, m.kind])).toEqual([
      ['IMEDistributedCacheStores', 'counter'],
      ['IMEDistributedCacheNodeCount', 'gauge'],
      ['IMEDistributedCacheStoredData', 'gauge'],
    ]);
  });

  it('renders the Prometheus text exposition format 0.0.4', () => {
    const c = new Counters()
      .define('ValidationAttempts', 'Validations started')
      .define('IMEDistributedCacheHealth', 'Health: 2 green, 1 yellow, 0 red\nsecond line \\ backslash', 'gauge')
      .gauge('DaysUntilCertExpiry', 'Days until the certificate expires', () => Number.POSITIVE_INFINITY)
      .gauge('Broken', 'A gauge that fails', () => {
        throw new Error('no');
      });
    c.inc('ValidationAttempts', 3);
    c.set('IMEDistributedCacheHealth', 2);
    expect(c.renderPrometheus()).toBe(
      '# HELP ValidationAttempts Validations started\n' +
        '# TYPE ValidationAttempts counter\n' +
        'ValidationAttempts 3\n' +
        '# HELP IMEDistributedCacheHealth Health: 2 green, 1 yellow, 0 red\\nsecond line \\\\ backslash\n' +
        '# TYPE IMEDistributedCacheHealth gauge\n' +
        'IMEDistributedCacheHealth 2\n' +
        '# HELP DaysUntilCertExpiry Days until the certificate expires\n' +
        '# TYPE DaysUntilCertExpiry gauge\n' +
        'DaysUntilCertExpiry +Inf\n' +
        '# HELP Broken A gauge that fails\n' +
        '# TYPE Broken gauge\n' +
        'Broken NaN\n',
    );
  });

  it('throws on programming errors: undefined names, bad names, decrementing counters', () => {
    const c = new Counters().define('RoutesLearned', 'Routes learned').define('Gauge', 'g', 'gauge');
    expect(() => c.inc('RoutesLearnt')).toThrow(/not defined/);
    expect(() => c.set('Nope', 1)).toThrow(/not defined/);
    expect(() => c.get('Nope')).toThrow(/not defined/);
    expect(() => c.inc('RoutesLearned', -1)).toThrow(RangeError);
    expect(() => c.set('RoutesLearned', 3)).toThrow(/counter/);
    expect(() => c.define('bad-name', 'x')).toThrow(TypeError);
    expect(() => c.define('RoutesLearned', 'x', 'gauge')).toThrow(/differently/);
    c.define('RoutesLearned', 'Routes learned');
    c.inc('Gauge', -2);
    expect(c.get('Gauge')).toBe(-2);
  });
});

describe('alerts', () => {
  function setup(): { alerts: Alerts; logs: LogEntry[]; clock: { now: number } } {
    const logs: LogEntry[] = [];
    const clock = { now: Date.parse('2025-03-01T00:00:00Z') };
    const log = new Logger({ sink: (_l, e) => logs.push(e) });
    return { alerts: new Alerts({ log: log.child('alerts'), now: () => clock.now }), logs, clock };
  }

  it('records alerts newest first with time, name, severity and details, and logs each', () => {
    const { alerts, logs, clock } = setup();
    expect(alerts.raise('IMEDistributedCacheFailure', { severity: 'critical', details: { reason: 'no peers' } })).toBe(true);
    clock.now += 1000;
    expect(alerts.raise('ValidationFailed', { severity: 'warning', details: { number: '+12125551234' } })).toBe(true);
    expect(alerts.list()).toEqual([
      { time: '2025-03-01T00:00:01.000Z', name: 'ValidationFailed', severity: 'warning', details: { number: '+12125551234' } },
      { time: '2025-03-01T00:00:00.000Z', name: 'IMEDistributedCacheFailure', severity: 'critical', details: { reason: 'no peers' } },
    ]);
    expect(logs.map((e) => [e.level, e.module, e.msg])).toEqual([
      ['error', 'alerts', 'alert IMEDistributedCacheFailure'],
      ['warn', 'alerts', 'alert ValidationFailed'],
    ]);
  });

  it('throttles the same name and key within throttleMs, not other keys', () => {
    const { alerts, clock } = setup();
    const day = 24 * 3600 * 1000;
    const raise = (cert: string): boolean =>
      alerts.raise('CertificateExpiring', { severity: 'warning', key: cert, details: { days: 10 }, throttleMs: day });
    expect(raise('peer-cert')).toBe(true);
    clock.now += day - 1;
    expect(raise('peer-cert')).toBe(false);
    expect(raise('ca-cert')).toBe(true);
    clock.now += 1;
    expect(raise('peer-cert')).toBe(true);
    expect(alerts.list().map((a) => a.key)).toEqual(['peer-cert', 'ca-cert', 'peer-cert']);
  });

  it('tracks active conditions until cleared; clearing resets the throttle', () => {
    const { alerts, clock } = setup();
    const fail = (): boolean => alerts.raise('IMEDistributedCacheFailure', { severity: 'critical', details: {}, throttleMs: 60_000 });
    expect(fail()).toBe(true);
    clock.now += 10;
    expect(fail()).toBe(false);
    expect(alerts.isActive('IMEDistributedCacheFailure')).toBe(true);
    expect(alerts.active().map((a) => a.name)).toEqual(['IMEDistributedCacheFailure']);
    expect(alerts.clear('IMEDistributedCacheFailure')).toBe(true);
    expect(alerts.active()).toEqual([]);
    expect(alerts.clear('IMEDistributedCacheFailure')).toBe(false);
    expect(fail()).toBe(true);

    alerts.raise('PeerDown', { severity: 'error', key: 'a', details: {} });
    alerts.raise('PeerDown', { severity: 'error', key: 'b', details: {} });
    expect(alerts.active().map((a) => [a.name, a.key])).toEqual([
      ['PeerDown', 'b'],
      ['PeerDown', 'a'],
      ['IMEDistributedCacheFailure', undefined],
    ]);
    alerts.clear('PeerDown', 'a');
    expect(alerts.isActive('PeerDown', 'b')).toBe(true);
    alerts.clear('PeerDown');
    expect(alerts.active().map((a) => a.name)).toEqual(['IMEDistributedCacheFailure']);
  });

  it('keeps the last 1000 entries', () => {
    const { alerts } = setup();
    for (let i = 0; i < 1005; i++) alerts.raise('Tick', { severity: 'info', details: { i } });
    const list = alerts.list();
    expect(list).toHaveLength(1000);
    expect(list[0]?.details).toEqual({ i: 1004 });
    expect(list[999]?.details).toEqual({ i: 5 });
  });

  it('never keeps secrets in details', () => {
    const { alerts, logs } = setup();
    alerts.raise('VapAuthFailed', { severity: 'notice', details: { user: 'cm1', password: 'hunter2', creds: { secret: 's' } } });
    expect(alerts.list()[0]?.details).toEqual({ user: 'cm1', password: '***', creds: { secret: '***' } });
    expect(JSON.stringify(logs)).not.toContain('hunter2');
  });

  it('refuses unknown severities and bad names', () => {
    const { alerts } = setup();
    expect(() => alerts.raise('X', { severity: 'fatal' as never, details: {} })).toThrow(TypeError);
    expect(() => alerts.raise('bad name', { severity: 'info', details: {} })).toThrow(TypeError);
  });
});
