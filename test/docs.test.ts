import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The configuration reference is generated from the schemas; a stale copy fails here.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('docs/CONFIGURATION.md', () => {
  it('matches what the configuration schemas generate (run node scripts/config-reference.mjs)', async () => {
    const { configurationReference } = (await import(join(root, 'scripts/config-reference.mjs'))) as { configurationReference(): Promise<string> };
    const expected = `${(await configurationReference()).trimEnd()}\n`;
    expect(readFileSync(join(root, 'docs/CONFIGURATION.md'), 'utf8')).toBe(expected);
  });
});
