/**
 * @ime/cm-sim: a simulated call manager (CUCM) speaking VAP to its IME peer: it publishes its
 * Vservice and enrolled patterns, uploads VCRs after the PSTN calls the simulated switch reports,
 * and keeps the routes and tickets it learns, under the guide's counters and alerts.
 */
export * from './cm-config.js';
export * from './trust.js';
export * from './route-table.js';
export * from './route-store.js';
export * from './vcr-policy.js';
export * from './vcr-queue.js';
export * from './cm-telemetry.js';
export * from './cm-secrets.js';
export * from './pstn-line.js';
export * from './vap-link.js';
export * from './cm-simulator.js';
export * from './cm-admin.js';
