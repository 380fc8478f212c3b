/**
 * The IME wire formats, generated from proto/*.proto (see scripts/generate.mjs). Message classes and
 * their types live under `ime.v1`: `ime.v1.DidRecord.encode(…)`, `type R = ime.v1.DidRecord`.
 * Untrusted bytes are decoded through the length-checked `decodeWire` of @ime/core.
 */
import './long-off.js';

export { ime } from '../gen/wire.js';
