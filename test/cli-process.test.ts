import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The built `ime` binary as a separate process, the way operators and outside checks run it.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'packages/cli/bin/ime.js');

function ime(...argv: string[]) {
  const r = spawnSync(process.execPath, [bin, ...argv], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
}

const secret = ['--password', 'password1234', '--epoch', '1'];

describe('the ime binary', () => {
  it('issues a ticket that verifies, and refuses each kind of bad ticket with its reason', () => {
    const issued = ime('ticket', 'issue', ...secret, '--issuer-domain', 'globex.example', '--calling-domain', 'acme.example', '--number', '+14085550100', '--number', '+14085550101', '--json');
    expect(issued.status).toBe(0);
    const ticket = lastJson(issued.stdout).ticket as string;

    const verify = (t: string, domain: string, called: string, extra: string[] = []) =>
      ime('ticket', 'verify', '--ticket', t, ...secret, '--calling-domain', domain, '--called', called, '--json', ...extra);

    const ok = verify(ticket, 'acme.example', '+14085550101');
    expect(ok.status).toBe(0);
    expect(lastJson(ok.stdout)).toMatchObject({ valid: true, numbers: ['+14085550100', '+14085550101'] });

    const bytes = Buffer.from(ticket, 'base64url');
    bytes[20] = (bytes[20] as number) ^ 0x40;
    const cases: Array<[string, ReturnType<typeof ime>]> = [
      ['bad-signature', verify(bytes.toString('base64url'), 'acme.example', '+14085550100')],
      ['domain-mismatch', verify(ticket, 'initech.example', '+14085550100')],
      ['number-not-permitted', verify(ticket, 'acme.example', '+14085550102')],
      ['malformed', verify('####', 'acme.example', '+14085550100')],
      ['expired', verify(ticket, 'acme.example', '+14085550100', ['--at', '2099-01-01T00:00:00Z'])],
      ['unknown-epoch', ime('ticket', 'verify', '--ticket', ticket, '--password', 'password1234', '--epoch', '2', '--calling-domain', 'acme.example', '--called', '+14085550100', '--json')],
    ];
    for (const [reason, r] of cases) {
      expect(r.status).toBe(1);
      expect(lastJson(r.stdout)).toMatchObject({ valid: false, reason });
      expect(r.stderr).toMatch(/^ime: E_TICKET_[A-Z_]+: ticket refused/);
    }
  });

  it('exits non-zero with one error line and no stack trace on bad input', () => {
    const r = ime('ticket', 'issue', ...secret, '--issuer-domain', 'globex.example', '--calling-domain', 'acme.example', '--number', '+1408555XXXX');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('ime: E_E164_INVALID_CHARACTER: "+1408555XXXX" is not +E.164: character 9 is not a digit\n');
    expect(r.stdout).toBe('');
  });

  it('prints its version', () => {
    const r = ime('--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ime \d+\.\d+\.\d+ \(node v\d+/);
  });
});
