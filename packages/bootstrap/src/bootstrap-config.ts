import { DEFAULT_RING_NAME, DEFAULT_RING_PARAMETERS, DEFAULT_VIRTUAL_NODES } from '@ime/admission';
import { ImeError } from '@ime/core';
import { type InferConfig, type ParseConfigOptions, adminConfigField, defineConfigSchema, logConfigField, parseConfigText } from '@ime/runtime';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';

const DAY_SEC = 86_400;

/**
 * `ime bootstrap start --config FILE`. The schema is data, so `--print-default-config` and the
 * README's configuration reference are generated from it and cannot drift. Limits follow what a
 * signed configuration may carry (`validateRingConfiguration`), so a file that loads always yields
 * configurations peers accept; relations between keys are checked by `checkBootstrapConfig`.
 */
export const bootstrapConfigSchema = defineConfigSchema({
  name: {
    type: 'string',
    required: true,
    example: 'bootstrap-1',
    pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}',
    description: 'Name of this bootstrap in logs and in `ime ring up` output.',
  },
  dataDir: {
    type: 'path',
    default: './data',
    description: 'Directory of the LevelDB database (identity, ring authority, enrollments, tokens, bans, settings), the admin token and the audit log.',
  },
  listen: {
    type: 'string[]',
    default: ['/ip4/0.0.0.0/tcp/6080'],
    maxItems: 8,
    description: 'libp2p listen addresses as multiaddrs (enrollment, configuration polls, bootstrap sync).',
  },
  announce: {
    type: 'string[]',
    default: [],
    maxItems: 8,
    description: 'Addresses peers should dial (e.g. the public address behind NAT); empty means the listen addresses. Published in the configuration\'s bootstrap list.',
  },
  identityKeyFile: {
    type: 'path',
    description:
      "PEM file (PKCS#8) holding this bootstrap's Ed25519 libp2p key, made by `ime bootstrap identity --key FILE --create` (or `openssl genpkey -algorithm ed25519`). Its PeerId is known before the first start, so peers' and other bootstraps' configuration files can name it. Default: a key made on first start and kept in the database.",
  },
  admin: adminConfigField('127.0.0.1:9621'),
  log: logConfigField,
  ringName: {
    type: 'string',
    default: DEFAULT_RING_NAME,
    pattern: '[a-z0-9.-]{1,64}',
    description: 'Name of the ring, fixed when the ring authority is created (first start); later starts must keep it.',
  },
  admission: {
    type: 'string',
    enum: ['auto', 'manual'],
    default: 'auto',
    description: 'auto: an enrolled peer joins the roster at once; manual: it waits for `ime bootstrap admit <PeerId>`.',
  },
  ordinal: {
    type: 'integer',
    default: 0,
    min: 0,
    max: 7,
    description: 'Distinct number of this bootstrap among the bootstraps of one ring; it keeps their configuration sequences distinct.',
  },
  peerBootstraps: {
    type: 'string[]',
    default: [],
    maxItems: 15,
    pattern: '/.+/p2p/[1-9A-HJ-NP-Za-km-z]+',
    description: 'The other bootstraps of this ring as multiaddrs ending in /p2p/<PeerId>; state is synchronised with them and only they may sync.',
  },
  importState: {
    type: 'path',
    description: 'A state file exported from another bootstrap of the ring (`GET /v1/state/export`); used only when the data directory holds no ring authority yet.',
  },
  parameters: {
    type: 'object',
    description: 'Ring parameters published in the configuration; settings made through the admin API override them.',
    fields: {
      replicationFactor: { type: 'integer', default: DEFAULT_RING_PARAMETERS.replicationFactor, min: 1, max: 7, description: 'N: replicas of each DID record.' },
      writeQuorum: { type: 'integer', default: DEFAULT_RING_PARAMETERS.writeQuorum, min: 1, max: 7, description: 'W: replicas that must accept a write (at most N).' },
      readQuorum: { type: 'integer', default: DEFAULT_RING_PARAMETERS.readQuorum, min: 1, max: 7, description: 'R: replicas that must agree on a read (at most N).' },
      recordTtlSec: { type: 'integer', default: DEFAULT_RING_PARAMETERS.recordTtlSec, min: 60, max: 7 * DAY_SEC, description: 'Lifetime of a DID record.' },
      republishIntervalSec: {
        type: 'integer',
        default: DEFAULT_RING_PARAMETERS.republishIntervalSec,
        min: 1,
        max: 7 * DAY_SEC - 1,
        description: 'How often publishers republish their records (less than recordTtlSec).',
      },
      storageQuota: { type: 'integer', default: DEFAULT_RING_PARAMETERS.storageQuota, min: 0, max: 1_000_000_000, description: 'DIDs one peer may publish (`ime set dht global storagequota`).' },
      pollIntervalSec: { type: 'integer', default: DEFAULT_RING_PARAMETERS.pollIntervalSec, min: 1, max: 3600, description: 'How often peers poll a bootstrap for a newer configuration.' },
      virtualNodes: { type: 'integer', default: DEFAULT_VIRTUAL_NODES, min: 1, max: 64, description: 'Virtual nodes given to a newly enrolled peer (license peercount).' },
    },
  },
  configurationLifetimeSec: {
    type: 'integer',
    default: 7 * DAY_SEC,
    min: 60,
    max: 365 * DAY_SEC,
    description: 'Validity of a signed configuration; it is re-signed every quarter of this, so peers never hold an expired one while a bootstrap runs.',
  },
  certificateValidityDays: { type: 'integer', default: 365, min: 1, max: 3650, description: 'Validity of a peer certificate.' },
  renewBeforeDays: {
    type: 'integer',
    default: 30,
    min: 0,
    max: 3649,
    description: 'A peer refreshing its enrollment gets a new certificate when its current one expires within this many days.',
  },
  syncIntervalSec: { type: 'integer', default: 5, min: 1, max: 3600, description: 'How often state is exchanged with each peer bootstrap (also right after every local change).' },
});

