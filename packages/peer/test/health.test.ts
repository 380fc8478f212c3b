import { describe, expect, it } from '@jest/globals';
import { type HealthInputs, computeHealth } from '../src/health.js';

const green: HealthInputs = {
  hasCertificate: true,
  certificateExpired: false,
  admission: 'admitted',
  members: 8,
  liveMembers: 8,
  writeQuorum: 2,
  replicationFactor: 3,
  neighboursDown: 0,
  bootstrapContactAgeMs: 1000,
  pollIntervalMs: 30_000,
};

describe('ring health', () => {
  it('is GREEN when admitted, in contact and whole', () => {
    expect(computeHealth(green)).toEqual({ level: 2, name: 'GREEN', reasons: [] });
  });

  it.each<[string, Partial<HealthInputs>, RegExp]>([
    ['no certificate', { hasCertificate: false }, /not enrolled/],
    ['expired certificate', { certificateExpired: true }, /expired/],
    ['no configuration', { admission: 'no-configuration' }, /no ring configuration/],
    ['not admitted', { admission: 'not-in-roster' }, /not admitted/],
    ['banned', { admission: 'banned' }, /banned/],
    ['roster lists an expired certificate', { admission: 'certificate-expired' }, /expired certificate/],
    ['partitioned below the write quorum', { liveMembers: 1 }, /partitioned/],
  ])('is RED with %s', (_what, change, reason) => {
    const h = computeHealth({ ...green, ...change });
    expect(h.level).toBe(0);
    expect(h.name).toBe('RED');
    expect(h.reasons.join('; ')).toMatch(reason);
  });

  it.each<[string, Partial<HealthInputs>, RegExp]>([
    ['bootstrap silent for 3 poll intervals', { bootstrapContactAgeMs: 90_001 }, /bootstrap/],
    ['bootstrap never reached', { bootstrapContactAgeMs: undefined }, /bootstrap/],
    ['a neighbour down', { neighboursDown: 1, liveMembers: 7 }, /neighbour/],
  ])('is YELLOW with %s', (_what, change, reason) => {
    const h = computeHealth({ ...green, ...change });
    expect(h).toMatchObject({ level: 1, name: 'YELLOW' });
    expect(h.reasons.join('; ')).toMatch(reason);
  });

  it('lets a one-peer ring be GREEN (the quorum is capped by the membership)', () => {
    expect(computeHealth({ ...green, members: 1, liveMembers: 1 }).name).toBe('GREEN');
  });

  it('puts RED before YELLOW and lists only the RED reasons', () => {
    const h = computeHealth({ ...green, admission: 'banned', bootstrapContactAgeMs: undefined });
    expect(h.name).toBe('RED');
    expect(h.reasons).toEqual(['banned from the ring']);
  });
});
