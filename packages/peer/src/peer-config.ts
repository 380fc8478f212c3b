import { type InferConfig, adminConfigField, defineConfigSchema, logConfigField } from '@ime/runtime';


/**
 * `ime peer start --config FILE`. The schema is data, so `--print-default-config` and the README's
 * configuration reference are generated from it and cannot drift.
 */
export const peerConfigSchema = defineConfigSchema({
  name: {
    type: 'string',
    required: true,
    example: 'peer-1',
    pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}',
    description: 'Name of this peer in logs and in `ime ring up` output.',
  },
  domain: {
    type: 'string',
    required: true,
    example: 'acme.example',
    maxLength: 128,
    description: "The enterprise's domain; the bootstrap binds it into this peer's ring certificate.",
  },
  contact: { type: 'string', default: '', maxLength: 256, description: 'Operator contact (e-mail or phone) sent with the enrollment request.' },
  dataDir: { type: 'path', default: './data', description: 'Directory of the LevelDB database (records, identity, certificate, configuration).' },
  listen: {
    type: 'string[]',
    default: ['/ip4/0.0.0.0/tcp/6084'],
    maxItems: 8,
    description: 'Ring listen addresses as multiaddrs (the guide\'s DHT port is 6084).',
  },
  announce: {
    type: 'string[]',
    default: [],
    maxItems: 8,
    description: 'Addresses other peers should dial, e.g. the public address behind NAT (`set ime addressing publicipaddrv4`); empty means the listen addresses.',
  },
  validatorPort: {
    type: 'integer',
    default: 8470,
    min: 0,
    max: 65535,
    description: 'Validator port reported by `ime show addressing` (validation shares the ring listener).',
  },
  bootstraps: {
    type: 'string[]',
    required: true,
    example: ['/ip4/127.0.0.1/tcp/6080/p2p/12D3KooWLpRY4BXPQ3Fgv4y8LGSRPxxzX5GySLhTs5ifyyqm3Bwc'],
    maxItems: 16,
    pattern: '/.+/p2p/[1-9A-HJ-NP-Za-km-z]+',
    description: 'Bootstrap servers as multiaddrs ending in /p2p/<PeerId>.',
  },
  enrollmentTokenFile: {
    type: 'path',
    description: 'File holding the one-time enrollment token from the bootstrap operator (needed on first start only).',
  },
  authorityFingerprint: {
    type: 'string',
    pattern: '[0-9a-fA-F]{64}',
    description: 'SHA-256 (hex) of the ring authority certificate; when set, a bootstrap presenting another authority is refused.',
  },
  vap: {
    type: 'object',
    description: 'VAP, where call managers connect (SPEC §5). Instances and credentials are added with `ime add vapserver` and `ime add vapusercredentials` and kept in the database.',
    fields: {
      host: { type: 'string', default: '0.0.0.0', maxLength: 255, description: 'Listen address of VAP instances that do not name one.' },
      certificateFile: {
        type: 'path',
        description: "PEM certificate of this peer's VAP listeners in encrypted mode; default: a self-signed one made on first start and kept in the database (`ime show vap certificate` prints it for the call managers).",
      },
      keyFile: { type: 'path', description: 'PEM private key of certificateFile (both or neither).' },
      vcrRetentionHours: { type: 'integer', default: 48, min: 1, max: 720, description: 'How long terminating VCRs are kept for validation (SPEC §6).' },
    },
  },
  validator: {
    type: 'object',
    description: 'Validation of PSTN calls into learned routes (SPEC §6, docs/VALIDATION.md). The bucket threshold is set with `ime set validator local bucketentropy` and kept in the database.',
    fields: {
      toleranceSec: { type: 'integer', default: 5, min: 1, max: 30, description: 'Clock difference between the two enterprises a validation absorbs (call times are quantised to cells of twice this).' },
      windowSec: { type: 'integer', default: 300, min: 10, max: 600, description: 'Coarse window of the call start sent in the clear to the claimant to pick its candidate calls.' },
      revalidateAfterSec: { type: 'integer', default: 3600, min: 1, max: 604_800, description: 'The one-hour rule: a called number is validated at most once per this interval (guide L270–L273).' },
      delaySec: { type: 'integer', default: 30, min: 0, max: 3600, description: "How long an originating VCR waits before its validation, so that the callee's call manager has uploaded its own VCR." },
      concurrency: { type: 'integer', default: 8, min: 1, max: 256, description: 'Validations run at once.' },
      cryptoThreads: {
        type: 'integer',
        default: 2,
        min: 0,
        max: 16,
        description: "Threads that run the validations' key exchanges (≈ 3 ms of CPU per slot), so a peer validates on more than one core; 0 runs them on the event loop.",
      },
      retryAfterErrorSec: { type: 'integer', default: 10, min: 1, max: 3600, description: 'A validation that could not run (the claimant unreachable, a protocol error) keeps its VCR and is tried again after this long, doubling on each error up to retryAfterErrorMaxSec, until the call is older than the VCR retention.' },
      retryAfterErrorMaxSec: { type: 'integer', default: 600, min: 1, max: 86_400, description: 'Longest wait between two tries of a validation that could not run.' },
      slots: { type: 'integer', default: 3, min: 1, max: 8, description: 'Candidate calls the terminating side tries per attempt (padded with dummies, so the answer never says how many it holds).' },
      maxAttempts: { type: 'integer', default: 6, min: 1, max: 8, description: 'Key exchanges per validation (time cells around the call times, then the start time alone).' },
      pendingHighWatermark: { type: 'integer', default: 100, min: 1, max: 1_000_000, description: 'ValidationsPending above this raises ValidationsPendingExceeded (guide L9527).' },
      pendingLowWatermark: { type: 'integer', default: 80, min: 0, max: 1_000_000, description: 'ValidationsPendingExceeded clears at or below this.' },
      originatingPerMinute: { type: 'integer', default: 600, min: 1, max: 1_000_000, description: 'Validations this peer starts toward one remote peer per minute (BlockedValidationOrigTLSLimit counts postponements).' },
      terminatingPerMinute: { type: 'integer', default: 600, min: 1, max: 1_000_000, description: 'Validation starts and attempts accepted from one remote peer per minute (BlockedValidationTermTLSLimit counts refusals).' },
      burst: { type: 'integer', default: 120, min: 1, max: 1_000_000, description: 'Burst allowed above both rates.' },
    },
  },
  admin: adminConfigField('127.0.0.1:9620'),
  log: logConfigField,
  tuning: {
    type: 'object',
    description: 'Timers of the ring; the defaults suit production, tests use shorter ones.',
    fields: {
      pingIntervalMs: { type: 'integer', default: 5000, min: 50, max: 60_000, description: 'How often ring neighbours are probed (a crashed peer is noticed at once, when its connections close; probes find hung ones).' },
      pingMisses: { type: 'integer', default: 2, min: 1, max: 10, description: 'Missed probes before a neighbour is considered down.' },
      rpcTimeoutMs: { type: 'integer', default: 3000, min: 100, max: 60_000, description: 'Timeout of one ring request.' },
      antiEntropyIntervalSec: { type: 'integer', default: 300, min: 1, max: 86_400, description: 'How often replicas compare their records.' },
      expirySweepSec: { type: 'integer', default: 600, min: 1, max: 86_400, description: 'How often expired records, and those of publishers no longer admitted, are deleted.' },
    },
  },
});

export type PeerConfig = InferConfig<typeof peerConfigSchema>;
