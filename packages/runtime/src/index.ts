/**
 * @ime/runtime: the I/O shared by every networked role — libp2p host and RPC, LevelDB, identity —
 * and the operations layer (config files, admin API, logs, counters, alerts, audit).
 */
export * from './host.js';
export * from './rpc.js';
export * from './database.js';
export * from './identity.js';
export * from './logger.js';
export * from './telemetry.js';
export * from './alert-catalogue.js';
export * from './audit.js';
export * from './config.js';
export * from './admin-server.js';
export * from './admin-client.js';
export * from './role-config.js';
