import { parseE164 } from '@ime/core';
import { writeFileSync } from 'node:fs';
import { UsageError, checkArgument, optionString, optionStrings } from '../args.js';
import { adminClient } from '../admin-target.js';
import { type Json, adminCommand, dots } from '../admin-command.js';
import type { Command } from '../command.js';
import { EXIT_OK } from '../output.js';

/** Administration of the ring through a running peer's or bootstrap's admin API (INTERFACES.md). */

export const showDhtSummary = adminCommand(['show', 'dht', 'summary'], "this peer's view of the ring: health, bootstrap, configuration", async ({ options }) => {
  const s = await (await adminClient(options)).get<Json>('/v1/dht/summary');
  const human = [
    `Peer ID = ${String(s.peerId)}`,
    `${dots('DHT Health')} = ${String(s.health)}`,
    ...((s.healthReasons as string[] | undefined) ?? []).map((r) => `    why: ${r}`),
    `BootStrap: ${s.bootstrap === null ? '(none reached yet)' : String(s.bootstrap)}`,
    `${dots('Last Contact (sec)')} = ${s.lastContactSec === null ? 'never' : String(s.lastContactSec)}`,
    `${dots('Current Sequence')} = ${String(s.sequence)}`,
    `${dots('Num. Configs Received')} = ${String(s.configsReceived)}`,
    `${dots('Delay from BootStrap')} = ${String(s.hopsFromBootstrap)}`,
    `${dots('Peer Count')} = ${String(s.peerCount)} (${String(s.livePeers)} live)`,
    ...(s.messageOfTheDay ? [`Message of the day: ${String(s.messageOfTheDay)}`] : []),
  ];
  return { json: s, human };
});

export const showPeerId = adminCommand(['show', 'peerid'], "this peer's PeerId (only with a valid ring certificate)", async ({ options }) => {
  const r = await (await adminClient(options)).get<Json>('/v1/peerid');
  return { json: r, human: [String(r.peerId)] };
});

export const showBootstrapIp = adminCommand(['show', 'bootstrap', 'ip'], 'the bootstrap servers this peer uses', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ bootstraps: { peerId: string; address: string; lastAnswered: boolean }[] }>('/v1/bootstrap');
  return { json: r, human: r.bootstraps.map((b) => `${b.address}${b.lastAnswered ? '  (answered last)' : ''}`) };
});

export const showAddressing = adminCommand(['show', 'addressing'], 'ring (DHT) and validator addresses and ports', async ({ options }) => {
  const r = await (await adminClient(options)).get<Json>('/v1/addressing');
  const human = [
    '=====================================',
    // The guide's line (L1852), set with `ime set addressing publicipaddrv4`.
    ...(typeof r.publicIpAddrV4 === 'string' ? [`Public IP Address = ${r.publicIpAddrV4}`] : []),
    ...((r.announce as string[] | undefined)?.length ? [`Public Address = ${(r.announce as string[]).join(', ')}`] : []),
    `Listen Addresses = ${((r.listen as string[] | undefined) ?? []).join(', ')}`,
    `DHT Port = ${String(r.dhtPort)}`,
    `Validator Port = ${String(r.validatorPort)}`,
    '=====================================',
  ];
  return { json: r, human };
});

export const showCounters = adminCommand(['show', 'counters'], 'every counter by its name', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ counters: Record<string, number> }>('/v1/counters');
  const width = Math.max(0, ...Object.keys(r.counters).map((k) => k.length));
  return { json: r, human: Object.entries(r.counters).map(([k, v]) => `${k.padEnd(width)}  ${v}`) };
});

export const showAlerts = adminCommand(['show', 'alerts'], 'raised alerts, newest first', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ alerts: { time: string; name: string; severity: string; details: unknown }[] }>('/v1/alerts');
  const human = r.alerts.length === 0 ? ['no alerts'] : r.alerts.map((a) => `${a.time}  ${a.severity.padEnd(8)}  ${a.name}  ${JSON.stringify(a.details)}`);
  return { json: r, human };
});

export const showRingMembers = adminCommand(['show', 'ring', 'members'], 'ring members as this peer sees them (live or down)', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ members: { peerId: string; live: boolean; virtualNodes: number; neighbour: boolean }[] }>('/v1/ring/members');
  return {
    json: r,
    human: r.members.map((m) => `${m.peerId}  ${m.live ? 'live' : 'DOWN'}  vnodes=${m.virtualNodes}${m.neighbour ? '  neighbour' : ''}`),
  };
});

