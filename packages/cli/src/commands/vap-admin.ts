import { readFileSync, writeFileSync } from 'node:fs';
import { UsageError, optionInteger, optionString } from '../args.js';
import { type Json, adminCommand, dots } from '../admin-command.js';
import { adminClient } from '../admin-target.js';
import type { Command } from '../command.js';
import { readSecret, secretOptions } from '../secret-input.js';

/**
 * VAP administration of a peer (guide L1686–L1741, L3872–L3928): instances, credentials, the
 * registered call managers, their Vservices and the VCRs they uploaded.
 */

interface ServerView {
  settings: {
    name: string;
    host: string;
    port: number;
    authenticationMode: string;
    enabled: boolean;
    keepaliveIntervalSec: number;
    maxConnectionsAllowed: number;
  };
  listening: boolean;
  boundPort?: number;
  connections: number;
  registered?: number;
}

function serverLines(s: ServerView): string[] {
  const p = s.settings;
  return [
    `${dots('VAP Server Name', 28)} ${p.name}`,
    `${dots('Port', 28)} ${p.port}${s.boundPort !== undefined && s.boundPort !== p.port ? ` (listening on ${s.boundPort})` : ''}`,
    `${dots('Listen Address', 28)} ${p.host}`,
    `${dots('Authentication Mode', 28)} ${p.authenticationMode}`,
    `${dots('Enabled', 28)} ${p.enabled ? 'true' : 'false'}${p.enabled && !s.listening ? ' (not listening)' : ''}`,
    `${dots('Keepalive Interval (sec)', 28)} ${p.keepaliveIntervalSec}`,
    `${dots('Max Connections Allowed', 28)} ${p.maxConnectionsAllowed}`,
    `${dots('Connections', 28)} ${s.connections}`,
  ];
}

const MODES = ['authenticated', 'encrypted'];

export const addVapServer = adminCommand(
  ['add', 'vapserver'],
  'add a named VAP server instance (one per call-manager cluster, each with its own port)',
  async ({ options }) => {
    const name = optionString(options, 'name') as string;
    const mode = optionString(options, 'authentication-mode');
    if (mode !== undefined && !MODES.includes(mode)) throw new UsageError('E_CLI_BAD_VALUE', '--authentication-mode must be authenticated or encrypted');
    const body: Json = { name };
    const port = optionInteger(options, 'port');
    if (port !== undefined) body.port = port;
    if (mode !== undefined) body.authenticationMode = mode;
    const host = optionString(options, 'host');
    if (host !== undefined) body.host = host;
    const keepalive = optionInteger(options, 'keepalive-interval');
    if (keepalive !== undefined) body.keepaliveIntervalSec = keepalive;
    const max = optionInteger(options, 'max-connections');
    if (max !== undefined) body.maxConnectionsAllowed = max;
    if (options.disabled === true) body.enabled = false;
    const r = await (await adminClient(options)).post<ServerView>('/v1/vap/servers', body);
    return { json: r as unknown as Json, human: ['VAP server added:', ...serverLines(r)] };
  },
  {
    options: [
      { name: 'name', type: 'string', required: true, valueName: 'NAME', description: 'unique name of the instance' },
      { name: 'port', type: 'integer', valueName: 'PORT', description: 'TCP port (default 5620; 0 picks a free one)' },
      { name: 'authentication-mode', type: 'string', valueName: 'MODE', description: 'authenticated (digest over TCP, default) or encrypted (digest over TLS, recommended)' },
      { name: 'host', type: 'string', valueName: 'ADDRESS', description: "listen address (default the peer's vap.host)" },
      { name: 'keepalive-interval', type: 'integer', valueName: 'SECONDS', description: 'keepalive interval (default 30)' },
      { name: 'max-connections', type: 'integer', valueName: 'N', description: 'maximum call-manager connections (default 16)' },
      { name: 'disabled', type: 'boolean', description: 'add it disabled' },
    ],
    examples: ['ime add vapserver --name cucm-east --port 5620 --authentication-mode encrypted'],
  },
);

export const setVapServer = adminCommand(
  ['set', 'vapserver'],
  'change one setting of a VAP server instance (mode or port changes close its connections)',
  async ({ options, args }) => {
    const r = await (await adminClient(options)).put<ServerView>(
      `/v1/vap/servers/${encodeURIComponent(args.NAME ?? '')}/${encodeURIComponent((args.FIELD ?? '').toLowerCase())}`,
      { value: args.VALUE },
    );
    return { json: r as unknown as Json, human: serverLines(r) };
  },
  {
    args: [
      { name: 'NAME', description: 'the instance' },
      { name: 'FIELD', description: 'authenticationmode | enabled | keepaliveinterval | maxconnectionsallowed | port' },
      { name: 'VALUE', description: 'the new value' },
    ],
    examples: ['ime set vapserver cucm-east authenticationmode encrypted', 'ime set vapserver cucm-east enabled false'],
  },
);

