/**
 * @ime/validator: turns voice call records into validations, buckets and tickets (SPEC §6–§7).
 *
 * - VCR stores: what the call managers upload over VAP, kept for validation (vcr-store).
 * - The validation exchange: call details quantised into a SPAKE2+ secret (pvp-secret, pvp-pake), its
 *   messages (pvp-codec), the terminating side (pvp-terminator) and the originating side (pvp-originator).
 * - Accounting: pools and buckets per remote peer (pool-store, on the core's state machine), learned
 *   routes (learned-route-store), the one-hour rule (validation-schedule), rate limits (rate-limiter),
 *   the pending backlog's alert (pending-watermark), and the loop that ties them (originating-validator).
 */
export * from './vcr-store.js';
export * from './pvp-secret.js';
export * from './pvp-pake.js';
export * from './pvp-codec.js';
export * from './pvp-terminator.js';
export * from './pvp-originator.js';
export * from './pool-store.js';
export * from './learned-route-store.js';
export * from './validation-schedule.js';
export * from './rate-limiter.js';
export * from './pending-watermark.js';
export * from './originating-validator.js';
export * from './pvp-crypto-jobs.js';
export * from './pvp-crypto-pool.js';
