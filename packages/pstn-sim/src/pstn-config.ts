import { type InferConfig, adminConfigField, defineConfigSchema, logConfigField } from '@ime/runtime';

/**
 * `ime pstn start --config FILE`. The schema is data, so `--print-default-config` and the
 * configuration reference are generated from it and cannot drift.
 */

/** A call's terminating side may be told times up to this far off (one hour is already absurd). */
export const MAX_CLOCK_SKEW_MS = 3_600_000;

export const pstnConfigSchema = defineConfigSchema({
  name: {
    type: 'string',
    default: 'pstn',
    pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}',
    description: 'Name of this switch in logs and in `ime ring up` output.',
  },
  dataDir: {
    type: 'path',
    default: './data',
    description: 'Directory of the admin token and the audit log.',
  },
  admin: adminConfigField('127.0.0.1:9623'),
  log: logConfigField,
  clockSkewMs: {
    type: 'integer',
    default: 0,
    min: 0,
    max: MAX_CLOCK_SKEW_MS,
    description:
      "Largest clock difference between the two sides of a call: the terminating side is told start and stop times shifted by the same random amount within ±clockSkewMs, as if its clock were off, so the validators' time tolerance can be exercised.",
  },
  seed: {
    type: 'integer',
    min: 0,
    max: 4_294_967_295,
    description: 'Seed of the random skew and call ids, for reproducible runs; absent means random.',
  },
  maxRecentCalls: {
    type: 'integer',
    default: 1000,
    min: 1,
    max: 100_000,
    description: 'Calls kept for `GET /v1/calls`; older ones are forgotten.',
  },
  callbackTimeoutMs: {
    type: 'integer',
    default: 5000,
    min: 100,
    max: 60_000,
    description: "How long the switch waits for a call manager's answer to a call notification.",
  },
});

export type PstnConfig = InferConfig<typeof pstnConfigSchema>;
