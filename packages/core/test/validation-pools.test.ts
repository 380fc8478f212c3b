import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import {
  DEFAULT_BUCKET_ENTROPY,
  MAX_BUCKET_ENTROPY,
  type Pool,
  type PoolEvent,
  type PoolTransition,
  VALUE_START_AND_STOP,
  VALUE_START_ONLY,
  type ValidationValue,
  ValidationPools,
  applyPoolEvent,
  awaitingConfirmation,
  checkBucketEntropy,
  checkValidationValue,
  emptyPool,
} from '../src/validation-pools.js';
import { expectSafeMessage, thrown } from './helpers.js';

type Route = string;
const PEER = 'peer-b';
const N1 = '+14085550001';
const N2 = '+14085550002';
const N3 = '+14085550003';
const N4 = '+14085550004';

const ok = (number: string, value: ValidationValue = VALUE_START_ONLY, route: Route = `route:${number}`): PoolEvent<Route> => ({
  kind: 'success',
  number,
  value,
  route,
});
const fail = (number: string): PoolEvent<Route> => ({ kind: 'failure', number });

/** Applies events in order with one threshold, returning every transition. */
function run(events: PoolEvent<Route>[], threshold = DEFAULT_BUCKET_ENTROPY, start = emptyPool<Route>(PEER)): PoolTransition<Route>[] {
  const out: PoolTransition<Route>[] = [];
  let pool = start;
  for (const e of events) {
    const t = applyPoolEvent(pool, e, threshold);
    out.push(t);
    pool = t.pool;
  }
  return out;
}
const last = <T>(xs: readonly T[]): T => {
  const x = xs[xs.length - 1];
  if (x === undefined) throw new Error('empty');
  return x;
};
const routes = (t: PoolTransition<Route>): Route[] => t.released.map((e) => e.route);

describe('constants', () => {
  it('follow SPEC §6', () => {
    expect(VALUE_START_ONLY).toBe(8);
    expect(VALUE_START_AND_STOP).toBe(12);
    expect(DEFAULT_BUCKET_ENTROPY).toBe(20);
  });
});

describe('emptyPool', () => {
  it('has an empty default bucket and no number buckets', () => {
    const p = emptyPool<Route>(PEER);
    expect(p).toEqual({ peer: PEER, defaultBucket: { total: 0, entries: [] }, numberBuckets: {} });
    expect(awaitingConfirmation(p)).toBe(0);
  });
});

describe('the guide\'s worked cases, threshold 20', () => {
  it('three 8-point successes against different numbers release all three routes on the third', () => {
    const [t1, t2, t3] = run([ok(N1), ok(N2), ok(N3)]);
    expect(t1!.released).toEqual([]);
    expect(t1!.pool.defaultBucket.total).toBe(8);
    expect(t1!.bucket).toBeNull();
    expect(t2!.released).toEqual([]);
    expect(t2!.pool.defaultBucket.total).toBe(16);
    expect(awaitingConfirmation(t2!.pool)).toBe(2);
    expect(t3!.released).toEqual([
      { number: N1, value: 8, route: `route:${N1}` },
      { number: N2, value: 8, route: `route:${N2}` },
      { number: N3, value: 8, route: `route:${N3}` },
    ]);
    expect(t3!.bucket).toBeNull();
    expect(t3!.pool.defaultBucket).toEqual({ total: 0, entries: [] });
    expect(awaitingConfirmation(t3!.pool)).toBe(0);
  });

  it('two 12-point successes release both routes', () => {
    const [t1, t2] = run([ok(N1, 12), ok(N2, 12)]);
    expect(t1!.released).toEqual([]);
    expect(t1!.pool.defaultBucket.total).toBe(12);
    expect(routes(t2!)).toEqual([`route:${N1}`, `route:${N2}`]);
    expect(t2!.pool.defaultBucket.total).toBe(0);
  });

  it('two 8-point successes do not release', () => {
    const ts = run([ok(N1), ok(N2)]);
    expect(ts.every((t) => t.released.length === 0)).toBe(true);
    expect(last(ts).pool.defaultBucket.total).toBe(16);
    expect(awaitingConfirmation(last(ts).pool)).toBe(2);
  });

  it('an 8 and a 12 make 20, which does not exceed 20; one more releases all three', () => {
    const ts = run([ok(N1, 8), ok(N2, 12), ok(N3, 8)]);
    expect(ts[1]!.released).toEqual([]);
    expect(ts[1]!.pool.defaultBucket.total).toBe(20);
    expect(routes(ts[2]!)).toEqual([`route:${N1}`, `route:${N2}`, `route:${N3}`]);
  });

  it('successes against the same number (no failure yet) also fill the default bucket', () => {
    const ts = run([ok(N1, 8, 'a'), ok(N1, 8, 'b'), ok(N1, 8, 'c')]);
    expect(routes(last(ts))).toEqual(['a', 'b', 'c']);
    expect(last(ts).pool.numberBuckets).toEqual({});
  });

  it('the bucket starts again after a release', () => {
    const ts = run([ok(N1), ok(N2), ok(N3), ok(N4), ok(N1)]);
    expect(ts[3]!.pool.defaultBucket.total).toBe(8);
    expect(ts[4]!.released).toEqual([]);
    expect(ts[4]!.pool.defaultBucket.entries.map((e) => e.number)).toEqual([N4, N1]);
  });
});

