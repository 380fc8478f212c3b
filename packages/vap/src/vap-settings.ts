import { isIP } from 'node:net';
import { ImeError, describeInput } from '@ime/core';
import { VAP_LIMITS } from './vap-codec.js';
import {
  DEFAULT_KEEPALIVE_INTERVAL_SEC,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_VAP_PORT,
  type VapAuthenticationMode,
  type VapCredentials,
  type VapInstanceSettings,
} from './vap-types.js';

/**
 * Validation of what an operator configures: VAP instances (`add/set ime vapserver`) and VAP user
 * credentials (`add ime vapusercredentials`). Pure; the registry persists and applies the results.
 */

export type VapSettingsErrorCode = 'E_VAP_BAD_SETTING' | 'E_VAP_BAD_CREDENTIALS';

export const MAX_VAP_CONNECTIONS_ALLOWED = 10_000;
export const VAP_INSTANCE_NAME = /^[A-Za-z0-9._-]{1,32}$/;
export const VAP_SETTABLE_FIELDS = ['authenticationmode', 'enabled', 'keepaliveinterval', 'maxconnectionsallowed', 'port'] as const;
export type VapSettableField = (typeof VAP_SETTABLE_FIELDS)[number];

export const VAP_PASSWORD_MAX = 128;
export const TICKET_PASSWORD_MIN = 10;
export const TICKET_PASSWORD_MAX = 64;

export function parseInstanceName(value: unknown): string {
  if (typeof value !== 'string' || !VAP_INSTANCE_NAME.test(value)) {
    throw new ImeError(
      'E_VAP_BAD_SETTING',
      `VAP instance name ${describeInput(value)} must be 1–32 characters of letters, digits, ".", "_" and "-"`,
    );
  }
  return value;
}

function bad(field: string, rule: string, value: unknown): ImeError {
  return new ImeError('E_VAP_BAD_SETTING', `${field} ${describeInput(typeof value === 'number' ? String(value) : value)} is invalid: ${rule}`, {
    field,
  });
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(field, `it must be an integer from ${min} to ${max}`, value);
  }
  return value;
}

function checkHost(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) throw bad('host', 'it must be an IP address or a host name', value);
  if (isIP(value) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(value)) {
    throw bad('host', 'it must be an IP address or a host name', value);
  }
  return value;
}

function checkMode(value: unknown): VapAuthenticationMode {
  if (value !== 'authenticated' && value !== 'encrypted') throw bad('authenticationMode', 'it must be "authenticated" or "encrypted"', value);
  return value;
}

/** Fills the defaults (SPEC §5) and checks every field. */
export function completeInstanceSettings(
  input: Partial<VapInstanceSettings> & { name: string },
  defaultHost = '0.0.0.0',
): VapInstanceSettings {
  if (input === null || typeof input !== 'object') throw new ImeError('E_VAP_BAD_SETTING', 'VAP instance settings must be an object');
  const enabled = input.enabled ?? true;
  if (typeof enabled !== 'boolean') throw bad('enabled', 'it must be true or false', enabled);
  return {
    name: parseInstanceName(input.name),
    host: checkHost(input.host ?? defaultHost),
    port: checkInteger('port', input.port ?? DEFAULT_VAP_PORT, 0, 65535),
    // The guide's default (L2523–L2533); docs/VAP.md recommends encrypted.
    authenticationMode: checkMode(input.authenticationMode ?? 'authenticated'),
    enabled,
    keepaliveIntervalSec: checkInteger(
      'keepaliveIntervalSec',
      input.keepaliveIntervalSec ?? DEFAULT_KEEPALIVE_INTERVAL_SEC,
      VAP_LIMITS.keepaliveMinSec,
      VAP_LIMITS.keepaliveMaxSec,
    ),
    maxConnectionsAllowed: checkInteger(
      'maxConnectionsAllowed',
      input.maxConnectionsAllowed ?? DEFAULT_MAX_CONNECTIONS,
      1,
      MAX_VAP_CONNECTIONS_ALLOWED,
    ),
  };
}

