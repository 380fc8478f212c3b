import { type AdminServer, PROMETHEUS_CONTENT_TYPE, rawResponse } from '@ime/runtime';
import type { PstnSwitch } from './pstn-switch.js';

/**
 * The switch's admin API: call managers attach here (with the switch's admin token), and
 * `ime pstn call` places calls. Attachments and calls are audited: they change what the
 * enterprises' call managers are told.
 */
export function registerPstnAdminRoutes(admin: AdminServer, sw: PstnSwitch): void {
  admin
    .addOperationsRoutes()
    .addRoute({ method: 'GET', path: '/v1/lines', handler: () => ({ lines: sw.lines() }) })
    .addRoute({ method: 'POST', path: '/v1/lines', audit: 'pstn-attach', handler: ({ body }) => sw.attach(body) })
    .addRoute({
      method: 'DELETE',
      path: '/v1/lines/:domain',
      audit: 'pstn-detach',
      handler: ({ params }) => {
        sw.detach(params.domain ?? '');
        return { detached: params.domain };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/calls', handler: () => ({ calls: sw.calls() }) })
    .addRoute({ method: 'POST', path: '/v1/calls', audit: 'pstn-call', handler: async ({ body }) => ({ call: await sw.placeCall(body) }) })
    .addRoute({ method: 'GET', path: '/v1/status', handler: () => ({ name: sw.name, lines: sw.lines().length, clockSkewMs: sw.clockSkewMs, calls: sw.counters.get('PstnCallsPlaced') }) })
    .addRoute({ method: 'GET', path: '/v1/alerts', handler: () => ({ alerts: sw.alerts.list(), active: sw.alerts.active() }) })
    .addRoute({ method: 'GET', path: '/v1/counters', handler: () => ({ counters: sw.counters.snapshot() }) })
    .addRoute({ method: 'GET', path: '/metrics', handler: () => rawResponse(PROMETHEUS_CONTENT_TYPE, sw.counters.renderPrometheus()) });
}