export type BootstrapConfig = InferConfig<typeof bootstrapConfigSchema>;

export interface PeerBootstrapAddress {
  readonly peerId: string;
  /** The multiaddr without its /p2p/ part: what is dialled and published. */
  readonly address: string;
}

/**
 * Relations the schema cannot express (W ≤ N, republish < TTL, renewal inside validity) and the
 * peer bootstrap addresses, parsed. Throws E_CONFIG_RANGE naming the key.
 */
export function checkBootstrapConfig(config: BootstrapConfig): { peerBootstraps: PeerBootstrapAddress[] } {
  const range = (key: string, why: string): ImeError => new ImeError('E_CONFIG_RANGE', `bootstrap configuration: ${key} ${why}`, { key });
  const p = config.parameters;
  if (p.writeQuorum > p.replicationFactor) throw range('parameters.writeQuorum', 'must not exceed parameters.replicationFactor');
  if (p.readQuorum > p.replicationFactor) throw range('parameters.readQuorum', 'must not exceed parameters.replicationFactor');
  if (p.republishIntervalSec >= p.recordTtlSec) throw range('parameters.republishIntervalSec', 'must be less than parameters.recordTtlSec');
  if (config.renewBeforeDays >= config.certificateValidityDays) throw range('renewBeforeDays', 'must be less than certificateValidityDays');
  const peerBootstraps = config.peerBootstraps.map((text, i) => parsePeerBootstrap(text, `peerBootstraps.${i}`));
  const ids = new Set(peerBootstraps.map((b) => b.peerId));
  if (ids.size !== peerBootstraps.length) throw range('peerBootstraps', 'names the same bootstrap twice');
  return { peerBootstraps };
}

export function parsePeerBootstrap(text: string, key = 'peerBootstraps'): PeerBootstrapAddress {
  try {
    const components = multiaddr(text).getComponents();
    const last = components.at(-1);
    if (last?.name !== 'p2p' || last.value === undefined) throw new Error('it does not end in /p2p/<PeerId>');
    const id = peerIdFromString(last.value);
    if (id.type !== 'Ed25519') throw new Error('the PeerId is not an Ed25519 one');
    const address = text.replace(/\/p2p\/[^/]+$/, '');
    if (address === '') throw new Error('it has no address before /p2p/');
    return { peerId: id.toString(), address };
  } catch (err) {
    throw new ImeError('E_CONFIG_RANGE', `bootstrap configuration: ${key} is not a multiaddr ending in /p2p/<PeerId> (${(err as Error).message})`, { key });
  }
}

/**
 * A configuration from an object (defaults filled, paths resolved against `baseDir`), validated as a
 * file would be: for `ime ring up`, which writes no file, and for tests.
 */
export function bootstrapConfigFrom(value: Record<string, unknown>, options: ParseConfigOptions = {}): BootstrapConfig {
  return parseConfigText(JSON.stringify(value), 'json', bootstrapConfigSchema, { source: 'bootstrap configuration', ...options });
}
