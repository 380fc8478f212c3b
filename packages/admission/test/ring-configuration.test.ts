import { describe, expect, it } from '@jest/globals';
import { constants, createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { ime } from '@ime/wire';
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id';
// The real ring authority signs configurations in production, so the tests use it too.
import { createRingAuthority, loadRingAuthority } from '../../bootstrap/src/ring-authority.js';
import {
  DEFAULT_RING_NAME,
  DEFAULT_RING_PARAMETERS,
  DEFAULT_VIRTUAL_NODES,
  MAX_SIGNED_CONFIGURATION_BYTES,
  type RingConfiguration,
  decodeSignedRingConfiguration,
  encodeSignedRingConfiguration,
  signRingConfiguration,
  validateRingConfiguration,
  verifySignedRingConfiguration,
} from '../src/ring-configuration.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? 'not-an-ime-error';
  }
  return undefined;
}

function fieldOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return (err as { details?: { field?: unknown } }).details?.field;
  }
  return undefined;
}

function quickPeerId(): string {
  const spki = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  return peerIdFromPublicKey(publicKeyFromRaw(spki.subarray(spki.length - 32))).toString();
}

async function newPeerId(type: 'Ed25519' | 'secp256k1' = 'Ed25519'): Promise<string> {
  return peerIdFromPrivateKey(type === 'Ed25519' ? await generateKeyPair('Ed25519') : await generateKeyPair('secp256k1')).toString();
}

// Two authorities for the whole file: RSA key generation is the slow part.
const authority = loadRingAuthority(createRingAuthority({ ringName: DEFAULT_RING_NAME, nowMs: NOW - 30 * DAY }));
const other = loadRingAuthority(createRingAuthority({ ringName: DEFAULT_RING_NAME, nowMs: NOW - 30 * DAY }));
const trust = { authorityCertificateDer: authority.certificateDer };

const [alice, bob, carol, mallory, boot] = await Promise.all([newPeerId(), newPeerId(), newPeerId(), newPeerId(), newPeerId()]);
const secp = await newPeerId('secp256k1');

function baseConfig(overrides: Partial<RingConfiguration> = {}): RingConfiguration {
  return {
    sequence: 1_000,
    issuedAtMs: NOW - 1_000,
    expiresAtMs: NOW + 7 * DAY,
    ringName: DEFAULT_RING_NAME,
    ringSalt: new Uint8Array(randomBytes(32)),
    roster: [
      {
        peerId: alice!,
        addresses: ['/ip4/10.0.0.1/tcp/4001', '/dns4/ime.acme.example/tcp/4001'],
        domain: 'acme.example',
        certificateSerial: 'e91f8d9d957906fe1ba42c310c12d547',
        certificateExpiresAtMs: NOW + 300 * DAY,
        virtualNodes: DEFAULT_VIRTUAL_NODES,
      },
      {
        peerId: bob!,
        addresses: ['/ip6/::1/tcp/4001'],
        domain: 'globex.example',
        certificateSerial: '01',
        certificateExpiresAtMs: NOW + 200 * DAY,
        virtualNodes: 12,
      },
    ],
    parameters: { ...DEFAULT_RING_PARAMETERS },
    bans: [{ peerId: mallory!, reason: 'abuse', bannedAtMs: NOW - DAY }],
    minSoftwareVersion: '1.2.3',
    messageOfTheDay: 'maintenance on Sunday\nexpect short interruptions',
    bootstraps: [{ peerId: boot!, addresses: ['/ip4/10.0.0.9/tcp/4000'] }],
    ...overrides,
  };
}

const config = baseConfig();
const signed = signRingConfiguration(config, authority.signer);
const signedBytes = encodeSignedRingConfiguration(signed);

/** Signs arbitrary configuration bytes with a key, as a forger with that key would. */
function signBytes(configuration: Uint8Array, key = authority.signer.privateKey, fingerprintOf = authority.certificateDer) {
  const signature = sign('sha256', Buffer.concat([Buffer.from('ime-ring-config-v1\0'), configuration]), {
    key,
    padding: constants.RSA_PKCS1_PADDING,
  });
  return {
    configuration,
    signature: new Uint8Array(signature),
    authorityFingerprint: new Uint8Array(createHash('sha256').update(fingerprintOf).digest()),
  };
}

