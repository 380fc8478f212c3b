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

describe('docs/OPERATIONS.md', () => {
  it('holds the metrics and alerts tables the code generates, between its markers (run node scripts/ops-reference.mjs)', async () => {
    const { operationsReference, withReference } = (await import(join(root, 'scripts/ops-reference.mjs'))) as {
      operationsReference(): Promise<string>;
      withReference(doc: string, region: string): string;
    };
    const doc = readFileSync(join(root, 'docs/OPERATIONS.md'), 'utf8');
    // Only the generated region is compared: other sections of the file are written by hand.
    expect(doc).toContain('<!-- BEGIN ops-reference');
    expect(doc).toBe(withReference(doc, await operationsReference()));
  });
});
