/**
 * @ime/pstn-sim: the simulated PSTN switch that call-manager simulators attach their numbers to.
 * A placed call is reported to the call manager at each end (with the terminating side's clock
 * optionally skewed), which is what makes them upload VCRs.
 */
export * from './pstn-config.js';
export * from './random.js';
export * from './line-table.js';
export * from './call-plan.js';
export * from './call-notifier.js';
export * from './pstn-switch.js';
export * from './pstn-admin.js';