describe('failure: the penalty box', () => {
  it('a failure empties the pool and opens a bucket for the failed number', () => {
    const [, , t] = run([ok(N1), ok(N2), fail(N3)]);
    expect(t!.released).toEqual([]);
    expect(t!.discarded).toBe(2);
    expect(t!.bucket).toBe(N3);
    expect(t!.pool.defaultBucket).toEqual({ total: 0, entries: [] });
    expect(t!.pool.numberBuckets).toEqual({ [N3]: { total: 0, entries: [] } });
    expect(awaitingConfirmation(t!.pool)).toBe(0);
  });

  it('successes against the failed number go only into its own bucket', () => {
    const ts = run([fail(N1), ok(N1), ok(N1)]);
    expect(ts[1]!.bucket).toBe(N1);
    expect(ts[2]!.bucket).toBe(N1);
    expect(ts[2]!.pool.numberBuckets[N1]!.total).toBe(16);
    expect(ts[2]!.pool.defaultBucket.total).toBe(0);
    expect(ts[2]!.released).toEqual([]);
  });

  it('the failed number needs its own consecutive successes: successes against others do not help it', () => {
    // After the failure on N1: N1, N2, N3 successes. Without the penalty box these three would release.
    const ts = run([fail(N1), ok(N1), ok(N2), ok(N3)]);
    expect(ts.every((t) => t.released.length === 0)).toBe(true);
    const pool = last(ts).pool;
    expect(pool.numberBuckets[N1]).toEqual({ total: 8, entries: [{ number: N1, value: 8, route: `route:${N1}` }] });
    expect(pool.defaultBucket.total).toBe(16);
    expect(pool.defaultBucket.entries.map((e) => e.number)).toEqual([N2, N3]);
    expect(awaitingConfirmation(pool)).toBe(3);
  });

  it('three successes against the failed number release its routes from its own bucket', () => {
    const ts = run([fail(N1), ok(N1, 8, 'a'), ok(N1, 8, 'b'), ok(N1, 8, 'c')]);
    const t = last(ts);
    expect(routes(t)).toEqual(['a', 'b', 'c']);
    expect(t.bucket).toBe(N1);
    // the number bucket is emptied, and stays: the penalty box is never left
    expect(t.pool.numberBuckets).toEqual({ [N1]: { total: 0, entries: [] } });
    const after = applyPoolEvent(t.pool, ok(N1, 12), 20);
    expect(after.bucket).toBe(N1);
    expect(after.pool.defaultBucket.total).toBe(0);
  });

  it('other numbers start again from the emptied default bucket', () => {
    const ts = run([ok(N2), ok(N3), fail(N1), ok(N2), ok(N3), ok(N4)]);
    expect(ts[3]!.released).toEqual([]);
    expect(ts[3]!.pool.defaultBucket.total).toBe(8); // not 24: the earlier successes were discarded
    expect(ts[4]!.released).toEqual([]);
    expect(routes(ts[5]!)).toEqual([`route:${N2}`, `route:${N3}`, `route:${N4}`]);
    expect(ts[5]!.pool.numberBuckets).toEqual({ [N1]: { total: 0, entries: [] } });
  });

  it('a second failure empties everything again, number buckets included, and they still exist', () => {
    const ts = run([fail(N1), ok(N1, 12), ok(N2), ok(N3), fail(N2)]);
    const before = ts[3]!.pool;
    expect(before.numberBuckets[N1]!.total).toBe(12);
    expect(before.defaultBucket.total).toBe(16);
    const t = last(ts);
    expect(t.discarded).toBe(3);
    expect(t.released).toEqual([]);
    expect(t.pool.defaultBucket).toEqual({ total: 0, entries: [] });
    expect(t.pool.numberBuckets).toEqual({
      [N1]: { total: 0, entries: [] },
      [N2]: { total: 0, entries: [] },
    });
    expect(awaitingConfirmation(t.pool)).toBe(0);
  });

  it('a failure on a number already in the penalty box empties it and keeps it', () => {
    const ts = run([fail(N1), ok(N1, 12), fail(N1)]);
    expect(last(ts).discarded).toBe(1);
    expect(last(ts).pool.numberBuckets).toEqual({ [N1]: { total: 0, entries: [] } });
  });

  it('a failure on an empty pool discards nothing', () => {
    const [t] = run([fail(N1)]);
    expect(t!.discarded).toBe(0);
  });
});

