import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import {
  type E164,
  ImeError,
  ValidationPools,
  countDids,
  didRecordKey,
  expandPatterns,
  generatePublisher,
  openDidRecord,
  parseE164,
  parseEnrolledPattern,
  parseExclusionNumber,
  sealDidRecord,
} from '@ime/core';
import { RingHarness } from '@ime/harness';
import { TicketIssuer, TicketVerifier } from '@ime/ticket';
import { UsageError, optionInteger, optionString } from '../args.js';
import type { Command } from '../command.js';
import { EXIT_OK } from '../output.js';

/**
 * The story on this machine. The ring is real — a bootstrap and peers on 127.0.0.1, enrolled,
 * admitted, holding the enterprises' DID records. VAP, the simulators and the validator are built but
 * not yet played here (test/validation-story.test.ts plays them): until then the demo publishes
 * through the peers' own API and shows bucket arithmetic and tickets with the real core, and says
 * plainly what it does not show yet.
 */

const NOT_BUILT = ['PSTN calls, VAP call managers and routes learned by validation in this demo (issue #7; see docs/VALIDATION.md)'];

interface Enterprise {
  domain: string;
  vservice: string;
  patterns: string[];
  exclusions: string[];
  ticketPassword: string;
}

const ENTERPRISES: Enterprise[] = [
  { domain: 'acme.example', vservice: 'acme-vs-1', patterns: ['+14085550XXX'], exclusions: ['+14085550000'], ticketPassword: randomBytes(18).toString('base64url') },
  { domain: 'globex.example', vservice: 'globex-vs-1', patterns: ['+12125551XXX', '+121255512XX'], exclusions: [], ticketPassword: randomBytes(18).toString('base64url') },
  { domain: 'initech.example', vservice: 'initech-vs-1', patterns: ['+15125552XX'], exclusions: ['+15125552099'], ticketPassword: randomBytes(18).toString('base64url') },
];

function short(s: string | Uint8Array): string {
  const text = typeof s === 'string' ? s : Buffer.from(s).toString('hex');
  return `${text.slice(0, 16)}…`;
}

