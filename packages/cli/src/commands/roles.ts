import { type ConfigSchema, type InferConfig, type Logger, createLogger, loadConfigFile, renderDefaultConfig } from '@ime/runtime';
import { BootstrapServer, bootstrapConfigSchema } from '@ime/bootstrap';
import { PeerNode, peerConfigSchema } from '@ime/peer';
import { UsageError, optionString } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { EXIT_OK } from '../output.js';

/**
 * `ime <role> start --config FILE`: runs one component until SIGINT/SIGTERM. When it is ready it
 * prints one line — with --json the JSON object the harness and `ime ring up` read — and on a signal
 * it stops cleanly (connections closed, database flushed) and exits 0.
 */

export interface RunningRole {
  readonly ready: Record<string, unknown>;
  readonly summary: string;
  stop(): Promise<void>;
}

export const roleOptions = [
  { name: 'config', type: 'string', valueName: 'FILE', description: 'configuration file (YAML or JSON)' },
  { name: 'print-default-config', type: 'boolean', description: 'print a commented default configuration and exit' },
  { name: 'format', type: 'string', valueName: 'yaml|json', description: 'format of --print-default-config (default yaml)' },
] as const;

export function waitForStop(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

export async function runRole<S extends ConfigSchema>(
  ctx: CommandContext,
  role: string,
  schema: S,
  start: (config: InferConfig<S>, log: Logger) => Promise<RunningRole>,
): Promise<number> {
  const { options, out } = ctx;
  if (options['print-default-config']) {
    const format = optionString(options, 'format') ?? 'yaml';
    if (format !== 'yaml' && format !== 'json') throw new UsageError('E_CLI_BAD_VALUE', '--format must be yaml or json');
    ctx.io.stdout.write(renderDefaultConfig(schema, format, { header: `ime ${role} start --config FILE` }));
    return EXIT_OK;
  }
  const file = optionString(options, 'config');
  if (!file) throw new UsageError('E_CLI_MISSING_OPTION', `missing required option --config FILE (see \`ime ${role} start --print-default-config\`)`);
  const config = await loadConfigFile(file, schema);
  const logSettings = (config as { log?: { level?: string; modules?: Record<string, string>; file?: string } }).log ?? {};
  // The role is the root module, so its parts are named as the configuration names them (`ring`,
  // not `peer.ring`): a `log.modules` entry, and `ime set log level --module`, then find them.
  const log = createLogger({
    level: (logSettings.level ?? 'info') as 'info',
    modules: (logSettings.modules ?? {}) as Record<string, 'info'>,
    sink: logSettings.file ?? 'stderr',
    module: role,
  });
  const running = await start(config, log);
  out.result({ ready: true, role, ...running.ready }, [running.summary]);
  await waitForStop(ctx.stopSignal);
  log.info('stopping');
  await running.stop();
  log.close();
  return EXIT_OK;
}

export const peerStart: Command = {
  path: ['peer', 'start'],
  summary: 'run a ring peer (IME server) until interrupted',
  options: roleOptions,
  examples: ['ime peer start --print-default-config > peer.yaml', 'ime peer start --config peer.yaml'],
  run: (ctx) =>
    runRole(ctx, 'peer', peerConfigSchema, async (config, log) => {
      const node = await PeerNode.start(config, { log });
      const s = node.summary();
      return {
        ready: {
          name: node.name,
          domain: node.domain,
          peerId: node.peerId,
          listen: node.addresses(),
          admin: node.adminUrl,
          tokenFile: node.adminTokenFile,
          health: s.health,
        },
        summary: `peer ${node.name} (${node.domain}) ready: ${node.peerId} on ${node.addresses().join(', ')}; admin ${node.adminUrl} (token in ${node.adminTokenFile}); health ${s.health}`,
        stop: () => node.stop(),
      };
    }),
};

export const bootstrapStart: Command = {
  path: ['bootstrap', 'start'],
  summary: "run a bootstrap server (the ring's enrollment authority) until interrupted",
  options: roleOptions,
  examples: ['ime bootstrap start --print-default-config > bootstrap.yaml', 'ime bootstrap start --config bootstrap.yaml'],
  run: (ctx) =>
    runRole(ctx, 'bootstrap', bootstrapConfigSchema, async (config, log) => {
      const server = await BootstrapServer.start(config, { log });
      return {
        ready: {
          name: server.name,
          peerId: server.peerId,
          listen: server.addresses,
          admin: server.adminUrl,
          tokenFile: server.tokenFile,
          authorityFingerprint: server.authorityFingerprint,
        },
        summary: `bootstrap ${server.name} ready: ${server.peerId} on ${server.addresses.join(', ')}; admin ${server.adminUrl} (token in ${server.tokenFile}); authority ${server.authorityFingerprint}`,
        stop: () => server.stop(),
      };
    }),
};