describe('threshold: release only when the total strictly exceeds it', () => {
  it('threshold 24: two 12s (24) do not release, a third does', () => {
    const ts = run([ok(N1, 12), ok(N2, 12), ok(N3, 12)], 24);
    expect(ts[1]!.released).toEqual([]);
    expect(ts[1]!.pool.defaultBucket.total).toBe(24);
    expect(routes(ts[2]!)).toEqual([`route:${N1}`, `route:${N2}`, `route:${N3}`]);
  });

  it('threshold 16: two 8s (16) do not release, a third does', () => {
    const ts = run([ok(N1), ok(N2), ok(N3)], 16);
    expect(ts[1]!.released).toEqual([]);
    expect(ts[2]!.released).toHaveLength(3);
  });

  it('threshold 0: every success is released at once', () => {
    const ts = run([ok(N1), ok(N2, 12)], 0);
    expect(routes(ts[0]!)).toEqual([`route:${N1}`]);
    expect(routes(ts[1]!)).toEqual([`route:${N2}`]);
  });

  it('the same threshold applies to number buckets', () => {
    const ts = run([fail(N1), ok(N1, 12), ok(N1, 12), ok(N1, 12)], 24);
    expect(ts[2]!.released).toEqual([]);
    expect(ts[3]!.released).toHaveLength(3);
  });

  it('releases exactly when the running total first exceeds the threshold (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.constantFrom<ValidationValue>(8, 12), { minLength: 1, maxLength: 30 }),
        (threshold, values) => {
          const ts = run(values.map((v, i) => ok(`+1555${String(i).padStart(4, '0')}`, v)), threshold);
          let total = 0;
          let held = 0;
          ts.forEach((t, i) => {
            total += values[i]!;
            held++;
            if (total > threshold) {
              expect(t.released).toHaveLength(held);
              expect(t.pool.defaultBucket.total).toBe(0);
              total = 0;
              held = 0;
            } else {
              expect(t.released).toEqual([]);
              expect(t.pool.defaultBucket.total).toBe(total);
            }
            expect(awaitingConfirmation(t.pool)).toBe(held);
          });
        },
      ),
    );
  });
});

describe('purity', () => {
  it('applyPoolEvent does not mutate its input pool', () => {
    const ts = run([fail(N1), ok(N1, 12), ok(N2)]);
    const pool = last(ts).pool;
    const snapshot = structuredClone(pool);
    const frozen = deepFreeze(structuredClone(pool));
    for (const e of [ok(N1), ok(N1, 12), ok(N2, 12), ok(N3), fail(N2), fail(N4)]) {
      applyPoolEvent(pool, e, 20);
      applyPoolEvent(frozen, e, 20); // would throw in strict mode if it wrote to the pool
    }
    expect(pool).toEqual(snapshot);
  });

  it('the same pool and event always give the same transition', () => {
    const pool = last(run([ok(N1), fail(N2), ok(N2)])).pool;
    expect(applyPoolEvent(pool, ok(N3, 12), 20)).toEqual(applyPoolEvent(pool, ok(N3, 12), 20));
  });
});

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

