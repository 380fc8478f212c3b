import { ImeError, expandPatterns, parseEnrolledPattern, parseExclusionNumber } from '@ime/core';
import { type AdminServer, PROMETHEUS_CONTENT_TYPE, rawResponse } from '@ime/runtime';
import type { PeerNode } from './peer-node.js';
import { registerVapAdminRoutes } from './vap-admin.js';
import { registerValidatorAdminRoutes } from './validator-admin.js';
import { registerPeerBackupRoutes } from './peer-backup-service.js';

/**
 * The peer's admin API (what `ime show …`, `ime utils …` call). Read-only routes need only the token;
 * changes are audited.
 */

const MAX_NUMBERS = 100_000;
const MAX_PATTERNS = 1_000;

function badRequest(message: string): ImeError {
  return new ImeError('E_ADMIN_BAD_REQUEST', message);
}

function stringList(value: unknown, what: string, max: number): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > max || value.some((v) => typeof v !== 'string')) {
    throw badRequest(`${what} must be a list of at most ${max} strings`);
  }
  return value as string[];
}

/** The numbers a publish request names: explicit numbers plus expanded patterns, minus exclusions. */
function requestedNumbers(body: Record<string, unknown>): string[] {
  const numbers = stringList(body.numbers, 'numbers', MAX_NUMBERS);
  const patterns = stringList(body.patterns, 'patterns', MAX_PATTERNS).map((p) => parseEnrolledPattern(p));
  const exclusions = stringList(body.exclusions, 'exclusions', MAX_NUMBERS).map((x) => parseExclusionNumber(x));
  const all = [...numbers, ...expandPatterns(patterns, exclusions)];
  if (all.length === 0) throw badRequest('name at least one number or pattern');
  if (all.length > MAX_NUMBERS) throw badRequest(`at most ${MAX_NUMBERS} numbers per request`);
  return all;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

export function registerPeerAdminRoutes(admin: AdminServer, node: PeerNode): void {
  admin.addOperationsRoutes();
  registerVapAdminRoutes(admin, () => node.vap);
  registerValidatorAdminRoutes(admin, () => node.validation, (peerId) => node.memberDomain(peerId));
  registerPeerBackupRoutes(admin, node);
  admin
    .addRoute({ method: 'GET', path: '/v1/dht/summary', handler: () => node.summary() })
    .addRoute({
      method: 'GET',
      path: '/v1/peerid',
      handler: () => {
        // The guide shows a Peer ID only when the certificate is valid (L1761).
        const s = node.summary();
        if (s.certificateExpires === null) throw new ImeError('E_NOT_ENROLLED', 'no ring certificate: this peer is not enrolled');
        if ((s.daysUntilCertExpiry ?? -1) < 0) throw new ImeError('E_CERT_EXPIRED', 'the ring certificate has expired');
        return { peerId: node.peerId };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/bootstrap', handler: () => ({ bootstraps: node.bootstraps() }) })
    .addRoute({ method: 'GET', path: '/v1/addressing', handler: () => node.addressing() })
    .addRoute({
      method: 'PUT',
      path: '/v1/addressing/publicipaddrv4',
      audit: 'set-publicipaddrv4',
      handler: async ({ body }) => {
        const b = objectBody(body);
        if (!('address' in b)) throw badRequest('the body must be {"address": "65.65.65.65"} or {"address": null}');
        return node.setPublicIpv4(b.address);
      },
    })
    .addRoute({ method: 'GET', path: '/v1/customerinfo', handler: () => ({ customerInfo: node.settings.customerInfo }) })
    .addRoute({
      method: 'PUT',
      path: '/v1/customerinfo',
      audit: 'set-customerinfo',
      handler: async ({ body }) => ({ customerInfo: await node.settings.setCustomerInfo(objectBody(body)) }),
    })
    .addRoute({ method: 'GET', path: '/v1/ring/members', handler: () => ({ members: node.members() }) })
    .addRoute({ method: 'GET', path: '/v1/connections', handler: () => ({ connections: node.connections() }) })
    .addRoute({ method: 'GET', path: '/v1/counters', handler: () => ({ counters: node.counters.snapshot() }) })
    .addRoute({ method: 'GET', path: '/v1/alerts', handler: () => ({ alerts: node.alerts.list(), active: node.alerts.active() }) })
    .addRoute({ method: 'GET', path: '/metrics', handler: () => rawResponse(PROMETHEUS_CONTENT_TYPE, node.counters.renderPrometheus()) })
    .addRoute({ method: 'GET', path: '/v1/dids/:number', handler: ({ params }) => node.fetchDid(params.number ?? '') })
    .addRoute({ method: 'GET', path: '/v1/store/dids/:number', handler: ({ params }) => node.heldLocally(params.number ?? '') })
    .addRoute({
      method: 'POST',
      path: '/v1/dids/lookup',
      handler: async ({ body }) => {
        const b = objectBody(body);
        const concurrency = b.concurrency ?? 64;
        if (typeof concurrency !== 'number' || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
          throw badRequest('concurrency must be an integer from 1 to 1024');
        }
        return node.lookupDids(requestedNumbers(b), { concurrency, timings: b.timings === true });
      },
    })
    .addRoute({
      method: 'POST',
      path: '/v1/ring/ping',
      handler: async ({ body }) => {
        const b = objectBody(body);
        const count = b.count ?? 1;
        if (typeof b.peerId !== 'string') throw badRequest('peerId is required');
        if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 100_000) throw badRequest('count must be 1–100000');
        return { latenciesMs: await node.pingPeer(b.peerId, count) };
      },
    })
    .addRoute({
      method: 'POST',
      path: '/v1/dids',
      audit: 'publish-dids',
      handler: async ({ body }) => {
        const b = objectBody(body);
        if (typeof b.vserviceId !== 'string' || b.vserviceId.length === 0 || b.vserviceId.length > 64) {
          throw badRequest('vserviceId must be 1–64 characters');
        }
        return node.publish(b.vserviceId, requestedNumbers(b));
      },
    })
    .addRoute({
      method: 'DELETE',
      path: '/v1/dids',
      audit: 'withdraw-dids',
      handler: async ({ body }) => node.withdraw(requestedNumbers(objectBody(body))),
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/dht/global/storagequota',
      audit: 'set-storage-quota',
      handler: () => {
        // The guide: "only allowed on a bootstrap server" (L8432).
        throw new ImeError('E_BOOTSTRAP_ONLY', 'the global storage quota can only be set on a bootstrap server');
      },
    });
}
