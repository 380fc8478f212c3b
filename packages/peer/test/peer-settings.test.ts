import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError } from '@ime/core';
import { openDatabase, putJson } from '@ime/runtime';
import { PeerSettings, checkCustomerInfoChange, checkPublicIpv4, publicRingAddresses } from '../src/peer-settings.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ImeError);
    return (err as ImeError).code;
  }
  throw new Error('expected a refusal');
}

describe('peer settings: customer information and the public address (guide L1792–L1838)', () => {
  it('keeps both in the database across a reopen; a partial change keeps the other fields', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-settings-'));
    try {
      let db = await openDatabase(dir);
      let settings = await PeerSettings.open(db);
      expect(settings.customerInfo).toEqual({ company: '', unit: '', state: '', country: '', contactName: '', contactEmail: '', contactPhone: '' });
      expect(settings.publicIpv4).toBeUndefined();
      await settings.setCustomerInfo({ company: 'Acme Corp', country: 'US', contactEmail: 'noc@acme.example' });
      await settings.setCustomerInfo({ contactPhone: '+1 (408) 555-0100', company: ' Acme Corporation ' });
      expect(await settings.setPublicIpv4('65.65.65.65')).toBeUndefined();
      await db.close();

      db = await openDatabase(dir);
      settings = await PeerSettings.open(db);
      expect(settings.customerInfo).toEqual({
        company: 'Acme Corporation',
        unit: '',
        state: '',
        country: 'US',
        contactName: '',
        contactEmail: 'noc@acme.example',
        contactPhone: '+1 (408) 555-0100',
      });
      expect(settings.publicIpv4).toBe('65.65.65.65');
      expect(await settings.setPublicIpv4(null)).toBe('65.65.65.65');
      await db.close();
      db = await openDatabase(dir);
      expect((await PeerSettings.open(db)).publicIpv4).toBeUndefined();
      // A value that fails its check in the database is reported, not used.
      await putJson(db, 'meta/publicipaddrv4', 'not-an-address');
      await expect(PeerSettings.open(db)).rejects.toMatchObject({ code: 'E_DB_CORRUPT' });
      await db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unknown fields, non-text, over-long or control characters, and malformed e-mail and phone', () => {
    expect(code(() => checkCustomerInfoChange({ company: 'A', ceo: 'B' }))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange({}))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange(['company']))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange({ company: 7 }))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange({ unit: 'x'.repeat(129) }))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange({ unit: 'a\nb' }))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange({ contactEmail: 'not an address' }))).toBe('E_CUSTOMERINFO_INVALID');
    expect(code(() => checkCustomerInfoChange({ contactPhone: 'call me' }))).toBe('E_CUSTOMERINFO_INVALID');
    // Empty text clears a field.
    expect(checkCustomerInfoChange({ contactEmail: '', contactPhone: '' })).toEqual({ contactEmail: '', contactPhone: '' });
  });

  it('accepts a dialable IPv4 address only, and puts it first on every ring port', () => {
    for (const bad of ['', '65.65.65', '::1', '0.0.0.0', '255.255.255.255', '224.0.0.1', 'example.com', 7]) {
      expect(code(() => checkPublicIpv4(bad))).toBe('E_ADDRESS_INVALID');
    }
    expect(checkPublicIpv4('127.0.0.1')).toBe('127.0.0.1');
    expect(publicRingAddresses('65.65.65.65', ['/ip4/10.0.0.5/tcp/6084', '/ip4/127.0.0.1/tcp/6084', '/ip6/::1/tcp/7000'])).toEqual([
      '/ip4/65.65.65.65/tcp/6084',
      '/ip4/65.65.65.65/tcp/7000',
    ]);
    expect(publicRingAddresses(undefined, ['/ip4/10.0.0.5/tcp/6084'])).toEqual([]);
  });
});
