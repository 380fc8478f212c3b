import { describe, expect, it } from '@jest/globals';
import { tempDatabases } from './temp-db.js';
import { DEFAULT_BUCKET_ENTROPY, type Pool } from '@ime/core';
import { type Database, keyOf, putJson } from '@ime/runtime';
import { PoolStore, type RouteGrant } from '../src/pool-store.js';
import { rejected } from '../../core/test/helpers.js';

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const PEER = 'peer-b';
const N1 = '+14085550001';
const N2 = '+14085550002';
const N3 = '+14085550003';
const freshDb = tempDatabases('pool-store-');

/** Closes the database and opens the store again from the same directory, as a restart would. */
async function restart(db: Database, dir: string): Promise<{ db: Database; store: PoolStore }> {
  await db.close();
  const reopened = await freshDb(dir);
  return { db: reopened.db, store: await PoolStore.open({ db: reopened.db }) };
}

function grant(number: string): RouteGrant {
  return { number, domain: 'b.example', sipUri: `sip:${number}@b.example`, ticket: `ticket-${number}`, learnedOnMs: T0, expiresOnMs: T0 + 1000 };
}

async function allKeys(db: Database): Promise<string[]> {
  const out: string[] = [];
  for await (const k of db.keys()) out.push(Buffer.from(k).toString('latin1'));
  return out;
}

