import type { BanEntry, BootstrapEntry, RingConfiguration, RingParameters, RosterEntry } from '@ime/admission';
import { type BootstrapState, PARAMETER_SETTINGS } from './bootstrap-state.js';

/**
 * The ring configuration as the bootstrap's state says it should be (docs/RING.md "Admission"):
 * everything but the sequence and the times, which are stamped when it is signed. Kept apart from
 * signing so the server can tell whether anything a peer would see has changed, and skip issuing a
 * configuration that differs only in its sequence.
 */

export type ConfigurationContent = Omit<RingConfiguration, 'sequence' | 'issuedAtMs' | 'expiresAtMs'>;

/** The configuration file's parameters plus the virtual nodes a new peer gets. */
export interface BaseParameters extends RingParameters {
  readonly virtualNodes: number;
}

export interface EffectiveParameters {
  readonly parameters: RingParameters;
  readonly virtualNodes: number;
  /** Settings that had to be adjusted to fit together (see below), for the log. */
  readonly adjusted: readonly string[];
}

/**
 * The configuration file's parameters overridden by the operator's settings. Each setting is its own
 * entry, so two bootstraps changing different parameters both keep their change when they merge;
 * the price is that a merge can bring together values that were each valid but are not together
 * (W from one bootstrap, a smaller N from the other). Those are adjusted (W and R capped at N, the
 * republish interval kept under the TTL) rather than refused: a configuration must still be signed.
 */
export function effectiveParameters(state: BootstrapState, base: BaseParameters): EffectiveParameters {
  const values: Record<string, number> = { ...base };
  for (const name of PARAMETER_SETTINGS) {
    const v = state.setting(name);
    if (typeof v === 'number') values[name] = v;
  }
  const adjusted: string[] = [];
  const n = values.replicationFactor as number;
  for (const q of ['writeQuorum', 'readQuorum']) {
    if ((values[q] as number) > n) {
      values[q] = n;
      adjusted.push(q);
    }
  }
  const ttl = values.recordTtlSec as number;
  if ((values.republishIntervalSec as number) >= ttl) {
    values.republishIntervalSec = ttl - 1;
    adjusted.push('republishIntervalSec');
  }
  return {
    parameters: {
      replicationFactor: n,
      writeQuorum: values.writeQuorum as number,
      readQuorum: values.readQuorum as number,
      recordTtlSec: ttl,
      republishIntervalSec: values.republishIntervalSec as number,
      storageQuota: values.storageQuota as number,
      pollIntervalSec: values.pollIntervalSec as number,
    },
    virtualNodes: values.virtualNodes as number,
    adjusted,
  };
}

/**
 * Roster: enrolled peers that are admitted, not banned, and whose certificate has not expired
 * (through its expiry instant, as `admissionOf` counts it). Bans: those in force. Lists are sorted
 * by PeerId so equal states give equal documents.
 */
export function configurationContent(
  state: BootstrapState,
  base: BaseParameters,
  bootstraps: readonly BootstrapEntry[],
  nowMs: number,
): { content: ConfigurationContent; adjusted: readonly string[] } {
  const bans: BanEntry[] = state
    .bans()
    .map((b) => ({ peerId: b.peerId, reason: b.value.reason, bannedAtMs: b.value.atMs }))
    .sort((a, b) => compare(a.peerId, b.peerId));
  const banned = new Set(bans.map((b) => b.peerId));
  const roster: RosterEntry[] = state
    .enrollments()
    .filter((e) => e.value.admitted && !banned.has(e.peerId) && nowMs <= e.value.certificateExpiresAtMs)
    .map((e) => ({
      peerId: e.peerId,
      addresses: [...e.value.addresses],
      domain: e.value.domain,
      certificateSerial: e.value.certificateSerial,
      certificateExpiresAtMs: e.value.certificateExpiresAtMs,
      virtualNodes: e.value.virtualNodes,
    }))
    .sort((a, b) => compare(a.peerId, b.peerId));
  const { parameters, adjusted } = effectiveParameters(state, base);
  const motd = state.setting('messageOfTheDay');
  const minVersion = state.setting('minSoftwareVersion');
  const ring = state.ring;
  return {
    content: {
      ringName: ring.name,
      ringSalt: ring.salt,
      roster,
      parameters,
      bans,
      minSoftwareVersion: typeof minVersion === 'string' ? minVersion : '',
      messageOfTheDay: typeof motd === 'string' ? motd : '',
      bootstraps: bootstraps.map((b) => ({ peerId: b.peerId, addresses: [...b.addresses] })),
    },
    adjusted,
  };
}

/**
 * A comparable text of a configuration's content (sequence and times left out), built field by field
 * so a configuration decoded from disk compares equal to one built from the state.
 */
/**
 * What a configuration says, without its sequence and times: two documents with the same key say the
 * same. `withBootstraps: false` leaves out the bootstrap list, which each bootstrap writes from its
 * own point of view (its own listen addresses, the others' configured ones).
 */
export function contentKey(c: ConfigurationContent, options: { withBootstraps?: boolean } = {}): string {
  const p = c.parameters;
  return JSON.stringify([
    c.ringName,
    Buffer.from(c.ringSalt).toString('hex'),
    c.roster.map((e) => [e.peerId, e.addresses, e.domain, e.certificateSerial, e.certificateExpiresAtMs, e.virtualNodes]),
    [p.replicationFactor, p.writeQuorum, p.readQuorum, p.recordTtlSec, p.republishIntervalSec, p.storageQuota, p.pollIntervalSec],
    c.bans.map((b) => [b.peerId, b.reason, b.bannedAtMs]),
    c.minSoftwareVersion,
    c.messageOfTheDay,
    options.withBootstraps === false ? [] : c.bootstraps.map((b) => [b.peerId, b.addresses]),
  ]);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
