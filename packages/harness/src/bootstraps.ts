import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BootstrapState, bootstrapConfigSchema, prepareBootstrap } from '@ime/bootstrap';
import { loadConfigFile, openDatabase } from '@ime/runtime';

/** A bootstrap's configuration file and the directory it lives in (its `dataDir` is `data` there). */
export interface BootstrapFiles {
  readonly file: string;
  readonly dir: string;
}

export interface BootstrapPairLayout {
  /** Writes (or rewrites) bootstrap `index`'s configuration with `extra` merged in. */
  write(index: number, extra: Record<string, unknown>): BootstrapFiles | Promise<BootstrapFiles>;
  /** The ring address bootstrap `index` is dialled at, ending in `/p2p/<peerId>`. */
  dialAddress(index: number, peerId: string): string;
  /** Where the first bootstrap's exported authority is handed to the second (mode 0600). */
  readonly stateFile: string;
}

/**
 * Writes the configurations of one or two bootstraps of one ring. With two, the second starts from
 * the first one's exported authority, and each names the other, so both serve one ring (and sync
 * their state when they can): the first is prepared (identity and authority made) to learn its
 * PeerId and export its state, the second is prepared to learn its own, and the first is rewritten
 * to name it.
 */
export async function writeBootstrapConfigs(count: 1 | 2, layout: BootstrapPairLayout): Promise<BootstrapFiles[]> {
  const first = await layout.write(0, {});
  if (count === 1) return [first];
  const id1 = await preparedPeerId(first);
  const db = await openDatabase(join(first.dir, 'data', 'db'));
  try {
    writeFileSync(layout.stateFile, JSON.stringify((await BootstrapState.open(db)).exportState()), { mode: 0o600 });
  } finally {
    await db.close();
  }
  const second = await layout.write(1, { importState: layout.stateFile, peerBootstraps: [layout.dialAddress(0, id1)] });
  const id2 = await preparedPeerId(second);
  await layout.write(0, { peerBootstraps: [layout.dialAddress(1, id2)] });
  return [first, second];
}

async function preparedPeerId(b: BootstrapFiles): Promise<string> {
  return (await prepareBootstrap(await loadConfigFile(b.file, bootstrapConfigSchema))).peerId;
}
