import { X509Certificate } from 'node:crypto';
import { ImeError } from '@ime/core';
import type { AdminServer } from '@ime/runtime';
import type { PeerVapService } from './vap-service.js';

/**
 * The admin routes behind `ime add/set/show vapserver`, `ime add vapusercredentials`, `ime show
 * vapstatus summary`, `ime show vservice details`, `ime show vap certificate` and `ime show vcrs`.
 * Changes are audited; the audit log masks every field whose name says password.
 */

const SETTABLE = ['authenticationmode', 'enabled', 'keepaliveinterval', 'maxconnectionsallowed', 'port'] as const;
type SettableField = (typeof SETTABLE)[number];

function bad(message: string): ImeError {
  return new ImeError('E_ADMIN_BAD_REQUEST', message);
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function optional<T>(b: Record<string, unknown>, key: string, type: 'string' | 'number' | 'boolean'): T | undefined {
  const v = b[key];
  if (v === undefined) return undefined;
  if (typeof v !== type) throw bad(`${key} must be a ${type}`);
  return v as T;
}

function required<T>(b: Record<string, unknown>, key: string, type: 'string' | 'number'): T {
  const v = optional<T>(b, key, type);
  if (v === undefined) throw bad(`${key} is required`);
  return v;
}

export function registerVapAdminRoutes(admin: AdminServer, vap: () => PeerVapService): void {
  const vcrs = () => vap().vcrs;
  admin
    .addRoute({ method: 'GET', path: '/v1/vap/servers', handler: () => ({ servers: vap().servers.list() }) })
    .addRoute({
      method: 'GET',
      path: '/v1/vap/servers/:name',
      handler: ({ params }) => {
        const found = vap().servers.list().find((s) => s.settings.name === params.name);
        if (!found) throw new ImeError('E_VAP_SERVER_NOT_FOUND', `no VAP server named ${params.name ?? ''}`);
        return found;
      },
    })
    .addRoute({
      method: 'POST',
      path: '/v1/vap/servers',
      audit: 'add-vapserver',
      handler: async ({ body }) => {
        const b = objectBody(body);
        const mode = optional<string>(b, 'authenticationMode', 'string');
        if (mode !== undefined && mode !== 'authenticated' && mode !== 'encrypted') throw bad('authenticationMode must be authenticated or encrypted');
        const settings = {
          name: required<string>(b, 'name', 'string'),
          ...(optional(b, 'host', 'string') === undefined ? {} : { host: b.host as string }),
          ...(optional(b, 'port', 'number') === undefined ? {} : { port: b.port as number }),
          ...(mode === undefined ? {} : { authenticationMode: mode as 'authenticated' | 'encrypted' }),
          ...(optional(b, 'enabled', 'boolean') === undefined ? {} : { enabled: b.enabled as boolean }),
          ...(optional(b, 'keepaliveIntervalSec', 'number') === undefined ? {} : { keepaliveIntervalSec: b.keepaliveIntervalSec as number }),
          ...(optional(b, 'maxConnectionsAllowed', 'number') === undefined ? {} : { maxConnectionsAllowed: b.maxConnectionsAllowed as number }),
        };
        await vap().servers.add(settings);
        return vap().servers.list().find((s) => s.settings.name === settings.name);
      },
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/vap/servers/:name/:field',
      audit: 'set-vapserver',
      handler: async ({ params, body }) => {
        const field = (params.field ?? '').toLowerCase();
        if (!(SETTABLE as readonly string[]).includes(field)) throw bad(`the field must be one of ${SETTABLE.join(', ')}`);
        const value = objectBody(body).value;
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw bad('value is required');
        await vap().servers.set(params.name ?? '', field as SettableField, String(value));
        return vap().servers.list().find((s) => s.settings.name === params.name);
      },
    })
    .addRoute({
      method: 'POST',
      path: '/v1/vap/credentials',
      audit: 'add-vapusercredentials',
      handler: async ({ body }) => {
        const b = objectBody(body);
        const server = required<string>(b, 'server', 'string');
        await vap().setCredentials(server, {
          username: required<string>(b, 'username', 'string'),
          password: required<string>(b, 'password', 'string'),
          ticketPassword: required<string>(b, 'ticketPassword', 'string'),
          epoch: required<number>(b, 'epoch', 'number'),
        });
        return { credentials: vap().servers.credentials() };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/vap/credentials', handler: () => ({ credentials: vap().servers.credentials() }) })
    .addRoute({ method: 'GET', path: '/v1/vap/status', handler: () => ({ clients: vap().sessions() }) })
    .addRoute({ method: 'GET', path: '/v1/vservices', handler: () => ({ vservices: vap().vservices() }) })
    .addRoute({
      method: 'GET',
      path: '/v1/vap/certificate',
      handler: () => {
        const { certPem } = vap().certificate();
        const x = new X509Certificate(certPem);
        return { certPem, subject: x.subject, fingerprint256: x.fingerprint256, validTo: new Date(x.validTo).toISOString() };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/vap/trust', handler: () => ({ certificates: vap().servers.trustedCertificates() }) })
    .addRoute({
      method: 'POST',
      path: '/v1/vap/trust',
      audit: 'trust-vap-certificate',
      handler: async ({ body }) => {
        await vap().servers.trustCertificate(required<string>(objectBody(body), 'certPem', 'string'));
        return { certificates: vap().servers.trustedCertificates() };
      },
    })
    .addRoute({
      method: 'GET',
      path: '/v1/vcrs',
      handler: async ({ query }) => {
        const direction = query.direction ?? 'terminating';
        if (direction !== 'terminating' && direction !== 'originating') throw bad('direction must be terminating or originating');
        const limit = query.limit === undefined ? 100 : Number(query.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw bad('limit must be 1–10000');
        return { counts: vcrs().counts(), vcrs: await vcrs().list(direction, limit) };
      },
    });
}
