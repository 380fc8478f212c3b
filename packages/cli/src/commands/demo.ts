import { randomBytes } from 'node:crypto';
import {
  type E164,
  ImeError,
  ValidationPools,
  countDids,
  didRecordKey,
  encodeDidRecord,
  generatePublisher,
  openDidRecord,
  parseE164,
  parseEnrolledPattern,
  parseExclusionNumber,
  sealDidRecord,
} from '@ime/core';
import { TicketIssuer, TicketVerifier } from '@ime/ticket';
import { optionInteger, optionString } from '../args.js';
import type { Command } from '../command.js';
import { EXIT_OK } from '../output.js';

/**
 * Until the ring, VAP and validator exist (issues #4–#7), the demo plays the parts of the story that
 * need no network, with the real code, and says plainly what is not built yet.
 */

const NOT_BUILT = [
  'ring peers and bootstrap (issue #4)',
  'VAP and the call-manager simulator (issue #5)',
  'the validation exchange (issue #6)',
  'the full demo over a local ring (issue #7)',
];

interface Enterprise {
  domain: string;
  patterns: string[];
  exclusions: string[];
  ticketPassword: string;
}

const ENTERPRISES: Enterprise[] = [
  { domain: 'acme.example', patterns: ['+14085550XXX'], exclusions: ['+14085550000'], ticketPassword: randomBytes(18).toString('base64url') },
  { domain: 'globex.example', patterns: ['+12125551XXX', '+121255512XX'], exclusions: [], ticketPassword: randomBytes(18).toString('base64url') },
  { domain: 'initech.example', patterns: ['+15125552XX'], exclusions: ['+15125552099'], ticketPassword: randomBytes(18).toString('base64url') },
];

function short(bytes: Uint8Array): string {
  return `${Buffer.from(bytes).toString('hex').slice(0, 16)}…`;
}

