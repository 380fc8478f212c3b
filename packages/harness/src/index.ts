/** @ime/harness: local rings of real components for tests, benchmarks and `ime ring up`. */
export * from './ports.js';
export * from './member.js';
export * from './ring-harness.js';
export * from './cast.js';
export * from './enterprise.js';
export * from './bootstraps.js';
