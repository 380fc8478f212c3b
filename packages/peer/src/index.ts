/**
 * @ime/peer: the ring peer ("IME server"): enrollment, admission, the signed configuration, the
 * replicated DID record store and its repair, and the publication of the enterprise's numbers.
 */
export * from './peer-node.js';
export * from './peer-config.js';
export * from './ring-placement.js';
export * from './ring-types.js';
export * from './health.js';
export type { PublishReport } from './did-publisher.js';
