import { describe, expect, it } from '@jest/globals';
import { tempDatabases } from './temp-db.js';
import { keyOf, putJson } from '@ime/runtime';
import { type LearnedRouteRecord, LearnedRouteStore } from '../src/learned-route-store.js';
import { rejected } from '../../core/test/helpers.js';

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const DAY = 86_400_000;
const freshDb = tempDatabases('route-store-');

function route(number: string, domain = 'b.example', over: Partial<LearnedRouteRecord> = {}): LearnedRouteRecord {
  return { number, domain, sipUri: `sip:${number}@${domain}`, ticket: `t-${number}`, learnedOnMs: T0, expiresOnMs: T0 + 365 * DAY, peerId: 'peer-b', ...over };
}

describe('LearnedRouteStore', () => {
  it('lists routes by number then domain, replaces one of the same number and domain, and keeps them across a restart', async () => {
    const { db, dir } = await freshDb();
    let store = await LearnedRouteStore.open({ db, now: () => T0 });
    await store.add([route('+14085550002'), route('+14085550001', 'c.example'), route('+14085550001', 'b.example')]);
    await store.add([route('+14085550002', 'b.example', { ticket: 'fresh', peerId: 'peer-b2' })]);
    const expected = [
      ['+14085550001', 'b.example', 't-+14085550001'],
      ['+14085550001', 'c.example', 't-+14085550001'],
      ['+14085550002', 'b.example', 'fresh'],
    ];
    expect(store.list().map((r) => [r.number, r.domain, r.ticket])).toEqual(expected);
    expect(store.size).toBe(3);
    await db.close();
    const reopened = await freshDb(dir);
    store = await LearnedRouteStore.open({ db: reopened.db, now: () => T0 });
    expect(store.list().map((r) => [r.number, r.domain, r.ticket])).toEqual(expected);
    expect(store.list()[2]?.peerId).toBe('peer-b2');
  });

  it('treats domains as DNS does: a differently written domain replaces the route', async () => {
    const { db } = await freshDb();
    const store = await LearnedRouteStore.open({ db, now: () => T0 });
    await store.add([route('+14085550001', 'B.Example.')]);
    await store.add([route('+14085550001', 'b.example', { ticket: 'second' })]);
    expect(store.list().map((r) => [r.domain, r.ticket])).toEqual([['b.example', 'second']]);
  });

  it('hides expired routes and sweeps them from the database', async () => {
    const { db, dir } = await freshDb();
    let now = T0;
    let store = await LearnedRouteStore.open({ db, now: () => now });
    await store.add([route('+14085550001', 'b.example', { expiresOnMs: T0 + 1000 }), route('+14085550002')]);
    expect(store.size).toBe(2);
    now = T0 + 1000;
    expect(store.size).toBe(1);
    expect(store.list().map((r) => r.number)).toEqual(['+14085550002']);
    expect(await store.sweepExpired()).toBe(1);
    expect(await store.sweepExpired()).toBe(0);
    await db.close();
    const reopened = await freshDb(dir);
    now = T0;
    store = await LearnedRouteStore.open({ db: reopened.db, now: () => now });
    // Before the sweep it would be listed again at T0; it is gone from disk.
    expect(store.list().map((r) => r.number)).toEqual(['+14085550002']);
  });

  it.each([
    ['a national number', { number: '4085550001' }],
    ['a domain with a bar', { domain: 'b|example' }],
    ['no ticket', { ticket: '' }],
    ['no granting peer', { peerId: '' }],
    ['an expiry before learning', { expiresOnMs: T0 - 1 }],
  ])('refuses a batch with %s and stores none of it', async (_what, over) => {
    const { db } = await freshDb();
    const store = await LearnedRouteStore.open({ db, now: () => T0 });
    const err = await rejected(store.add([route('+14085550009'), { ...route('+14085550001'), ...over }]));
    expect(err.code).toBe('E_LEARNED_ROUTE');
    expect(err.details).toEqual({ index: 1 });
    expect(store.size).toBe(0);
    const keys: unknown[] = [];
    for await (const k of db.keys()) keys.push(k);
    expect(keys).toEqual([]);
  });

  it('refuses a corrupt stored route and ignores keys outside its prefix', async () => {
    const { db } = await freshDb();
    await putJson(db, 'validator/routes', { not: 'mine' });
    await putJson(db, 'validator/pool/peer-b', { not: 'mine' });
    expect((await LearnedRouteStore.open({ db })).size).toBe(0);
    await putJson(db, 'validator/route/+14085550001|b.example', route('+14085550002'));
    expect((await rejected(LearnedRouteStore.open({ db }))).code).toBe('E_DB_CORRUPT');
    await db.put(keyOf('validator/route/+14085550001|b.example'), Uint8Array.of(0x5b));
    expect((await rejected(LearnedRouteStore.open({ db }))).code).toBe('E_DB_CORRUPT');
  });
});