describe('applyPoolEvent: malformed input', () => {
  const pool = emptyPool<Route>(PEER);
  it.each<[string, string, () => unknown]>([
    ['E_E164_MISSING_PLUS', 'a success number without +', () => applyPoolEvent(pool, ok('14085550001'), 20)],
    ['E_E164_INVALID_CHARACTER', 'a failure number with a letter', () => applyPoolEvent(pool, fail('+1408555000a'), 20)],
    ['E_E164_EMPTY', 'an empty number', () => applyPoolEvent(pool, fail(''), 20)],
    ['E_E164_TOO_LONG', 'a 16-digit number', () => applyPoolEvent(pool, ok('+1234567890123456'), 20)],
    ['E_VALIDATION_VALUE', 'a value of 10', () => applyPoolEvent(pool, ok(N1, 10 as ValidationValue), 20)],
    ['E_VALIDATION_VALUE', 'a value of 0', () => applyPoolEvent(pool, ok(N1, 0 as ValidationValue), 20)],
    ['E_VALIDATION_VALUE', 'a string value', () => applyPoolEvent(pool, ok(N1, '8' as unknown as ValidationValue), 20)],
    ['E_BUCKET_ENTROPY', 'a negative threshold', () => applyPoolEvent(pool, ok(N1), -1)],
    ['E_BUCKET_ENTROPY', 'a fractional threshold', () => applyPoolEvent(pool, ok(N1), 20.5)],
    ['E_POOL_PEER', 'an empty peer id', () => emptyPool('')],
    ['E_POOL_PEER', 'a non-string peer id', () => emptyPool(42 as unknown as string)],
  ])('%s: refuses %s', (code, _label, fn) => {
    const err = thrown(fn);
    expect(err.code).toBe(code);
    expectSafeMessage(err);
  });

  it('refuses a malformed event without changing anything', () => {
    const pools = new ValidationPools<Route>();
    pools.success(PEER, N1, 8, 'a');
    expect(thrown(() => pools.success(PEER, N2, 9 as ValidationValue, 'b')).code).toBe('E_VALIDATION_VALUE');
    expect(pools.pool(PEER).defaultBucket.total).toBe(8);
    expect(pools.awaitingConfirmation()).toBe(1);
  });
});

