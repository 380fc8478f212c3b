import { isIP } from 'node:net';
import { ImeError } from '@ime/core';
import { type Database, getJson, putJson } from '@ime/runtime';

/**
 * Settings an operator makes on a running peer with the guide's commands and that must survive a
 * restart (and a backup), so they live in the peer's database rather than its configuration file:
 *  - `set ime customerinfo`: who runs this server and whom to call about it (guide L1792–L1815);
 *  - `set ime addressing publicipaddrv4`: the public (NAT) IPv4 address other peers dial (L1826).
 */

const CUSTOMER_INFO_KEY = 'meta/customerinfo';
const PUBLIC_IPV4_KEY = 'meta/publicipaddrv4';

export const CUSTOMER_INFO_FIELDS = ['company', 'unit', 'state', 'country', 'contactName', 'contactEmail', 'contactPhone'] as const;
export type CustomerInfoField = (typeof CUSTOMER_INFO_FIELDS)[number];
export type CustomerInfo = Readonly<Record<CustomerInfoField, string>>;

const EMPTY_CUSTOMER_INFO: CustomerInfo = Object.fromEntries(CUSTOMER_INFO_FIELDS.map((f) => [f, ''])) as CustomerInfo;
const MAX_TEXT = 128;
const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/;
const PHONE = /^\+?[0-9][0-9 ().-]{2,31}$/;

function invalid(message: string): ImeError {
  return new ImeError('E_CUSTOMERINFO_INVALID', message);
}

/**
 * Checks a change of customer information: only the guide's fields, each text of at most 128
 * printable characters ('' clears it), the e-mail and phone in their usual shapes.
 */
export function checkCustomerInfoChange(change: unknown): Partial<Record<CustomerInfoField, string>> {
  if (typeof change !== 'object' || change === null || Array.isArray(change)) throw invalid('customer information must be an object of text fields');
  const out: Partial<Record<CustomerInfoField, string>> = {};
  const entries = Object.entries(change as Record<string, unknown>);
  if (entries.length === 0) throw invalid(`name at least one of ${CUSTOMER_INFO_FIELDS.join(', ')}`);
  for (const [key, value] of entries) {
    if (!(CUSTOMER_INFO_FIELDS as readonly string[]).includes(key)) {
      throw invalid(`unknown field ${JSON.stringify(key.slice(0, 40))} (fields: ${CUSTOMER_INFO_FIELDS.join(', ')})`);
    }
    if (typeof value !== 'string') throw invalid(`${key} must be text`);
    const text = value.trim();
    if (text.length > MAX_TEXT || /[\u0000-\u001f\u007f]/.test(text)) throw invalid(`${key} must be at most ${MAX_TEXT} printable characters`);
    if (key === 'contactEmail' && text !== '' && !EMAIL.test(text)) throw invalid('contactEmail must be an e-mail address such as noc@acme.example');
    if (key === 'contactPhone' && text !== '' && !PHONE.test(text)) throw invalid('contactPhone must be a phone number: digits, spaces, "(", ")", "-" or ".", optionally after "+"');
    out[key as CustomerInfoField] = text;
  }
  return out;
}

/**
 * Checks a public IPv4 address: dotted quad, and one another peer can dial (not 0.0.0.0,
 * broadcast or multicast). Loopback is allowed for rings on one machine.
 */
export function checkPublicIpv4(value: unknown): string {
  if (typeof value !== 'string' || isIP(value) !== 4) throw new ImeError('E_ADDRESS_INVALID', 'the public address must be an IPv4 address such as 65.65.65.65');
  const first = Number(value.split('.')[0]);
  if (value === '0.0.0.0' || value === '255.255.255.255' || (first >= 224 && first <= 239)) {
    throw new ImeError('E_ADDRESS_INVALID', `${value} cannot be dialled by other peers (unspecified, broadcast or multicast)`);
  }
  return value;
}

/** The ring addresses a public IPv4 adds: one per TCP port this peer listens on, first in the list. */
export function publicRingAddresses(publicIpv4: string | undefined, listen: readonly string[]): string[] {
  if (publicIpv4 === undefined) return [];
  const ports = [...new Set(listen.map((a) => /\/tcp\/(\d+)/.exec(a)?.[1]).filter((p): p is string => p !== undefined))];
  return ports.map((port) => `/ip4/${publicIpv4}/tcp/${port}`);
}

export class PeerSettings {
  readonly #db: Database;
  #customerInfo: CustomerInfo;
  #publicIpv4: string | undefined;

  private constructor(db: Database, customerInfo: CustomerInfo, publicIpv4: string | undefined) {
    this.#db = db;
    this.#customerInfo = customerInfo;
    this.#publicIpv4 = publicIpv4;
  }

  static async open(db: Database): Promise<PeerSettings> {
    const stored = await getJson<unknown>(db, CUSTOMER_INFO_KEY);
    const ip = await getJson<unknown>(db, PUBLIC_IPV4_KEY);
    let info = EMPTY_CUSTOMER_INFO;
    let publicIpv4: string | undefined;
    try {
      if (stored !== undefined) info = { ...EMPTY_CUSTOMER_INFO, ...checkCustomerInfoChange(stored) };
      if (ip !== undefined && ip !== null) publicIpv4 = checkPublicIpv4(ip);
    } catch (err) {
      throw new ImeError('E_DB_CORRUPT', `a stored peer setting is invalid: ${(err as Error).message}`);
    }
    return new PeerSettings(db, info, publicIpv4);
  }

  get customerInfo(): CustomerInfo {
    return this.#customerInfo;
  }

  /** Changes the named fields (the others stay); returns the whole information after the change. */
  async setCustomerInfo(change: unknown): Promise<CustomerInfo> {
    const next = { ...this.#customerInfo, ...checkCustomerInfoChange(change) };
    await putJson(this.#db, CUSTOMER_INFO_KEY, next);
    this.#customerInfo = next;
    return next;
  }

  get publicIpv4(): string | undefined {
    return this.#publicIpv4;
  }

  /** Sets (or, with null, removes) the public IPv4 address; returns the previous one. */
  async setPublicIpv4(value: unknown): Promise<string | undefined> {
    const next = value === null ? undefined : checkPublicIpv4(value);
    const previous = this.#publicIpv4;
    await putJson(this.#db, PUBLIC_IPV4_KEY, next ?? null);
    this.#publicIpv4 = next;
    return previous;
  }
}
