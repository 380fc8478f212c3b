#!/usr/bin/env node
// Writes docs/CONFIGURATION.md from the configuration schemas of every role, so the reference
// cannot drift from the code (test/docs.test.ts fails when it is stale). Run after a schema change:
//   node scripts/config-reference.mjs
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export async function configurationReference() {
  const { renderConfigReference } = await import('../packages/runtime/dist/index.js');
  const { peerConfigSchema } = await import('../packages/peer/dist/index.js');
  const { bootstrapConfigSchema } = await import('../packages/bootstrap/dist/index.js');
  const { cmConfigSchema } = await import('../packages/cm-sim/dist/index.js');
  const { pstnConfigSchema } = await import('../packages/pstn-sim/dist/index.js');
  return [
    '# Configuration reference',
    '',
    'Generated from the configuration schemas by `node scripts/config-reference.mjs`; do not edit by hand.',
    'Every role reads YAML or JSON; `ime <role> start --print-default-config` prints a commented default',
    'file. Relative paths are relative to the configuration file. Unknown keys are refused',
    '(`E_CONFIG_UNKNOWN_KEY`), as are wrong types (`E_CONFIG_TYPE`) and values out of range (`E_CONFIG_RANGE`).',
    '',
    renderConfigReference(bootstrapConfigSchema, 'Bootstrap: `ime bootstrap start --config FILE`'),
    renderConfigReference(peerConfigSchema, 'Ring peer: `ime peer start --config FILE`'),
    renderConfigReference(cmConfigSchema, 'Call-manager simulator: `ime cm start --config FILE`'),
    renderConfigReference(pstnConfigSchema, 'Simulated PSTN switch: `ime pstn start --config FILE`'),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'CONFIGURATION.md');
  writeFileSync(out, `${(await configurationReference()).trimEnd()}\n`);
  process.stdout.write(`wrote ${out}\n`);
}
