import { isIP } from 'node:net';
import { LOG_LEVELS, isLogLevel } from '@ime/runtime';
import { UsageError, optionInteger, optionString } from '../args.js';
import { type Json, adminCommand, dots } from '../admin-command.js';
import { adminClient } from '../admin-target.js';
import type { Command } from '../command.js';

/**
 * Operations common to every role (SPEC §8): log levels while running and the audit log, through
 * the component's admin API (`--admin URL --token-file FILE` name which component). Also the
 * guide's server settings of a peer: customer information (L1792–L1815) and its public address
 * (L1826–L1838).
 */

interface LevelsView {
  level: string;
  modules: Record<string, string>;
  known: { module: string; level: string }[];
}

function levelLines(v: LevelsView): string[] {
  const modules = [
    ...v.known.map((k) => ({ module: k.module, level: k.level, note: v.modules[k.module] === undefined ? '' : '(set)' })),
    // A level set for a module that has not logged yet still applies once it does.
    ...Object.entries(v.modules)
      .filter(([m]) => !v.known.some((k) => k.module === m))
      .map(([module, level]) => ({ module, level, note: '(set; has not logged yet)' })),
  ];
  const width = Math.max(6, ...modules.map((m) => m.module.length));
  return [`Default level: ${v.level}`, `${'Module'.padEnd(width)}  Level`, ...modules.map((m) => `${m.module.padEnd(width)}  ${m.level.padEnd(5)}  ${m.note}`.trimEnd())];
}

export const setLogLevel = adminCommand(
  ['set', 'log', 'level'],
  "change a component's log level while running: the default, or one module's (audited; a restart goes back to the configuration)",
  async ({ options, args }) => {
    const level = args.LEVEL ?? '';
    const module = optionString(options, 'module');
    if (level === 'default' && module === undefined) throw new UsageError('E_CLI_MISSING_OPTION', '`default` returns a module to the default level: give --module M');
    if (level !== 'default' && !isLogLevel(level)) throw new UsageError('E_LOG_LEVEL', `unknown log level ${JSON.stringify(level.slice(0, 20))} (use one of ${LOG_LEVELS.join(', ')}, or default with --module)`);
    const body: Json = module === undefined ? { level } : { module, level: level === 'default' ? null : level };
    const r = await (await adminClient(options)).put<LevelsView>('/v1/log/levels', body);
    const what = module === undefined ? `default log level set to ${level}` : level === 'default' ? `module ${module} follows the default level (${r.level}) again` : `module ${module} logs at ${level}`;
    return { json: r as unknown as Json, human: [what] };
  },
  {
    args: [{ name: 'LEVEL', description: `${LOG_LEVELS.join(', ')}; or default (with --module) to drop a module's own level` }],
    options: [{ name: 'module', type: 'string', valueName: 'M', description: 'a module such as ring or vap (see `ime show log levels`); its sub-modules follow it' }],
    examples: ['ime set log level debug --module ring', 'ime set log level default --module ring', 'ime set log level warn'],
  },
);

export const showLogLevels = adminCommand(['show', 'log', 'levels'], "a component's default log level and the level of each of its modules", async ({ options }) => {
  const r = await (await adminClient(options)).get<LevelsView>('/v1/log/levels');
  return { json: r as unknown as Json, human: levelLines(r) };
});

interface AuditEntryView {
  time: string;
  actor: string;
  action: string;
  params: unknown;
  outcome: string;
  error?: { code: string; message: string };
}

export const showAudit = adminCommand(
  ['show', 'audit'],
  "the last administrative changes made to a component, with their outcome (its append-only audit log; secrets masked)",
  async ({ options }) => {
    const last = optionInteger(options, 'last') ?? 20;
    if (last < 1 || last > 10_000) throw new UsageError('E_CLI_BAD_VALUE', '--last must be from 1 to 10000');
    const r = await (await adminClient(options)).get<{ file: string; entries: AuditEntryView[]; unreadable: number; truncated: boolean }>(`/v1/audit?last=${last}`);
    const human = [
      ...(r.entries.length === 0 ? ['no administrative changes recorded'] : []),
      ...r.entries.map(
        (e) => `${e.time}  ${e.outcome === 'success' ? 'ok     ' : 'REFUSED'}  ${e.action}  ${e.actor}  ${JSON.stringify(e.params)}${e.error ? `  ${e.error.code}: ${e.error.message}` : ''}`,
      ),
      ...(r.unreadable > 0 ? [`(${r.unreadable} unreadable line(s) skipped: a write torn by a crash?)`] : []),
      `audit log: ${r.file}`,
    ];
    return { json: r as unknown as Json, human };
  },
  { options: [{ name: 'last', type: 'integer', valueName: 'N', description: 'how many of the latest entries (default 20)' }] },
);

