#!/usr/bin/env node
// Brings a fresh clone to a runnable state with nothing but Node 20 and npm: installs pnpm locally
// (no global install, so no root needed), installs the workspace, generates the wire code and
// compiles. Every step is skipped when it is already up to date, so running it again is cheap.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PNPM_VERSION = '12.21.0';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const log = (msg) => { if (!quiet) process.stderr.write(`[setup] ${msg}\n`); };

function fail(code, msg) {
  process.stderr.write(`setup: ${code}: ${msg}\n`);
  process.exit(1);
}

function run(cmd, argv, opts = {}) {
  const res = spawnSync(cmd, argv, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', ...opts });
  if (res.error) fail('E_SETUP_SPAWN', `${cmd} ${argv.join(' ')}: ${res.error.message}`);
  if (res.status !== 0) fail('E_SETUP_STEP', `${cmd} ${argv.join(' ')} exited with ${res.status}`);
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  fail('E_NODE_VERSION', `Node ${process.versions.node} is too old; this project needs Node 20.19 or newer`);
}

// pnpm: a pinned copy under .tools/ keeps every machine on the same version.
const toolsDir = join(root, '.tools');
const pnpmBin = join(toolsDir, 'node_modules', 'pnpm', 'bin', 'pnpm.mjs');
if (!existsSync(pnpmBin)) {
  log(`installing pnpm ${PNPM_VERSION} into .tools/ (one time)`);
  mkdirSync(toolsDir, { recursive: true });
  writeFileSync(join(toolsDir, 'package.json'), '{"private":true}\n');
  run('npm', ['install', '--prefix', toolsDir, '--no-audit', '--no-fund', '--loglevel=error', `pnpm@${PNPM_VERSION}`]);
  if (!existsSync(pnpmBin)) fail('E_SETUP_PNPM', `pnpm did not install into ${toolsDir}`);
}
const pnpm = (argv) => run(process.execPath, [pnpmBin, ...argv]);

// Dependencies: reinstall only when a manifest or the lockfile changed since the last install.
function manifestDigest() {
  const h = createHash('sha256');
  const files = ['package.json', 'pnpm-workspace.yaml', 'pnpm-lock.yaml', 'bench/package.json', 'test/package.json'];
  for (const dir of readdirSync(join(root, 'packages'))) files.push(`packages/${dir}/package.json`);
  for (const f of files.sort()) {
    const p = join(root, f);
    h.update(f).update('\0').update(existsSync(p) ? readFileSync(p) : '').update('\0');
  }
  return h.digest('hex');
}
const stamp = join(root, 'node_modules', '.ime-install-stamp');
const digest = manifestDigest();
if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== digest) {
  // CI installs exactly the lockfile; a developer who edited a manifest gets the lockfile updated.
  const frozen = process.env.CI && existsSync(join(root, 'pnpm-lock.yaml')) ? ['--frozen-lockfile'] : [];
  log(`installing dependencies with pnpm ${PNPM_VERSION}`);
  pnpm(['install', ...frozen, '--reporter=append-only']);
  writeFileSync(stamp, manifestDigest());
}

if (!args.has('--no-build')) {
  log('generating wire code from proto/');
  run(process.execPath, [join(root, 'packages/wire/scripts/generate.mjs')]);
  log('compiling TypeScript (incremental)');
  run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'tsconfig.json']);
}
log('ready');
