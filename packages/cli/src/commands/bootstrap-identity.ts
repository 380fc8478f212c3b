import { createIdentityKeyFile, peerIdOfKey, readIdentityKeyFile } from '@ime/runtime';
import { optionString } from '../args.js';
import type { Command } from '../command.js';
import { EXIT_OK } from '../output.js';

/**
 * `ime bootstrap identity --key FILE [--create]`: the PeerId a bootstrap started with
 * `identityKeyFile: FILE` will have. Knowing it before the first start is what lets peers' and the
 * other bootstraps' configuration files name the bootstrap (`…/p2p/<PeerId>`) ahead of time, as
 * docker/compose.yaml's ring does.
 */
export const bootstrapIdentity: Command = {
  path: ['bootstrap', 'identity'],
  summary: "the PeerId of a bootstrap identity key file (--create makes the file first)",
  options: [
    { name: 'key', type: 'string', required: true, valueName: 'FILE', description: 'the key file (Ed25519, PEM PKCS#8) named by identityKeyFile' },
    { name: 'create', type: 'boolean', description: 'make a new key file (mode 0600); an existing one is never replaced' },
  ],
  examples: ['ime bootstrap identity --key bootstrap-1.key --create', 'ime bootstrap identity --key bootstrap-1.key --json'],
  async run({ options, out }) {
    const file = optionString(options, 'key') as string;
    const created = options.create === true;
    const key = created ? await createIdentityKeyFile(file) : await readIdentityKeyFile(file);
    const peerId = peerIdOfKey(key);
    out.result({ peerId, keyFile: file, created }, created ? [peerId, `key written to ${file} (mode 0600; keep it secret: it is the bootstrap's identity)`] : [peerId]);
    return EXIT_OK;
  },
};
