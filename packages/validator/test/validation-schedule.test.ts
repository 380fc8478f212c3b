import { describe, expect, it } from '@jest/globals';
import { tempDatabases } from './temp-db.js';
import { putJson } from '@ime/runtime';
import { DEFAULT_REVALIDATE_AFTER_MS, ValidationSchedule } from '../src/validation-schedule.js';
import { rejected } from '../../core/test/helpers.js';

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const N1 = '+14085550001';
const N2 = '+14085550002';
const freshDb = tempDatabases('schedule-');

describe('ValidationSchedule', () => {
  it('refuses a second validation of a number within the hour, and allows it after', async () => {
    const { db } = await freshDb();
    let now = T0;
    const s = await ValidationSchedule.open({ db, now: () => now });
    expect(s.revalidateAfterMs).toBe(DEFAULT_REVALIDATE_AFTER_MS);
    expect(s.mayValidate(N1)).toBe(true);
    await s.markValidated(N1);
    expect(s.lastValidated(N1)).toBe(T0);
    expect(s.mayValidate(N1)).toBe(false);
    expect(s.mayValidate(N2)).toBe(true);
    now = T0 + DEFAULT_REVALIDATE_AFTER_MS - 1;
    expect(s.mayValidate(N1)).toBe(false);
    now = T0 + DEFAULT_REVALIDATE_AFTER_MS;
    expect(s.mayValidate(N1)).toBe(true);
  });

  it('keeps the rule across a restart', async () => {
    const { db, dir } = await freshDb();
    const now = T0 + 60_000;
    const s = await ValidationSchedule.open({ db, now: () => now });
    await s.markValidated(N1, T0);
    await db.close();
    const reopened = await freshDb(dir);
    const again = await ValidationSchedule.open({ db: reopened.db, now: () => now });
    expect(again.lastValidated(N1)).toBe(T0);
    expect(again.mayValidate(N1)).toBe(false);
  });

  it('uses a configured interval and refuses an invalid one', async () => {
    const { db } = await freshDb();
    let now = T0;
    const s = await ValidationSchedule.open({ db, now: () => now, revalidateAfterMs: 10_000 });
    await s.markValidated(N1);
    now = T0 + 10_000;
    expect(s.mayValidate(N1)).toBe(true);
    for (const bad of [-1, 1.5, Number.NaN, '3600000']) {
      expect((await rejected(ValidationSchedule.open({ db, revalidateAfterMs: bad as number }))).code).toBe('E_REVALIDATE_INTERVAL');
    }
  });

  it('never moves a number\'s time back', async () => {
    const { db } = await freshDb();
    const s = await ValidationSchedule.open({ db, now: () => T0 });
    await s.markValidated(N1, T0);
    await s.markValidated(N1, T0 - 3000_000);
    expect(s.lastValidated(N1)).toBe(T0);
    await s.markValidated(N1, T0 + 5);
    expect(s.lastValidated(N1)).toBe(T0 + 5);
  });

  it('takes back only its own mark for a validation that could not run, on disk too', async () => {
    const { db, dir } = await freshDb();
    const s = await ValidationSchedule.open({ db, now: () => T0 });
    await s.markValidated(N1, T0);
    await s.unmark(N1, T0 - 1); // not this mark: a later validation's mark stays
    expect(s.mayValidate(N1)).toBe(false);
    await s.unmark(N1, T0);
    expect(s.mayValidate(N1)).toBe(true);
    await db.close();
    const reopened = await freshDb(dir);
    expect((await ValidationSchedule.open({ db: reopened.db, now: () => T0 })).lastValidated(N1)).toBeUndefined();
  });

  it('sweeps numbers whose interval has passed, on disk too', async () => {
    const { db, dir } = await freshDb();
    let now = T0;
    const s = await ValidationSchedule.open({ db, now: () => now });
    await s.markValidated(N1, T0 - DEFAULT_REVALIDATE_AFTER_MS);
    await s.markValidated(N2, T0 - 1);
    expect(await s.sweep()).toBe(1);
    expect(s.lastValidated(N1)).toBeUndefined();
    expect(s.lastValidated(N2)).toBe(T0 - 1);
    await db.close();
    const reopened = await freshDb(dir);
    now = T0;
    const again = await ValidationSchedule.open({ db: reopened.db, now: () => now });
    expect(again.lastValidated(N1)).toBeUndefined();
    expect(again.lastValidated(N2)).toBe(T0 - 1);
  });

  it('refuses a number that is not +E.164 or an invalid time, and a corrupt stored time', async () => {
    const { db } = await freshDb();
    const s = await ValidationSchedule.open({ db, now: () => T0 });
    expect((await rejected(s.markValidated('4085550001'))).code).toMatch(/^E_E164_/);
    expect((await rejected(s.markValidated(N1, -5))).code).toBe('E_VALIDATION_TIME');
    expect(s.lastValidated(N1)).toBeUndefined();
    await putJson(db, 'validator/lastx', 'not mine');
    await ValidationSchedule.open({ db });
    await putJson(db, `validator/last/${N1}`, 'yesterday');
    expect((await rejected(ValidationSchedule.open({ db }))).code).toBe('E_DB_CORRUPT');
  });
});
