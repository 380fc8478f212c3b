// What the compose ring's scripts (setup.mjs, story.mjs) share: running the `ime` command as an
// operator would, and reading ring.json. Plain Node (no build step): the scripts run in the ring's
// image and, in test/compose-topology.test.ts, on the host with an `ime` of the repository on the PATH.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A refusal with an operator-actionable code, printed as one line by `main`. */
export class ScriptError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const IME_TIMEOUT_MS = 60_000;

/**
 * Runs `ime ARGS --json`. Resolves `{ ok, json, stderr }` (json: the command's last stdout line,
 * parsed), also when ime refuses; rejects only when ime cannot be run at all.
 */
export function ime(args) {
  return new Promise((resolveRun, reject) => {
    execFile('ime', [...args, '--json'], { encoding: 'utf8', timeout: IME_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        const why = err.killed ? `no answer within ${IME_TIMEOUT_MS / 1000} s` : err.message;
        reject(new ScriptError('E_SCRIPT_IME', `ime ${args.slice(0, 3).join(' ')}: ${why}`));
        return;
      }
      let json;
      try {
        json = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
      } catch {
        json = undefined;
      }
      resolveRun({ ok: err === null, json, stderr: stderr.trim() });
    });
  });
}

/** `ime ARGS --json` that must succeed: its JSON answer, or a ScriptError carrying ime's own code. */
export async function imeOk(args) {
  const r = await ime(args);
  if (!r.ok || r.json === undefined) {
    throw new ScriptError(r.json?.error?.code ?? 'E_SCRIPT_IME', `ime ${args.slice(0, 3).join(' ')} failed: ${r.stderr || 'no answer'}`);
  }
  return r.json;
}

/** `--admin URL --token-file FILE` of a component described in ring.json. */
export function adminOptions(ring, component) {
  return ['--admin', component.admin, '--token-file', ring.path(component.tokenFile)];
}

/** ring.json, with `path(p)` resolving its relative paths against the file's directory. */
export function loadRing(file) {
  if (file === undefined) throw new ScriptError('E_SCRIPT_USAGE', 'give the ring description, e.g. /ime/ring/ring.json');
  let ring;
  try {
    ring = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ScriptError('E_SCRIPT_RING', `${file}: ${err.code === 'ENOENT' ? 'no such file' : 'not a JSON document'}`);
  }
  const base = dirname(resolve(file));
  return { ...ring, path: (p) => resolve(base, p) };
}

/**
 * Writes a file only when it is missing, through a temporary name, so that a reader never sees half
 * of it and a second run keeps what the first one made. `make(tmp)` writes the temporary file.
 * Returns whether it was made now.
 */
export async function once(file, make) {
  if (existsSync(file)) return false;
  const tmp = `${file}.tmp`;
  await make(tmp);
  renameSync(tmp, file);
  return true;
}

/** A secret file (mode 0600) holding `text` on one line. */
export function writeSecret(file, text) {
  writeFileSync(file, `${text}\n`, { mode: 0o600 });
}

export function say(line) {
  process.stdout.write(`${line}\n`);
}

/** Runs a script's body; a refusal ends it with one line naming the code and exit status 1. */
export function main(name, body) {
  body().then(
    (status) => process.exit(status ?? 0),
    (err) => {
      const code = err instanceof ScriptError ? err.code : 'E_INTERNAL';
      process.stderr.write(`${name}: ${code}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