export const showVapServer = adminCommand(
  ['show', 'vapserver'],
  'VAP server instances: `all` or one by name',
  async ({ options, args }) => {
    const client = await adminClient(options);
    const name = args.NAME ?? 'all';
    if (name === 'all') {
      const r = await client.get<{ servers: ServerView[] }>('/v1/vap/servers');
      const human = r.servers.length === 0 ? ['no VAP servers (add one with `ime add vapserver`)'] : r.servers.flatMap((s, i) => [...(i > 0 ? [''] : []), ...serverLines(s)]);
      return { json: r as unknown as Json, human };
    }
    const r = await client.get<ServerView>(`/v1/vap/servers/${encodeURIComponent(name)}`);
    return { json: r as unknown as Json, human: serverLines(r) };
  },
  { args: [{ name: 'NAME', description: '`all` or an instance name' }] },
);

export const addVapUserCredentials = adminCommand(
  ['add', 'vapusercredentials'],
  "set a VAP instance's credentials: the call manager's application user and password, the ticket password and epoch",
  async ({ options }) => {
    const epoch = optionInteger(options, 'epoch') as number;
    const r = await (await adminClient(options)).post<{ credentials: { instance: string; username: string; epoch: number }[] }>('/v1/vap/credentials', {
      server: optionString(options, 'server'),
      username: optionString(options, 'username'),
      password: readSecret(options, 'password', true),
      ticketPassword: readSecret(options, 'ticket-password', true),
      epoch,
    });
    return { json: r as unknown as Json, human: r.credentials.map((c) => `${c.instance}: user ${c.username}, ticket epoch ${c.epoch}`) };
  },
  {
    options: [
      { name: 'server', type: 'string', required: true, valueName: 'NAME', description: 'the VAP server instance' },
      { name: 'username', type: 'string', required: true, valueName: 'USER', description: "the call manager's application user" },
      ...secretOptions('password', "the application user's password"),
      ...secretOptions('ticket-password', 'the ticket password shared with the edge firewall (10–64 printable characters, no space)'),
      { name: 'epoch', type: 'integer', required: true, valueName: 'N', description: 'ticket epoch, 1–255 (must match the firewall)' },
    ],
    examples: ['ime add vapusercredentials --server cucm-east --username imeuser --password-file pw.txt --ticket-password-file ticket.txt --epoch 1'],
  },
);

interface SessionView {
  handle: number;
  instance: string;
  username: string;
  clientAddress: string;
  registrationStatus: string;
  connectedAtMs: number;
  packetsSent: number;
  packetsReceived: number;
  missedKeepalives: number;
}

