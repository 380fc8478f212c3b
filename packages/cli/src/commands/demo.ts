import { rmSync } from 'node:fs';
import type { RouteView } from '@ime/cm-sim';
import { ImeError } from '@ime/core';
import { Cast, type CastEnterprise, waitFor } from '@ime/harness';
import { TicketVerifier } from '@ime/ticket';
import type { Command } from '../command.js';
import { EXIT_OK, EXIT_REFUSED } from '../output.js';
import { LOCAL_RING_OPTIONS, parseLocalRingOptions } from './local-ring-options.js';

/**
 * `ime demo`: the whole IME story on this machine with the real components — a bootstrap and peers
 * on 127.0.0.1 (enrolled, admitted, a real libp2p ring over LevelDB), the simulated PSTN, and three
 * enterprises' call-manager simulators speaking VAP to their peers. PSTN calls produce VCRs on both
 * sides; the originating peers validate them against the terminating peers (SPAKE2+ over the ring),
 * buckets fill, routes and tickets reach the call managers, and the edge check accepts and refuses
 * tickets. Every step prints what happened; --json ends with the summary INTERFACES.md lists.
 */

interface ValidationView {
  readonly atMs: number;
  readonly called: string;
  readonly domain: string;
  readonly outcome: 'success' | 'failure' | 'refused' | 'error';
  readonly value?: number;
  readonly code?: string;
  readonly bucket?: string;
  readonly bucketTotal?: number;
  readonly released?: number;
}

interface CallView {
  readonly route: 'pstn' | 'ime';
  readonly durationSec: number;
}

/** One step of the story: a PSTN call, or a VCR for a call that never happened (a fraudulent claim). */
interface Step {
  readonly kind: 'call' | 'forged-vcr';
  readonly from: number;
  readonly to: number;
  readonly called: string;
}

// Callers own these lines: acme's, globex's and initech's patterns (packages/harness/src/cast.ts).
const CALLER = ['+14085550100', '+12125551100', '+15125552010'];

/**
 * With the default threshold of 20, two 12-point validations release a bucket. acme calls three globex
 * numbers (the third waits in the bucket); globex calls two initech numbers; acme claims a call to
 * initech that never happened (the validation fails: the pool is emptied and the number goes to the
 * penalty box) and then really calls two other initech numbers, which start again from an empty bucket.
 */
const STORY: readonly Step[] = [
  { kind: 'call', from: 0, to: 1, called: '+12125551001' },
  { kind: 'call', from: 0, to: 1, called: '+12125551002' },
  { kind: 'call', from: 0, to: 1, called: '+12125551003' },
  { kind: 'call', from: 1, to: 2, called: '+15125552001' },
  { kind: 'call', from: 1, to: 2, called: '+15125552002' },
  { kind: 'forged-vcr', from: 0, to: 2, called: '+15125552003' },
  { kind: 'call', from: 0, to: 2, called: '+15125552004' },
  { kind: 'call', from: 0, to: 2, called: '+15125552005' },
];
const EXPECTED = { succeeded: 7, failed: 1, routes: 6 };

function short(s: string, n = 16): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

