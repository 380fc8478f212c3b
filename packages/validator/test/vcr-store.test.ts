import { describe, expect, it } from '@jest/globals';
import { tempDatabases } from './temp-db.js';
import { DEFAULT_VCR_RETENTION_MS, type StoredVcr, type VcrInput, VcrStore, vcrProblem } from '../src/vcr-store.js';
import { rejected } from '../../core/test/helpers.js';

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const freshDb = tempDatabases('vcr-store-');

function vcr(over: Partial<VcrInput> = {}): VcrInput {
  return { calling: '+14085550100', called: '+12125550199', startMs: T0 - 120_000, stopMs: T0 - 60_000, direction: 'terminating', callId: 'c1', ...over };
}

describe('vcrProblem', () => {
  it.each([
    ['a withheld caller id', { calling: '' }, 'E_VCR_NOT_E164'],
    ['a national called number', { called: '4085550100' }, 'E_VCR_NOT_E164'],
    ['no call id', { callId: '' }, 'E_VCR_MALFORMED'],
    ['an unknown direction', { direction: 'sideways' as never }, 'E_VCR_MALFORMED'],
    ['a fractional time', { startMs: 1.5 }, 'E_VCR_MALFORMED'],
    ['stop before start', { stopMs: T0 - 200_000 }, 'E_VCR_TIMES'],
    ['a call starting tomorrow', { startMs: T0 + 86_400_000, stopMs: T0 + 86_460_000 }, 'E_VCR_TIMES'],
    ['a call older than the retention window', { startMs: T0 - DEFAULT_VCR_RETENTION_MS - 10_000, stopMs: T0 - DEFAULT_VCR_RETENTION_MS - 1 }, 'E_VCR_STALE'],
  ])('refuses %s', (_what, over, code) => {
    expect(vcrProblem(vcr(over), T0, DEFAULT_VCR_RETENTION_MS)?.code).toBe(code);
  });

  it('accepts a plain call record', () => {
    expect(vcrProblem(vcr(), T0, DEFAULT_VCR_RETENTION_MS)).toBeUndefined();
  });
});

describe('VcrStore', () => {
  it('stores both directions, counts them, ignores a retried upload and refuses bad records by index', async () => {
    const { db } = await freshDb();
    const store = await VcrStore.open({ db, now: () => T0 });
    const r = await store.add([vcr(), vcr({ direction: 'originating', callId: 'c2' }), vcr({ calling: 'anonymous' }), vcr()], 'vap-1/cm');
    expect(r).toEqual({ accepted: 3, duplicates: 1, refused: [{ index: 2, code: 'E_VCR_NOT_E164', message: expect.any(String) }] });
    expect(store.counts()).toEqual({ terminating: 1, originating: 1 });
    const again = await store.add([vcr()], 'vap-1/cm');
    expect(again).toEqual({ accepted: 1, duplicates: 1, refused: [] });
    expect(store.counts()).toEqual({ terminating: 1, originating: 1 });
    expect((await store.list('originating')).map((v) => [v.callId, v.source, v.receivedAtMs])).toEqual([['c2', 'vap-1/cm', T0]]);
  });

  it('finds terminating records of a number within a time window', async () => {
    const { db } = await freshDb();
    const store = await VcrStore.open({ db, now: () => T0 });
    await store.add(
      [
        vcr({ callId: 'a', startMs: T0 - 600_000, stopMs: T0 - 500_000 }),
        vcr({ callId: 'b', startMs: T0 - 300_000, stopMs: T0 - 200_000 }),
        vcr({ callId: 'other-number', called: '+12125550198', startMs: T0 - 300_000, stopMs: T0 - 200_000 }),
      ],
      's',
    );
    expect((await store.terminatingFor('+12125550199', T0 - 400_000, T0)).map((v) => v.callId)).toEqual(['b']);
    expect((await store.terminatingFor('+12125550199', T0 - 600_000, T0 - 300_000)).map((v) => v.callId)).toEqual(['a', 'b']);
    expect(await store.terminatingFor('+12125550197', 0, T0)).toEqual([]);
  });

  it('keeps records and counts across a restart, and sweeps what left the retention window', async () => {
    const { db, dir } = await freshDb();
    let now = T0;
    let store = await VcrStore.open({ db, now: () => now, retentionMs: 3_600_000 });
    await store.add([vcr({ callId: 'old', startMs: T0 - 3_000_000, stopMs: T0 - 2_900_000 }), vcr({ callId: 'new' })], 's');
    await db.close();
    const reopened = await freshDb(dir);
    store = await VcrStore.open({ db: reopened.db, now: () => now, retentionMs: 3_600_000 });
    expect(store.counts().terminating).toBe(2);
    now = T0 + 1_000_000;
    expect(await store.sweepExpired()).toBe(1);
    expect(store.counts().terminating).toBe(1);
    expect((await store.list('terminating')).map((v) => v.callId)).toEqual(['new']);
  });
});

