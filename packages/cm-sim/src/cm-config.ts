import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  ImeError,
  isImeError,
  parseDomain,
  parseE164,
  parseEnrolledPattern,
  parseExclusionNumber,
  parseTrustElement,
} from '@ime/core';
import { type InferConfig, adminConfigField, defineConfigSchema, logConfigField } from '@ime/runtime';

/**
 * `ime cm start --config FILE`: one simulated call manager (a CUCM cluster with one Intercompany
 * Media Service) — its Vservice, enrolled patterns, exclusions and trust lists, its IME server
 * connection (guide L2473–L2549) and its line on the simulated PSTN. The config schema has no list
 * of objects, so the guide's trust groups are flattened into four lists. Relations between keys and
 * the guide's syntax of patterns, exclusions and trust elements are checked by `checkCmConfig`.
 */

const HOST_PORT = '[A-Za-z0-9.-]{1,253}:[0-9]{1,5}';
/** The guide's range (L2543); values below it exist for tests only. */
export const GUIDE_MIN_RECONNECT_SEC = 60;

export const cmConfigSchema = defineConfigSchema({
  name: {
    type: 'string',
    required: true,
    example: 'cucm-acme',
    pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,49}',
    description: 'Name of this call manager (the guide allows 50 characters); also the default Vservice profile name and the seed of the default Vservice id.',
  },
  domain: {
    type: 'string',
    required: true,
    example: 'acme.example',
    maxLength: 128,
    description: "The enterprise's domain, published in the Vservice (it must match the domain of the enterprise's edge certificate).",
  },
  vservice: {
    type: 'object',
    description: 'The Intercompany Media Service published as a Vservice when the simulator registers (guide L3904–L3928).',
    fields: {
      profileName: { type: 'string', maxLength: 50, description: 'Vservice profile name (the service name); default the call manager name.' },
      id: { type: 'string', pattern: '[A-Za-z0-9._-]{1,64}', description: 'VServiceId; default 16 hex digits derived from the name, so it is stable across restarts.' },
      sipUri: {
        type: 'string',
        maxLength: 256,
        pattern: 'sips?:.+',
        description: 'SIP URI other enterprises reach this service at; default sip:<uuid>@<domain>:5060;transport=tcp with a uuid derived from the name.',
      },
      maxDidCount: { type: 'integer', default: 100, min: 1, max: 10_000_000, description: 'Largest number of DIDs the service may publish (DiDCount (max), guide L3925).' },
    },
  },
  enrolledGroup: { type: 'string', default: 'default', pattern: '.{1,32}', description: 'Name of the enrolled group holding the patterns (1–32 characters).' },
  enrolledPatterns: {
    type: 'string[]',
    required: true,
    example: ['+14085551XXX'],
    maxItems: 1000,
    description: 'Enrolled patterns: "+", at most 15 characters, up to 3 trailing X (guide L2854). The peer expands them minus the exclusions.',
  },
  exclusions: { type: 'string[]', default: [], maxItems: 10_000, description: 'Exclusion numbers: exact +E.164 numbers carved out of the patterns (fax, analog lines).' },
  trustedDomains: { type: 'string[]', default: [], maxItems: 1000, description: 'Whitelisted domains: when any whitelist entry is set, only routes and callers matching one are trusted.' },
  blockedDomains: { type: 'string[]', default: [], maxItems: 1000, description: 'Blacklisted domains: their routes are rejected and their validations refused.' },
  trustedPrefixes: {
    type: 'string[]',
    default: [],
    maxItems: 1000,
    description: 'Whitelisted number prefixes: "+" and up to 15 digits (that exact number) or up to 14 digits then "!" (every longer number starting so).',
  },
  blockedPrefixes: { type: 'string[]', default: [], maxItems: 1000, description: 'Blacklisted number prefixes, written like trustedPrefixes.' },
  fallbackNumber: { type: 'string', pattern: '\\+[0-9]{1,15}', description: 'Fallback DID advertised for PSTN fallback (informational in the simulator).' },
  vap: {
    type: 'object',
    description: 'The IME server connection (guide L2473–L2549).',
    fields: {
      primary: { type: 'string', required: true, example: '127.0.0.1:5620', pattern: HOST_PORT, description: "The primary IME server's VAP address, host:port (VAP's default port is 5620)." },
      secondary: { type: 'string', pattern: HOST_PORT, description: 'An optional secondary IME server, host:port; it must differ from the primary.' },
      mode: {
        type: 'string',
        enum: ['authenticated', 'encrypted'],
        default: 'authenticated',
        description: 'authenticated: digest over TCP (the guide\'s default); encrypted: digest over TLS, which the guide strongly recommends.',
      },
      username: { type: 'string', required: true, example: 'vapuser', maxLength: 128, description: 'Application user: the VAP username of the IME server.' },
      passwordFile: {
        type: 'path',
        required: true,
        example: './vap.password',
        description: 'File holding the application user\'s password (never put the password itself in this file).',
      },
      tls: {
        type: 'object',
        description: 'Certificates of the encrypted mode.',
        fields: {
          peerCertificateFile: { type: 'path', description: "The IME server's VAP certificate (PEM) to trust; required in encrypted mode." },
          certificateFile: { type: 'path', description: 'This call manager\'s certificate (PEM), which the IME server must trust; default <dataDir>/vap-client.crt, generated when absent.' },
          keyFile: { type: 'path', description: 'Key of certificateFile (PEM); default <dataDir>/vap-client.key, generated when absent.' },
          servername: { type: 'string', maxLength: 253, description: "Name to check the IME server's certificate against; default the name in peerCertificateFile." },
        },
      },
      reconnectIntervalSec: {
        type: 'integer',
        default: 120,
        min: 1,
        max: 600,
        description: 'Seconds between reconnection attempts after a failure or loss, forever (guide: 60–600, default 120; values below 60 are for tests and logged as a warning).',
      },
      connectTimeoutSec: { type: 'integer', default: 10, min: 1, max: 120, description: 'Time allowed for one connection and registration attempt.' },
    },
  },
  pstn: {
    type: 'object',
    description: 'The line on the simulated PSTN switch (`ime pstn start`): attached at start when `admin` is set.',
    fields: {
      admin: { type: 'string', pattern: 'https?://.+', description: "Admin URL of the PSTN switch, e.g. http://127.0.0.1:9623." },
      tokenFile: { type: 'path', description: "The switch's admin token file (needed to attach)." },
      lines: {
        type: 'string[]',
        default: [],
        maxItems: 1000,
        description: 'Patterns of the numbers this enterprise really owns on the PSTN; empty means the enrolled patterns. Setting other ones simulates an enterprise that enrolls numbers it does not own.',
      },
      callbackListen: {
        type: 'string',
        default: '127.0.0.1:0',
        description: 'host:port where the switch delivers call notifications (its own token, not the admin token); port 0 picks a free one.',
      },
      callbackUrl: {
        type: 'string',
        pattern: 'https?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}',
        description:
          'Base URL the switch reaches callbackListen at, when that is not the listen address itself (in a container: http://cm-acme:9624); default the address listened on. Setting it allows callbackListen on a non-loopback address such as 0.0.0.0.',
      },
    },
  },
  vcrQueueMax: { type: 'integer', default: 10_000, min: 1, max: 1_000_000, description: 'VCRs kept while the IME server is unreachable; beyond this the oldest are dropped (counted).' },
  dataDir: { type: 'path', default: './data', description: 'Directory of the learned routes, generated certificates, tokens and the audit log.' },
  admin: adminConfigField('127.0.0.1:9622'),
  log: logConfigField,
});