describe('defaults', () => {
  it('match SPEC §3–§4', () => {
    expect(DEFAULT_RING_PARAMETERS).toEqual({
      replicationFactor: 3,
      writeQuorum: 2,
      readQuorum: 2,
      recordTtlSec: 86_400,
      republishIntervalSec: 43_200,
      storageQuota: 100_000,
      pollIntervalSec: 30,
    });
    expect(DEFAULT_VIRTUAL_NODES).toBe(5);
    expect(DEFAULT_RING_NAME).toBe('intercompanymedianetwork');
    expect(() => validateRingConfiguration(config)).not.toThrow();
  });
});

describe('sign and verify', () => {
  it('round-trips as an object and as bytes', () => {
    expect(verifySignedRingConfiguration(signed, trust, { nowMs: NOW })).toEqual(config);
    expect(verifySignedRingConfiguration(signedBytes, trust, { nowMs: NOW })).toEqual(config);
  });

  it('names the authority by the SHA-256 of its certificate', () => {
    expect(Buffer.from(signed.authorityFingerprint).toString('hex')).toBe(authority.fingerprintHex);
  });

  it('signs RSASSA-PKCS1-v1_5 SHA-256 over the label and the configuration bytes', () => {
    const again = signBytes(signed.configuration);
    expect(Buffer.from(again.signature).equals(Buffer.from(signed.signature))).toBe(true); // PKCS#1 v1.5 is deterministic
  });

  it('encodes and decodes the signed form', () => {
    const decoded = decodeSignedRingConfiguration(signedBytes);
    expect(Buffer.from(decoded.configuration).equals(Buffer.from(signed.configuration))).toBe(true);
    expect(Buffer.from(decoded.signature).equals(Buffer.from(signed.signature))).toBe(true);
    expect(Buffer.from(decoded.authorityFingerprint).equals(Buffer.from(signed.authorityFingerprint))).toBe(true);
  });

  it('keeps an empty roster, bans, bootstraps, version and message', () => {
    const minimal = baseConfig({ roster: [], bans: [], bootstraps: [], minSoftwareVersion: '', messageOfTheDay: '' });
    const s = signRingConfiguration(minimal, authority.signer);
    expect(verifySignedRingConfiguration(encodeSignedRingConfiguration(s), trust, { nowMs: NOW })).toEqual(minimal);
  });

  it('returns a configuration that does not share memory with the input', () => {
    const bytes = Uint8Array.from(signedBytes);
    const got = verifySignedRingConfiguration(bytes, trust, { nowMs: NOW });
    bytes.fill(0);
    expect(got.ringSalt).toEqual(config.ringSalt);
  });
});

describe('forgeries', () => {
  it('refuses a configuration signed by another CA that claims our fingerprint', () => {
    const forged = signBytes(signed.configuration, other.signer.privateKey, authority.certificateDer);
    expect(codeOf(() => verifySignedRingConfiguration(forged, trust, { nowMs: NOW }))).toBe('E_RINGCONF_SIGNATURE');
  });

  it('refuses a configuration signed by another CA under its own name', () => {
    const forged = signRingConfiguration(config, other.signer);
    expect(codeOf(() => verifySignedRingConfiguration(forged, trust, { nowMs: NOW }))).toBe('E_RINGCONF_AUTHORITY');
  });

  it('refuses a changed configuration under the original signature', () => {
    const changed = ime.v1.RingConfiguration.encode({ ...ime.v1.RingConfiguration.decode(signed.configuration), sequence: 999_999 }).finish();
    const forged = { ...signed, configuration: changed };
    expect(codeOf(() => verifySignedRingConfiguration(forged, trust, { nowMs: NOW }))).toBe('E_RINGCONF_SIGNATURE');
  });

  it('refuses every encoding with one byte changed', () => {
    const accepted: number[] = [];
    const codes = new Set<string>();
    for (let i = 0; i < signedBytes.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const bad = Uint8Array.from(signedBytes);
        bad[i]! ^= mask;
        const code = codeOf(() => verifySignedRingConfiguration(bad, trust, { nowMs: NOW }));
        if (code === undefined || !code.startsWith('E_RINGCONF_')) accepted.push(i);
        else codes.add(code);
      }
    }
    expect(accepted).toEqual([]);
    expect([...codes].sort()).toEqual(['E_RINGCONF_AUTHORITY', 'E_RINGCONF_MALFORMED', 'E_RINGCONF_SIGNATURE']);
  });

  it('refuses a validly signed configuration that breaks a rule', () => {
    const bad = ime.v1.RingConfiguration.encode({ ...ime.v1.RingConfiguration.decode(signed.configuration), ringSalt: new Uint8Array(8) }).finish();
    expect(codeOf(() => verifySignedRingConfiguration(signBytes(bad), trust, { nowMs: NOW }))).toBe('E_RINGCONF_MALFORMED');
    expect(codeOf(() => verifySignedRingConfiguration(signBytes(Buffer.from('ff', 'hex')), trust, { nowMs: NOW }))).toBe('E_RINGCONF_MALFORMED');
  });

  it('checks the authority before the signature and the signature before the content', () => {
    const expiredAndStale = signRingConfiguration(baseConfig({ sequence: 5, expiresAtMs: NOW - 1 }), authority.signer);
    const wrongKey = signBytes(expiredAndStale.configuration, other.signer.privateKey, authority.certificateDer);
    expect(codeOf(() => verifySignedRingConfiguration(wrongKey, trust, { nowMs: NOW, knownSequence: 10 }))).toBe('E_RINGCONF_SIGNATURE');
    const wrongName = signBytes(expiredAndStale.configuration, other.signer.privateKey, other.certificateDer);
    expect(codeOf(() => verifySignedRingConfiguration(wrongName, trust, { nowMs: NOW, knownSequence: 10 }))).toBe('E_RINGCONF_AUTHORITY');
    expect(codeOf(() => verifySignedRingConfiguration(expiredAndStale, trust, { nowMs: NOW, knownSequence: 10 }))).toBe('E_RINGCONF_EXPIRED');
  });
});

