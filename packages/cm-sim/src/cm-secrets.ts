import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ImeError } from '@ime/core';
import { createVapCertificate } from '@ime/vap';

/**
 * What the call manager reads from files at start: the application user's password (kept out of
 * the config file, which is shared and logged about) and the TLS material of the encrypted mode.
 */

const MAX_SECRET_FILE_BYTES = 4096;

export async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_SECRET_FILE_BYTES) throw new ImeError('E_CM_PASSWORD_FILE', `the VAP password file ${path} is too large to hold a password`);
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof ImeError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImeError('E_CM_PASSWORD_FILE', `cannot read the VAP password file ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'error')}`);
  }
  // A trailing newline is an editor's, not the password's.
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw new ImeError('E_CM_PASSWORD_FILE', `the VAP password file ${path} is empty`);
  return password;
}

export async function readPem(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImeError('E_CM_TLS_FILE', `cannot read ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? 'error')}`);
  }
  if (!text.includes('-----BEGIN ')) throw new ImeError('E_CM_TLS_FILE', `${what} ${path} is not PEM`);
  return text;
}

/**
 * This call manager's own certificate and key; made (self-signed, as CUCM's is, guide L2342) when
 * neither file exists yet. Only one of the two present means something went wrong: refused.
 */
export async function loadOrCreateClientCertificate(certificateFile: string, keyFile: string, commonName: string): Promise<{ certPem: string; keyPem: string; created: boolean }> {
  const exists = async (p: string): Promise<boolean> => readFile(p).then(() => true, () => false);
  const [haveCert, haveKey] = await Promise.all([exists(certificateFile), exists(keyFile)]);
  if (haveCert && haveKey) {
    return { certPem: await readPem(certificateFile, 'the VAP client certificate'), keyPem: await readPem(keyFile, 'the VAP client key'), created: false };
  }
  if (haveCert !== haveKey) {
    throw new ImeError('E_CM_TLS_FILE', `only one of ${certificateFile} and ${keyFile} exists; remove it to have a new pair made, or supply both`);
  }
  const { certPem, keyPem } = createVapCertificate({ commonName });
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  await mkdir(dirname(certificateFile), { recursive: true, mode: 0o700 });
  await writeFile(keyFile, keyPem, { mode: 0o600, flag: 'wx' });
  await writeFile(certificateFile, certPem, { mode: 0o644, flag: 'wx' });
  return { certPem, keyPem, created: true };
}
