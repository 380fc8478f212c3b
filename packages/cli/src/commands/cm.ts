import { parseE164 } from '@ime/core';
import { CallManagerSimulator, type CmStatus, type RouteView, cmConfigSchema } from '@ime/cm-sim';
import type { AdminClient } from '@ime/runtime';
import { UsageError, checkArgument, optionString, optionTime } from '../args.js';
import { type Json, adminCommand, dots } from '../admin-command.js';
import { adminClient } from '../admin-target.js';
import type { Command, CommandContext } from '../command.js';
import { roleOptions, runRole } from './roles.js';

/** The call-manager simulator: `ime cm start`, and administration of a running one (INTERFACES.md). */

/** A simulator started with the default configuration listens here; `--admin` says otherwise. */
export const DEFAULT_CM_ADMIN_URL = `http://${cmConfigSchema.admin.fields.listen.default}`;

function cmClient(options: CommandContext['options']): Promise<AdminClient> {
  return adminClient({ ...options, admin: optionString(options, 'admin') ?? DEFAULT_CM_ADMIN_URL });
}

const STATUS_TEXT = ['0 (unknown)', '1 (healthy)', '2 (unhealthy)'];

export const cmStart: Command = {
  path: ['cm', 'start'],
  summary: 'run a call-manager simulator (VAP client of an IME peer) until interrupted',
  options: roleOptions,
  examples: ['ime cm start --print-default-config > cm.yaml', 'ime cm start --config cm.yaml'],
  run: (ctx) =>
    runRole(ctx, 'cm', cmConfigSchema, async (config, log) => {
      const cm = await CallManagerSimulator.start(config, { log });
      // The ready line says whether the first registration worked; later ones go on in the background.
      await cm.firstConnection();
      const s = cm.status();
      return {
        ready: {
          name: cm.name,
          domain: cm.domain,
          admin: cm.adminUrl,
          tokenFile: cm.adminTokenFile,
          state: s.state,
          serviceStatus: s.serviceStatus,
          servers: s.servers.map((t) => t.address),
          vapUser: cm.vapUsername,
          vserviceId: s.vservice.id,
          patterns: s.enrollment.patterns,
          exclusions: s.enrollment.exclusions,
          pstnCallback: cm.callbackUrl ?? null,
          ...(s.clientCertificateFile === null ? {} : { clientCertificateFile: s.clientCertificateFile }),
        },
        summary:
          `call manager ${cm.name} (${cm.domain}) ready: admin ${cm.adminUrl} (token in ${cm.adminTokenFile}); ` +
          `IME server ${s.server?.address ?? s.servers.map((t) => t.address).join(' or ')} ${s.state}` +
          (s.lastError === null || s.state === 'registered' ? '' : ` (${s.lastError.code}: ${s.lastError.message})`),
        stop: () => cm.stop(),
      };
    }),
};

function shortTicket(ticket: string): string {
  return ticket.length > 20 ? `${ticket.slice(0, 16)}…` : ticket;
}

export const cmShowRoutes = adminCommand(['cm', 'show', 'routes'], 'learned routes: number, domain, SIP URI, ticket, learned-on, expires-on, admin-enabled', async ({ options }) => {
  const r = await (await cmClient(options)).get<{ routes: RouteView[] }>('/v1/routes');
  const human =
    r.routes.length === 0
      ? ['no learned routes']
      : [
          'E.164            Domain  SIP URI  Ticket  Learned-On  Expires-On  Admin Enabled',
          ...r.routes.map((x) => `${x.number.padEnd(16)} ${x.domain}  ${x.sipUri}  ${shortTicket(x.ticket)}  ${x.learnedOn}  ${x.expiresOn}  ${x.adminEnabled ? 'yes' : 'no'}`),
        ];
  // Exactly the routes object of INTERFACES.md: nothing else on the line.
  return { json: { routes: r.routes }, human };
});

export const cmShowCounters = adminCommand(['cm', 'show', 'counters'], "the call manager's counters by their guide names", async ({ options }) => {
  const r = await (await cmClient(options)).get<{ counters: Record<string, number> }>('/v1/counters');
  const width = Math.max(0, ...Object.keys(r.counters).map((k) => k.length));
  return { json: r, human: Object.entries(r.counters).map(([k, v]) => `${k.padEnd(width)}  ${v}`) };
});

export const cmShowAlerts = adminCommand(['cm', 'show', 'alerts'], "the call manager's alerts, newest first", async ({ options }) => {
  const r = await (await cmClient(options)).get<{ alerts: { time: string; name: string; severity: string; details: unknown }[] }>('/v1/alerts');
  const human = r.alerts.length === 0 ? ['no alerts'] : r.alerts.map((a) => `${a.time}  ${a.severity.padEnd(8)}  ${a.name}  ${JSON.stringify(a.details)}`);
  return { json: r, human };
});

