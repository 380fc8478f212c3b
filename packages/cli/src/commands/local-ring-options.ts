import { type OptionSpec, type ParsedOptions, UsageError, optionInteger, optionString } from '../args.js';

/** The options `ime demo` and `ime ring up` share: how big a local ring, where its ports and files go. */
export const LOCAL_RING_OPTIONS: readonly OptionSpec[] = [
  { name: 'peers', type: 'integer', valueName: 'N', description: 'ring peers to start (default 4, at least 3 and one per enterprise)' },
  { name: 'base-port', type: 'integer', valueName: 'P', description: 'first of the consecutive 127.0.0.1 ports to use (default: free ports)' },
  { name: 'data', type: 'string', valueName: 'DIR', description: 'keep the ring’s files (configurations, databases, logs, tokens) here instead of a temporary directory' },
];

export interface LocalRingOptions {
  readonly peers: number;
  readonly basePort?: number;
  readonly dataDir?: string;
}

export function parseLocalRingOptions(options: ParsedOptions, minPeers = 3): LocalRingOptions {
  const peers = optionInteger(options, 'peers') ?? 4;
  if (peers < minPeers || peers > 32) throw new UsageError('E_CLI_BAD_VALUE', `--peers must be ${minPeers}–32 (three for replication, one per enterprise)`);
  const basePort = optionInteger(options, 'base-port');
  if (basePort !== undefined && (basePort < 1024 || basePort > 65000)) throw new UsageError('E_CLI_BAD_VALUE', '--base-port must be 1024–65000');
  const dataDir = optionString(options, 'data');
  return { peers, ...(basePort !== undefined ? { basePort } : {}), ...(dataDir !== undefined ? { dataDir } : {}) };
}