function upTime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 3600)} hours ${Math.floor((s % 3600) / 60)} min ${s % 60} sec`;
}

export const showVapStatusSummary = adminCommand(['show', 'vapstatus', 'summary'], 'call managers connected over VAP (guide L3879–L3887)', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ clients: SessionView[] }>('/v1/vap/status');
  const now = Date.now();
  const human =
    r.clients.length === 0
      ? ['VAP Client Connection Details', 'no call manager is connected']
      : r.clients.flatMap((c, i) => [
          ...(i > 0 ? [''] : []),
          'VAP Client Connection Details',
          `${dots('Registration Status', 26)} ${c.registrationStatus}`,
          `${dots('Client IP ADDR', 26)} ${c.clientAddress}`,
          `${dots('Client Handle', 26)} ${c.handle}`,
          `${dots('Packets Sent', 26)} ${c.packetsSent}`,
          `${dots('Packets Rcvd', 26)} ${c.packetsReceived}`,
          `${dots('VAPServer Name', 26)} ${c.instance}`,
          `${dots('Missed Keep Alive Count', 26)} ${c.missedKeepalives}`,
          `${dots('Connection Up Time', 26)} ${upTime(now - c.connectedAtMs)}`,
        ]);
  return { json: r as unknown as Json, human };
});

interface VserviceView {
  vservice: { profileName: string; id: string; domain: string; sipUri: string; maxDidCount: number };
  didCount: number;
  enrollment?: { groups: { name: string; patterns: string[] }[]; exclusions: string[] };
}

export const showVserviceDetails = adminCommand(['show', 'vservice', 'details'], 'Vservices the call managers published (guide L3921–L3928)', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ vservices: VserviceView[] }>('/v1/vservices');
  const human =
    r.vservices.length === 0
      ? ['no Vservice published']
      : r.vservices.flatMap(({ vservice: v, didCount, enrollment }, i) => [
          ...(i > 0 ? [''] : []),
          `VServiceProfiles: ${v.profileName}`,
          `VServiceId = ${v.id}`,
          'overlay = intercompanymedianetwork',
          `domain = ${v.domain}`,
          `DiDCount (max) = ${v.maxDidCount}`,
          `DiDCount (enrolled) = ${didCount}`,
          `SIPURI = ${v.sipUri}`,
          ...(enrollment ? [`patterns = ${enrollment.groups.flatMap((g) => g.patterns).join(', ')}`, `exclusions = ${enrollment.exclusions.join(', ') || '(none)'}`] : []),
        ]);
  return { json: r as unknown as Json, human };
});

export const showVapCertificate = adminCommand(
  ['show', 'vap', 'certificate'],
  "this peer's VAP certificate, which call managers in encrypted mode must trust",
  async ({ options }) => {
    const r = await (await adminClient(options)).get<{ certPem: string; subject: string; fingerprint256: string; validTo: string }>('/v1/vap/certificate');
    const out = optionString(options, 'out');
    if (out !== undefined) {
      writeFileSync(out, r.certPem);
      return { json: { ...r, file: out }, human: [`certificate written to ${out}`, `SHA-256 fingerprint ${r.fingerprint256}, valid to ${r.validTo}`] };
    }
    return { json: r as unknown as Json, human: [r.certPem.trimEnd(), `SHA-256 fingerprint ${r.fingerprint256}, valid to ${r.validTo}`] };
  },
  { options: [{ name: 'out', type: 'string', valueName: 'FILE', description: 'write the PEM certificate to this file' }] },
);

export const addVapTrustedCertificate = adminCommand(
  ['add', 'vap', 'trustedcertificate'],
  "trust a call manager's certificate for encrypted VAP (restarts encrypted instances)",
  async ({ options }) => {
    const file = optionString(options, 'file') as string;
    let certPem: string;
    try {
      certPem = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError('E_CLI_FILE', `cannot read --file ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
    const r = await (await adminClient(options)).post<{ certificates: { subject: string; fingerprint256: string }[] }>('/v1/vap/trust', { certPem });
    return { json: r as unknown as Json, human: [`${r.certificates.length} trusted call-manager certificate(s):`, ...r.certificates.map((c) => `  ${c.subject}  ${c.fingerprint256}`)] };
  },
  { options: [{ name: 'file', type: 'string', required: true, valueName: 'FILE', description: "the call manager's PEM certificate" }] },
);

interface VcrView {
  calling: string;
  called: string;
  startMs: number;
  stopMs: number;
  direction: string;
  callId: string;
  source: string;
}

export const showVcrs = adminCommand(
  ['show', 'vcrs'],
  'voice call records the call managers uploaded, newest last',
  async ({ options }) => {
    const direction = optionString(options, 'direction') ?? 'terminating';
    if (direction !== 'terminating' && direction !== 'originating') throw new UsageError('E_CLI_BAD_VALUE', '--direction must be terminating or originating');
    const limit = optionInteger(options, 'limit') ?? 20;
    const r = await (await adminClient(options)).get<{ counts: { terminating: number; originating: number }; vcrs: VcrView[] }>(
      `/v1/vcrs?direction=${direction}&limit=${limit}`,
    );
    const human = [
      `${r.counts.terminating} terminating and ${r.counts.originating} originating VCRs stored`,
      ...r.vcrs.map((v) => `  ${new Date(v.startMs).toISOString()}  ${v.calling} → ${v.called}  ${Math.round((v.stopMs - v.startMs) / 1000)} s  ${v.direction}  (${v.source})`),
    ];
    return { json: r as unknown as Json, human };
  },
  {
    options: [
      { name: 'direction', type: 'string', valueName: 'DIR', description: 'terminating (default) or originating' },
      { name: 'limit', type: 'integer', valueName: 'N', description: 'at most N records (default 20)' },
    ],
  },
);

export const VAP_ADMIN_COMMANDS: readonly Command[] = [
  addVapServer,
  setVapServer,
  showVapServer,
  addVapUserCredentials,
  showVapStatusSummary,
  showVserviceDetails,
  showVapCertificate,
  addVapTrustedCertificate,
  showVcrs,
];