describe('freshness', () => {
  it('accepts only a strictly higher sequence than the one held', () => {
    expect(verifySignedRingConfiguration(signed, trust, { nowMs: NOW, knownSequence: 999 }).sequence).toBe(1_000);
    expect(verifySignedRingConfiguration(signed, trust, { nowMs: NOW, knownSequence: 0 }).sequence).toBe(1_000);
    expect(codeOf(() => verifySignedRingConfiguration(signed, trust, { nowMs: NOW, knownSequence: 1_000 }))).toBe('E_RINGCONF_STALE');
    expect(codeOf(() => verifySignedRingConfiguration(signedBytes, trust, { nowMs: NOW, knownSequence: 1_001 }))).toBe('E_RINGCONF_STALE');
  });

  it('refuses an expired configuration (expiry is exclusive)', () => {
    expect(verifySignedRingConfiguration(signed, trust, { nowMs: config.expiresAtMs - 1 }).sequence).toBe(1_000);
    expect(codeOf(() => verifySignedRingConfiguration(signed, trust, { nowMs: config.expiresAtMs }))).toBe('E_RINGCONF_EXPIRED');
  });

  it('handles sequences up to 2^53 − 1', () => {
    const big = baseConfig({ sequence: Number.MAX_SAFE_INTEGER });
    const s = signRingConfiguration(big, authority.signer);
    expect(verifySignedRingConfiguration(s, trust, { nowMs: NOW, knownSequence: Number.MAX_SAFE_INTEGER - 1 }).sequence).toBe(
      Number.MAX_SAFE_INTEGER,
    );
  });

  it('refuses a signed sequence beyond 2^53 − 1', () => {
    const wire = ime.v1.RingConfiguration.decode(signed.configuration);
    const bytes = ime.v1.RingConfiguration.encode({ ...wire, sequence: 2 ** 60 }).finish();
    expect(codeOf(() => verifySignedRingConfiguration(signBytes(bytes), trust, { nowMs: NOW }))).toBe('E_RINGCONF_MALFORMED');
  });

  it('needs a current time and a sane known sequence', () => {
    expect(codeOf(() => verifySignedRingConfiguration(signed, trust, {} as { nowMs: number }))).toBe('E_RINGCONF_ARGUMENT');
    expect(codeOf(() => verifySignedRingConfiguration(signed, trust, { nowMs: NOW, knownSequence: -1 }))).toBe('E_RINGCONF_ARGUMENT');
    expect(codeOf(() => verifySignedRingConfiguration(signed, trust, { nowMs: NOW, knownSequence: 1.5 }))).toBe('E_RINGCONF_ARGUMENT');
  });
});

