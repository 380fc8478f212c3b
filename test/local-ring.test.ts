import { afterAll, describe, expect, it } from '@jest/globals';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { IME_BIN, lastJson } from './cli-helpers.js';

// `ime demo` and `ime ring up` as a newcomer runs them: separate processes, their output read line by
// line, Ctrl-C (SIGINT) in the middle, and nothing left behind afterwards — processes or files.
const bin = IME_BIN;

interface Running {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  /** Resolves with the first stdout line that matches. */
  line(match: (line: string) => boolean, timeoutMs: number): Promise<string>;
}

function run(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<{ match: (l: string) => boolean; resolve: (l: string) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) {
      if (w.match(l)) w.resolve(l);
      else waiters.push(w);
    }
  });
  child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString().trim()}`));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    line: (match, timeoutMs) =>
      new Promise((resolve, reject) => {
        const found = lines.find(match);
        if (found !== undefined) return resolve(found);
        const timer = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms; output:\n${lines.join('\n')}`)), timeoutMs);
        waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      }),
  };
}

function ime(...argv: string[]): { status: number | null; json: Record<string, unknown>; stdout: string } {
  const r = spawnSync(process.execPath, [bin, ...argv, '--json'], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, json: r.stdout.trim() === '' ? {} : lastJson(r.stdout), stdout: r.stdout };
}

/** Processes whose command line mentions `dir` (every component's config file lives under it). */
function processesUnder(dir: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.includes(dir) ? [cmd.replace(/\0/g, ' ')] : [];
      } catch {
        return [];
      }
    });
}

interface Component {
  role: string;
  name: string;
  domain?: string;
  peerId?: string;
  listen: string[];
  admin: string;
  tokenFile: string;
  peer?: string;
  patterns?: string[];
  exclusions?: string[];
  vapUser?: string;
  ticketEpoch?: number;
  ticketPasswordFile?: string;
}

describe('local rings for newcomers and developers', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ime-local-ring-test-'));
  const started: ChildProcess[] = [];
  afterAll(() => {
    for (const c of started) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  it('ime ring up reports every component, serves the story through the CLI, and stops cleanly on SIGTERM', async () => {
    const data = join(tmp, 'ring');
    const ring = run(['ring', 'up', '--json', '--peers', '4', '--data', data, '--revalidate-after', '2', '--keepalive', '5'], {});
    started.push(ring.child);
    const ready = JSON.parse(await ring.line((l) => l.startsWith('{"ready":true'), 120_000)) as { components: Component[] };

    const roles = ready.components.map((c) => c.role).sort();
    expect(roles).toEqual(['bootstrap', 'cm', 'cm', 'cm', 'peer', 'peer', 'peer', 'peer', 'pstn']);
    for (const c of ready.components) {
      expect(c.admin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(existsSync(c.tokenFile)).toBe(true);
      if (c.role === 'peer' || c.role === 'bootstrap') expect(c.peerId).toMatch(/^12D3KooW/);
    }
    const cm = (name: string) => ready.components.find((c) => c.name === name) as Component;
    const acme = cm('cm-acme');
    expect(acme).toMatchObject({ domain: 'acme.example', peer: 'peer-1', patterns: ['+14085550XXX'], exclusions: ['+14085550000'], vapUser: 'imeuser', ticketEpoch: 1 });
    expect(cm('cm-globex').domain).toBe('globex.example');
    expect(cm('cm-initech').domain).toBe('initech.example');
    // Secrets live in files only the operator can read.
    expect(statSync(cm('cm-globex').ticketPasswordFile as string).mode & 0o077).toBe(0);

    // The story by hand, as the README tells a developer: two PSTN calls acme → globex teach acme two routes.
    const pstn = cm('pstn');
    const as = (c: Component) => ['--admin', c.admin, '--token-file', c.tokenFile];
    for (const to of ['+12125551001', '+12125551002']) expect(ime('pstn', 'call', '--from', '+14085550100', '--to', to, ...as(pstn)).status).toBe(0);
    let routes: Array<{ number: string; ticket: string }> = [];
    for (let i = 0; i < 150 && routes.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 200));
      routes = ime('cm', 'show', 'routes', ...as(acme)).json.routes as typeof routes;
    }
    expect(routes.map((r) => r.number).sort()).toEqual(['+12125551001', '+12125551002']);
    const verdict = ime('ticket', 'verify', '--ticket', routes[0]!.ticket, '--password-file', cm('cm-globex').ticketPasswordFile as string, '--epoch', '1', '--calling-domain', 'acme.example', '--called', routes[0]!.number);
    expect(verdict.status).toBe(0);
    expect(verdict.json.valid).toBe(true);

    ring.child.kill('SIGTERM');
    expect(await ring.exited).toBe(0);
    expect(processesUnder(data)).toEqual([]);
    // --data keeps the files for a look afterwards.
    expect(existsSync(join(data, 'peer-1', 'peer.json'))).toBe(true);
  }, 240_000);

  it('ime demo stops every process and removes its files when interrupted', async () => {
    const demoTmp = join(tmp, 'demo-tmp');
    mkdirSync(demoTmp);
    const demo = run(['demo'], { TMPDIR: demoTmp });
    started.push(demo.child);
    await demo.line((l) => l.includes('validation acme → globex.example'), 120_000);
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(1);
    expect(demo.lines.join('\n')).toContain('E_DEMO_INTERRUPTED');
    expect(processesUnder(demoTmp)).toEqual([]);
    expect(readdirSync(demoTmp).filter((f) => f.startsWith('ime-ring-'))).toEqual([]);
  }, 240_000);
});
