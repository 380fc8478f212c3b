import { describe, it, expect } from '@jest/globals';
import fc from 'fast-check';
import { ime } from '@ime/wire';
import { decodeWire } from '../src/wire-codec.js';
import { expectSafeMessage, thrown } from './helpers.js';

const claimBytes = ime.v1.DidClaim.encode({ vserviceId: 'vs-1', publishedAtMs: 1_700_000_000_000 }).finish();

describe('decodeWire', () => {
  it('decodes a valid message', () => {
    const m = decodeWire(ime.v1.DidClaim, claimBytes, 64, 'claim');
    expect(m.vserviceId).toBe('vs-1');
    expect(m.publishedAtMs).toBe(1_700_000_000_000);
    expect(typeof m.publishedAtMs).toBe('number'); // 64-bit fields are plain numbers, not Long
  });

  it('accepts a Buffer (a Uint8Array subclass) and a message of exactly the limit', () => {
    const m = decodeWire(ime.v1.DidClaim, Buffer.from(claimBytes), claimBytes.length, 'claim');
    expect(m.vserviceId).toBe('vs-1');
  });

  it.each<[string, string, unknown]>([
    ['E_WIRE_NOT_BYTES', 'a string', 'vs-1'],
    ['E_WIRE_NOT_BYTES', 'null', null],
    ['E_WIRE_NOT_BYTES', 'undefined', undefined],
    ['E_WIRE_NOT_BYTES', 'an array of numbers', [10, 4, 118, 115, 45, 49]],
    ['E_WIRE_NOT_BYTES', 'an ArrayBuffer', new ArrayBuffer(4)],
    ['E_WIRE_NOT_BYTES', 'a DataView', new DataView(new ArrayBuffer(4))],
    ['E_WIRE_TOO_LARGE', 'one byte over the limit', new Uint8Array(65)],
    ['E_WIRE_TOO_LARGE', 'a megabyte', new Uint8Array(1 << 20)],
    ['E_WIRE_MALFORMED', 'a truncated message', claimBytes.subarray(0, claimBytes.length - 1)],
    ['E_WIRE_MALFORMED', 'a length past the end', Uint8Array.from([0x0a, 0x20, 0x41])],
    ['E_WIRE_MALFORMED', 'an invalid wire type', Uint8Array.from([0x0f, 0x00])],
    ['E_WIRE_MALFORMED', 'an unterminated varint', Uint8Array.from([0x10, 0xff, 0xff])],
  ])('%s: refuses %s', (code, _label, input) => {
    const err = thrown(() => decodeWire(ime.v1.DidClaim, input, 64, 'DID claim'));
    expect(err.code).toBe(code);
    expect(err.message.startsWith('DID claim: ')).toBe(true);
    expectSafeMessage(err);
  });

  it('reports the size and the limit of an oversized message', () => {
    const err = thrown(() => decodeWire(ime.v1.DidClaim, new Uint8Array(100), 64, 'claim'));
    expect(err.details).toEqual({ bytes: 100, limit: 64 });
  });

  it('checks the length before parsing (an oversized message is never decoded)', () => {
    let decoded = false;
    const spy = {
      decode: (_bytes: Uint8Array) => {
        decoded = true;
        return {};
      },
    };
    expect(thrown(() => decodeWire(spy, new Uint8Array(10), 9, 'spy')).code).toBe('E_WIRE_TOO_LARGE');
    expect(decoded).toBe(false);
    decodeWire(spy, new Uint8Array(9), 9, 'spy');
    expect(decoded).toBe(true);
  });

  it('turns any exception of the decoder into E_WIRE_MALFORMED', () => {
    const boom = {
      decode: (): never => {
        throw 'not even an Error';
      },
    };
    const err = thrown(() => decodeWire(boom, new Uint8Array(1), 9, 'boom'));
    expect(err.code).toBe('E_WIRE_MALFORMED');
    expect(err.message).toContain('not even an Error');
  });

  it('never throws anything but an ImeError on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        try {
          decodeWire(ime.v1.DidClaim, bytes, 64, 'claim');
        } catch (err) {
          const e = thrown(() => {
            throw err;
          });
          expect(['E_WIRE_TOO_LARGE', 'E_WIRE_MALFORMED']).toContain(e.code);
        }
      }),
    );
  });
});