export const utilsFetchDid = adminCommand(
  ['utils', 'fetch', 'did'],
  'whether a number is in the ring and who claims it',
  async ({ options, args }) => {
    const number = checkArgument(() => parseE164(args['+E164']));
    const r = await (await adminClient(options)).get<{ found: boolean; claims: { peerId: string; vserviceId: string; expires: string }[]; replicas: string[] }>(
      `/v1/dids/${encodeURIComponent(number)}`,
    );
    const human = r.found
      ? [`${number} is in the ring, claimed by:`, ...r.claims.map((c) => `  ${c.peerId}  Vservice ${c.vserviceId}  until ${c.expires}`)]
      : [`${number} is not in the ring`];
    human.push(`replicas: ${r.replicas.join(', ')}`);
    return { json: r, human };
  },
  { args: [{ name: '+E164', description: 'the number' }] },
);

const publishOptions = [
  { name: 'number', type: 'strings', valueName: '+E164', description: 'a number (repeatable)' },
  { name: 'pattern', type: 'strings', valueName: 'PATTERN', description: 'an enrolled pattern such as +14085550XXX (repeatable)' },
  { name: 'exclude', type: 'strings', valueName: '+E164', description: 'an exclusion number (repeatable)' },
] as const;

function publishBody(options: Parameters<Command['run']>[0]['options']): Json {
  const numbers = optionStrings(options, 'number');
  const patterns = optionStrings(options, 'pattern');
  if (numbers.length === 0 && patterns.length === 0) throw new UsageError('E_CLI_MISSING_OPTION', 'give at least one --number or --pattern');
  return { numbers, patterns, exclusions: optionStrings(options, 'exclude') };
}

function reportLines(verb: string, r: { requested: number; published: number; failed: { number: string; code: string }[] }): string[] {
  return [`${verb} ${r.published} of ${r.requested} DIDs`, ...r.failed.slice(0, 20).map((f) => `  ${f.number}: ${f.code}`), ...(r.failed.length > 20 ? [`  … and ${r.failed.length - 20} more`] : [])];
}

export const utilsPublishDid = adminCommand(
  ['utils', 'publish', 'did'],
  "publish numbers into the ring from this peer (what a call manager's enrollment does)",
  async ({ options }) => {
    const vserviceId = optionString(options, 'vservice') as string;
    const r = await (await adminClient(options)).post<{ requested: number; published: number; failed: { number: string; code: string }[] }>('/v1/dids', {
      vserviceId,
      ...publishBody(options),
    });
    return { json: r, human: reportLines('published', r) };
  },
  { options: [{ name: 'vservice', type: 'string', required: true, valueName: 'ID', description: 'Vservice id the numbers belong to' }, ...publishOptions] },
);

export const utilsWithdrawDid = adminCommand(
  ['utils', 'withdraw', 'did'],
  'withdraw numbers this peer published',
  async ({ options }) => {
    const r = await (await adminClient(options)).delete<{ requested: number; published: number; failed: { number: string; code: string }[] }>('/v1/dids', publishBody(options));
    return { json: r, human: reportLines('withdrew', r) };
  },
  { options: [...publishOptions] },
);

export const setStorageQuota = adminCommand(
  ['set', 'dht', 'global', 'storagequota'],
  "the ring's per-peer storage quota in DIDs (bootstrap only)",
  async ({ options, args }) => {
    const quota = Number(args.N);
    if (!/^\d+$/.test(args.N ?? '') || !Number.isSafeInteger(quota)) throw new UsageError('E_CLI_BAD_VALUE', 'N must be a whole number of DIDs');
    const r = await (await adminClient(options)).put<Json>('/v1/dht/global/storagequota', { quota });
    return { json: r, human: [`storage quota set to ${quota} DIDs per peer`] };
  },
  { args: [{ name: 'N', description: 'DIDs each peer may publish' }] },
);

// Bootstrap operator commands.

export const bootstrapSummary = adminCommand(['bootstrap', 'summary'], 'the bootstrap: ring, sequence, roster size, settings', async ({ options }) => {
  const s = await (await adminClient(options)).get<Json>('/v1/summary');
  return { json: s, human: Object.entries(s).map(([k, v]) => `${dots(k, 24)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`) };
});

export const bootstrapTokenCreate = adminCommand(
  ['bootstrap', 'token', 'create'],
  'issue a one-time enrollment token for a new peer',
  async ({ options }) => {
    const validHours = optionString(options, 'valid-hours');
    const body: Json = {};
    const domain = optionString(options, 'domain');
    if (domain) body.domain = domain;
    if (validHours !== undefined) {
      if (!/^\d+$/.test(validHours)) throw new UsageError('E_CLI_BAD_VALUE', '--valid-hours must be a whole number');
      body.validHours = Number(validHours);
    }
    const note = optionString(options, 'note');
    if (note) body.note = note;
    const r = await (await adminClient(options)).post<{ token: string; expires: string }>('/v1/tokens', body);
    const out = optionString(options, 'out');
    if (out) {
      writeFileSync(out, `${r.token}\n`, { mode: 0o600 });
      return { json: { tokenFile: out, expires: r.expires }, human: [`token written to ${out} (expires ${r.expires})`] };
    }
    return { json: r, human: [r.token] };
  },
  {
    options: [
      { name: 'domain', type: 'string', valueName: 'DOMAIN', description: 'only a peer of this domain may use the token' },
      { name: 'valid-hours', type: 'string', valueName: 'H', description: 'how long the token stays valid' },
      { name: 'note', type: 'string', valueName: 'TEXT', description: 'a note for the audit log' },
      { name: 'out', type: 'string', valueName: 'FILE', description: 'write the token to this file (mode 0600) instead of printing it' },
    ],
  },
);