describe('PoolStore', () => {
  it('releases routes when the default bucket exceeds the threshold, and stores only under its prefixes', async () => {
    const { db } = await freshDb();
    const store = await PoolStore.open({ db });
    expect(store.threshold).toBe(DEFAULT_BUCKET_ENTROPY);
    expect((await store.success(PEER, N1, 8, grant(N1))).released).toEqual([]);
    expect((await store.success(PEER, N2, 8, grant(N2))).released).toEqual([]);
    expect(store.awaitingConfirmation()).toBe(2);
    const t = await store.success(PEER, N3, 8, grant(N3));
    expect(t.released.map((e) => e.route)).toEqual([grant(N1), grant(N2), grant(N3)]);
    expect(store.awaitingConfirmation()).toBe(0);
    await store.setThreshold(30);
    expect(await allKeys(db)).toEqual(['validator/bucketentropy', `validator/pool/${PEER}`]);
  });

  it('keeps bucket contents across a restart, so the third success after it releases all three routes', async () => {
    const first = await freshDb();
    let store = await PoolStore.open({ db: first.db });
    await store.success(PEER, N1, 8, grant(N1));
    await store.success(PEER, N2, 8, grant(N2));
    const after = await restart(first.db, first.dir);
    store = after.store;
    expect(store.awaitingConfirmation()).toBe(2);
    expect(store.pools().map((p) => p.defaultBucket.total)).toEqual([16]);
    const t = await store.success(PEER, N3, 8, grant(N3));
    expect(t.released.map((e) => e.number)).toEqual([N1, N2, N3]);
  });

  it('keeps the penalty box across a restart', async () => {
    const first = await freshDb();
    let store = await PoolStore.open({ db: first.db });
    await store.success(PEER, N2, 8, grant(N2));
    const f = await store.failure(PEER, N1);
    expect(f.discarded).toBe(1);
    store = (await restart(first.db, first.dir)).store;
    expect(Object.keys(store.pools()[0]?.numberBuckets ?? {})).toEqual([N1]);
    const t = await store.success(PEER, N1, 12, grant(N1));
    expect(t.bucket).toBe(N1);
    expect(t.pool.defaultBucket.total).toBe(0);
    // Other numbers fill the emptied default bucket, not the penalty box.
    expect((await store.success(PEER, N2, 8, grant(N2))).bucket).toBeNull();
  });

  it('persists the threshold, returns the previous one and refuses an invalid one', async () => {
    const first = await freshDb();
    let store = await PoolStore.open({ db: first.db });
    expect(await store.setThreshold(7)).toBe(DEFAULT_BUCKET_ENTROPY);
    expect((await rejected(store.setThreshold(1001))).code).toBe('E_BUCKET_ENTROPY');
    expect((await rejected(store.setThreshold('7'))).code).toBe('E_BUCKET_ENTROPY');
    expect(store.threshold).toBe(7);
    store = (await restart(first.db, first.dir)).store;
    expect(store.threshold).toBe(7);
    // 8 > 7: one success releases at once with the restored threshold.
    expect((await store.success(PEER, N1, 8, grant(N1))).released).toHaveLength(1);
  });

  it('applies concurrent events one after another', async () => {
    const { db } = await freshDb();
    const store = await PoolStore.open({ db });
    const ts = await Promise.all([store.success(PEER, N1, 8, grant(N1)), store.success(PEER, N2, 8, grant(N2)), store.success(PEER, N3, 8, grant(N3))]);
    expect(ts.map((t) => t.released.length)).toEqual([0, 0, 3]);
  });

  it('refuses a bad event without changing anything or blocking later writes', async () => {
    const { db } = await freshDb();
    const store = await PoolStore.open({ db });
    expect((await rejected(store.success(PEER, '4085550001', 8, grant(N1)))).code).toMatch(/^E_E164_/);
    expect((await rejected(store.success(PEER, N1, 9 as 8, grant(N1)))).code).toBe('E_VALIDATION_VALUE');
    expect((await rejected(store.failure('', N1))).code).toBe('E_POOL_PEER');
    expect(store.pools()).toEqual([]);
    expect((await store.success(PEER, N1, 8, grant(N1))).pool.defaultBucket.total).toBe(8);
  });

  it('leaves memory as it is on disk when a write fails', async () => {
    const { db } = await freshDb();
    const store = await PoolStore.open({ db });
    await store.success(PEER, N1, 8, grant(N1));
    await db.close();
    await expect(store.success(PEER, N2, 8, grant(N2))).rejects.toThrow();
    await expect(store.setThreshold(5)).rejects.toThrow();
    expect(store.awaitingConfirmation()).toBe(1);
    expect(store.threshold).toBe(DEFAULT_BUCKET_ENTROPY);
  });

  it('ignores other components\' keys in the shared database', async () => {
    const { db } = await freshDb();
    await putJson(db, 'validator/poolx', 'not a pool');
    await putJson(db, 'validator/pool.', 'not a pool');
    await putJson(db, 'validator/route/+14085550001|b.example', { other: true });
    await db.put(Uint8Array.of(0x20, 1, 2), Uint8Array.of(0xff));
    const store = await PoolStore.open({ db });
    expect(store.pools()).toEqual([]);
  });

  describe('refuses corrupt saved state', () => {
    const pool = (over: Partial<Pool<RouteGrant>> = {}): Pool<RouteGrant> => ({
      peer: PEER,
      defaultBucket: { total: 8, entries: [{ number: N1, value: 8, route: grant(N1) }] },
      numberBuckets: {},
      ...over,
    });

    it('accepts a consistent saved pool', async () => {
      const { db } = await freshDb();
      await putJson(db, `validator/pool/${PEER}`, pool());
      expect((await PoolStore.open({ db })).awaitingConfirmation()).toBe(1);
    });

    it.each([
      ['a total that is not the sum', pool({ defaultBucket: { total: 20, entries: [{ number: N1, value: 8, route: grant(N1) }] } }), 'E_POOL_STATE'],
      ['a pool saved under another peer', pool({ peer: 'peer-c' }), 'E_POOL_STATE'],
      ['an entry without a ticket', pool({ defaultBucket: { total: 8, entries: [{ number: N1, value: 8, route: { ...grant(N1), ticket: '' } }] } }), 'E_POOL_STATE'],
      ['a number bucket holding another number', pool({ numberBuckets: { [N2]: { total: 8, entries: [{ number: N1, value: 8, route: grant(N1) }] } } }), 'E_POOL_STATE'],
    ])('%s', async (_what, saved, code) => {
      const { db } = await freshDb();
      await putJson(db, `validator/pool/${PEER}`, saved);
      expect((await rejected(PoolStore.open({ db }))).code).toBe(code);
    });

    it('a pool that is not JSON', async () => {
      const { db } = await freshDb();
      await db.put(keyOf(`validator/pool/${PEER}`), Uint8Array.of(0x7b));
      expect((await rejected(PoolStore.open({ db }))).code).toBe('E_DB_CORRUPT');
    });

    it('a threshold out of range', async () => {
      const { db } = await freshDb();
      await putJson(db, 'validator/bucketentropy', 5000);
      expect((await rejected(PoolStore.open({ db }))).code).toBe('E_POOL_STATE');
    });
  });
});
