import { LOG_LEVELS } from './logger.js';

/**
 * Configuration sections every role has, defined once so that a bootstrap's and a peer's files read
 * the same way (and the generated reference says the same thing for both).
 */

/** `admin`: where the role's admin API listens and where its token lives. */
export function adminConfigField<const Listen extends string>(defaultListen: Listen) {
  return {
    type: 'object',
    description: 'The local admin API used by the `ime` command.',
    fields: {
      listen: { type: 'string', default: defaultListen, description: 'host:port of the admin API (loopback only, unless allowRemote).' },
      tokenFile: { type: 'path', description: 'File holding the admin token; default <dataDir>/admin.token, created on first start.' },
      allowRemote: {
        type: 'boolean',
        default: false,
        description:
          'Allow `listen` on a non-loopback address, e.g. 0.0.0.0 in a container whose API other containers call (docker/compose.yaml). Every request still needs the token.',
      },
    },
  } as const;
}

/** `log`: structured logs with a default level, per-module levels, and an optional file. */
export const logConfigField = {
  type: 'object',
  description: 'Structured logs (JSON lines).',
  fields: {
    level: { type: 'string', enum: LOG_LEVELS, default: 'info', description: 'Default log level.' },
    modules: { type: 'map', values: LOG_LEVELS, default: {}, description: 'Per-module levels, e.g. `ring: debug`.' },
    file: { type: 'path', description: 'Append logs to this file instead of standard error.' },
  },
} as const;
