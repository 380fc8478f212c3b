/** @ime/bootstrap: the ring's enrollment authority and signer of the ring configuration. */
export * from './ring-authority.js';
export * from './bootstrap-config.js';
export * from './bootstrap-state.js';
export * from './configuration-builder.js';
export * from './bootstrap-protocols.js';
export * from './bootstrap-server.js';
export * from './bootstrap-admin.js';
