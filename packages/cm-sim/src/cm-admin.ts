import { ImeError, parseE164 } from '@ime/core';
import { type AdminServer, PROMETHEUS_CONTENT_TYPE, rawResponse } from '@ime/runtime';
import type { CallManagerSimulator } from './cm-simulator.js';

/**
 * The call manager's admin API (what `ime cm …` calls). Every route needs the admin token; route
 * switches and manual VCRs are audited. PSTN events are also accepted here, so an operator can
 * replay one, but the switch itself posts them to the separate callback listener with its own token.
 */
export function registerCmAdminRoutes(admin: AdminServer, cm: CallManagerSimulator): void {
  admin
    .addOperationsRoutes()
    .addRoute({ method: 'GET', path: '/v1/status', handler: () => cm.status() })
    .addRoute({ method: 'GET', path: '/v1/routes', handler: () => ({ routes: cm.routes() }) })
    .addRoute({
      method: 'PATCH',
      path: '/v1/routes/:number',
      audit: 'cm-route-admin-enabled',
      handler: async ({ params, body }) => {
        const number = parseE164(params.number);
        const enabled = (body as { adminEnabled?: unknown } | undefined)?.adminEnabled;
        if (typeof enabled !== 'boolean') throw new ImeError('E_ADMIN_BAD_REQUEST', 'the body must be {"adminEnabled": true|false}');
        return { route: await cm.setRouteEnabled(number, enabled) };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/counters', handler: () => ({ counters: cm.counters.snapshot() }) })
    .addRoute({ method: 'GET', path: '/v1/alerts', handler: () => ({ alerts: cm.alerts.list(), active: cm.alerts.active() }) })
    .addRoute({ method: 'POST', path: '/v1/vcrs', audit: 'cm-vcr-upload', handler: ({ body }) => cm.uploadVcr(body) })
    .addRoute({ method: 'GET', path: '/metrics', handler: () => rawResponse(PROMETHEUS_CONTENT_TYPE, cm.counters.renderPrometheus()) });
  registerPstnEventRoute(admin, cm);
}

/**
 * `POST /v1/pstn/events`: a call the PSTN switch reports. Audited where the listener keeps an audit
 * log (the admin API, where an operator replays one); the switch's own callback listener keeps none.
 */
export function registerPstnEventRoute(server: AdminServer, cm: CallManagerSimulator): void {
  server.addRoute({ method: 'POST', path: '/v1/pstn/events', audit: 'cm-pstn-event', handler: ({ body }) => cm.handlePstnEvent(body) });
}
