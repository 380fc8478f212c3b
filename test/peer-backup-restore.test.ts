import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Member, RingHarness, freePorts, waitFor } from '@ime/harness';
import { counters, summary } from './ring-test-helpers.js';
import { type ImeRun, lastJson, runIme } from './cli-helpers.js';

// SPEC §8, issue 7: a peer's whole state in one file. Peer P (its own process) serves a call manager
// over VAP and replicates the ring's records; it is backed up with the CLI, then its machine is lost
// (SIGKILL, data dir wiped). A stand-in peer process starts in its place from P's configuration,
// refuses a backup of another schema without changing anything, and takes the real backup: it comes
// back as P — same PeerId, certificate, records, VAP credentials — and the call manager reconnects.
// Then the offline form restores P into an empty data dir while it is stopped.
const VAP_PASSWORD = 'cm-vap-password-backup-1';
const TICKET_PASSWORD = 'ticket-password-backup-0123';
const PATTERN = '+140855512XX';
const NUMBERS = Array.from({ length: 100 }, (_, i) => `+140855512${String(i).padStart(2, '0')}`);

function ime(...argv: string[]): Promise<ImeRun> {
  return runIme(argv, 120_000);
}

describe('backup and restore of a whole peer', () => {
  let ring: RingHarness;
  let p: Member;
  let other: Member;
  let lostPeerId: string;
  let backupFile: string;
  let otherSchemaFile: string;
  let damagedFile: string;
  const adminOf = (m: Member) => ['--admin', m.ready.admin, '--token-file', m.ready.tokenFile];

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 4, mode: 'process', keep: true });
    await ring.converge();
    p = ring.peers[0]!;
    other = ring.peers[1]!;
    lostPeerId = p.peerId;
    const pstn = await ring.startSimulator('pstn', 'pstn', { clockSkewMs: 0 });
    // A fixed VAP port: the call manager dials it again once the restored peer listens there.
    const [vapPort] = await freePorts(1);
    const admin = await p.admin();
    await admin.post('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port: vapPort });
    await admin.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: VAP_PASSWORD, ticketPassword: TICKET_PASSWORD, epoch: 1 });
    const cmDir = join(ring.dir, 'cm-p');
    mkdirSync(cmDir, { recursive: true });
    writeFileSync(join(cmDir, 'vap.password'), `${VAP_PASSWORD}\n`, { mode: 0o600 });
    await ring.startSimulator('cm', 'cm-p', {
      domain: 'enterprise-1.example',
      enrolledPatterns: [PATTERN],
      vservice: { maxDidCount: 10_000 },
      vap: { primary: `127.0.0.1:${vapPort}`, username: 'imeuser', passwordFile: 'vap.password', reconnectIntervalSec: 1 },
      pstn: { admin: pstn.ready.admin, tokenFile: pstn.ready.tokenFile },
    });
    await waitFor('the call manager to register and publish its numbers', async () => {
      const c = await counters(p);
      return c.ClientsRegistered === 1 && c.IMEDistributedCacheQuotaUsed === NUMBERS.length;
    }, 60_000, 250);
    backupFile = join(ring.dir, 'backups', 'peer-1.imebackup');
    otherSchemaFile = join(ring.dir, 'backups', 'peer-1.schema2.imebackup');
    damagedFile = join(ring.dir, 'backups', 'peer-1.damaged.imebackup');
    mkdirSync(dirname(backupFile), { recursive: true });
  }, 240_000);

  afterAll(async () => {
    await ring?.stop();
    if (ring && !process.env.IME_KEEP_RING) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  it('backs the running peer up to one file, mode 0600, and will not overwrite it without --force', async () => {
    const r = await ime('utils', 'backup', '--out', backupFile, ...adminOf(p), '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = lastJson(r.stdout);
    expect(result).toEqual(expect.objectContaining({ ok: true, file: backupFile, peerId: lostPeerId, domain: 'enterprise-1.example', name: 'peer-1', schemaVersion: 1, mode: '0600', holdsSecrets: true }));
    expect(result.entries as number).toBeGreaterThan(NUMBERS.length);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    expect(statSync(backupFile).size).toBe(result.bytes);
    // No temporary file is left beside it.
    expect(readdirSync(dirname(backupFile))).toEqual(['peer-1.imebackup']);
    expect(readFileSync(backupFile).subarray(0, 16).toString()).toBe('IME-PEER-BACKUP\n');

    const again = await ime('utils', 'backup', '--out', backupFile, ...adminOf(p));
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^ime: E_BACKUP_EXISTS: /);
    const human = await ime('utils', 'backup', '--out', backupFile, '--force', ...adminOf(p));
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(/mode 0600/);

    // The same backup as written by a later software (schema 2), and damaged in transit (one byte).
    const bytes = readFileSync(backupFile);
    bytes.writeUInt32BE(2, 16);
    writeFileSync(otherSchemaFile, bytes, { mode: 0o600 });
    const damaged = readFileSync(backupFile);
    damaged[damaged.length - 100] = (damaged[damaged.length - 100] as number) ^ 0x04;
    writeFileSync(damagedFile, damaged, { mode: 0o600 });

    const audit = readFileSync(join(p.dir, 'data', 'audit.log'), 'utf8');
    expect(audit).toMatch(/"action":"backup"/);
    expect(audit).not.toContain(VAP_PASSWORD);
  }, 60_000);

  it('a stand-in on a new machine refuses another schema unchanged, then restores the lost peer, which rejoins as itself', async () => {
    // Numbers whose replicas include P: its store must hold them again after the restore.
    const replicated: string[] = [];
    for (const n of NUMBERS.slice(0, 30)) {
      const f = await (await other.admin()).get<{ replicas: string[] }>(`/v1/dids/${encodeURIComponent(n)}`);
      if (f.replicas.includes(lostPeerId)) replicated.push(n);
    }
    expect(replicated.length).toBeGreaterThan(0);

    // The machine is lost.
    await p.kill();
    rmSync(join(p.dir, 'data'), { recursive: true, force: true });
    // A new machine, set up from P's configuration with a fresh enrollment token.
    const bootstrap = await ring.bootstraps[0]!.admin();
    const { token } = await bootstrap.post<{ token: string }>('/v1/tokens', { domain: 'enterprise-1.example', note: 'stand-in for peer-1' });
    writeFileSync(join(p.dir, 'enroll.token'), `${token}\n`, { mode: 0o600 });
    await p.start();
    const standIn = p.peerId;
    expect(standIn).not.toBe(lostPeerId);

    const refused = await ime('utils', 'restore', '--in', otherSchemaFile, ...adminOf(p), '--json');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^ime: E_BACKUP_SCHEMA: /);
    expect(lastJson(refused.stdout)).toEqual({ ok: false, error: expect.objectContaining({ code: 'E_BACKUP_SCHEMA' }) });
    expect((await (await p.admin()).get<{ peerId: string }>('/v1/peerid')).peerId).toBe(standIn);
    expect((await (await p.admin()).get<{ servers: unknown[] }>('/v1/vap/servers')).servers).toEqual([]);
    // Damage is found once the whole file is there; a backup of another enterprise's peer at once.
    const corrupt = await ime('utils', 'restore', '--in', damagedFile, ...adminOf(p));
    expect(corrupt.status).toBe(1);
    expect(corrupt.stderr).toMatch(/^ime: E_BACKUP_CORRUPT: /);
    const foreign = await ime('utils', 'restore', '--in', backupFile, ...adminOf(other));
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toMatch(/^ime: E_BACKUP_DOMAIN: /);
    expect((await (await other.admin()).get<{ peerId: string }>('/v1/peerid')).peerId).toBe(other.peerId);
    expect((await (await p.admin()).get<{ peerId: string }>('/v1/peerid')).peerId).toBe(standIn);
    expect(existsSync(join(p.dir, 'data', 'restore-staging'))).toBe(false);

    const r = await ime('utils', 'restore', '--in', backupFile, ...adminOf(p), '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lastJson(r.stdout)).toEqual(expect.objectContaining({ ok: true, restored: true, form: 'running', state: 'applied', peerId: lostPeerId, previousPeerId: standIn }));

    // The operator retires the stand-in's identity, as the restore's output says.
    const ban = await ime('bootstrap', 'ban', standIn, '--reason', 'replaced by a restore', ...adminOf(ring.bootstraps[0]!));
    expect(ban.status).toBe(0);

    const id = await ime('show', 'peerid', ...adminOf(p), '--json');
    expect(lastJson(id.stdout)).toEqual({ peerId: lostPeerId });
    await waitFor('the restored peer to be GREEN in a ring of four', async () => {
      const s = await summary(p);
      return s.health === 'GREEN' && s.peerId === lostPeerId && s.peerCount === 4;
    }, 60_000, 250);
    // Its own store holds its replicas again (they came back with the state)…
    for (const n of replicated) {
      expect([n, (await (await p.admin()).get<{ held: boolean }>(`/v1/store/dids/${encodeURIComponent(n)}`)).held]).toEqual([n, true]);
    }
    // …and the ring still serves its records, claimed by its PeerId.
    const fetched = await ime('utils', 'fetch', 'did', NUMBERS[7]!, ...adminOf(other), '--json');
    const found = lastJson(fetched.stdout) as { found: boolean; claims: { peerId: string }[] };
    expect(found.found).toBe(true);
    expect(found.claims.map((c) => c.peerId)).toContain(lostPeerId);
    // The call manager reconnects with the same credentials to the same VAP instance.
    await waitFor('the call manager to register again', async () => (await counters(p)).ClientsRegistered === 1, 60_000, 250);
    const vservices = await (await p.admin()).get<{ vservices: unknown[] }>('/v1/vservices');
    expect(vservices.vservices.length).toBe(1);
    const audit = readFileSync(join(p.dir, 'data', 'audit.log'), 'utf8');
    expect(audit).toMatch(/"action":"restore".*"outcome":"failure".*E_BACKUP_SCHEMA/);
    expect(audit).toMatch(/"action":"restore-applied".*"outcome":"success"/);
  }, 180_000);

  it('the offline form restores into a stopped peer\'s empty data dir, and refuses one that is not empty', async () => {
    await p.stop();
    rmSync(join(p.dir, 'data'), { recursive: true, force: true });
    const r = await ime('utils', 'restore', '--in', backupFile, '--config', p.configFile, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lastJson(r.stdout)).toEqual(expect.objectContaining({ ok: true, restored: true, form: 'offline', peerId: lostPeerId, configWritten: false, replaced: false }));

    const again = await ime('utils', 'restore', '--in', backupFile, '--config', p.configFile);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^ime: E_RESTORE_DATA_DIR_NOT_EMPTY: /);
    // A configuration that does not exist yet would be written from the backup's, which names the
    // same (occupied) data dir: refused, and no configuration file appears.
    const fresh = join(ring.dir, 'backups', 'restored-peer.json');
    const refused = await ime('utils', 'restore', '--in', backupFile, '--config', fresh);
    expect(refused.stderr).toMatch(/^ime: E_RESTORE_DATA_DIR_NOT_EMPTY: /);
    expect(existsSync(fresh)).toBe(false);

    const ready = await p.start();
    expect(ready.peerId).toBe(lostPeerId);
    await waitFor('the restored peer to be GREEN again', async () => (await summary(p)).health === 'GREEN', 60_000, 250);
    await waitFor('the call manager to register again', async () => (await counters(p)).ClientsRegistered === 1, 60_000, 250);
  }, 120_000);
});