describe('VcrStore: validation bookkeeping', () => {
  it('offers only unused terminating records as candidates, and keeps the mark across a restart', async () => {
    const { db, dir } = await freshDb();
    let store = await VcrStore.open({ db, now: () => T0 });
    await store.add(
      [
        vcr({ callId: 'a', startMs: T0 - 600_000, stopMs: T0 - 500_000 }),
        vcr({ callId: 'b', startMs: T0 - 300_000, stopMs: T0 - 200_000 }),
        vcr({ callId: 'c', startMs: T0 - 250_000, stopMs: T0 - 200_000 }),
        vcr({ callId: 'other', called: '+12125550198', startMs: T0 - 300_000, stopMs: T0 - 200_000 }),
      ],
      's',
    );
    const [a] = await store.terminatingFor('+12125550199', T0 - 600_000, T0 - 600_000);
    await store.markUsed(a as StoredVcr, T0 + 5);
    await store.markUsed(a as StoredVcr, T0 + 9);
    expect((await store.candidatesFor('+12125550199', 0, T0, 10)).map((v) => v.callId)).toEqual(['b', 'c']);
    // The limit counts candidates, not the used records skipped on the way.
    expect((await store.candidatesFor('+12125550199', 0, T0, 1)).map((v) => v.callId)).toEqual(['b']);
    expect((await store.candidatesFor('+12125550199', T0 - 260_000, T0, 10)).map((v) => v.callId)).toEqual(['c']);
    expect(await store.candidatesFor('+12125550199', T0, T0 - 1, 10)).toEqual([]);
    await db.close();
    const reopened = await freshDb(dir);
    store = await VcrStore.open({ db: reopened.db, now: () => T0 });
    const stored = await store.terminatingFor('+12125550199', 0, T0);
    expect(stored.map((v) => [v.callId, v.usedAtMs])).toEqual([['a', T0 + 5], ['b', undefined], ['c', undefined]]);
    expect(store.counts().terminating).toBe(4);
    // A retried upload of a used call does not make it a candidate again.
    await store.add([vcr({ callId: 'a', startMs: T0 - 600_000, stopMs: T0 - 500_000 })], 's');
    expect((await store.candidatesFor('+12125550199', 0, T0, 10)).map((v) => v.callId)).toEqual(['b', 'c']);
  });

  it('does not write back a swept record when it is marked used', async () => {
    const { db } = await freshDb();
    let now = T0;
    const store = await VcrStore.open({ db, now: () => now, retentionMs: 3_600_000 });
    await store.add([vcr({ callId: 'old', startMs: T0 - 3_000_000, stopMs: T0 - 2_900_000 })], 's');
    const [old] = await store.list('terminating');
    now = T0 + 1_000_000;
    expect(await store.sweepExpired()).toBe(1);
    await store.markUsed(old as StoredVcr);
    expect(await store.list('terminating')).toEqual([]);
    expect(store.counts().terminating).toBe(0);
  });

  it('returns due originating records oldest start first, skipping those received too recently', async () => {
    const { db } = await freshDb();
    let now = T0;
    const store = await VcrStore.open({ db, now: () => now });
    await store.add([vcr({ direction: 'originating', callId: 'late-start', startMs: T0 - 100_000, stopMs: T0 - 90_000 })], 's');
    await store.add([vcr({ direction: 'originating', callId: 'early-start', startMs: T0 - 500_000, stopMs: T0 - 400_000 })], 's');
    now = T0 + 30_000;
    await store.add([vcr({ direction: 'originating', callId: 'recent', startMs: T0 - 700_000, stopMs: T0 - 600_000 }), vcr({ callId: 'terminating' })], 's');
    expect((await store.dueOriginating(10, T0)).map((v) => v.callId)).toEqual(['early-start', 'late-start']);
    expect((await store.dueOriginating(1, T0)).map((v) => v.callId)).toEqual(['early-start']);
    expect((await store.dueOriginating(10, T0 + 30_000)).map((v) => v.callId)).toEqual(['recent', 'early-start', 'late-start']);
    expect(await store.dueOriginating(10, T0 - 1)).toEqual([]);
  });

  it('keeps a postponed pending validation out of the due list until its retry time, counting the tries', async () => {
    const { db, dir } = await freshDb();
    let now = T0;
    const store = await VcrStore.open({ db, now: () => now });
    await store.add([vcr({ direction: 'originating', callId: 'o1' }), vcr({ direction: 'originating', callId: 'o2' })], 's');
    const [o1] = await store.dueOriginating(1, T0);
    expect(await store.postponeOriginating(o1 as StoredVcr, T0 + 10_000)).toEqual(expect.objectContaining({ callId: 'o1', retryAtMs: T0 + 10_000, retries: 1 }));
    expect((await store.dueOriginating(10, T0)).map((v) => v.callId)).toEqual(['o2']);
    now = T0 + 10_000;
    expect((await store.dueOriginating(10, T0)).map((v) => v.callId)).toEqual(['o1', 'o2']);
    expect(store.counts().originating).toBe(2);
    await db.close();
    const reopened = await freshDb(dir);
    const again = await VcrStore.open({ db: reopened.db, now: () => T0 + 10_000 });
    const [kept] = await again.dueOriginating(1, T0);
    expect(kept).toEqual(expect.objectContaining({ callId: 'o1', retries: 1 }));
    expect((await again.postponeOriginating(kept as StoredVcr, T0 + 30_000))?.retries).toBe(2);
    await again.removeOriginating(kept as StoredVcr);
    expect(await again.postponeOriginating(kept as StoredVcr, T0 + 60_000)).toBeUndefined();
  });

  it('removes a pending validation once, counting it out, across a restart', async () => {
    const { db, dir } = await freshDb();
    let store = await VcrStore.open({ db, now: () => T0 });
    await store.add([vcr({ direction: 'originating', callId: 'o1' }), vcr({ direction: 'originating', callId: 'o2' }), vcr()], 's');
    const [o1] = await store.dueOriginating(1, T0);
    // Two workers finishing the same VCR at once: one removes it, the other finds it gone.
    expect(await Promise.all([store.removeOriginating(o1 as StoredVcr), store.removeOriginating(o1 as StoredVcr)])).toEqual([true, false]);
    expect(store.counts()).toEqual({ terminating: 1, originating: 1 });
    await db.close();
    const reopened = await freshDb(dir);
    store = await VcrStore.open({ db: reopened.db, now: () => T0 });
    expect(store.counts()).toEqual({ terminating: 1, originating: 1 });
    expect((await store.dueOriginating(10, T0)).map((v) => v.callId)).toEqual(['o2']);
    expect(await store.removeOriginating(o1 as StoredVcr)).toBe(false);
  });

  it('refuses to mark an originating record used or remove a terminating one as pending', async () => {
    const { db } = await freshDb();
    const store = await VcrStore.open({ db, now: () => T0 });
    await store.add([vcr(), vcr({ direction: 'originating', callId: 'o' })], 's');
    const [term] = await store.list('terminating');
    const [orig] = await store.list('originating');
    expect((await rejected(store.markUsed(orig as StoredVcr))).code).toBe('E_VCR_DIRECTION');
    expect((await rejected(store.removeOriginating(term as StoredVcr))).code).toBe('E_VCR_DIRECTION');
    expect(store.counts()).toEqual({ terminating: 1, originating: 1 });
  });
});
