import { randomBytes } from 'node:crypto';
import {
  type EnrolledPattern,
  countDids,
  decodeDidRecord,
  encodeDidRecord,
  expandPatterns,
  generatePublisher,
  openDidRecord,
  parseE164,
  parseEnrolledPattern,
  sealDidRecord,
  verifyDidRecord,
} from '@ime/core';
import { type Suite, measureDuration, measureRate, round3, target } from '../harness.js';

/**
 * The domain core: DID record seal/open/verify rates, and expansion of a million DIDs (a thousand
 * patterns of three wildcards). Target: expansion of 1 000 000 DIDs in under a second.
 */
export const coreSuite: Suite = {
  name: 'core',
  description: 'DID record seal/open/verify, pattern expansion of 1 000 000 DIDs',
  run({ quick, progress }) {
    const rate = { roundMs: quick ? 300 : 1000, rounds: quick ? 3 : 5, batch: 16 };
    const ringSalt = randomBytes(32);
    const publisher = generatePublisher();
    const number = parseE164('+12125551234');
    const seal = () =>
      sealDidRecord({
        ringSalt,
        number,
        publisher,
        claim: { vserviceId: 'globex-vservice-1', publishedAtMs: Date.now() },
        sequence: 1,
        expiresAtMs: Date.now() + 86_400_000,
      });
    const record = seal();
    const bytes = encodeDidRecord(record);

    progress('core: DID record seal');
    const sealed = measureRate(seal, rate);
    progress('core: DID record verify (storing peer: decode + signature)');
    const verified = measureRate(() => verifyDidRecord(decodeDidRecord(bytes)), rate);
    progress('core: DID record open (reader with the number)');
    const opened = measureRate(() => openDidRecord(record, { ringSalt, number }), rate);

    progress('core: expanding 1 000 000 DIDs');
    const patterns: EnrolledPattern[] = [];
    for (let i = 0; i < 1000; i++) patterns.push(parseEnrolledPattern(`+1408${String(i).padStart(3, '0')}5XXX`));
    const exclusions = ['+14080005000', '+14089995999'];
    let expanded = 0;
    const expansion = measureDuration(() => (expanded = expandPatterns(patterns, exclusions).length), quick ? 3 : 7);
    const counting = measureDuration(() => countDids(patterns, exclusions), quick ? 3 : 7);
    if (expanded !== countDids(patterns, exclusions)) throw new Error('expansion and count disagree');
    // A full default quota enrolled as exact numbers: counting must stay linear in the pattern count.
    const exact = Array.from({ length: 100_000 }, (_, i) => parseEnrolledPattern(`+1212${String(i).padStart(7, '0')}`));
    const countingExact = measureDuration(() => countDids(exact), quick ? 3 : 7);

    return {
      rows: [
        { bench: 'core', system: 'ours', op: 'did-seal', ops_per_sec: round3(sealed.opsPerSec), n: sealed.n, bytes: bytes.length },
        { bench: 'core', system: 'ours', op: 'did-verify', ops_per_sec: round3(verified.opsPerSec), n: verified.n },
        { bench: 'core', system: 'ours', op: 'did-open', ops_per_sec: round3(opened.opsPerSec), n: opened.n },
        { bench: 'core', system: 'ours', op: 'expand-1M-dids', ms: round3(expansion.ms), n: expansion.n, dids: expanded },
        { bench: 'core', system: 'ours', op: 'count-1M-dids', ms: round3(counting.ms), n: counting.n },
        { bench: 'core', system: 'ours', op: 'count-100k-exact-patterns', ms: round3(countingExact.ms), n: countingExact.n },
      ],
      targets: [target('pattern expansion of 1 000 000 DIDs (ms)', '< 1000', expansion.ms, expansion.ms < 1000)],
    };
  },
};