const CUSTOMER_OPTIONS = [
  ['company', 'company', 'Company name'],
  ['unit', 'unit', 'Unit name (city or department)'],
  ['state', 'state', 'State'],
  ['country', 'country', 'Country'],
  ['contact-name', 'contactName', 'Support contact name'],
  ['contact-email', 'contactEmail', 'Support contact e-mail'],
  ['contact-phone', 'contactPhone', 'Support contact phone'],
] as const;

function customerLines(info: Record<string, string>): string[] {
  return CUSTOMER_OPTIONS.map(([, key, label]) => `${dots(label, 34)} ${info[key] || '(not set)'}`);
}

export const setCustomerInfo = adminCommand(
  ['set', 'customerinfo'],
  "set who runs this IME server and whom support should contact (only the fields given change; \"\" clears one)",
  async ({ options }) => {
    const body: Json = {};
    for (const [option, key] of CUSTOMER_OPTIONS) {
      const v = optionString(options, option);
      if (v !== undefined) body[key] = v;
    }
    if (Object.keys(body).length === 0) throw new UsageError('E_CLI_MISSING_OPTION', `give at least one of ${CUSTOMER_OPTIONS.map(([o]) => `--${o}`).join(', ')}`);
    const r = await (await adminClient(options)).put<{ customerInfo: Record<string, string> }>('/v1/customerinfo', body);
    return { json: r, human: ['customer information set:', ...customerLines(r.customerInfo)] };
  },
  {
    options: CUSTOMER_OPTIONS.map(([name, , label]) => ({ name, type: 'string', valueName: 'TEXT', description: label })),
    examples: ['ime set customerinfo --company "Acme Corp" --country US --contact-email noc@acme.example --contact-phone "+1 408 555 0100"'],
  },
);

export const showCustomerInfo = adminCommand(['show', 'customerinfo'], "this IME server's company and support contact", async ({ options }) => {
  const r = await (await adminClient(options)).get<{ customerInfo: Record<string, string> }>('/v1/customerinfo');
  return { json: r, human: customerLines(r.customerInfo) };
});

export const setPublicIpAddrV4 = adminCommand(
  ['set', 'addressing', 'publicipaddrv4'],
  'the public (NAT) IPv4 address other peers dial to reach this one; `none` removes it. The bootstrap is told at once',
  async ({ options, args }) => {
    const text = args.ADDRESS ?? '';
    if (text !== 'none' && isIP(text) !== 4) throw new UsageError('E_ADDRESS_INVALID', `${JSON.stringify(text.slice(0, 64))} is not an IPv4 address (or none)`);
    const r = await (await adminClient(options)).put<{ publicIpAddrV4: string | null; announced: boolean; addresses: string[]; code?: string }>(
      '/v1/addressing/publicipaddrv4',
      { address: text === 'none' ? null : text },
    );
    const human = [
      r.publicIpAddrV4 === null ? 'public address removed' : `Public IP Address = ${r.publicIpAddrV4}`,
      r.announced
        ? `announced to the bootstrap: ${r.addresses.join(', ')}`
        : `kept, but no bootstrap could be told (${r.code ?? 'unreachable'}); it is announced at the next start or certificate renewal`,
    ];
    return { json: r as unknown as Json, human };
  },
  { args: [{ name: 'ADDRESS', description: 'IPv4 address, e.g. 65.65.65.65, or none' }], examples: ['ime set addressing publicipaddrv4 65.65.65.65'] },
);

export const OPS_COMMANDS: readonly Command[] = [setLogLevel, showLogLevels, showAudit, setCustomerInfo, showCustomerInfo, setPublicIpAddrV4];
