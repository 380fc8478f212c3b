import { join } from 'node:path';
import { AdminClient, DEFAULT_ADMIN_URL } from '@ime/runtime';
import { type OptionSpec, type ParsedOptions, optionString } from './args.js';

/** The options every administration command takes to find a running component. */
export const ADMIN_OPTIONS: readonly OptionSpec[] = [
  { name: 'admin', type: 'string', valueName: 'URL', description: `admin API of the component (default ${DEFAULT_ADMIN_URL})` },
  {
    name: 'token-file',
    type: 'string',
    valueName: 'FILE',
    description: 'admin token file (default $IME_ADMIN_TOKEN_FILE, else ./data/admin.token)',
  },
];

export async function adminClient(options: ParsedOptions): Promise<AdminClient> {
  const url = optionString(options, 'admin') ?? process.env.IME_ADMIN_URL ?? DEFAULT_ADMIN_URL;
  const tokenFile = optionString(options, 'token-file') ?? process.env.IME_ADMIN_TOKEN_FILE ?? join('data', 'admin.token');
  return AdminClient.fromTokenFile(url, tokenFile);
}