export const demo: Command = {
  path: ['demo'],
  summary: 'play the IME story on a local ring (PSTN calls → validations → routes and tickets) and clean up',
  options: LOCAL_RING_OPTIONS,
  async run({ options, out, stopSignal }) {
    const { peers, basePort, dataDir } = parseLocalRingOptions(options);
    const started = Date.now();
    const interrupted = new AbortController();
    const stopped = () => {
      if (stopSignal.aborted) throw new ImeError('E_DEMO_INTERRUPTED', `interrupted; the ring was stopped${dataDir === undefined ? ' and its files removed' : ''}`);
    };

    out.info(`IME demo: a ring of ${peers} peers on 127.0.0.1, three enterprises, the real code.`);
    out.info('\n1. The ring and the enterprises');
    const cast = await Cast.start({
      peers,
      enterprises: 3,
      mode: 'in-process',
      ...(basePort !== undefined ? { basePort } : {}),
      ...(dataDir !== undefined ? { dir: dataDir, keep: true } : {}),
      progress: (line) => out.info(`   … ${line}`),
    });
    const cleanup = async () => {
      await cast.stop();
      if (dataDir === undefined) rmSync(cast.ring.dir, { recursive: true, force: true });
    };
    // Ctrl-C stops the processes and removes the files at once; the story notices and ends.
    const onStop = () => {
      interrupted.abort(new ImeError('E_DEMO_INTERRUPTED', `interrupted; the ring was stopped${dataDir === undefined ? ' and its files removed' : ''}`));
      void cleanup();
    };
    stopSignal.addEventListener('abort', onStop, { once: true });
    // Interrupted while the cast was starting: the listener above came too late to hear it.
    if (stopSignal.aborted) onStop();
    try {
      const boot = cast.ring.bootstraps[0]!;
      out.info(`   bootstrap ${short(boot.peerId)} (the enrollment authority) at ${boot.ready.listen[0]}`);
      for (const p of cast.ring.peers) {
        const s = p.node!.summary();
        out.info(`   ${p.name.padEnd(7)} ${s.domain.padEnd(22)} ${short(p.peerId)}  ${s.health}, roster of ${s.peerCount}, configuration ${s.sequence}`);
      }

      out.info('\n2. Each call manager registers with its peer over VAP and publishes its enrolled patterns');
      let didsPublished = 0;
      for (const e of cast.enterprises) {
        didsPublished += e.dids;
        const minus = e.spec.exclusions.length ? ` minus ${e.spec.exclusions.join(', ')}` : '';
        out.info(`   ${e.cm.name.padEnd(11)} → ${e.peer.name}: ${e.spec.patterns.join(' ')}${minus} = ${e.dids} DIDs, each a sealed record on 3 peers`);
      }
      const acmePeer = cast.enterprises[0]!.peer.node!;
      const probe = await acmePeer.fetchDid('+12125551234');
      const unknown = await acmePeer.fetchDid('+12125559999');
      out.info(`   acme's peer looks up +12125551234: ${probe.found ? `claimed by ${short(probe.claims[0]!.peerId)} on replicas ${probe.replicas.map((r) => short(r, 10)).join(', ')}` : 'NOT FOUND'}`);
      out.info(`   +12125559999 (nobody's number): ${unknown.found ? 'FOUND' : 'not in the ring'}; a replica holds only a hashed key and a sealed value`);

      const threshold = (await (await cast.enterprises[0]!.peer.admin()).get<{ threshold: number }>('/v1/validator/pools')).threshold;
      out.info(`\n3. PSTN calls, and the validations that follow them (bucket threshold ${threshold}: a bucket releases its routes when its total exceeds it)`);
      const seen = new Map<CastEnterprise, number>(cast.enterprises.map((e) => [e, 0]));
      const routesSeen = new Map<CastEnterprise, Set<string>>(cast.enterprises.map((e) => [e, new Set()]));
      const validations = { succeeded: 0, failed: 0 };
      let pstnCalls = 0;
      const pstn = await cast.pstn.admin();
      for (const step of STORY) {
        stopped();
        const from = cast.enterprises[step.from]!;
        const to = cast.enterprises[step.to]!;
        if (step.kind === 'call') {
          const { call } = await pstn.post<{ call: CallView }>('/v1/calls', { from: CALLER[step.from], to: step.called, durationSec: 60 });
          pstnCalls++;
          out.info(`   PSTN call ${from.spec.name} ${CALLER[step.from]} → ${to.spec.name} ${step.called} (${call.durationSec} s over the ${call.route.toUpperCase()}); both call managers upload a VCR`);
        } else {
          const now = Date.now();
          await (await from.cm.admin()).post('/v1/vcrs', { calling: CALLER[step.from], called: step.called, start: new Date(now - 90_000).toISOString(), stop: new Date(now - 30_000).toISOString() });
          out.info(`   ${from.spec.name} claims a call to ${to.spec.name} ${step.called} that never happened (a VCR uploaded by hand)`);
        }
        const origin = await from.peer.admin();
        let fresh: ValidationView[] = [];
        await waitFor(`${from.spec.name}'s peer to validate ${step.called}`, async () => {
          stopped();
          const { validations: all } = await origin.get<{ validations: ValidationView[] }>('/v1/validator/validations');
          fresh = all.slice(seen.get(from));
          return fresh.some((v) => v.called === step.called);
        }, 30_000, 200, interrupted.signal);
        seen.set(from, (seen.get(from) ?? 0) + fresh.length);
        let released = 0;
        for (const v of fresh) {
          const where = v.bucket === undefined || v.bucket === 'default' ? 'default bucket' : `penalty-box bucket ${v.bucket}`;
          if (v.outcome === 'success') {
            validations.succeeded++;
            released += v.released ?? 0;
            const result = (v.released ?? 0) > 0 ? `over ${threshold}: ${v.released} route(s) released to ${from.spec.name}'s call manager` : `${where} at ${v.bucketTotal}/${threshold}, waiting`;
            out.info(`     validation ${from.spec.name} → ${v.domain}: proven, worth ${v.value} → ${result}`);
          } else {
            validations.failed++;
            out.info(`     validation ${from.spec.name} → ${v.domain}: ${v.outcome.toUpperCase()}${v.code ? ` (${v.code})` : ''} → ${v.domain}'s pool emptied; ${v.called} now needs its own run of successes (penalty box)`);
          }
        }
        if (released > 0) {
          const cm = await from.cm.admin();
          const known = routesSeen.get(from)!;
          let routes: RouteView[] = [];
          await waitFor(`${from.cm.name} to learn the released routes`, async () => {
            stopped();
            routes = (await cm.get<{ routes: RouteView[] }>('/v1/routes')).routes.filter((r) => !known.has(r.number));
            return routes.length >= released;
          }, 30_000, 200, interrupted.signal);
          for (const r of routes) {
            known.add(r.number);
            out.info(`     route learned by ${from.cm.name}: ${r.number} → ${r.sipUri}, ticket ${short(r.ticket, 24)} (until ${r.expiresOn.slice(0, 10)})`);
          }
        }
      }

      out.info("\n4. A learned route in use: acme calls a globex number it has a route for");
      const { call: again } = await pstn.post<{ call: CallView }>('/v1/calls', { from: CALLER[0], to: '+12125551001', durationSec: 30 });
      pstnCalls++;
      out.info(`   acme ${CALLER[0]} → globex +12125551001: ${again.route === 'ime' ? 'taken over IME (SIP with the ticket), not the PSTN' : 'went over the PSTN'}`);

      out.info("\n5. Tickets at the edge: each terminating enterprise's firewall checks the tickets it issued");
      let accepted = 0;
      let refused = 0;
      const checkLines: string[] = [];
      for (const from of cast.enterprises) {
        const routes = (await (await from.cm.admin()).get<{ routes: RouteView[] }>('/v1/routes')).routes;
        for (const r of routes) {
          const issuer = cast.enterprises.find((e) => e.spec.domain === r.domain);
          if (issuer === undefined) continue;
          const edge = new TicketVerifier({ current: { password: issuer.ticketPassword, epoch: issuer.ticketEpoch } });
          const v = edge.verify(r.ticket, { callingDomain: from.spec.domain, calledNumber: r.number });
          if (v.valid) accepted++;
          else refused++;
          checkLines.push(`   ${issuer.spec.name}'s edge: ${from.spec.domain} calling ${r.number} → ${v.valid ? 'accepted' : `REFUSED (${v.reason})`}`);
        }
      }
      for (const line of checkLines) out.info(line);
      const sample = (await (await cast.enterprises[0]!.cm.admin()).get<{ routes: RouteView[] }>('/v1/routes')).routes.find((r) => r.domain === 'globex.example');
      const globex = cast.enterprises[1]!;
      if (sample !== undefined) {
        const edge = new TicketVerifier({ current: { password: globex.ticketPassword, epoch: globex.ticketEpoch } });
        const forged = Buffer.from(sample.ticket, 'base64url');
        forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 0x01;
        const attacks: Array<[string, string, string, string]> = [
          ['a forged ticket (one bit changed)', forged.toString('base64url'), 'acme.example', sample.number],
          ['acme\'s ticket presented by initech', sample.ticket, 'initech.example', sample.number],
          ['acme\'s ticket for another number', sample.ticket, 'acme.example', '+12125551999'],
        ];
        for (const [label, ticket, domain, called] of attacks) {
          const v = edge.verify(ticket, { callingDomain: domain, calledNumber: called });
          if (v.valid) accepted++;
          else refused++;
          out.info(`   globex's edge: ${label.padEnd(36)} → ${v.valid ? 'ACCEPTED' : `refused (${v.reason})`}`);
        }
      }

      const routesLearned = [...routesSeen.values()].reduce((n, s) => n + s.size, 0);
      const ok = validations.succeeded === EXPECTED.succeeded && validations.failed === EXPECTED.failed && routesLearned === EXPECTED.routes && refused === 3 && accepted === routesLearned && again.route === 'ime';
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      out.info(`\n${ok ? 'The story played as expected' : 'THE STORY DID NOT PLAY AS EXPECTED'}: ${pstnCalls} PSTN calls, ${validations.succeeded} validations proven and ${validations.failed} failed, ${routesLearned} routes learned, ${accepted} tickets accepted and ${refused} refused, in ${seconds} s.`);
      out.info(`The ring is stopped${dataDir === undefined ? ' and its files removed' : ` (files kept in ${cast.ring.dir})`}.`);
      out.info('Try next:  npx ime ring up   (a ring that keeps running: place calls with `npx ime pstn call`, read routes with `npx ime cm show routes`)');
      out.info('           npx ime show validator validations --admin URL --token-file FILE   (why a validation failed)   ·   npm test   ·   docs/OPERATIONS.md');
      out.result(
        {
          ok,
          peers,
          didsPublished,
          pstnCalls,
          validations,
          routesLearned,
          ticketChecks: { accepted, refused },
          seconds: Number(seconds),
          ring: { bootstrap: boot.peerId, health: cast.ring.peers.map((p) => p.node!.summary().health) },
          ...(dataDir !== undefined ? { data: cast.ring.dir } : {}),
        },
        [],
      );
      return ok ? EXIT_OK : EXIT_REFUSED;
    } finally {
      stopSignal.removeEventListener('abort', onStop);
      await cleanup();
    }
  },
};
