import { ImeError } from '@ime/core';
import type { AdminServer } from '@ime/runtime';
import type { ValidationService } from './validation-service.js';

/**
 * The admin routes behind `ime show validator pools`, `ime set validator local bucketentropy`,
 * `ime show validator routes` and `ime show validator validations`. The threshold change is audited.
 */

/** A pool as operators read it: bucket totals and the numbers waiting in each. */
function poolView(pool: ReturnType<ValidationService['pools']['pools']>[number], domainOf: (peerId: string) => string | undefined) {
  const bucket = (b: { total: number; entries: readonly { number: string; value: number }[] }) => ({
    total: b.total,
    entries: b.entries.map((e) => ({ number: e.number, value: e.value })),
  });
  return {
    peerId: pool.peer,
    domain: domainOf(pool.peer) ?? null,
    defaultBucket: bucket(pool.defaultBucket),
    numberBuckets: Object.entries(pool.numberBuckets)
      .map(([number, b]) => ({ number, ...bucket(b) }))
      .sort((a, b) => a.number.localeCompare(b.number)),
  };
}

export function registerValidatorAdminRoutes(admin: AdminServer, validation: () => ValidationService, domainOf: (peerId: string) => string | undefined): void {
  admin
    .addRoute({
      method: 'GET',
      path: '/v1/validator/pools',
      handler: () => {
        const v = validation();
        return { threshold: v.pools.threshold, awaitingConfirmation: v.pools.awaitingConfirmation(), pools: v.pools.pools().map((p) => poolView(p, domainOf)) };
      },
    })
    .addRoute({
      method: 'PUT',
      path: '/v1/validator/bucketentropy',
      audit: 'set-validator-bucketentropy',
      handler: async ({ body }) => {
        const value = typeof body === 'object' && body !== null ? (body as { value?: unknown }).value : undefined;
        if (value === undefined) throw new ImeError('E_ADMIN_BAD_REQUEST', 'value is required');
        const previous = await validation().pools.setThreshold(typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value);
        return { previous, threshold: validation().pools.threshold };
      },
    })
    .addRoute({ method: 'GET', path: '/v1/validator/routes', handler: () => ({ routes: validation().routes.list() }) })
    .addRoute({ method: 'GET', path: '/v1/validator/validations', handler: () => ({ validations: validation().originator.history() }) })
    .addRoute({
      // Runs due validations now instead of at the next tick (operators after a backlog, tests).
      method: 'POST',
      path: '/v1/validator/run',
      audit: 'run-validations',
      handler: async () => ({ processed: await validation().originator.runDue() }),
    });
}
