import { ImeError } from './errors.js';

/** Any generated message class: `ime.v1.X` has a static `decode`. */
export interface WireDecoder<T> {
  decode(reader: Uint8Array): T;
  getTypeUrl?(prefix?: string): string;
}

export type WireErrorCode = 'E_WIRE_NOT_BYTES' | 'E_WIRE_TOO_LARGE' | 'E_WIRE_MALFORMED';

/**
 * Decodes bytes that came from the network or disk. The length is checked before any parsing, and a
 * parse failure (truncated field, bad wire type, bad length) becomes an ImeError instead of the
 * protobufjs exception, so callers handle one error type.
 */
export function decodeWire<T>(type: WireDecoder<T>, bytes: unknown, maxBytes: number, what: string): T {
  if (!(bytes instanceof Uint8Array)) {
    throw new ImeError('E_WIRE_NOT_BYTES', `${what}: expected bytes, got ${bytes === null ? 'null' : typeof bytes}`);
  }
  if (bytes.length > maxBytes) {
    throw new ImeError('E_WIRE_TOO_LARGE', `${what}: ${bytes.length} bytes is over the ${maxBytes}-byte limit`, {
      bytes: bytes.length,
      limit: maxBytes,
    });
  }
  try {
    return type.decode(bytes);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ImeError('E_WIRE_MALFORMED', `${what}: not a valid message (${reason})`);
  }
}
