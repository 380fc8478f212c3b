import { rmSync } from 'node:fs';
import { Cast, type CastComponent, MAX_CAST_ENTERPRISES } from '@ime/harness';
import { UsageError, optionInteger } from '../args.js';
import type { Command } from '../command.js';
import { EXIT_OK } from '../output.js';
import { LOCAL_RING_OPTIONS, parseLocalRingOptions } from './local-ring-options.js';
import { waitForStop } from './roles.js';

/**
 * `ime ring up`: the demo's cast — bootstrap, peers, PSTN, one call manager per enterprise — left
 * running for a developer until SIGINT/SIGTERM. Every component is its own process (as an operator
 * runs it), so one can be killed and restarted by hand; the ready line says where each one's admin API
 * and token file are.
 */

function describe(c: CastComponent): string[] {
  const who = [c.role.padEnd(9), c.name.padEnd(12), (c.domain ?? '').padEnd(18), c.peerId ?? ''].join(' ').trimEnd();
  const lines = [`  ${who}`, `      admin ${c.admin}  token ${c.tokenFile}`];
  if (c.listen.length > 0) lines.push(`      listen ${c.listen.join(' ')}`);
  if (c.role === 'cm') {
    lines.push(`      peer ${String(c.peer)}, patterns ${(c.patterns as string[]).join(' ')}${(c.exclusions as string[]).length ? ` minus ${(c.exclusions as string[]).join(' ')}` : ''}, VAP user ${String(c.vapUser)}`);
    lines.push(`      ticket epoch ${String(c.ticketEpoch)}, ticket password in ${String(c.ticketPasswordFile)}`);
  }
  return lines;
}

export const ringUp: Command = {
  path: ['ring', 'up'],
  summary: 'start a local ring (bootstrap, peers, PSTN, call managers) and keep it running until Ctrl-C',
  options: [
    ...LOCAL_RING_OPTIONS,
    { name: 'enterprises', type: 'integer', valueName: 'M', description: `enterprises, each a call manager on its own peer (default 3, at most ${MAX_CAST_ENTERPRISES}): acme, globex, initech, then enterprise-N` },
    { name: 'revalidate-after', type: 'integer', valueName: 'SECONDS', description: 'the one-hour rule: seconds before a called number is validated again (default 3600; small values for tests)' },
    { name: 'keepalive', type: 'integer', valueName: 'SECONDS', description: 'VAP keepalive interval of every peer’s VAP server (default 30)' },
    { name: 'in-process', type: 'boolean', description: 'run the bootstrap and peers inside this process (starts faster; the simulators stay processes)' },
  ],
  examples: [
    'ime ring up --json > ring.json     # then read the admin URLs and token files from the last line',
    'ime pstn call --from +14085550100 --to +12125551001 --admin <pstn admin> --token-file <pstn token>',
  ],
  async run({ options, out, stopSignal }) {
    const enterprises = optionInteger(options, 'enterprises') ?? 3;
    if (enterprises < 1 || enterprises > MAX_CAST_ENTERPRISES) throw new UsageError('E_CLI_BAD_VALUE', `--enterprises must be 1–${MAX_CAST_ENTERPRISES}`);
    const { peers, basePort, dataDir } = parseLocalRingOptions(options, Math.max(3, enterprises));
    const revalidateAfterSec = optionInteger(options, 'revalidate-after');
    if (revalidateAfterSec !== undefined && (revalidateAfterSec < 1 || revalidateAfterSec > 30 * 86_400)) throw new UsageError('E_CLI_BAD_VALUE', '--revalidate-after must be 1–2592000 seconds');
    const keepaliveSec = optionInteger(options, 'keepalive');
    if (keepaliveSec !== undefined && (keepaliveSec < 1 || keepaliveSec > 3600)) throw new UsageError('E_CLI_BAD_VALUE', '--keepalive must be 1–3600 seconds');

    out.info(`Starting a local ring: ${peers} peers, ${enterprises} enterprise(s)${dataDir !== undefined ? `, files in ${dataDir}` : ''}…`);
    const cast = await Cast.start({
      peers,
      enterprises,
      mode: options['in-process'] === true ? 'in-process' : 'process',
      logLevel: 'warn',
      ...(basePort !== undefined ? { basePort } : {}),
      ...(dataDir !== undefined ? { dir: dataDir, keep: true } : {}),
      ...(revalidateAfterSec !== undefined ? { revalidateAfterSec } : {}),
      ...(keepaliveSec !== undefined ? { keepaliveSec } : {}),
      progress: (line) => out.info(`  … ${line}`),
    });
    try {
      if (stopSignal.aborted) return EXIT_OK;
      const components = cast.components();
      const pstn = components.find((c) => c.role === 'pstn');
      out.result({ ready: true, dir: cast.ring.dir, components }, [
        `Ring ready (files in ${cast.ring.dir}):`,
        ...components.flatMap(describe),
        '',
        'Try:',
        `  npx ime pstn call --from +14085550100 --to +12125551001 --admin ${pstn?.admin} --token-file ${pstn?.tokenFile}`,
        '  npx ime cm show routes --admin <cm admin> --token-file <cm token>      (after two calls to two numbers of one enterprise)',
        '  npx ime show validator validations --admin <peer admin> --token-file <peer token>',
        'Ctrl-C stops everything.',
      ]);
      await waitForStop(stopSignal);
      out.info('Stopping the ring…');
      return EXIT_OK;
    } finally {
      await cast.stop();
      if (dataDir === undefined) rmSync(cast.ring.dir, { recursive: true, force: true });
    }
  },
};