export const demo: Command = {
  path: ['demo'],
  summary: 'play the IME story on this machine and clean up',
  options: [
    { name: 'peers', type: 'integer', valueName: 'N', description: 'ring peers to start (default 4; used once the ring exists)' },
    { name: 'base-port', type: 'integer', valueName: 'P', description: 'first port to use (used once the ring exists)' },
    { name: 'data', type: 'string', valueName: 'DIR', description: 'data directory (used once the ring exists)' },
  ],
  run({ options, out }) {
    const ignored = ['peers', 'base-port', 'data'].filter((o) => optionInteger(options, o) !== undefined || optionString(options, o) !== undefined);
    out.info('IME demo — offline: the domain core and tickets are built; the networked parts are not yet.');
    if (ignored.length > 0) out.info(`(ignoring --${ignored.join(', --')}: nothing is started until the ring exists)`);

    out.info('\n1. Enterprises enrol their numbers');
    let totalDids = 0;
    for (const e of ENTERPRISES) {
      const patterns = e.patterns.map((p) => parseEnrolledPattern(p));
      const exclusions = e.exclusions.map((x) => parseExclusionNumber(x));
      const n = countDids(patterns, exclusions);
      totalDids += n;
      const minus = exclusions.length ? ` minus ${exclusions.join(', ')}` : '';
      out.info(`   ${e.domain.padEnd(16)} ${patterns.map((p) => p.text).join(' ')}${minus} → ${n} DIDs`);
    }

    out.info('\n2. A DID record, as the ring will store it');
    const ringSalt = randomBytes(32);
    const globexPeer = generatePublisher();
    const number = parseE164('+12125551234');
    const record = sealDidRecord({
      ringSalt,
      number,
      publisher: globexPeer,
      claim: { vserviceId: 'globex-vservice-1', publishedAtMs: Date.now() },
      sequence: 1,
      expiresAtMs: Date.now() + 24 * 3600 * 1000,
    });
    const bytes = encodeDidRecord(record);
    out.info(`   globex publishes ${number}: key ${short(record.key)} (salted hash), ${bytes.length} bytes, signed by globex`);
    const stored = Buffer.from(bytes).includes(Buffer.from(number.slice(1)));
    out.info(`   the number appears in the stored bytes: ${stored ? 'yes (BUG)' : 'no'}`);
    let guessRefused = '';
    try {
      openDidRecord(record, { ringSalt, number: parseE164('+12125559999') });
    } catch (err) {
      guessRefused = err instanceof ImeError ? err.code : String(err);
    }
    out.info(`   a peer guessing another number cannot read it: ${guessRefused}`);
    const opened = openDidRecord(record, { ringSalt, number });
    out.info(`   acme, which dialled ${number}, reads: Vservice ${opened.vserviceId}, key ${short(didRecordKey(ringSalt, number))}`);

    out.info('\n3. Validation buckets at acme (threshold 20; a success is worth 8 or 12)');
    const pools = new ValidationPools<string>(20);
    let succeeded = 0;
    let failed = 0;
    let released = 0;
    const story: Array<[string, 'success' | 'failure', E164, 8 | 12]> = [
      ['globex', 'success', parseE164('+12125551234'), 8],
      ['globex', 'success', parseE164('+12125551000'), 8],
      ['globex', 'success', parseE164('+12125551999'), 8],
      ['initech', 'success', parseE164('+15125552001'), 12],
      ['initech', 'failure', parseE164('+15125552002'), 8],
      ['initech', 'success', parseE164('+15125552002'), 12],
      ['initech', 'success', parseE164('+15125552002'), 12],
    ];
    for (const [peer, outcome, n, value] of story) {
      const t = outcome === 'success' ? pools.success(peer, n, value, n) : pools.failure(peer, n);
      if (outcome === 'success') succeeded++;
      else failed++;
      released += t.released.length;
      const where = t.bucket === null ? 'default bucket' : `number bucket ${t.bucket}`;
      const total = t.bucket === null ? t.pool.defaultBucket.total : (t.pool.numberBuckets[t.bucket]?.total ?? 0);
      const what =
        outcome === 'failure'
          ? `FAILURE → pool emptied (${t.discarded} discarded), ${n} goes to the penalty box`
          : t.released.length > 0
            ? `+${value} → over 20: releases ${t.released.map((r) => r.route).join(', ')}`
            : `+${value} → ${where} at ${total}`;
      out.info(`   vs ${peer.padEnd(8)} ${n}  ${what}`);
    }

    out.info('\n4. Tickets at the edge: globex issues one for acme, globex\'s edge checks calls');
    const globex = ENTERPRISES[1] as Enterprise;
    const issuer = new TicketIssuer(globex.ticketPassword, 1);
    const { ticket } = issuer.issue({ issuerDomain: 'globex.example', callingDomain: 'acme.example', numbers: [number] });
    const edge = new TicketVerifier({ current: { password: globex.ticketPassword, epoch: 1 } });
    const flipped = Buffer.from(ticket, 'base64url');
    flipped[10] = (flipped[10] as number) ^ 0x01;
    const checks: Array<[string, string, string, string]> = [
      ['valid ticket', ticket, 'acme.example', number],
      ['forged (one bit changed)', flipped.toString('base64url'), 'acme.example', number],
      ['wrong caller domain', ticket, 'initech.example', number],
      ['wrong called number', ticket, 'acme.example', '+12125551235'],
    ];
    let accepted = 0;
    let refused = 0;
    for (const [label, t, domain, called] of checks) {
      const v = edge.verify(t, { callingDomain: domain, calledNumber: called });
      if (v.valid) accepted++;
      else refused++;
      out.info(`   ${label.padEnd(26)} → ${v.valid ? 'accepted' : `refused (${v.reason})`}`);
    }

    out.info('\nNot built yet: ' + NOT_BUILT.join('; ') + '.');
    out.info('Try next:  npm test   ·   pnpm bench ticket   ·   npx ime ticket issue --help');
    out.result(
      {
        ok: true,
        mode: 'offline',
        peers: 0,
        didsPublished: 0,
        pstnCalls: 0,
        validations: { succeeded: 0, failed: 0 },
        routesLearned: 0,
        ticketChecks: { accepted, refused },
        offline: { didsEnrolled: totalDids, bucketSuccesses: succeeded, bucketFailures: failed, routesReleased: released },
        notBuiltYet: NOT_BUILT,
      },
      [],
    );
    return EXIT_OK;
  },
};
