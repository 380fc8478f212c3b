import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { type OpenDhtResult, parseOpenDhtLine } from './stats.js';

/**
 * The OpenDHT anchor (shared/anchors/opendht_ring_bench.py): N OpenDHT nodes on 127.0.0.1 in one
 * Python process, timing put and get. Set-up finds a Python that imports `opendht` and, when none
 * does, installs the Debian packages (`apt-get install -y dhtnode python3-opendht`) — possible only
 * as root; otherwise the anchor is skipped with the reason.
 */

const PACKAGES = ['dhtnode', 'python3-opendht'];

export interface Anchor {
  readonly script: string;
  readonly python: string;
  /** What set-up did, for the rows (e.g. "installed dhtnode python3-opendht"). */
  readonly setup: string;
}

export type AnchorSetup = { readonly ok: true; readonly anchor: Anchor } | { readonly ok: false; readonly reason: string };

/** The anchor script: IME_OPENDHT_ANCHOR, or shared/anchors/ next to this repository. */
export function anchorScript(): string {
  const fromEnv = process.env.IME_OPENDHT_ANCHOR;
  if (fromEnv) return fromEnv;
  return fileURLToPath(new URL('../../../../shared/anchors/opendht_ring_bench.py', import.meta.url));
}

function imports(python: string): boolean {
  const r = spawnSync(python, ['-c', 'import opendht'], { stdio: 'ignore', timeout: 20_000 });
  return r.status === 0;
}

/**
 * Interpreters to try, in order. The Debian package installs into /usr/lib/python3/dist-packages,
 * which a `python3` from pyenv or a virtualenv on PATH does not see, so /usr/bin/python3 follows.
 */
function candidates(): string[] {
  const list = [process.env.IME_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => typeof p === 'string' && p !== '');
  return [...new Set(list)];
}

function findPython(): string | undefined {
  return candidates().find(imports);
}

export function setUpAnchor(progress: (line: string) => void): AnchorSetup {
  const script = anchorScript();
  if (!existsSync(script)) {
    return { ok: false, reason: `the OpenDHT anchor script ${script} does not exist (set IME_OPENDHT_ANCHOR to its path)` };
  }
  const found = findPython();
  if (found) {
    const note = found === 'python3' ? 'python3 imports opendht' : `python3 on PATH does not import opendht; ${found} does`;
    return { ok: true, anchor: { script, python: found, setup: note } };
  }
  const install = `apt-get install -y ${PACKAGES.join(' ')}`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return {
      ok: false,
      reason: `no Python here imports opendht, and installing it (${install}) needs root; run that as root (or with sudo) and rerun`,
    };
  }
  const apt = (args: string[]) =>
    spawnSync('apt-get', args, { stdio: ['ignore', 2, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
  progress(`ring: no Python imports opendht; running ${install}`);
  let r = apt(['install', '-y', ...PACKAGES]);
  if (r.error) return { ok: false, reason: `cannot run apt-get (${r.error.message}); install ${PACKAGES.join(' ')} by hand` };
  if (r.status !== 0) {
    progress('ring: apt-get install failed; refreshing the package lists (apt-get update) and trying again');
    apt(['update']);
    r = apt(['install', '-y', ...PACKAGES]);
  }
  if (r.status !== 0) return { ok: false, reason: `${install} exited with ${String(r.status)}` };
  const after = findPython();
  if (!after) return { ok: false, reason: `installed ${PACKAGES.join(' ')}, but none of ${candidates().join(', ')} imports opendht` };
  return { ok: true, anchor: { script, python: after, setup: `installed ${PACKAGES.join(' ')}; ${after} imports opendht` } };
}

/** Runs `python script N OPS` and parses its result line; the child is killed on clean-up. */
export async function runAnchor(anchor: Anchor, peers: number, ops: number, cleanup: Cleanup): Promise<OpenDhtResult> {
  const child = spawn(anchor.python, [anchor.script, String(peers), String(ops)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = cleanup.add(`OpenDHT anchor (pid ${String(child.pid)})`, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // 8 s of routing-table warm-up in the script, then at most 30 s per timed-out operation.
  const limitMs = 120_000 + ops * 500;
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    const parsed = parseOpenDhtLine(out);
    if (!parsed) {
      throw new Error(`the OpenDHT anchor (N=${peers}) exited with ${String(code)} without its result line: ${out.trim().split('\n').slice(-5).join(' | ')}`);
    }
    return parsed;
  } finally {
    clearTimeout(timer);
    await kill();
  }
}
