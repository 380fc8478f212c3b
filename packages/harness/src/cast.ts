import { ImeError } from '@ime/core';
import { type CastEnterprise, type EnterpriseSpec, startEnterprise } from './enterprise.js';
import type { Member, Mode } from './member.js';
import { RingHarness, waitFor } from './ring-harness.js';

/**
 * The whole cast of a local IME ring, as `ime demo` plays it and `ime ring up` keeps it running: a
 * bootstrap, peers, the simulated PSTN, and one call-manager simulator per enterprise, each attached
 * over VAP (its own VAP server instance and credentials) to its own peer and to the PSTN with the
 * lines it really owns. Secrets are generated per run and kept in files (mode 0600), never in the
 * configuration files.
 */

/** The three enterprises of INTERFACES.md; more are generated as enterprise-N.example. */
export const CAST_ENTERPRISES: readonly EnterpriseSpec[] = [
  { name: 'acme', domain: 'acme.example', patterns: ['+14085550XXX'], exclusions: ['+14085550000'] },
  { name: 'globex', domain: 'globex.example', patterns: ['+12125551XXX'], exclusions: [] },
  { name: 'initech', domain: 'initech.example', patterns: ['+151255520XX'], exclusions: ['+15125552099'] },
];

export const MAX_CAST_ENTERPRISES = 9;

export function enterpriseSpec(index: number): EnterpriseSpec {
  const known = CAST_ENTERPRISES[index];
  if (known !== undefined) return known;
  // Area codes 302, 303, … keep generated enterprises clear of the three above and of each other.
  return { name: `enterprise-${index + 1}`, domain: `enterprise-${index + 1}.example`, patterns: [`+1${300 + index}5553XXX`], exclusions: [] };
}

export interface CastOptions {
  readonly peers: number;
  readonly enterprises: number;
  readonly mode?: Mode;
  readonly dir?: string;
  readonly keep?: boolean;
  readonly basePort?: number;
  /** The one-hour rule (validator.revalidateAfterSec); production default 3 600 s. */
  readonly revalidateAfterSec?: number;
  /** VAP keepalive interval of every VAP server instance (default 30 s). */
  readonly keepaliveSec?: number;
  readonly logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Told what is happening while the cast starts (it takes a few seconds). */
  readonly progress?: (line: string) => void;
}

/** One line of `ime ring up`'s ready report (INTERFACES.md). */
export interface CastComponent {
  readonly role: 'bootstrap' | 'peer' | 'cm' | 'pstn';
  readonly name: string;
  readonly domain?: string;
  readonly peerId?: string;
  readonly listen: readonly string[];
  readonly admin: string;
  readonly tokenFile: string;
  readonly [field: string]: unknown;
}

export class Cast {
  readonly ring: RingHarness;
  readonly pstn: Member;
  readonly enterprises: readonly CastEnterprise[];

  private constructor(ring: RingHarness, pstn: Member, enterprises: readonly CastEnterprise[]) {
    this.ring = ring;
    this.pstn = pstn;
    this.enterprises = enterprises;
  }

  static async start(options: CastOptions): Promise<Cast> {
    if (!Number.isInteger(options.enterprises) || options.enterprises < 1 || options.enterprises > MAX_CAST_ENTERPRISES) {
      throw new ImeError('E_CAST_ENTERPRISES', `enterprises must be 1–${MAX_CAST_ENTERPRISES}`);
    }
    if (!Number.isInteger(options.peers) || options.peers < Math.max(3, options.enterprises)) {
      throw new ImeError('E_CAST_PEERS', `a ring of ${options.enterprises} enterprises needs at least ${Math.max(3, options.enterprises)} peers (one per enterprise, three for replication)`);
    }
    const say = options.progress ?? (() => undefined);
    const specs = Array.from({ length: options.enterprises }, (_, i) => enterpriseSpec(i));
    say(`starting a bootstrap and ${options.peers} peers`);
    const ring = await RingHarness.start({
      peers: options.peers,
      mode: options.mode ?? 'in-process',
      logLevel: options.logLevel ?? 'error',
      domainOf: (i) => specs[i]?.domain ?? `ring-member-${i + 1}.example`,
      ...(options.dir !== undefined ? { dir: options.dir } : {}),
      ...(options.keep !== undefined ? { keep: options.keep } : {}),
      ...(options.basePort !== undefined ? { basePort: options.basePort } : {}),
      ...(options.revalidateAfterSec !== undefined ? { validator: { revalidateAfterSec: options.revalidateAfterSec } } : {}),
    });
    try {
      say('waiting for every peer to be admitted and GREEN');
      await ring.converge({ timeoutMs: 90_000 });
      say('starting the simulated PSTN and the call managers');
      const pstn = await ring.startSimulator('pstn', 'pstn', {});
      const vap = options.keepaliveSec !== undefined ? { keepaliveSec: options.keepaliveSec } : {};
      const enterprises = await Promise.all(specs.map((spec, i) => startEnterprise(ring, pstn, ring.peers[i] as Member, spec, vap)));
      const cast = new Cast(ring, pstn, enterprises);
      say('waiting for the call managers to register over VAP and publish their numbers');
      await cast.#published();
      return cast;
    } catch (err) {
      await ring.stop();
      throw err;
    }
  }

  async #published(): Promise<void> {
    await waitFor(
      'every call manager to register and publish its numbers',
      async () => {
        const states = await Promise.all(
          this.enterprises.map(async (e) => (await (await e.peer.admin()).get<{ counters: Record<string, number> }>('/v1/counters')).counters),
        );
        return states.every((c, i) => c.ClientsRegistered === 1 && c.IMEDistributedCacheQuotaUsed === this.enterprises[i]?.dids);
      },
      90_000,
      200,
    );
  }

  /** Every component, as `ime ring up` reports them. */
  components(): CastComponent[] {
    const base = (m: Member) => ({ name: m.name, listen: m.ready.listen, admin: m.ready.admin, tokenFile: m.ready.tokenFile });
    const byPeer = new Map(this.enterprises.map((e) => [e.peer, e]));
    return [
      ...this.ring.bootstraps.map((b) => ({ role: 'bootstrap' as const, ...base(b), peerId: b.peerId })),
      ...this.ring.peers.map((p) => ({ role: 'peer' as const, ...base(p), peerId: p.peerId, ...(byPeer.has(p) ? { domain: byPeer.get(p)?.spec.domain } : {}) })),
      { role: 'pstn' as const, ...base(this.pstn) },
      ...this.enterprises.map((e) => ({
        role: 'cm' as const,
        ...base(e.cm),
        domain: e.spec.domain,
        peer: e.peer.name,
        patterns: e.spec.patterns,
        exclusions: e.spec.exclusions,
        dids: e.dids,
        vapUser: e.vapUser,
        ticketEpoch: e.ticketEpoch,
        ticketPasswordFile: e.ticketPasswordFile,
      })),
    ];
  }

  async stop(): Promise<void> {
    await this.ring.stop();
  }
}