describe('shape and size', () => {
  it.each([
    ['null', null],
    ['a number', 42],
    ['a string', 'config'],
    ['an empty object', {}],
    ['no signature', { configuration: signed.configuration, authorityFingerprint: signed.authorityFingerprint }],
    ['an empty configuration', { ...signed, configuration: new Uint8Array(0) }],
    ['a short fingerprint', { ...signed, authorityFingerprint: signed.authorityFingerprint.subarray(1) }],
    ['an oversized signature', { ...signed, signature: new Uint8Array(2048) }],
    ['garbage bytes', Buffer.from('this is not protobuf at all')],
    ['empty bytes', new Uint8Array(0)],
    ['bytes over 4 MiB', new Uint8Array(MAX_SIGNED_CONFIGURATION_BYTES + 1)],
  ])('refuses %s', (_what, value) => {
    expect(codeOf(() => verifySignedRingConfiguration(value, trust, { nowMs: NOW }))).toBe('E_RINGCONF_MALFORMED');
  });

  it('refuses an unusable trust anchor as an authority problem', () => {
    expect(codeOf(() => verifySignedRingConfiguration(signed, { authorityCertificateDer: Buffer.from('x') }, { nowMs: NOW }))).toBe(
      'E_RINGCONF_AUTHORITY',
    );
  });
});