export type CmConfig = InferConfig<typeof cmConfigSchema>;

export interface VapTarget {
  readonly label: 'primary' | 'secondary';
  readonly host: string;
  readonly port: number;
}

/** Everything checkCmConfig derives: parsed, canonical and with defaults filled. */
export interface CmSettings {
  readonly domain: string;
  readonly vservice: { profileName: string; id: string; domain: string; sipUri: string; maxDidCount: number };
  readonly patterns: readonly string[];
  readonly exclusions: readonly string[];
  readonly pstnLines: readonly string[];
  readonly targets: readonly VapTarget[];
  readonly certificateFile: string;
  readonly keyFile: string;
}

function range(key: string, why: string): ImeError {
  return new ImeError('E_CONFIG_RANGE', `call manager configuration: ${key} ${why}`, { key });
}

/** Runs a core parser on a config value; its refusal becomes E_CONFIG_RANGE naming the key. */
function checked<T>(key: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (isImeError(err)) throw new ImeError('E_CONFIG_RANGE', `call manager configuration: ${key}: ${err.message}`, { key, cause: err.code });
    throw err;
  }
}

function hostPort(text: string, key: string, label: VapTarget['label']): VapTarget {
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (!(port >= 1 && port <= 65535)) throw range(key, 'must name a port from 1 to 65535');
  return { label, host: text.slice(0, i), port };
}

