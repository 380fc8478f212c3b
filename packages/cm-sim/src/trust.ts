import { type TrustDecision, type TrustGroup, evaluateTrust, parseTrustElement } from '@ime/core';
import type { TrustGroup as VapTrustGroup } from '@ime/vap';

/**
 * The call manager's trust lists (guide L2967–L3053), flattened in the config file into four lists
 * and rebuilt here as at most two groups: one whitelist, one blacklist. The same groups travel to
 * the peer over VAP (it refuses validations from untrusted callers) and judge the routes the peer
 * pushes back (routes for blacklisted numbers or domains are rejected, RoutesRejected).
 */

export interface TrustLists {
  readonly trustedDomains: readonly string[];
  readonly blockedDomains: readonly string[];
  readonly trustedPrefixes: readonly string[];
  readonly blockedPrefixes: readonly string[];
}

export const WHITELIST_GROUP = 'trusted';
export const BLACKLIST_GROUP = 'blocked';

/** Core trust groups; no group at all when the lists are empty, which trusts everyone (guide L2990). */
export function trustGroupsOf(lists: TrustLists): TrustGroup[] {
  const groups: TrustGroup[] = [];
  const white = [...lists.trustedDomains.map((d) => parseTrustElement(d, 'domain')), ...lists.trustedPrefixes.map((p) => parseTrustElement(p, 'prefix'))];
  const black = [...lists.blockedDomains.map((d) => parseTrustElement(d, 'domain')), ...lists.blockedPrefixes.map((p) => parseTrustElement(p, 'prefix'))];
  if (white.length > 0) groups.push({ name: WHITELIST_GROUP, trusted: true, description: 'trusted domains and prefixes', elements: white });
  if (black.length > 0) groups.push({ name: BLACKLIST_GROUP, trusted: false, description: 'blocked domains and prefixes', elements: black });
  return groups;
}

/** The same groups in VAP's shape. */
export function vapTrustGroups(groups: readonly TrustGroup[]): VapTrustGroup[] {
  return groups.map((g) => ({
    name: g.name,
    trusted: g.trusted,
    description: g.description,
    elements: g.elements.map((e) => (e.kind === 'domain' ? { kind: 'domain' as const, value: e.domain } : { kind: 'prefix' as const, value: e.text })),
  }));
}

/** Whether a learned route may be used: its number and its domain are judged together. */
export function judgeRoute(groups: readonly TrustGroup[], route: { readonly number: string; readonly domain: string }): TrustDecision {
  return evaluateTrust(groups, { number: route.number, domain: route.domain });
}