const peerArg = { args: [{ name: 'PEERID', description: 'the peer' }] };

export const bootstrapAdmit = adminCommand(['bootstrap', 'admit'], 'admit an enrolled peer to the roster (manual admission)', async ({ options, args }) => {
  const r = await (await adminClient(options)).post<Json>(`/v1/peers/${encodeURIComponent(args.PEERID ?? '')}/admit`, {});
  return { json: r, human: [`admitted ${args.PEERID}`] };
}, peerArg);

export const bootstrapBan = adminCommand(
  ['bootstrap', 'ban'],
  'ban a peer from the ring (every peer disconnects it)',
  async ({ options, args }) => {
    const r = await (await adminClient(options)).post<Json>('/v1/bans', { peerId: args.PEERID, reason: optionString(options, 'reason') ?? '' });
    return { json: r, human: [`banned ${args.PEERID}`] };
  },
  { ...peerArg, options: [{ name: 'reason', type: 'string', valueName: 'TEXT', description: 'why (shown to the banned peer)' }] },
);

export const bootstrapUnban = adminCommand(['bootstrap', 'unban'], 'lift a ban', async ({ options, args }) => {
  const r = await (await adminClient(options)).delete<Json>(`/v1/bans/${encodeURIComponent(args.PEERID ?? '')}`);
  return { json: r, human: [`unbanned ${args.PEERID}`] };
}, peerArg);

export const bootstrapMotd = adminCommand(
  ['bootstrap', 'motd'],
  'set the message of the day sent to every peer (empty text clears it)',
  async ({ options }) => {
    const text = optionString(options, 'text') as string;
    const r = await (await adminClient(options)).put<Json>('/v1/motd', { text });
    return { json: r, human: [text ? 'message of the day set' : 'message of the day cleared'] };
  },
  { options: [{ name: 'text', type: 'string', required: true, valueName: 'TEXT', description: 'the message' }] },
);

export const bootstrapMinVersion = adminCommand(
  ['bootstrap', 'min-version'],
  'require peers to run at least this software version',
  async ({ options }) => {
    const version = optionString(options, 'version') as string;
    const r = await (await adminClient(options)).put<Json>('/v1/min-version', { version });
    return { json: r, human: [`minimum version set to ${version}`] };
  },
  { options: [{ name: 'version', type: 'string', required: true, valueName: 'X.Y.Z', description: 'the minimum version' }] },
);

export const bootstrapRoster = adminCommand(['bootstrap', 'roster'], 'enrolled peers: admitted, pending, banned', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ sequence: number; peers: { peerId: string; domain: string; admitted: boolean; banned: boolean; inRoster: boolean; addresses: string[] }[] }>('/v1/roster');
  const state = (p: { admitted: boolean; banned: boolean; inRoster: boolean }) => (p.banned ? 'BANNED' : !p.admitted ? 'pending' : p.inRoster ? 'admitted' : 'admitted (next roster)');
  return {
    json: r,
    human: [`configuration sequence ${r.sequence}`, ...r.peers.map((p) => `${p.peerId}  ${p.domain}  ${state(p)}  ${p.addresses.join(', ')}`)],
  };
});

export const bootstrapExportState = adminCommand(
  ['bootstrap', 'export-state'],
  "export the authority's state (INCLUDES THE CA KEY) to start a second bootstrap of the same ring",
  async ({ options }) => {
    const out = optionString(options, 'out') as string;
    const r = await (await adminClient(options)).get<Json>('/v1/state/export');
    writeFileSync(out, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o600 });
    return { json: { out }, human: [`state written to ${out} (mode 0600: it holds the ring CA's private key)`] };
  },
  { options: [{ name: 'out', type: 'string', required: true, valueName: 'FILE', description: 'where to write the state' }] },
);

export const RING_ADMIN_COMMANDS: readonly Command[] = [
  showDhtSummary,
  showPeerId,
  showBootstrapIp,
  showAddressing,
  showCounters,
  showAlerts,
  showRingMembers,
  utilsFetchDid,
  utilsPublishDid,
  utilsWithdrawDid,
  setStorageQuota,
  bootstrapSummary,
  bootstrapTokenCreate,
  bootstrapAdmit,
  bootstrapBan,
  bootstrapUnban,
  bootstrapMotd,
  bootstrapMinVersion,
  bootstrapRoster,
  bootstrapExportState,
];