function derivedHex(seed: string, chars: number): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, chars);
}

export function checkCmConfig(config: CmConfig): CmSettings {
  const domain = checked('domain', () => parseDomain(config.domain));
  const patterns = config.enrolledPatterns.map((p, i) => checked(`enrolledPatterns.${i}`, () => parseEnrolledPattern(p).text));
  if (patterns.length === 0) throw range('enrolledPatterns', 'must name at least one pattern');
  if (new Set(patterns).size !== patterns.length) throw range('enrolledPatterns', 'names the same pattern twice');
  const exclusions = config.exclusions.map((x, i) => checked(`exclusions.${i}`, () => parseExclusionNumber(x) as string));
  const pstnLines = config.pstn.lines.map((p, i) => checked(`pstn.lines.${i}`, () => parseEnrolledPattern(p).text));
  config.trustedDomains.forEach((d, i) => checked(`trustedDomains.${i}`, () => parseTrustElement(d, 'domain')));
  config.blockedDomains.forEach((d, i) => checked(`blockedDomains.${i}`, () => parseTrustElement(d, 'domain')));
  config.trustedPrefixes.forEach((p, i) => checked(`trustedPrefixes.${i}`, () => parseTrustElement(p, 'prefix')));
  config.blockedPrefixes.forEach((p, i) => checked(`blockedPrefixes.${i}`, () => parseTrustElement(p, 'prefix')));
  if (config.fallbackNumber !== undefined) checked('fallbackNumber', () => parseE164(config.fallbackNumber));

  const targets = [hostPort(config.vap.primary, 'vap.primary', 'primary')];
  if (config.vap.secondary !== undefined) {
    if (config.vap.secondary === config.vap.primary) throw range('vap.secondary', 'must differ from vap.primary (guide L3166)');
    targets.push(hostPort(config.vap.secondary, 'vap.secondary', 'secondary'));
  }
  if (config.vap.mode === 'encrypted' && config.vap.tls.peerCertificateFile === undefined) {
    throw new ImeError('E_CONFIG_MISSING', 'call manager configuration: vap.tls.peerCertificateFile is required in encrypted mode', { key: 'vap.tls.peerCertificateFile' });
  }
  if ((config.pstn.admin === undefined) !== (config.pstn.tokenFile === undefined)) {
    throw new ImeError('E_CONFIG_MISSING', 'call manager configuration: pstn.admin and pstn.tokenFile go together', { key: config.pstn.admin === undefined ? 'pstn.admin' : 'pstn.tokenFile' });
  }
  // The URL is announced to the switch before anything listens, so it cannot follow a picked port.
  if (config.pstn.callbackUrl !== undefined && /:0+$/.test(config.pstn.callbackListen)) {
    throw range('pstn.callbackListen', 'needs a fixed port when pstn.callbackUrl is set');
  }

  const uuidHex = derivedHex(`sip-uri:${config.name}`, 32);
  const uuid = `${uuidHex.slice(0, 8)}-${uuidHex.slice(8, 12)}-${uuidHex.slice(12, 16)}-${uuidHex.slice(16, 20)}-${uuidHex.slice(20)}`;
  return {
    domain,
    vservice: {
      profileName: config.vservice.profileName ?? config.name,
      id: config.vservice.id ?? derivedHex(`vservice:${config.name}`, 16),
      domain,
      sipUri: config.vservice.sipUri ?? `sip:${uuid}@${domain}:5060;transport=tcp`,
      maxDidCount: config.vservice.maxDidCount,
    },
    patterns,
    exclusions,
    pstnLines: pstnLines.length > 0 ? pstnLines : patterns,
    targets,
    certificateFile: config.vap.tls.certificateFile ?? join(config.dataDir, 'vap-client.crt'),
    keyFile: config.vap.tls.keyFile ?? join(config.dataDir, 'vap-client.key'),
  };
}
