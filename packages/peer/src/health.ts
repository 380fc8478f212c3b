/**
 * Ring health (SPEC §4, guide L8674–L8690): GREEN 2, YELLOW 1, RED 0, with the reasons, so
 * `ime show dht summary` can say why a peer is not green.
 */

export type HealthName = 'RED' | 'YELLOW' | 'GREEN';

export type AdmissionState = 'admitted' | 'not-in-roster' | 'banned' | 'certificate-expired' | 'no-configuration';

export interface HealthInputs {
  readonly hasCertificate: boolean;
  readonly certificateExpired: boolean;
  readonly admission: AdmissionState;
  /** Members of the roster (admitted peers, self included). */
  readonly members: number;
  /** Members this peer sees live (self included). */
  readonly liveMembers: number;
  readonly writeQuorum: number;
  readonly replicationFactor: number;
  /** Ring neighbours this peer probes and sees down. */
  readonly neighboursDown: number;
  /** Milliseconds since a bootstrap last answered, or undefined if none ever did. */
  readonly bootstrapContactAgeMs: number | undefined;
  readonly pollIntervalMs: number;
}

export interface Health {
  readonly level: 0 | 1 | 2;
  readonly name: HealthName;
  readonly reasons: readonly string[];
}

export function computeHealth(i: HealthInputs): Health {
  const red: string[] = [];
  if (!i.hasCertificate) red.push('no ring certificate (not enrolled)');
  else if (i.certificateExpired) red.push('the ring certificate has expired');
  if (i.admission === 'no-configuration') red.push('no ring configuration received yet');
  else if (i.admission === 'not-in-roster') red.push('not on the ring roster (not admitted yet)');
  else if (i.admission === 'banned') red.push('banned from the ring');
  else if (i.admission === 'certificate-expired') red.push('the roster lists an expired certificate for this peer');
  // A ring smaller than the write quorum cannot take writes at all; otherwise we need W live peers.
  const needed = Math.min(i.writeQuorum, i.members);
  if (i.admission === 'admitted' && i.liveMembers < needed) {
    red.push(`only ${i.liveMembers} live members reachable; ${needed} are needed to store (partitioned?)`);
  }
  if (red.length > 0) return { level: 0, name: 'RED', reasons: red };

  const yellow: string[] = [];
  const stale = i.bootstrapContactAgeMs === undefined || i.bootstrapContactAgeMs > 3 * i.pollIntervalMs;
  if (stale) yellow.push('no bootstrap reached in the last 3 poll intervals');
  if (i.neighboursDown > 0) yellow.push(`${i.neighboursDown} ring neighbour(s) down`);
  if (yellow.length > 0) return { level: 1, name: 'YELLOW', reasons: yellow };
  return { level: 2, name: 'GREEN', reasons: [] };
}