export const cmShowStatus = adminCommand(['cm', 'show', 'status'], 'VAP connection, Vservice, enrollment, VCR queue and PSTN line', async ({ options }) => {
  const s = await (await cmClient(options)).get<CmStatus>('/v1/status');
  const human = [
    `Call manager ${s.name} (${s.domain})`,
    `${dots('Registration Status')} ${s.state === 'registered' ? 'Registered' : s.state}`,
    `${dots('IME Server')} ${s.server === null ? `(none; configured ${s.servers.map((t) => `${t.label} ${t.address}`).join(', ')})` : `${s.server.label} ${s.server.address}`}`,
    `${dots('Security Mode')} ${s.mode}`,
    `${dots('VAPStatus')} ${STATUS_TEXT[s.serviceStatus] ?? String(s.serviceStatus)}`,
    ...(s.peerId === null ? [] : [`${dots('Peer ID')} ${s.peerId}`, `${dots('Ring Health')} ${String(s.ringHealth)}`]),
    ...(s.registeredSince === null ? [] : [`${dots('Registered Since')} ${s.registeredSince}`]),
    ...(s.lastError === null ? [] : [`${dots('Last Error')} ${s.lastError.code} at ${s.lastError.at} (${s.lastError.server}): ${s.lastError.message}`]),
    `${dots('Reconnect Attempts')} ${s.reconnectAttempts} (every ${s.reconnectIntervalSec} s${s.nextAttemptAt === null ? '' : `, next ${s.nextAttemptAt}`})`,
    `${dots('VServiceId')} ${s.vservice.id} (${s.vservice.published ? 'published' : 'not published'})`,
    `${dots('SIPURI')} ${s.vservice.sipUri}`,
    `${dots('Enrolled Patterns')} ${s.enrollment.patterns.join(' ')}${s.enrollment.exclusions.length > 0 ? ` except ${s.enrollment.exclusions.join(' ')}` : ''}`,
    `${dots('Published Routes')} ${s.enrollment.accepted === null ? '-' : String(s.enrollment.accepted)}${s.enrollment.refused.length > 0 ? ` (${s.enrollment.refused.length} refused: ${s.enrollment.refused[0]?.code})` : ''}`,
    `${dots('VCR Queue')} ${s.vcrQueue.size} of ${s.vcrQueue.max}${s.vcrQueue.dropped > 0 ? `, ${s.vcrQueue.dropped} dropped` : ''}`,
    `${dots('VCRs Skipped')} ${Object.entries(s.vcrSkips).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `${dots('Learned Routes')} ${s.routes}`,
    `${dots('PSTN Line')} ${s.pstn.attached ? `attached to ${s.pstn.admin} (${s.pstn.lines.join(' ')})` : 'not attached'}`,
  ];
  return { json: s as unknown as Json, human };
});

export const cmVcrUpload = adminCommand(
  ['cm', 'vcr', 'upload'],
  'make the call manager upload a VCR for a call that need not have happened (to test refusals)',
  async ({ options }) => {
    const start = optionTime(options, 'start') as number;
    const stop = optionTime(options, 'stop') as number;
    const direction = optionString(options, 'direction') ?? 'originating';
    if (direction !== 'originating' && direction !== 'terminating') throw new UsageError('E_CLI_BAD_VALUE', '--direction must be originating or terminating');
    // The numbers go as typed: refusing a malformed one is the IME server's job, and what is tested.
    const r = await (await cmClient(options)).post<{ accepted: number; vcr: Json }>('/v1/vcrs', {
      calling: optionString(options, 'calling'),
      called: optionString(options, 'called'),
      start: new Date(start).toISOString(),
      stop: new Date(stop).toISOString(),
      direction,
    });
    return { json: r, human: [`VCR accepted by the IME server: ${String(r.vcr.calling)} → ${String(r.vcr.called)} (${direction}), ${String(r.vcr.start)} – ${String(r.vcr.stop)}`] };
  },
  {
    options: [
      { name: 'calling', type: 'string', required: true, valueName: '+E164', description: 'calling number' },
      { name: 'called', type: 'string', required: true, valueName: '+E164', description: 'called number' },
      { name: 'start', type: 'string', required: true, valueName: 'ISO8601', description: 'call start time' },
      { name: 'stop', type: 'string', required: true, valueName: 'ISO8601', description: 'call stop time' },
      { name: 'direction', type: 'string', valueName: 'originating|terminating', description: 'side of the call (default originating)' },
    ],
    examples: ['ime cm vcr upload --calling +14085551000 --called +12125550100 --start 2026-11-24T10:00:00Z --stop 2026-11-24T10:01:00Z --admin http://127.0.0.1:9622'],
  },
);

function routeSwitch(enabled: boolean): Command {
  return adminCommand(
    ['cm', 'route', enabled ? 'enable' : 'disable'],
    enabled ? 'put a learned route back in use' : 'stop using a learned route without deleting it (Admin Enabled off)',
    async ({ options, args }) => {
      const number = checkArgument(() => parseE164(args['+E164']));
      const r = await (await cmClient(options)).request<{ route: RouteView }>('PATCH', `/v1/routes/${encodeURIComponent(number)}`, { adminEnabled: enabled });
      return { json: r, human: [`route to ${r.route.number} (${r.route.domain}) ${r.route.adminEnabled ? 'enabled' : 'disabled'}`] };
    },
    { args: [{ name: '+E164', description: 'the number of the learned route' }] },
  );
}

/** Registered in main.ts. `--admin` defaults to the simulator's default admin address, not the peer's. */
export const CM_COMMANDS: readonly Command[] = [cmStart, cmShowRoutes, cmShowCounters, cmShowAlerts, cmShowStatus, cmVcrUpload, routeSwitch(false), routeSwitch(true)];
