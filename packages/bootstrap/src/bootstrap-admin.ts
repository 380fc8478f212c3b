import { ImeError } from '@ime/core';
import { type AdminServer, PROMETHEUS_CONTENT_TYPE, rawResponse } from '@ime/runtime';
import { isRecord } from './bootstrap-checks.js';
import { PARAMETER_SETTINGS, type ParameterSetting } from './bootstrap-state.js';
import type { BootstrapServer } from './bootstrap-server.js';

/**
 * The bootstrap's admin API (what `ime bootstrap …` and `ime show …` call). Every route needs the
 * admin token; every change is audited (`<dataDir>/audit.log`) with its real outcome. Bodies come
 * from outside: their shape is checked here (E_ADMIN_BAD_REQUEST), their values by the server's
 * methods (E_TOKEN_REQUEST, E_PEER_ID, E_BAN_REASON, E_MOTD_INVALID, E_QUOTA_INVALID, …).
 */

function badRequest(message: string): ImeError {
  return new ImeError('E_ADMIN_BAD_REQUEST', message);
}

/** A JSON object body with only the named keys; `required` ones must be present. */
function objectBody(body: unknown, allowed: readonly string[], required: readonly string[] = []): Record<string, unknown> {
  const b = body === undefined && required.length === 0 ? {} : body;
  if (!isRecord(b)) throw badRequest('the request body must be a JSON object');
  for (const key of Object.keys(b)) {
    if (!allowed.includes(key)) throw badRequest(`unknown field ${JSON.stringify(key.slice(0, 40))} (allowed: ${allowed.join(', ')})`);
  }
  for (const key of required) {
    if (b[key] === undefined) throw badRequest(`the field ${key} is required`);
  }
  return b;
}

function stringField(b: Record<string, unknown>, key: string): string | undefined {
  const v = b[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badRequest(`${key} must be a string`);
  return v;
}

function integerField(b: Record<string, unknown>, key: string): number | undefined {
  const v = b[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badRequest(`${key} must be an integer`);
  return v;
}

export function registerBootstrapAdminRoutes(admin: AdminServer, server: BootstrapServer): void {
  admin
    .addOperationsRoutes()
    .addRoute({ method: 'GET', path: '/v1/summary', handler: () => server.summary() })
    .addRoute({ method: 'GET', path: '/v1/peerid', handler: () => ({ peerId: server.peerId }) })
    .addRoute({
      method: 'GET',
      path: '/v1/addressing',
      handler: () => ({
        peerId: server.peerId,
        addresses: server.addresses,
        // What peers put in their `bootstraps` list.
        bootstrapAddresses: server.addresses.map((a) => `${a}/p2p/${server.peerId}`),
        admin: server.adminUrl,
      }),
    })
    .addRoute({ method: 'GET', path: '/v1/counters', handler: () => ({ counters: server.counters.snapshot() }) })
    .addRoute({ method: 'GET', path: '/v1/alerts', handler: () => ({ alerts: server.alerts.list(), active: server.alerts.active() }) })
    .addRoute({ method: 'GET', path: '/metrics', handler: () => rawResponse(PROMETHEUS_CONTENT_TYPE, server.counters.renderPrometheus()) })
    .addRoute({
      method: 'GET',
      path: '/v1/configuration',
      handler: () => {
        const current = server.currentConfiguration();
        if (current === undefined) throw new ImeError('E_CONFIGURATION_NOT_FOUND', 'no ring configuration has been issued yet');
        const c = current.config;
        return {
          sequence: c.sequence,
          issuedAt: new Date(c.issuedAtMs).toISOString(),
          expires: new Date(c.expiresAtMs).toISOString(),
          ringName: c.ringName,
          roster: c.roster,
          parameters: c.parameters,
          bans: c.bans,
          minSoftwareVersion: c.minSoftwareVersion,
          messageOfTheDay: c.messageOfTheDay,
          bootstraps: c.bootstraps,
          signed: Buffer.from(current.encoded).toString('base64'),
        };
      },
    })
    .addRoute({
      method: 'POST',
      path: '/v1/tokens',
      audit: 'create-enrollment-token',
      handler: async ({ body }) => {
        const b = objectBody(body, ['domain', 'validHours', 'note']);
        const domain = stringField(b, 'domain');
        const validHours = integerField(b, 'validHours');
        const note = stringField(b, 'note');
        const { token, expiresAtMs } = await server.createToken({
          ...(domain === undefined ? {} : { domain }),
          ...(validHours === undefined ? {} : { validHours }),
          ...(note === undefined ? {} : { note }),
        });
        return { token, expires: new Date(expiresAtMs).toISOString(), domain: domain?.toLowerCase() ?? null };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/tokens', handler: () => ({ tokens: server.tokens() }) })
    .addRoute({
      method: 'GET',
      path: '/v1/roster',
      handler: () => ({ sequence: server.currentConfiguration()?.config.sequence ?? 0, peers: server.roster(), bans: server.bans() }),
    })
    .addRoute({
      method: 'POST',
      path: '/v1/peers/:peerId/admit',
      audit: 'admit-peer',
      handler: async ({ params, body }) => {
        objectBody(body, []);
        return { peerId: params.peerId, ...(await server.admit(params.peerId ?? '')) };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/bans', handler: () => ({ bans: server.bans() }) })
    .addRoute({
      method: 'POST',
      path: '/v1/bans',
      audit: 'ban-peer',
      handler: async ({ body }) => {
        const b = objectBody(body, ['peerId', 'reason'], ['peerId']);
        const peerId = stringField(b, 'peerId') ?? '';
        return { peerId, ...(await server.ban(peerId, stringField(b, 'reason') ?? '')) };
      },
    })
    .addRoute({
      method: 'DELETE',
      path: '/v1/bans/:peerId',
      audit: 'unban-peer',
      handler: async ({ params, body }) => {
        objectBody(body, []);
        return { peerId: params.peerId, ...(await server.unban(params.peerId ?? '')) };
      },
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/motd',
      audit: 'set-motd',
      handler: async ({ body }) => {
        const b = objectBody(body, ['text'], ['text']);
        return server.setMessageOfTheDay(stringField(b, 'text') ?? '');
      },
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/dht/global/storagequota',
      audit: 'set-storage-quota',
      handler: async ({ body }) => {
        const b = objectBody(body, ['quota'], ['quota']);
        return server.setStorageQuota(integerField(b, 'quota') ?? 0);
      },
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/min-version',
      audit: 'set-min-version',
      handler: async ({ body }) => {
        const b = objectBody(body, ['version'], ['version']);
        return server.setMinSoftwareVersion(stringField(b, 'version') ?? '');
      },
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/parameters',
      audit: 'set-parameters',
      handler: async ({ body }) => {
        const b = objectBody(body, PARAMETER_SETTINGS);
        const partial: Partial<Record<ParameterSetting, number | null>> = {};
        for (const [key, v] of Object.entries(b)) {
          if (v !== null && (typeof v !== 'number' || !Number.isSafeInteger(v))) throw badRequest(`${key} must be an integer or null`);
          partial[key as ParameterSetting] = v;
        }
        return server.setParameters(partial);
      },
    })
    .addRoute({
      method: 'GET',
      path: '/v1/state/export',
      // A read, but of the CA's private key: who took a copy belongs in the audit log.
      audit: 'export-state',
      handler: () => server.exportState(),
    });
}
