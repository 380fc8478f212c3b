import { constants, createHash, sign } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { type RingConfiguration, decodeSignedRingConfiguration, encodeRingConfiguration, encodeSignedRingConfiguration, verifySignedRingConfiguration } from '@ime/admission';
import { ime } from '@ime/wire';
import { ACCEPTED, type FuzzOutcome, type FuzzTarget, hex, inputHash, oracle } from '../engine.js';
import { FUZZ_NOW_MS, loadAuthority } from '../fixture.js';

/**
 * Signed ring configurations (ring-configuration.ts), verified as a peer verifies one pushed by a
 * neighbour: against the ring authority's certificate, at the fuzz clock, above a known sequence.
 *
 * Two ways in, chosen by the input's hash:
 *  - as received (seven inputs in eight): a mutated signed configuration. The signature covers the
 *    configuration bytes exactly, so one accepted must carry a seed's configuration bytes and
 *    decode to that seed's configuration — anything else accepted is a forgery that got through;
 *  - re-signed (one in eight: an RSA signature costs as much as the rest of the input): the mutated
 *    configuration bytes signed by the authority, which takes the input past the signature into the
 *    decoder and the field checks. What those accept must be a valid configuration: it encodes
 *    again and decodes to the same.
 */

/** The fields of a configuration as plain values, to compare a decoded wire message with a RingConfiguration. */
function plain(c: RingConfiguration | ime.v1.RingConfiguration): unknown {
  const p = c.parameters;
  return {
    sequence: c.sequence,
    issuedAtMs: c.issuedAtMs,
    expiresAtMs: c.expiresAtMs,
    ringName: c.ringName,
    ringSalt: hex(c.ringSalt),
    roster: c.roster.map((e) => [e.peerId, [...e.addresses], e.domain, e.certificateSerial, e.certificateExpiresAtMs, e.virtualNodes]),
    parameters: p ? [p.replicationFactor, p.writeQuorum, p.readQuorum, p.recordTtlSec, p.republishIntervalSec, p.storageQuota, p.pollIntervalSec] : null,
    bans: c.bans.map((b) => [b.peerId, b.reason, b.bannedAtMs]),
    minSoftwareVersion: c.minSoftwareVersion,
    messageOfTheDay: c.messageOfTheDay,
    bootstraps: c.bootstraps.map((b) => [b.peerId, [...b.addresses]]),
  };
}

const SIGN_LABEL = Buffer.from('ime-ring-config-v1\0');
const KNOWN_SEQUENCES = [undefined, 0, 2, 5] as const;

export function ringConfigurationTarget(seeds: readonly Uint8Array[]): FuzzTarget & { readonly stats: { resigned: number; resignedAccepted: number } } {
  const { signer, certificateDer } = loadAuthority();
  const trust = { authorityCertificateDer: certificateDer };
  const fingerprint = new Uint8Array(createHash('sha256').update(certificateDer).digest());
  const seedConfigurations = new Map<string, RingConfiguration>();
  for (const s of seeds) {
    const inner = decodeSignedRingConfiguration(s).configuration;
    seedConfigurations.set(hex(inner), verifySignedRingConfiguration(s, trust, { nowMs: FUZZ_NOW_MS }));
  }
  const stats = { resigned: 0, resignedAccepted: 0 };

  /** The configuration bytes of an input that still parses as a SignedRingConfiguration, else the input itself. */
  function innerBytes(input: Uint8Array): Uint8Array {
    try {
      const c = ime.v1.SignedRingConfiguration.decode(input).configuration;
      if (c instanceof Uint8Array && c.length > 0) return c;
    } catch {
      // not a signed configuration any more: take the bytes as they are
    }
    return input;
  }

  return {
    name: 'ringconf',
    seeds,
    stats,
    run(input): FuzzOutcome {
      const h = inputHash(input);
      const knownSequence = KNOWN_SEQUENCES[(h >>> 2) % KNOWN_SEQUENCES.length];
      const options = knownSequence === undefined ? { nowMs: FUZZ_NOW_MS } : { nowMs: FUZZ_NOW_MS, knownSequence };
      if (h % 8 !== 0) {
        const config = verifySignedRingConfiguration(input, trust, options);
        const inner = decodeSignedRingConfiguration(input).configuration;
        const seed = seedConfigurations.get(hex(inner));
        oracle(seed !== undefined, 'a configuration the authority never signed was accepted');
        oracle(isDeepStrictEqual(config, seed), "an accepted configuration differs from the seed whose signature it carries");
        return { accepted: true, note: 'as-received' };
      }
      stats.resigned++;
      const configuration = innerBytes(input);
      const signature = sign('sha256', Buffer.concat([SIGN_LABEL, configuration]), { key: signer.privateKey, padding: constants.RSA_PKCS1_PADDING });
      const signed = encodeSignedRingConfiguration({ configuration, signature: new Uint8Array(signature), authorityFingerprint: fingerprint });
      const config = verifySignedRingConfiguration(signed, trust, options);
      stats.resignedAccepted++;
      // The encoder validates again: what the verifier accepted must pass, and read back the same.
      const again = plain(ime.v1.RingConfiguration.decode(encodeRingConfiguration(config)));
      oracle(isDeepStrictEqual(again, plain(config)), 'an accepted configuration does not survive encoding again');
      return ACCEPTED;
    },
  };
}
