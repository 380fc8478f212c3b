import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countDids, parseEnrolledPattern, parseExclusionNumber } from '@ime/core';
import type { Member } from './member.js';
import type { RingHarness } from './ring-harness.js';

/**
 * An enterprise attached to the ring as `ime ring up` attaches one: a VAP server instance with
 * credentials generated per run on the enterprise's peer, and its call-manager simulator attached to
 * that instance and to the PSTN with the lines it really owns. Secrets live in files (mode 0600),
 * never in the configuration files.
 */

export interface EnterpriseSpec {
  /** Short name: the call manager is `cm-<name>`. */
  readonly name: string;
  readonly domain: string;
  readonly patterns: readonly string[];
  readonly exclusions: readonly string[];
}

export interface CastEnterprise {
  readonly spec: EnterpriseSpec;
  readonly peer: Member;
  readonly cm: Member;
  readonly dids: number;
  readonly vapUser: string;
  readonly ticketEpoch: number;
  readonly ticketPasswordFile: string;
  /** Held in memory for the demo's edge checks; on disk only in ticketPasswordFile. */
  readonly ticketPassword: string;
}

export interface EnterpriseOptions {
  /** VAP keepalive interval of the enterprise's VAP server instance (default: the peer's, 30 s). */
  readonly keepaliveSec?: number;
}

const VAP_USER = 'imeuser';
const TICKET_EPOCH = 1;

function secretFile(file: string, secret: string): void {
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
}

/** Attaches the enterprise `spec` to `peer` and starts its call manager (`cm-<name>` in the ring's directory). */
export async function startEnterprise(ring: RingHarness, pstn: Member, peer: Member, spec: EnterpriseSpec, options: EnterpriseOptions = {}): Promise<CastEnterprise> {
  const cmName = `cm-${spec.name}`;
  const dir = join(ring.dir, cmName);
  mkdirSync(dir, { recursive: true });
  const vapPassword = randomBytes(18).toString('base64url');
  const ticketPassword = randomBytes(18).toString('base64url');
  secretFile(join(dir, 'vap.password'), vapPassword);
  const ticketPasswordFile = join(dir, 'ticket.password');
  secretFile(ticketPasswordFile, ticketPassword);

  const admin = await peer.admin();
  const vap = await admin.post<{ boundPort: number }>('/v1/vap/servers', {
    name: 'cucm',
    host: '127.0.0.1',
    port: 0,
    ...(options.keepaliveSec !== undefined ? { keepaliveIntervalSec: options.keepaliveSec } : {}),
  });
  await admin.post('/v1/vap/credentials', { server: 'cucm', username: VAP_USER, password: vapPassword, ticketPassword, epoch: TICKET_EPOCH });
  const cm = await ring.startSimulator('cm', cmName, {
    domain: spec.domain,
    enrolledPatterns: spec.patterns,
    exclusions: spec.exclusions,
    vservice: { maxDidCount: 10_000 },
    vap: { primary: `127.0.0.1:${vap.boundPort}`, username: VAP_USER, passwordFile: 'vap.password', reconnectIntervalSec: 1 },
    pstn: { admin: pstn.ready.admin, tokenFile: pstn.ready.tokenFile },
  });
  const dids = countDids(spec.patterns.map((p) => parseEnrolledPattern(p)), spec.exclusions.map((x) => parseExclusionNumber(x)));
  return { spec, peer, cm, dids, vapUser: VAP_USER, ticketEpoch: TICKET_EPOCH, ticketPasswordFile, ticketPassword };
}
