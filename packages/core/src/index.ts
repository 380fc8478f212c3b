/**
 * @ime/core: the pure domain of the IME ring. No networking and no storage; everything here is
 * deterministic given its inputs (and node:crypto randomness where keys and nonces are made).
 */
export * from './errors.js';
export * from './e164.js';
export * from './domain.js';
export * from './enrolled-pattern.js';
export * from './trust-list.js';
export * from './wire-codec.js';
export * from './did-record.js';
export * from './validation-pools.js';
export * from './vcr.js';
export * from './learned-route.js';