describe('signer', () => {
  it('refuses a key that is not the authority’s', () => {
    const mismatched = { privateKey: other.signer.privateKey, authorityCertificateDer: authority.certificateDer };
    expect(codeOf(() => signRingConfiguration(config, mismatched))).toBe('E_AUTHORITY_KEY_MISMATCH');
  });

  it('refuses a key that is not an RSA private key, or an unusable certificate', () => {
    const ed = generateKeyPairSync('ed25519').privateKey;
    expect(codeOf(() => signRingConfiguration(config, { privateKey: ed, authorityCertificateDer: authority.certificateDer }))).toBe(
      'E_RINGCONF_SIGNER',
    );
    const copy = createPrivateKey(authority.signer.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(codeOf(() => signRingConfiguration(config, { privateKey: copy, authorityCertificateDer: Buffer.from('x') }))).toBe(
      'E_RINGCONF_SIGNER',
    );
  });

  it('validates before signing', () => {
    expect(codeOf(() => signRingConfiguration(baseConfig({ sequence: 0 }), authority.signer))).toBe('E_RINGCONF_MALFORMED');
  });

  it('refuses to sign a configuration peers would refuse as too large', () => {
    // 2 000 peers with 8 long addresses each: valid entry by entry, over 4 MiB together.
    const roster = Array.from({ length: 2_000 }, (_, i) => ({
      peerId: quickPeerId(),
      addresses: Array.from({ length: 8 }, () => `/dns4/${'a'.repeat(240)}/tcp/${i}`),
      domain: 'acme.example',
      certificateSerial: '01',
      certificateExpiresAtMs: NOW + DAY,
      virtualNodes: 5,
    }));
    expect(() => validateRingConfiguration(baseConfig({ roster }))).not.toThrow();
    expect(fieldOf(() => signRingConfiguration(baseConfig({ roster }), authority.signer))).toBe('configuration');
  });
});

describe('validation rules', () => {
  const ok: [string, Partial<RingConfiguration>][] = [
    ['the largest ring name', { ringName: 'a'.repeat(64) }],
    ['a ring name with dots and dashes', { ringName: 'ring-1.example' }],
    ['replication 7 with W = R = N', { parameters: { ...DEFAULT_RING_PARAMETERS, replicationFactor: 7, writeQuorum: 7, readQuorum: 7 } }],
    ['replication 1', { parameters: { ...DEFAULT_RING_PARAMETERS, replicationFactor: 1, writeQuorum: 1, readQuorum: 1 } }],
    ['TTL 60 s, republish 59 s', { parameters: { ...DEFAULT_RING_PARAMETERS, recordTtlSec: 60, republishIntervalSec: 59 } }],
    ['TTL 7 days', { parameters: { ...DEFAULT_RING_PARAMETERS, recordTtlSec: 604_800 } }],
    ['quota 0', { parameters: { ...DEFAULT_RING_PARAMETERS, storageQuota: 0 } }],
    ['quota 1e9', { parameters: { ...DEFAULT_RING_PARAMETERS, storageQuota: 1_000_000_000 } }],
    ['poll 1 s', { parameters: { ...DEFAULT_RING_PARAMETERS, pollIntervalSec: 1 } }],
    ['poll 3600 s', { parameters: { ...DEFAULT_RING_PARAMETERS, pollIntervalSec: 3600 } }],
    ['8 addresses of 256 characters', { roster: [{ ...baseConfig().roster[0]!, addresses: Array.from({ length: 8 }, (_, i) => `/dns4/${'a'.repeat(244)}/tcp/${i}`) }] }],
    ['1 and 64 virtual nodes', { roster: [{ ...baseConfig().roster[0]!, virtualNodes: 1 }, { ...baseConfig().roster[1]!, virtualNodes: 64 }] }],
    ['a 512-character message', { messageOfTheDay: 'm'.repeat(512) }],
    ['no minimum version', { minSoftwareVersion: '' }],
    ['version 0.10.0', { minSoftwareVersion: '0.10.0' }],
  ];
  it.each(ok)('accepts %s', (_what, overrides) => {
    expect(() => validateRingConfiguration(baseConfig(overrides))).not.toThrow();
  });

  const entry = (): RingConfiguration['roster'][number] => baseConfig().roster[0]!;
  const withEntry = (e: Partial<RingConfiguration['roster'][number]>): Partial<RingConfiguration> => ({ roster: [{ ...entry(), ...e }] });
  const withParams = (p: Partial<RingConfiguration['parameters']>): Partial<RingConfiguration> => ({
    parameters: { ...DEFAULT_RING_PARAMETERS, ...p },
  });

  const bad: [string, () => unknown, string][] = [
    ['sequence 0', () => baseConfig({ sequence: 0 }), 'sequence'],
    ['a fractional sequence', () => baseConfig({ sequence: 1.5 }), 'sequence'],
    ['a sequence over 2^53', () => baseConfig({ sequence: 2 ** 53 }), 'sequence'],
    ['expiry at issue time', () => baseConfig({ expiresAtMs: NOW - 1_000 }), 'expiresAtMs'],
    ['a negative issue time', () => baseConfig({ issuedAtMs: -1 }), 'issuedAtMs'],
    ['a 31-byte salt', () => baseConfig({ ringSalt: new Uint8Array(31) }), 'ringSalt'],
    ['a salt that is not bytes', () => ({ ...baseConfig(), ringSalt: 'salt' }), 'ringSalt'],
    ['an empty ring name', () => baseConfig({ ringName: '' }), 'ringName'],
    ['a 65-character ring name', () => baseConfig({ ringName: 'a'.repeat(65) }), 'ringName'],
    ['an upper-case ring name', () => baseConfig({ ringName: 'Ring' }), 'ringName'],
    ['a ring name with a space', () => baseConfig({ ringName: 'my ring' }), 'ringName'],
    ['a roster that is not a list', () => ({ ...baseConfig(), roster: {} }), 'roster'],
    ['a bad roster PeerId', () => baseConfig(withEntry({ peerId: 'not-a-peer' })), 'roster[0].peerId'],
    ['a secp256k1 roster PeerId', () => baseConfig(withEntry({ peerId: secp })), 'roster[0].peerId'],
    ['a duplicate roster PeerId', () => baseConfig({ roster: [entry(), { ...entry(), domain: 'other.example' }] }), 'roster[1].peerId'],
    ['a bad domain', () => baseConfig(withEntry({ domain: 'acme..example' })), 'roster[0].domain'],
    ['an upper-case domain', () => baseConfig(withEntry({ domain: 'Acme.example' })), 'roster[0].domain'],
    ['a domain with a trailing dot', () => baseConfig(withEntry({ domain: 'acme.example.' })), 'roster[0].domain'],
    ['0 virtual nodes', () => baseConfig(withEntry({ virtualNodes: 0 })), 'roster[0].virtualNodes'],
    ['65 virtual nodes', () => baseConfig(withEntry({ virtualNodes: 65 })), 'roster[0].virtualNodes'],
    ['an address that is not a multiaddr', () => baseConfig(withEntry({ addresses: ['10.0.0.1:4001'] })), 'roster[0].addresses[0]'],
    ['an address with a space', () => baseConfig(withEntry({ addresses: ['/ip4/10.0.0.1/tcp/ 4001'] })), 'roster[0].addresses[0]'],
    ['an address with an empty component', () => baseConfig(withEntry({ addresses: ['/ip4//tcp/4001'] })), 'roster[0].addresses[0]'],
    ['a 257-character address', () => baseConfig(withEntry({ addresses: [`/dns4/${'a'.repeat(251)}`] })), 'roster[0].addresses[0]'],
    ['9 addresses', () => baseConfig(withEntry({ addresses: Array.from({ length: 9 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) })), 'roster[0].addresses'],
    ['an upper-case serial', () => baseConfig(withEntry({ certificateSerial: 'ABCD' })), 'roster[0].certificateSerial'],
    ['an empty serial', () => baseConfig(withEntry({ certificateSerial: '' })), 'roster[0].certificateSerial'],
    ['a certificate expiry of 0', () => baseConfig(withEntry({ certificateExpiresAtMs: 0 })), 'roster[0].certificateExpiresAtMs'],
    ['no parameters', () => ({ ...baseConfig(), parameters: undefined }), 'parameters'],
    ['replication 0', () => baseConfig(withParams({ replicationFactor: 0 })), 'parameters.replicationFactor'],
    ['replication 8', () => baseConfig(withParams({ replicationFactor: 8 })), 'parameters.replicationFactor'],
    ['W > N', () => baseConfig(withParams({ writeQuorum: 4 })), 'parameters.writeQuorum'],
    ['W = 0', () => baseConfig(withParams({ writeQuorum: 0 })), 'parameters.writeQuorum'],
    ['R > N', () => baseConfig(withParams({ readQuorum: 4 })), 'parameters.readQuorum'],
    ['R = 0', () => baseConfig(withParams({ readQuorum: 0 })), 'parameters.readQuorum'],
    ['TTL 59 s', () => baseConfig(withParams({ recordTtlSec: 59, republishIntervalSec: 30 })), 'parameters.recordTtlSec'],
    ['TTL over 7 days', () => baseConfig(withParams({ recordTtlSec: 604_801 })), 'parameters.recordTtlSec'],
    ['republish = TTL', () => baseConfig(withParams({ republishIntervalSec: 86_400 })), 'parameters.republishIntervalSec'],
    ['republish 0', () => baseConfig(withParams({ republishIntervalSec: 0 })), 'parameters.republishIntervalSec'],
    ['a negative quota', () => baseConfig(withParams({ storageQuota: -1 })), 'parameters.storageQuota'],
    ['a quota over 1e9', () => baseConfig(withParams({ storageQuota: 1_000_000_001 })), 'parameters.storageQuota'],
    ['poll 0', () => baseConfig(withParams({ pollIntervalSec: 0 })), 'parameters.pollIntervalSec'],
    ['poll 3601', () => baseConfig(withParams({ pollIntervalSec: 3601 })), 'parameters.pollIntervalSec'],
    ['a 513-character message', () => baseConfig({ messageOfTheDay: 'm'.repeat(513) }), 'messageOfTheDay'],
    ['a message with an escape sequence', () => baseConfig({ messageOfTheDay: 'hi \u001b[2J' }), 'messageOfTheDay'],
    ['version 1.2', () => baseConfig({ minSoftwareVersion: '1.2' }), 'minSoftwareVersion'],
    ['version v1.2.3', () => baseConfig({ minSoftwareVersion: 'v1.2.3' }), 'minSoftwareVersion'],
    ['version 01.2.3', () => baseConfig({ minSoftwareVersion: '01.2.3' }), 'minSoftwareVersion'],
    ['a ban of a bad PeerId', () => baseConfig({ bans: [{ peerId: 'mallory', reason: '', bannedAtMs: NOW }] }), 'bans[0].peerId'],
    [
      'a ban listed twice',
      () =>
        baseConfig({
          bans: [
            { peerId: mallory!, reason: '', bannedAtMs: NOW },
            { peerId: mallory!, reason: '', bannedAtMs: NOW },
          ],
        }),
      'bans[1].peerId',
    ],
    ['a ban reason over 512 characters', () => baseConfig({ bans: [{ peerId: mallory!, reason: 'r'.repeat(513), bannedAtMs: NOW }] }), 'bans[0].reason'],
    ['a bad bootstrap PeerId', () => baseConfig({ bootstraps: [{ peerId: 'x', addresses: [] }] }), 'bootstraps[0].peerId'],
    ['a bad bootstrap address', () => baseConfig({ bootstraps: [{ peerId: carol!, addresses: ['tcp://x'] }] }), 'bootstraps[0].addresses[0]'],
    ['a configuration that is not an object', () => 'config', 'configuration'],
  ];
  it.each(bad)('refuses %s', (_what, make, field) => {
    const c = make();
    expect(codeOf(() => validateRingConfiguration(c))).toBe('E_RINGCONF_MALFORMED');
    expect(fieldOf(() => validateRingConfiguration(c))).toBe(field);
  });

  it('names the field in the message', () => {
    try {
      validateRingConfiguration(baseConfig(withEntry({ virtualNodes: 0 })));
    } catch (err) {
      expect((err as Error).message).toContain('roster[0].virtualNodes');
    }
    expect.assertions(1);
  });
});