export const demo: Command = {
  path: ['demo'],
  summary: 'play the IME story on a local ring and clean up',
  options: [
    { name: 'peers', type: 'integer', valueName: 'N', description: 'ring peers to start (default 4, at least 3)' },
    { name: 'base-port', type: 'integer', valueName: 'P', description: 'first of the consecutive 127.0.0.1 ports to use (default: free ports)' },
    { name: 'data', type: 'string', valueName: 'DIR', description: 'keep the ring’s files here instead of a temporary directory' },
  ],
  async run({ options, out, stopSignal }) {
    const peers = optionInteger(options, 'peers') ?? 4;
    if (peers < 3 || peers > 32) throw new UsageError('E_CLI_BAD_VALUE', '--peers must be 3–32 (one peer per enterprise at least)');
    const basePort = optionInteger(options, 'base-port');
    if (basePort !== undefined && (basePort < 1024 || basePort > 65000)) throw new UsageError('E_CLI_BAD_VALUE', '--base-port must be 1024–65000');
    const dataDir = optionString(options, 'data');
    const started = Date.now();

    out.info(`IME demo: a ring of ${peers} peers on 127.0.0.1, three enterprises, the real code.`);
    out.info('\n1. The ring: a bootstrap (enrollment authority) and peers enroll, are admitted, and agree on a signed roster');
    const ring = await RingHarness.start({
      peers,
      mode: 'in-process',
      logLevel: 'error',
      domainOf: (i) => ENTERPRISES[i]?.domain ?? `extra-${i + 1}.example`,
      ...(basePort !== undefined ? { basePort } : {}),
      ...(dataDir !== undefined ? { dir: dataDir } : {}),
    });
    const cleanup = async () => {
      await ring.stop();
      if (dataDir === undefined) rmSync(ring.dir, { recursive: true, force: true });
    };
    const onStop = () => void cleanup();
    stopSignal.addEventListener('abort', onStop, { once: true });
    try {
      await ring.converge({ timeoutMs: 60_000 });
      const boot = ring.bootstraps[0]!;
      out.info(`   bootstrap ${short(boot.peerId)} at ${boot.ready.listen[0]}`);
      for (const p of ring.peers) {
        const s = p.node!.summary();
        out.info(`   ${p.name.padEnd(7)} ${s.domain.padEnd(18)} ${short(p.peerId)}  ${s.health}, roster of ${s.peerCount}, configuration ${s.sequence}`);
      }

      out.info('\n2. Each enterprise publishes its numbers: a DID record per number, stored on 3 peers');
      let didsPublished = 0;
      for (const [i, e] of ENTERPRISES.entries()) {
        const patterns = e.patterns.map((p) => parseEnrolledPattern(p));
        const exclusions = e.exclusions.map((x) => parseExclusionNumber(x));
        const numbers = expandPatterns(patterns, exclusions);
        const report = await ring.peers[i]!.node!.publish(e.vservice, numbers);
        didsPublished += report.published;
        const minus = exclusions.length ? ` minus ${exclusions.join(', ')}` : '';
        out.info(`   ${e.domain.padEnd(16)} ${patterns.map((p) => p.text).join(' ')}${minus}: ${countDids(patterns, exclusions)} DIDs, ${report.published} published`);
      }

      out.info('\n3. acme looks up a globex number it has dialled: only someone who knows the number can read the record');
      const number = parseE164('+12125551234');
      const found = await ring.peers[0]!.node!.fetchDid(number);
      const claim = found.claims[0];
      out.info(`   ${number} → ${found.found ? `claimed by ${short(claim!.peerId)} (Vservice ${claim!.vserviceId})` : 'not found'}, replicas ${found.replicas.map((r) => short(r)).join(', ')}`);
      const unknown = await ring.peers[0]!.node!.fetchDid('+12125559999');
      out.info(`   +12125559999 → ${unknown.found ? 'found (BUG)' : 'not in the ring (nobody publishes it)'}`);
      // What a storing peer holds, and why it cannot read it.
      const salt = randomBytes(32);
      const sample = sealDidRecord({ ringSalt: salt, number, publisher: generatePublisher(), claim: { vserviceId: 'globex-vs-1', publishedAtMs: Date.now() }, sequence: 1, expiresAtMs: Date.now() + 86_400_000 });
      let guess = '';
      try {
        openDidRecord(sample, { ringSalt: salt, number: parseE164('+12125551235') });
      } catch (err) {
        guess = err instanceof ImeError ? err.code : String(err);
      }
      out.info(`   a replica stores key ${short(didRecordKey(salt, number))} and a sealed claim; guessing another number: ${guess}`);

      out.info('\n4. Validation buckets at acme (the validator is not built yet: the pool arithmetic, threshold 20)');
      const pools = new ValidationPools<string>(20);
      let routesReleased = 0;
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
        routesReleased += t.released.length;
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

      out.info("\n5. Tickets at the edge: globex issues one for acme; globex's edge checks calls");
      const globex = ENTERPRISES[1] as Enterprise;
      const { ticket } = new TicketIssuer(globex.ticketPassword, 1).issue({ issuerDomain: globex.domain, callingDomain: 'acme.example', numbers: [number] });
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

      out.info(`\nNot shown yet: ${NOT_BUILT.join('; ')}.`);
      out.info(`Done in ${((Date.now() - started) / 1000).toFixed(1)} s; the ring is stopped${dataDir === undefined ? ' and its files removed' : ` (files kept in ${ring.dir})`}.`);
      out.info('Try next:  npx ime peer start --print-default-config   ·   npm test   ·   pnpm bench ring --quick');
      out.result(
        {
          ok: true,
          peers,
          didsPublished,
          pstnCalls: 0,
          validations: { succeeded: 0, failed: 0 },
          routesLearned: 0,
          ticketChecks: { accepted, refused },
          ring: { bootstrap: boot.peerId, sequence: ring.peers[0]!.node!.summary().sequence, health: ring.peers.map((p) => p.node!.summary().health) },
          lookups: { found: found.found ? 1 : 0, notFound: unknown.found ? 0 : 1 },
          offline: { bucketEvents: story.length, routesReleased },
          notBuiltYet: NOT_BUILT,
        },
        [],
      );
      return EXIT_OK;
    } finally {
      stopSignal.removeEventListener('abort', onStop);
      await cleanup();
    }
  },
};
