import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { admissionOf, rosterIndex } from '../src/admission.js';
import {
  DEFAULT_RING_NAME,
  DEFAULT_RING_PARAMETERS,
  type RingConfiguration,
  type RosterEntry,
  validateRingConfiguration,
} from '../src/ring-configuration.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);

function newPeerId(): string {
  const spki = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  return peerIdFromPublicKey(publicKeyFromRaw(spki.subarray(spki.length - 32))).toString();
}

const [alice, bob, mallory, stranger, exile] = [newPeerId(), newPeerId(), newPeerId(), newPeerId(), newPeerId()];

function entry(peerId: string, certificateExpiresAtMs: number): RosterEntry {
  return {
    peerId,
    addresses: ['/ip4/10.0.0.1/tcp/4001'],
    domain: 'acme.example',
    certificateSerial: '0a',
    certificateExpiresAtMs,
    virtualNodes: 5,
  };
}

const aliceEntry = entry(alice, NOW + 300 * DAY);
const bobEntry = entry(bob, NOW - DAY);
const malloryEntry = entry(mallory, NOW + 300 * DAY);

const config: RingConfiguration = {
  sequence: 7,
  issuedAtMs: NOW,
  expiresAtMs: NOW + 7 * DAY,
  ringName: DEFAULT_RING_NAME,
  ringSalt: new Uint8Array(32),
  roster: [aliceEntry, bobEntry, malloryEntry],
  parameters: DEFAULT_RING_PARAMETERS,
  bans: [
    { peerId: mallory, reason: 'abuse', bannedAtMs: NOW - DAY },
    { peerId: exile, reason: 'left the ring', bannedAtMs: NOW - DAY },
  ],
  minSoftwareVersion: '',
  messageOfTheDay: '',
  bootstraps: [],
};

describe('admissionOf', () => {
  it('is a valid configuration to start with', () => {
    expect(() => validateRingConfiguration(config)).not.toThrow();
  });

  it('admits a roster member with a current certificate, with its entry', () => {
    expect(admissionOf(config, alice, NOW)).toEqual({ admitted: true, entry: aliceEntry });
  });

  it('refuses a peer that is not on the roster', () => {
    expect(admissionOf(config, stranger, NOW)).toEqual({ admitted: false, reason: 'not-in-roster' });
    expect(admissionOf(config, '', NOW)).toEqual({ admitted: false, reason: 'not-in-roster' });
  });

  it('refuses a banned peer even when it is on the roster', () => {
    expect(admissionOf(config, mallory, NOW)).toEqual({ admitted: false, reason: 'banned' });
  });

  it('refuses a banned peer that is not on the roster as banned', () => {
    expect(admissionOf(config, exile, NOW)).toEqual({ admitted: false, reason: 'banned' });
  });

  it('refuses a peer whose certificate expired', () => {
    expect(admissionOf(config, bob, NOW)).toEqual({ admitted: false, reason: 'certificate-expired' });
  });

  it('counts the certificate as valid through its expiry instant', () => {
    expect(admissionOf(config, alice, aliceEntry.certificateExpiresAtMs).admitted).toBe(true);
    expect(admissionOf(config, alice, aliceEntry.certificateExpiresAtMs + 1)).toEqual({ admitted: false, reason: 'certificate-expired' });
  });

  it('prefers banned over an expired certificate', () => {
    expect(admissionOf(config, mallory, NOW + 400 * DAY)).toEqual({ admitted: false, reason: 'banned' });
  });

  it('needs a current time', () => {
    expect(() => admissionOf(config, alice, Number.NaN)).toThrow(expect.objectContaining({ code: 'E_ADMISSION_ARGUMENT' }));
  });

  it('follows the configuration it is given', () => {
    const next: RingConfiguration = { ...config, sequence: 8, roster: [aliceEntry], bans: [] };
    expect(admissionOf(next, mallory, NOW)).toEqual({ admitted: false, reason: 'not-in-roster' });
    expect(admissionOf(next, alice, NOW).admitted).toBe(true);
    expect(admissionOf(config, mallory, NOW)).toEqual({ admitted: false, reason: 'banned' });
  });
});

describe('rosterIndex', () => {
  it('maps every PeerId on the roster to its entry', () => {
    const index = rosterIndex(config);
    expect([...index.keys()].sort()).toEqual([alice, bob, mallory].sort());
    expect(index.get(bob)).toBe(bobEntry);
    expect(index.get(stranger)).toBeUndefined();
  });

  it('is built once per configuration object', () => {
    expect(rosterIndex(config)).toBe(rosterIndex(config));
    expect(rosterIndex({ ...config })).not.toBe(rosterIndex(config));
  });
});