function parseIntegerText(field: string, value: string, min: number, max: number): number {
  const trimmed = value.trim();
  if (!/^\d{1,10}$/.test(trimmed)) throw bad(field, `it must be an integer from ${min} to ${max}`, value);
  return checkInteger(field, Number(trimmed), min, max);
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', 'enabled', 'enable', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'disabled', 'disable', '0']);

/**
 * Applies `set ime vapserver <field> <name> <value>` to settings: the value as an operator types it.
 * Returns the new settings; the caller decides what has to restart.
 */
export function applySetting(settings: VapInstanceSettings, field: string, value: string): VapInstanceSettings {
  if (typeof value !== 'string') throw new ImeError('E_VAP_BAD_SETTING', 'the value must be text');
  const f = typeof field === 'string' ? field.toLowerCase() : '';
  switch (f as VapSettableField) {
    case 'authenticationmode': {
      const mode = value.trim().toLowerCase();
      return { ...settings, authenticationMode: checkMode(mode) };
    }
    case 'enabled': {
      const word = value.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return { ...settings, enabled: true };
      if (FALSE_WORDS.has(word)) return { ...settings, enabled: false };
      throw bad('enabled', 'it must be true or false', value);
    }
    case 'keepaliveinterval':
      return {
        ...settings,
        keepaliveIntervalSec: parseIntegerText('keepaliveinterval', value, VAP_LIMITS.keepaliveMinSec, VAP_LIMITS.keepaliveMaxSec),
      };
    case 'maxconnectionsallowed':
      return { ...settings, maxConnectionsAllowed: parseIntegerText('maxconnectionsallowed', value, 1, MAX_VAP_CONNECTIONS_ALLOWED) };
    case 'port':
      return { ...settings, port: parseIntegerText('port', value, 0, 65535) };
    default:
      throw new ImeError(
        'E_VAP_BAD_SETTING',
        `${describeInput(field)} is not a VAP server setting; use one of ${VAP_SETTABLE_FIELDS.join(', ')}`,
      );
  }
}

/**
 * Checks VAP user credentials. Messages never quote the passwords, not even a bad one: an operator
 * who pasted the wrong secret must not see it again in a log.
 */
export function checkCredentials(creds: VapCredentials): VapCredentials {
  if (creds === null || typeof creds !== 'object') throw new ImeError('E_VAP_BAD_CREDENTIALS', 'credentials must be an object');
  const { username, password, ticketPassword, epoch } = creds;
  if (typeof username !== 'string' || !/^[\x21-\x7e]([\x20-\x7e]{0,62}[\x21-\x7e])?$/.test(username)) {
    throw new ImeError(
      'E_VAP_BAD_CREDENTIALS',
      `the VAP username ${describeInput(username)} must be 1–${VAP_LIMITS.usernameMax} printable ASCII characters, not starting or ending with a space`,
    );
  }
  if (typeof password !== 'string' || password.length < 1 || password.length > VAP_PASSWORD_MAX) {
    throw new ImeError('E_VAP_BAD_CREDENTIALS', `the VAP password must be 1–${VAP_PASSWORD_MAX} characters`);
  }
  if (typeof ticketPassword !== 'string' || !/^[\x21-\x7e]*$/.test(ticketPassword) || ticketPassword.length < TICKET_PASSWORD_MIN || ticketPassword.length > TICKET_PASSWORD_MAX) {
    throw new ImeError(
      'E_VAP_BAD_CREDENTIALS',
      `the ticket password must be ${TICKET_PASSWORD_MIN}–${TICKET_PASSWORD_MAX} printable ASCII characters without spaces (SPEC §7)`,
    );
  }
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 1 || epoch > 255) {
    throw new ImeError('E_VAP_BAD_CREDENTIALS', `the epoch must be an integer from 1 to 255, got ${describeInput(typeof epoch === 'number' ? String(epoch) : epoch)}`);
  }
  return { username, password, ticketPassword, epoch };
}