describe('checkBucketEntropy and checkValidationValue', () => {
  it.each([0, 1, 20, 24, MAX_BUCKET_ENTROPY])('accepts the threshold %p', (t) => {
    expect(checkBucketEntropy(t)).toBe(t);
  });

  it.each<[string, unknown]>([
    ['-1', -1],
    ['1001', MAX_BUCKET_ENTROPY + 1],
    ['1.5', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['the string "20"', '20'],
    ['null', null],
    ['undefined', undefined],
    ['a bigint', 20n],
    ['an object', { threshold: 20 }],
    ['an object without a prototype', Object.create(null)],
    ['a symbol', Symbol('20')],
  ])('E_BUCKET_ENTROPY: refuses %s', (_label, t) => {
    const err = thrown(() => checkBucketEntropy(t));
    expect(err.code).toBe('E_BUCKET_ENTROPY');
    expectSafeMessage(err);
  });

  it('explains the allowed range', () => {
    expect(thrown(() => checkBucketEntropy(1001)).message).toContain('0 to 1000');
  });

  it('shortens a long bad threshold in the message', () => {
    const err = thrown(() => checkBucketEntropy('9'.repeat(10_000)));
    expect(err.code).toBe('E_BUCKET_ENTROPY');
    expectSafeMessage(err);
  });

  it.each([8, 12])('accepts the validation value %p', (v) => {
    expect(checkValidationValue(v)).toBe(v);
  });

  it.each<[string, unknown]>([
    ['0', 0],
    ['10', 10],
    ['20', 20],
    ['8.5', 8.5],
    ['the string "8"', '8'],
    ['null', null],
    ['an object without a prototype', Object.create(null)],
    ['a long string', '8'.repeat(10_000)],
  ])('E_VALIDATION_VALUE: refuses %s', (_label, v) => {
    const err = thrown(() => checkValidationValue(v));
    expect(err.code).toBe('E_VALIDATION_VALUE');
    expectSafeMessage(err);
  });
});

describe('ValidationPools', () => {
  it('defaults to threshold 20', () => {
    expect(new ValidationPools<Route>().threshold).toBe(20);
  });

  it('runs the guide case through the class API', () => {
    const pools = new ValidationPools<Route>();
    expect(pools.success(PEER, N1, 8, 'a').released).toEqual([]);
    expect(pools.success(PEER, N2, 8, 'b').released).toEqual([]);
    expect(pools.awaitingConfirmation()).toBe(2);
    expect(pools.success(PEER, N3, 8, 'c').released.map((e) => e.route)).toEqual(['a', 'b', 'c']);
    expect(pools.awaitingConfirmation()).toBe(0);
  });

  it('keeps the pools of different peers independent', () => {
    const pools = new ValidationPools<Route>();
    pools.success('peer-a', N1, 8, 'a1');
    pools.success('peer-a', N2, 8, 'a2');
    pools.success('peer-b', N3, 8, 'b1');
    pools.success('peer-b', N4, 8, 'b2');
    expect(pools.awaitingConfirmation()).toBe(4);
    // a failure against peer-b leaves peer-a alone
    const t = pools.failure('peer-b', N3);
    expect(t.discarded).toBe(2);
    expect(pools.pool('peer-a').defaultBucket.total).toBe(16);
    expect(pools.pool('peer-a').numberBuckets).toEqual({});
    expect(pools.awaitingConfirmation()).toBe(2);
    // and peer-a's third success releases only peer-a's routes
    expect(pools.success('peer-a', N3, 8, 'a3').released.map((e) => e.route)).toEqual(['a1', 'a2', 'a3']);
  });

  it('the same number in two peers\' pools are unrelated buckets', () => {
    const pools = new ValidationPools<Route>();
    pools.failure('peer-a', N1);
    pools.failure('peer-b', N1);
    pools.success('peer-a', N1, 12, 'a1');
    pools.success('peer-b', N1, 8, 'b1');
    expect(pools.pool('peer-a').numberBuckets[N1]!.total).toBe(12);
    expect(pools.pool('peer-b').numberBuckets[N1]!.total).toBe(8);
    // peer-a's N1 bucket overflows alone; peer-b's N1 bucket keeps its entry
    expect(pools.success('peer-a', N1, 12, 'a2').released.map((e) => e.route)).toEqual(['a1', 'a2']);
    expect(pools.pool('peer-b').numberBuckets[N1]).toEqual({ total: 8, entries: [{ number: N1, value: 8, route: 'b1' }] });
    // and a number bucket in one pool does not put the number in the other pool's penalty box
    pools.failure('peer-a', N2);
    expect(pools.success('peer-b', N2, 8, 'b2').bucket).toBeNull();
  });

  it('an unknown peer has an empty pool, and asking does not create one', () => {
    const pools = new ValidationPools<Route>();
    expect(pools.pool('nobody')).toEqual(emptyPool('nobody'));
    expect(pools.pools()).toEqual([]);
  });

  it('awaitingConfirmation counts unreleased successes in default and number buckets of every peer', () => {
    const pools = new ValidationPools<Route>();
    pools.failure('peer-a', N1);
    pools.success('peer-a', N1, 8, 'x'); // number bucket
    pools.success('peer-a', N2, 8, 'y'); // default bucket
    pools.success('peer-b', N1, 12, 'z');
    expect(pools.awaitingConfirmation()).toBe(3);
    expect(awaitingConfirmation(pools.pool('peer-a'))).toBe(2);
    pools.success('peer-b', N2, 12, 'w'); // releases z and w
    expect(pools.awaitingConfirmation()).toBe(2);
    pools.failure('peer-a', N3);
    expect(pools.awaitingConfirmation()).toBe(0);
  });

  it('pools() lists every pool sorted by peer, and fromPools restores them', () => {
    const pools = new ValidationPools<Route>(24);
    pools.success('peer-c', N1, 12, 'c1');
    pools.failure('peer-a', N1);
    pools.success('peer-a', N1, 8, 'a1');
    pools.success('peer-a', N2, 12, 'a2');
    const saved = pools.pools();
    expect(saved.map((p) => p.peer)).toEqual(['peer-a', 'peer-c']);

    const restored = ValidationPools.fromPools<Route>(JSON.parse(JSON.stringify(saved)) as Pool<Route>[], 24);
    expect(restored.threshold).toBe(24);
    expect(restored.pools()).toEqual(saved);
    expect(restored.awaitingConfirmation()).toBe(pools.awaitingConfirmation());
    // and the restored state behaves like the original: peer-a's N1 bucket holds 8, so 12 makes 20
    // (not over 24) and a further 8 makes 28, releasing the three
    const released: Route[][] = [];
    for (const [value, route] of [[12, 'a3'], [8, 'a4']] as const) {
      const a = pools.success('peer-a', N1, value, route);
      const b = restored.success('peer-a', N1, value, route);
      expect(b).toEqual(a);
      released.push(b.released.map((e) => e.route));
    }
    expect(released).toEqual([[], ['a1', 'a3', 'a4']]);
    expect(restored.pool('peer-a').numberBuckets[N1]!.total).toBe(0);
    expect(restored.pool('peer-a').defaultBucket.total).toBe(12);
    expect(restored.awaitingConfirmation()).toBe(2); // a2 and c1
  });

  it('fromPools defaults to threshold 20 and refuses a bad threshold', () => {
    expect(ValidationPools.fromPools<Route>([]).threshold).toBe(20);
    expect(thrown(() => ValidationPools.fromPools<Route>([], -5)).code).toBe('E_BUCKET_ENTROPY');
  });

  describe('fromPools refuses inconsistent saved state with E_POOL_STATE', () => {
    const good = (): Pool<Route> => {
      const pools = new ValidationPools<Route>();
      pools.failure(PEER, N1);
      pools.success(PEER, N1, 8, 'a');
      pools.success(PEER, N2, 12, 'b');
      return JSON.parse(JSON.stringify(pools.pool(PEER))) as Pool<Route>;
    };
    type Mutable = { -readonly [K in keyof Pool<Route>]: unknown };
    it.each<[string, (p: Mutable) => void]>([
      ['no peer id', (p) => (p.peer = '')],
      ['a total that is not the sum', (p) => (p.defaultBucket = { total: 99, entries: [{ number: N2, value: 12, route: 'b' }] })],
      ['an entry worth 10', (p) => (p.defaultBucket = { total: 10, entries: [{ number: N2, value: 10, route: 'b' }] })],
      ['an entry with a bad number', (p) => (p.defaultBucket = { total: 8, entries: [{ number: '555', value: 8, route: 'b' }] })],
      ['a number bucket keyed by a non-number', (p) => (p.numberBuckets = { nope: { total: 0, entries: [] } })],
      ['a number bucket holding another number', (p) => (p.numberBuckets = { [N1]: { total: 8, entries: [{ number: N3, value: 8, route: 'x' }] } })],
      ['a bucket without entries', (p) => (p.defaultBucket = { total: 0 })],
      ['no number buckets', (p) => (p.numberBuckets = null)],
    ])('%s', (_why, corrupt) => {
      expect(() => ValidationPools.fromPools([good()])).not.toThrow();
      const pool = good() as unknown as Mutable;
      corrupt(pool);
      expect(thrown(() => ValidationPools.fromPools([pool as unknown as Pool<Route>])).code).toBe('E_POOL_STATE');
    });

    it('a peer listed twice', () => {
      expect(thrown(() => ValidationPools.fromPools([good(), good()])).code).toBe('E_POOL_STATE');
    });
  });

  it('setThreshold changes when buckets release', () => {
    const pools = new ValidationPools<Route>();
    pools.success(PEER, N1, 12, 'a');
    pools.success(PEER, N2, 12, 'b'); // 24 > 20: released
    pools.setThreshold(24);
    expect(pools.threshold).toBe(24);
    expect(pools.success(PEER, N1, 12, 'c').released).toEqual([]);
    expect(pools.success(PEER, N2, 12, 'd').released).toEqual([]); // 24 is not > 24
    expect(pools.success(PEER, N3, 12, 'e').released.map((e) => e.route)).toEqual(['c', 'd', 'e']);
  });

  it.each<[string, unknown]>([
    ['-1', -1],
    ['1001', 1001],
    ['2.5', 2.5],
    ['NaN', Number.NaN],
    ['a string', '24'],
    ['null', null],
  ])('E_BUCKET_ENTROPY: setThreshold refuses %s and keeps the old threshold', (_label, t) => {
    const pools = new ValidationPools<Route>(24);
    expect(thrown(() => pools.setThreshold(t)).code).toBe('E_BUCKET_ENTROPY');
    expect(pools.threshold).toBe(24);
  });

  it.each<[string, number]>([
    ['-1', -1],
    ['1001', 1001],
    ['0.5', 0.5],
  ])('E_BUCKET_ENTROPY: the constructor refuses %s', (_label, t) => {
    expect(thrown(() => new ValidationPools<Route>(t)).code).toBe('E_BUCKET_ENTROPY');
  });

  it('E_POOL_PEER: refuses an empty peer id', () => {
    const pools = new ValidationPools<Route>();
    expect(thrown(() => pools.success('', N1, 8, 'a')).code).toBe('E_POOL_PEER');
    expect(pools.pools()).toEqual([]);
  });
});
