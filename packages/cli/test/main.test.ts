import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/main.js';

async function ime(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await run(argv, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } });
  return { status, stdout, stderr };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

const base = ['--password', 'password1234', '--epoch', '1'];
const issueArgs = [...base, '--issuer-domain', 'globex.example', '--calling-domain', 'acme.example', '--number', '+14085550100'];

describe('ime (in process)', () => {
  it('prints its version, as text and as JSON', async () => {
    expect((await ime('--version')).stdout).toMatch(/^ime \d+\.\d+\.\d+/);
    expect(lastJson((await ime('--version', '--json')).stdout)).toHaveProperty('version');
  });

  it('lists commands on --help and exits 0; with no command it exits 2', async () => {
    const help = await ime('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('ticket verify');
    expect((await ime()).status).toBe(2);
  });

  it('shows a command\'s options with --help', async () => {
    const r = await ime('ticket', 'verify', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--calling-domain DOMAIN');
  });

  it('names unknown commands with suggestions, exit 2', async () => {
    const r = await ime('ticket', 'frobnicate');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^ime: E_CLI_UNKNOWN_COMMAND: .*ime ticket verify/);
  });

  it('issues and verifies, printing one JSON object as the last line', async () => {
    const issued = lastJson((await ime('ticket', 'issue', ...issueArgs, '--json')).stdout);
    expect(typeof issued.ticket).toBe('string');
    expect(new Date(issued.expires as string).getTime()).toBeGreaterThan(Date.now());
    const ok = await ime('ticket', 'verify', '--ticket', issued.ticket as string, ...base, '--calling-domain', 'acme.example', '--called', '+14085550100', '--json');
    expect(ok.status).toBe(0);
    expect(lastJson(ok.stdout)).toMatchObject({ valid: true, callingDomain: 'acme.example' });
  });

  it('reports a refusal with exit 1, the reason in JSON and the code on stderr', async () => {
    const { stdout } = await ime('ticket', 'issue', ...issueArgs);
    const ticket = stdout.trim();
    const r = await ime('ticket', 'verify', '--ticket', ticket, ...base, '--calling-domain', 'acme.example', '--called', '+14085550199', '--json');
    expect(r.status).toBe(1);
    expect(lastJson(r.stdout)).toMatchObject({ valid: false, reason: 'number-not-permitted' });
    expect(r.stderr.trim()).toBe('ime: E_TICKET_NUMBER_NOT_PERMITTED: ticket refused (number-not-permitted)');
  });

  it('reads secrets from a file and refuses both forms at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ime-cli-'));
    try {
      const file = join(dir, 'pw');
      writeFileSync(file, 'password1234\n');
      const withFile = ['--password-file', file, '--epoch', '1', '--issuer-domain', 'globex.example', '--calling-domain', 'acme.example', '--number', '+14085550100'];
      const r = await ime('ticket', 'issue', ...withFile);
      expect(r.status).toBe(0);
      const both = await ime('ticket', 'issue', ...withFile, '--password', 'password1234');
      expect(both.status).toBe(2);
      expect(both.stderr).toContain('E_CLI_CONFLICTING_OPTIONS');
      const missing = await ime('ticket', 'issue', ...withFile.map((a) => (a === file ? join(dir, 'absent') : a)));
      expect(missing.stderr).toContain('E_CLI_FILE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [['--called', '14085550100'], 'E_E164_MISSING_PLUS'],
    [['--called', '+1408555010000000'], 'E_E164_TOO_LONG'],
    [['--calling-domain', 'acme..example'], 'E_DOMAIN_EMPTY_LABEL'],
    [['--epoch', '0'], 'E_TICKET_EPOCH'],
    [['--password', 'has space in it'], 'E_TICKET_PASSWORD_CHARACTER'],
  ])('refuses bad verify input %j with %s and exit 2, without a stack trace', async (override, code) => {
    const args: Record<string, string> = { '--ticket': 'AAAA', '--password': 'password1234', '--epoch': '1', '--calling-domain': 'acme.example', '--called': '+14085550100' };
    args[override[0] as string] = override[1] as string;
    const r = await ime('ticket', 'verify', ...Object.entries(args).flat());
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^ime: ${code}: `));
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('requires all three previous-epoch options together', async () => {
    const r = await ime('ticket', 'verify', '--ticket', 'AAAA', ...base, '--calling-domain', 'acme.example', '--called', '+14085550100', '--previous-epoch', '2');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('E_CLI_MISSING_OPTION');
  });

  it('inspects a ticket without verifying it, and says so', async () => {
    const ticket = (await ime('ticket', 'issue', ...issueArgs)).stdout.trim();
    const r = await ime('ticket', 'inspect', '--ticket', ticket, '--json');
    expect(lastJson(r.stdout)).toMatchObject({ verified: false, epoch: 1, numbers: ['+14085550100'] });
    expect((await ime('ticket', 'inspect', '--ticket', 'garbage!')).stderr).toContain('E_TICKET_MALFORMED');
  });

  it('plays the demo story and reports the summary INTERFACES.md lists', async () => {
    const r = await ime('demo', '--json');
    expect(r.status).toBe(0);
    expect(lastJson(r.stdout)).toMatchObject({
      ok: true,
      peers: 4,
      didsPublished: 999 + 1000 + 99,
      pstnCalls: 8,
      validations: { succeeded: 7, failed: 1 },
      routesLearned: 6,
      ticketChecks: { accepted: 6, refused: 3 },
    });
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  }, 150_000);
});
