import { UsageError } from '../args.js';
import { type Json, adminCommand, dots } from '../admin-command.js';
import { adminClient } from '../admin-target.js';
import type { Command } from '../command.js';

/**
 * The validator of a peer (SPEC §6, guide L257–L305): pools and buckets per remote peer, the bucket
 * threshold, the routes learned, and the last validations with their outcome (why one failed).
 */

interface BucketView {
  total: number;
  entries: { number: string; value: number }[];
}

interface PoolView {
  peerId: string;
  domain: string | null;
  defaultBucket: BucketView;
  numberBuckets: (BucketView & { number: string })[];
}

function bucketLine(name: string, b: BucketView, threshold: number): string {
  const waiting = b.entries.map((e) => `${e.number} (${e.value})`).join(', ');
  return `  ${dots(name, 24)} ${b.total}/${threshold}${waiting ? `  ${waiting}` : ''}`;
}

export const showValidatorPools = adminCommand(
  ['show', 'validator', 'pools'],
  'pools and buckets per remote peer: totals against the threshold and the successes waiting in each',
  async ({ options }) => {
    const r = await (await adminClient(options)).get<{ threshold: number; awaitingConfirmation: number; pools: PoolView[] }>('/v1/validator/pools');
    const human = [
      `${dots('Bucket Entropy (threshold)', 30)} ${r.threshold}`,
      `${dots('ValidationsAwaitingConfirmation', 30)} ${r.awaitingConfirmation}`,
      ...(r.pools.length === 0
        ? ['no pools yet (a pool opens with the first validation against a peer)']
        : r.pools.flatMap((p) => [
            '',
            `Pool ${p.peerId}${p.domain ? ` (${p.domain})` : ''}`,
            bucketLine('default bucket', p.defaultBucket, r.threshold),
            ...p.numberBuckets.map((b) => bucketLine(`number ${b.number}`, b, r.threshold)),
          ])),
    ];
    return { json: r as unknown as Json, human };
  },
);

export const setValidatorBucketEntropy = adminCommand(
  ['set', 'validator', 'local', 'bucketentropy'],
  'the bucket threshold: a bucket releases its routes when its total exceeds it (default 20)',
  async ({ options, args }) => {
    const text = args.N ?? '';
    if (!/^\d{1,4}$/.test(text)) throw new UsageError('E_CLI_BAD_VALUE', 'N must be a whole number from 0 to 1000');
    const r = await (await adminClient(options)).put<{ previous: number; threshold: number }>('/v1/validator/bucketentropy', { value: Number(text) });
    return { json: r as unknown as Json, human: [`bucket entropy ${r.previous} → ${r.threshold}`] };
  },
  { args: [{ name: 'N', description: 'the threshold, 0–1000' }], examples: ['ime set validator local bucketentropy 20'] },
);

interface RouteView {
  number: string;
  domain: string;
  sipUri: string;
  ticket: string;
  learnedOnMs: number;
  expiresOnMs: number;
  peerId: string;
}

export const showValidatorRoutes = adminCommand(['show', 'validator', 'routes'], 'routes this peer learned by validation (and delivered to its call managers)', async ({ options }) => {
  const r = await (await adminClient(options)).get<{ routes: RouteView[] }>('/v1/validator/routes');
  const human =
    r.routes.length === 0
      ? ['no route learned yet']
      : r.routes.map((x) => `${x.number}  ${x.domain}  ${x.sipUri}  learned ${new Date(x.learnedOnMs).toISOString()}  expires ${new Date(x.expiresOnMs).toISOString()}`);
  return { json: r as unknown as Json, human };
});

interface ValidationView {
  atMs: number;
  called: string;
  peerId: string;
  domain: string;
  outcome: string;
  value?: number;
  code?: string;
  attempts?: number;
  bucket?: string;
  bucketTotal?: number;
  released?: number;
  retryAtMs?: number;
}

export const showValidatorValidations = adminCommand(
  ['show', 'validator', 'validations'],
  'the last validations this peer ran: outcome, value, bucket, and the refusal code when there is one',
  async ({ options }) => {
    const r = await (await adminClient(options)).get<{ validations: ValidationView[] }>('/v1/validator/validations');
    const human =
      r.validations.length === 0
        ? ['no validation has run yet']
        : r.validations.map((v) => {
            const what =
              v.outcome === 'success'
                ? `success worth ${v.value}, ${v.bucket} bucket at ${v.bucketTotal}${v.released ? `, released ${v.released} route(s)` : ''}`
                : v.outcome === 'failure'
                  ? `FAILED: ${v.domain} proved no matching call (caller, number and times within the tolerance) in ${v.attempts} key exchange(s); pool emptied, ${v.called} penalised`
                  : v.outcome === 'refused'
                    ? `REFUSED by ${v.domain}: ${v.code ?? ''}`
                    : `could not run: ${v.code ?? ''}${v.retryAtMs !== undefined ? `; tried again from ${new Date(v.retryAtMs).toISOString()}` : ''}`;
            return `${new Date(v.atMs).toISOString()}  ${v.called} → ${v.domain}: ${what}`;
          });
    return { json: r as unknown as Json, human };
  },
);

export const runValidator = adminCommand(['utils', 'validator', 'run'], 'run due validations now instead of at the next tick', async ({ options }) => {
  const r = await (await adminClient(options)).post<{ processed: number }>('/v1/validator/run', {});
  return { json: r as unknown as Json, human: [`${r.processed} pending validation(s) processed`] };
});

export const VALIDATOR_ADMIN_COMMANDS: readonly Command[] = [showValidatorPools, setValidatorBucketEntropy, showValidatorRoutes, showValidatorValidations, runValidator];
