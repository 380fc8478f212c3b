import { type CallRecord, type CallSide, PstnSwitch, pstnConfigSchema } from '@ime/pstn-sim';
import type { AdminClient } from '@ime/runtime';
import { UsageError, optionInteger, optionString } from '../args.js';
import { type Json, adminCommand } from '../admin-command.js';
import { adminClient } from '../admin-target.js';
import type { Command, CommandContext } from '../command.js';
import { roleOptions, runRole } from './roles.js';

/** The simulated PSTN switch: `ime pstn start`, and placing calls through a running one. */

/** A switch started with the default configuration listens here; `--admin` says otherwise. */
export const DEFAULT_PSTN_ADMIN_URL = `http://${pstnConfigSchema.admin.fields.listen.default}`;

function pstnClient(options: CommandContext['options']): Promise<AdminClient> {
  return adminClient({ ...options, admin: optionString(options, 'admin') ?? DEFAULT_PSTN_ADMIN_URL });
}

export const pstnStart: Command = {
  path: ['pstn', 'start'],
  summary: 'run the simulated PSTN switch that call-manager simulators attach to, until interrupted',
  options: roleOptions,
  examples: ['ime pstn start --print-default-config > pstn.yaml', 'ime pstn start --config pstn.yaml'],
  run: (ctx) =>
    runRole(ctx, 'pstn', pstnConfigSchema, async (config, log) => {
      const sw = await PstnSwitch.start(config, { log });
      return {
        ready: { name: sw.name, admin: sw.adminUrl, tokenFile: sw.adminTokenFile, clockSkewMs: sw.clockSkewMs },
        summary: `PSTN switch ${sw.name} ready: admin ${sw.adminUrl} (token in ${sw.adminTokenFile}); clock skew ±${sw.clockSkewMs} ms`,
        stop: () => sw.stop(),
      };
    }),
};

function sideLine(direction: string, side: CallSide): string {
  const who = side.domain === null ? 'unknown subscriber (no call manager attached)' : side.domain;
  let outcome = '';
  if (side.attached) {
    if (side.notified) {
      const vcr = side.answer?.vcr;
      const reason = side.answer?.reason;
      outcome = typeof vcr === 'string' ? `, VCR ${vcr}${typeof reason === 'string' ? ` (${reason})` : ''}` : ', notified';
    } else outcome = `, NOT notified: ${side.error?.code ?? 'unknown error'}${side.error?.message ? ` ${side.error.message}` : ''}`;
  }
  return `  ${direction.padEnd(11)} ${side.number}  ${who}${outcome}`;
}

function callLines(c: CallRecord): string[] {
  return [
    `${c.callId}: ${c.from} → ${c.to}, ${c.durationSec} s, ${c.answered ? 'answered' : 'not answered'}, ${c.route === 'ime' ? 'over IME (learned route)' : 'over the PSTN'}`,
    `  caller id shown: ${c.callerId === '' ? '(withheld)' : c.callerId}; ${c.start} – ${c.stop}${c.skewMs === 0 ? '' : `; terminating clock ${c.skewMs > 0 ? '+' : ''}${c.skewMs} ms`}`,
    sideLine('originating', c.originating),
    sideLine('terminating', c.terminating),
  ];
}

export const pstnCall = adminCommand(
  ['pstn', 'call'],
  "place a simulated PSTN call; both enterprises' call managers are told and upload VCRs",
  async ({ options }) => {
    const body: Json = { from: optionString(options, 'from'), to: optionString(options, 'to') };
    const duration = optionInteger(options, 'duration');
    if (duration !== undefined) body.durationSec = duration;
    const callerId = optionString(options, 'caller-id');
    if (options['withhold-caller-id'] && callerId !== undefined) {
      throw new UsageError('E_CLI_CONFLICTING_OPTIONS', '--withhold-caller-id and --caller-id exclude each other');
    }
    if (options['withhold-caller-id']) body.callerId = 'withheld';
    else if (callerId !== undefined) body.callerId = callerId;
    if (options['no-answer']) body.answered = false;
    const skew = optionInteger(options, 'skew-ms');
    if (skew !== undefined) body.skewMs = skew;
    const r = await (await pstnClient(options)).post<{ call: CallRecord }>('/v1/calls', body);
    return { json: r, human: callLines(r.call) };
  },
  {
    options: [
      { name: 'from', type: 'string', required: true, valueName: '+E164', description: 'calling number' },
      { name: 'to', type: 'string', required: true, valueName: '+E164', description: 'called number' },
      { name: 'duration', type: 'integer', valueName: 'SECONDS', description: 'call length (default 60; simulated, nobody waits)' },
      { name: 'withhold-caller-id', type: 'boolean', description: 'the called party sees no caller id' },
      { name: 'caller-id', type: 'string', valueName: '+E164', description: 'caller id shown to the called party instead of --from' },
      { name: 'no-answer', type: 'boolean', description: 'the call rings out unanswered' },
      { name: 'skew-ms', type: 'integer', valueName: 'MS', description: "shift the terminating side's times by exactly this much (default: random within the switch's clockSkewMs)" },
    ],
    examples: ['ime pstn call --from +14085551000 --to +12125550100 --admin http://127.0.0.1:9623 --token-file pstn/admin.token'],
  },
);

export const pstnShowLines = adminCommand(['pstn', 'show', 'lines'], 'call managers attached to the switch and the numbers they own', async ({ options }) => {
  const r = await (await pstnClient(options)).get<{ lines: { domain: string; patterns: string[]; exclusions: string[]; attachedAt: string }[] }>('/v1/lines');
  const human = r.lines.length === 0
    ? ['no call manager attached']
    : r.lines.map((l) => `${l.domain}  ${l.patterns.join(' ')}${l.exclusions.length > 0 ? `  except ${l.exclusions.join(' ')}` : ''}  (since ${l.attachedAt})`);
  return { json: r, human };
});

export const pstnShowCalls = adminCommand(['pstn', 'show', 'calls'], 'recent calls, newest first', async ({ options }) => {
  const r = await (await pstnClient(options)).get<{ calls: CallRecord[] }>('/v1/calls');
  return { json: r, human: r.calls.length === 0 ? ['no calls yet'] : r.calls.flatMap(callLines) };
});

/** Registered in main.ts. `--admin` defaults to the switch's default admin address, not the peer's. */
export const PSTN_COMMANDS: readonly Command[] = [pstnStart, pstnCall, pstnShowLines, pstnShowCalls];
