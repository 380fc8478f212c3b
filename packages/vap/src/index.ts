/**
 * @ime/vap: the VAP protocol between call managers and an IME peer (SPEC §5, docs/VAP.md) — frames,
 * the registration digest, one server instance, the peer's registry of instances, and the client the
 * call-manager simulator uses.
 */
export * from './vap-types.js';
export * from './vap-frame.js';
export * from './vap-codec.js';
export * from './vap-digest.js';
export * from './vap-settings.js';
export { VAP_HANDSHAKE_MAX_FRAME_BYTES, DEFAULT_VAP_HANDSHAKE_TIMEOUT_MS, type VapSessionErrorCode } from './vap-connection.js';
export * from './vap-server.js';
export * from './vap-servers.js';
export * from './vap-client.js';
export * from './vap-certificate.js';
