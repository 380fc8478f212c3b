import { ImeError } from '@ime/core';
import type { RingConfiguration, RosterEntry } from './ring-configuration.js';

/**
 * Who may take part in the ring (SPEC §3): a peer on the current roster, not banned, whose ring
 * certificate has not expired. Every connection and every ring request asks this, so the lookups are
 * indexed once per configuration object.
 */

export type AdmissionRefusal = 'not-in-roster' | 'banned' | 'certificate-expired';

export type Admission =
  | { readonly admitted: true; readonly entry: RosterEntry }
  | { readonly admitted: false; readonly reason: AdmissionRefusal };

interface Index {
  readonly roster: ReadonlyMap<string, RosterEntry>;
  readonly banned: ReadonlySet<string>;
}

// Configurations are treated as immutable once validated, so an index per object stays right; a
// WeakMap lets a replaced configuration and its index be collected together.
const indexes = new WeakMap<RingConfiguration, Index>();

function indexOf(config: RingConfiguration): Index {
  let index = indexes.get(config);
  if (!index) {
    index = {
      roster: new Map(config.roster.map((e) => [e.peerId, e])),
      banned: new Set(config.bans.map((b) => b.peerId)),
    };
    indexes.set(config, index);
  }
  return index;
}

/** The roster by PeerId. */
export function rosterIndex(config: RingConfiguration): ReadonlyMap<string, RosterEntry> {
  return indexOf(config).roster;
}

/**
 * Whether `peerId` is admitted at `nowMs`. A ban wins over the roster (a peer can be banned before the
 * next roster drops it). The certificate counts as valid through its expiry instant, as X.509's
 * notAfter does.
 */
export function admissionOf(config: RingConfiguration, peerId: string, nowMs: number): Admission {
  // A NaN clock would compare false against every expiry and admit everyone.
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) {
    throw new ImeError('E_ADMISSION_ARGUMENT', 'admission needs the current time (nowMs)');
  }
  const index = indexOf(config);
  if (index.banned.has(peerId)) return { admitted: false, reason: 'banned' };
  const entry = index.roster.get(peerId);
  if (!entry) return { admitted: false, reason: 'not-in-roster' };
  if (nowMs > entry.certificateExpiresAtMs) return { admitted: false, reason: 'certificate-expired' };
  return { admitted: true, entry };
}
