import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Member, RingHarness, waitFor } from '@ime/harness';
import { ALERT_CATALOGUE, AdminServer, type OperationsRole } from '@ime/runtime';
import { registerBootstrapAdminRoutes } from '@ime/bootstrap';
import { registerCmAdminRoutes } from '@ime/cm-sim';
import { registerPstnAdminRoutes } from '@ime/pstn-sim';
import { registerPeerAdminRoutes } from '../packages/peer/src/peer-admin.js';
import { counters } from './ring-test-helpers.js';

// Operations on every role (SPEC §8, issue 7 item 3), each component its own process: a bootstrap,
// three peers, a PSTN switch and a call manager attached to peer 1 over VAP. For each role: the
// admin API's token, /metrics in Prometheus text with the guide's names, the administration
// commands through the `ime` CLI with --json, log levels changed while running, and the audit log —
// every change with its real outcome, append-only, without a secret in it or in the log files.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'packages/cli/bin/ime.js');

const VAP_PASSWORD = 'ops-vap-password-Zq81';
const TICKET_PASSWORD = 'ops-ticket-password-Kx42';
const NEW_TICKET_PASSWORD = 'ops-ticket-password-Wn77';
const SHORT_TICKET_PASSWORD = 'short-Qp9';
const CM_DOMAIN = 'enterprise-1.example';
const CM_PATTERN = '+14085552XXX';
const CM_NUMBER = '+14085552001';
const MOTD = 'Ops window Saturday 02:00 UTC';
const PUBLIC_IP = '198.51.100.7';

interface Cli {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed, when it is a JSON object. */
  json: Record<string, unknown> | undefined;
}

/** Async: the harness keeps reading its members' output meanwhile. `json: false` for the text output. */
function ime(argv: readonly string[], target?: Member, json = true): Promise<Cli> {
  const admin = target === undefined ? [] : ['--admin', target.ready.admin, '--token-file', target.ready.tokenFile];
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...argv, ...admin, ...(json ? ['--json'] : [])], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      const last = stdout.trimEnd().split('\n').at(-1) ?? '';
      let json: Record<string, unknown> | undefined;
      try {
        const parsed = JSON.parse(last) as unknown;
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, json });
    });
  });
}

/** Runs a command that must succeed and answer one JSON object as its last line. */
async function ok(argv: readonly string[], target?: Member): Promise<Record<string, unknown>> {
  const r = await ime(argv, target);
  if (r.status !== 0 || r.json === undefined) throw new Error(`ime ${argv.join(' ')} → ${r.status}\n${r.stdout}\n${r.stderr}`);
  expect(r.stderr).toBe('');
  return r.json;
}

/** Runs a command that must be refused: exit 1, one stderr line naming the code, no stack trace. */
async function refused(argv: readonly string[], target: Member, code: string): Promise<void> {
  const r = await ime(argv, target);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`^ime: ${code}: [^\\n]+\\n$`));
  expect(r.json).toEqual({ ok: false, error: expect.objectContaining({ code }) });
}

interface AuditEntry {
  time: string;
  actor: string;
  action: string;
  params: Record<string, unknown>;
  outcome: 'success' | 'failure';
  error?: { code: string; message: string };
}

const auditPath = (m: Member) => join(m.dir, 'data', 'audit.log');
const logPath = (m: Member) => join(m.dir, 'log.jsonl');

function auditText(m: Member): string {
  return existsSync(auditPath(m)) ? readFileSync(auditPath(m), 'utf8') : '';
}

/** Every line of the audit file must be one JSON object with the fields of an entry. */
function auditFile(m: Member): AuditEntry[] {
  const text = auditText(m);
  if (text === '') return [];
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const entry = JSON.parse(line) as AuditEntry;
      expect(entry).toEqual(expect.objectContaining({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), actor: 'admin@127.0.0.1', action: expect.any(String), outcome: expect.stringMatching(/^(success|failure)$/) }));
      expect(entry.outcome === 'failure').toBe(entry.error !== undefined);
      return entry;
    });
}

interface MetricFamily {
  type: string;
  help: string;
  samples: number[];
}

/** Parses Prometheus text exposition 0.0.4 strictly: HELP and TYPE once each, before the sample. */
function parsePrometheus(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const family = (name: string) => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = { type: '', help: '', samples: [] }));
    return f;
  };
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (NaN|[+-]Inf|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?: -?\d+)?$/.exec(line);
    if (help) {
      const f = family(help[1] as string);
      expect(f.help).toBe('');
      f.help = (help[2] as string).replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    } else if (type) {
      const f = family(type[1] as string);
      expect(f.type).toBe('');
      expect(f.samples).toEqual([]);
      f.type = type[2] as string;
    } else if (sample) {
      const f = families.get(sample[1] as string);
      if (f === undefined || f.type === '') throw new Error(`metrics: sample before its TYPE: ${line}`);
      f.samples.push(Number(sample[3]));
    } else if (!line.startsWith('#')) {
      throw new Error(`metrics: not Prometheus text: ${JSON.stringify(line)}`);
    }
  }
  for (const [name, f] of families) {
    expect({ name, typed: f.type !== '', helped: f.help !== '', samples: f.samples.length }).toEqual({ name, typed: true, helped: true, samples: 1 });
    if (f.type === 'counter') expect(f.samples[0]).toBeGreaterThanOrEqual(0);
  }
  return families;
}

interface MetricSpec {
  role: OperationsRole;
  name: string;
  type: string;
  help: string;
}

describe('operations on every role: admin API, metrics, commands, log levels, audit, alerts', () => {
  let ring: RingHarness;
  let bootstrap: Member;
  let peer: Member;
  let pstn: Member;
  let cm: Member;
  let roles: [OperationsRole, Member][];

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 3, mode: 'process' });
    await ring.converge();
    bootstrap = ring.bootstraps[0]!;
    peer = ring.peers[0]!;
    pstn = await ring.startSimulator('pstn', 'pstn', { clockSkewMs: 0 });
    // Debug logs on the peer before the credentials arrive: a secret logged anywhere would show.
    await ok(['set', 'log', 'level', 'debug'], peer);
    const vap = await ok(['add', 'vapserver', '--name', 'cucm', '--host', '127.0.0.1', '--port', '0'], peer);
    const dir = join(ring.dir, 'cm-a');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'vap.password'), `${VAP_PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(ring.dir, 'ticket.password'), `${TICKET_PASSWORD}\n`, { mode: 0o600 });
    await ok(['add', 'vapusercredentials', '--server', 'cucm', '--username', 'imeuser', '--password-file', join(dir, 'vap.password'), '--ticket-password-file', join(ring.dir, 'ticket.password'), '--epoch', '1'], peer);
    cm = await ring.startSimulator('cm', 'cm-a', {
      domain: CM_DOMAIN,
      enrolledPatterns: [CM_PATTERN],
      vservice: { maxDidCount: 10_000 },
      vap: { primary: `127.0.0.1:${String(vap.boundPort)}`, username: 'imeuser', passwordFile: 'vap.password', reconnectIntervalSec: 1 },
      pstn: { admin: pstn.ready.admin, tokenFile: pstn.ready.tokenFile },
    });
    await waitFor('the call manager to register and publish its numbers', async () => {
      const c = await counters(peer);
      return c.ClientsRegistered === 1 && c.IMEDistributedCacheQuotaUsed === 1000;
    }, 60_000, 250);
    await ok(['set', 'log', 'level', 'warn'], peer);
    roles = [['bootstrap', bootstrap], ['peer', peer], ['cm', cm], ['pstn', pstn]];
  }, 240_000);

  afterAll(async () => {
    await ring?.stop();
    if (ring && !process.env.IME_KEEP_RING) rmSync(ring.dir, { recursive: true, force: true });
  }, 60_000);

  it('every role refuses its admin API without the token or with a wrong one (401 E_ADMIN_AUTH), unaudited, and serves it with the token', async () => {
    for (const [, m] of roles) {
      const before = auditText(m);
      const wrongTokens: Record<string, string>[] = [{}, { authorization: `Bearer ${'A'.repeat(43)}` }, { authorization: `Basic ${readFileSync(m.ready.tokenFile, 'utf8').trim()}` }];
      for (const headers of wrongTokens) {
        for (const [method, path, body] of [['GET', '/metrics', undefined], ['GET', '/v1/counters', undefined], ['PUT', '/v1/log/levels', '{"level":"trace"}']] as const) {
          const res = await fetch(`${m.ready.admin}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body });
          expect(res.status).toBe(401);
          expect(await res.json()).toEqual({ error: { code: 'E_ADMIN_AUTH', message: expect.any(String) } });
        }
      }
      // A refused request is no administrative change: nothing is recorded, nothing changed.
      expect(auditText(m)).toBe(before);
      const token = readFileSync(m.ready.tokenFile, 'utf8').trim();
      const res = await fetch(`${m.ready.admin}/v1/log/levels`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { level: string }).level).toBe('warn');
    }
    // The CLI with the wrong token file: one line naming the code.
    const wrong = join(ring.dir, 'wrong.token');
    writeFileSync(wrong, `${'B'.repeat(43)}\n`, { mode: 0o600 });
    const r = await ime(['show', 'counters', '--admin', peer.ready.admin, '--token-file', wrong]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ime: E_ADMIN_AUTH: [^\n]+\n$/);
  });

  it('every role serves /metrics as valid Prometheus text: the spec\'s names, and exactly what its code declares', async () => {
    const { metricCatalogue } = (await import(join(root, 'scripts/ops-reference.mjs'))) as { metricCatalogue(): Promise<MetricSpec[]> };
    const declared = await metricCatalogue();
    const spec: Partial<Record<OperationsRole, string[]>> = {
      peer: [
        'IMEDistributedCacheHealth', 'IMEDistributedCacheNodeCount', 'IMEDistributedCacheStores', 'IMEDistributedCacheReads', 'IMEDistributedCacheStoredData',
        'IMEDistributedCacheQuota', 'IMEDistributedCacheQuotaUsed', 'ClientsRegistered', 'TerminatingVCRs', 'ValidationAttempts', 'ValidationsPending',
        'ValidationsAwaitingConfirmation', 'ValidationsBlocked', 'DaysUntilCertExpiry',
      ],
      cm: ['RoutesLearned', 'RoutesPublished', 'RoutesRejected', 'VCRUploadRequests', 'IMEServiceStatus'],
    };
    for (const [role, m] of roles) {
      const text = await (await m.admin()).getText('/metrics');
      const families = parsePrometheus(text);
      for (const name of spec[role] ?? []) expect(families.has(name)).toBe(true);
      // The operations reference (docs/OPERATIONS.md) is generated from the code's declarations:
      // the running role serves those and nothing else, with the same type and help.
      const served = [...families].map(([name, f]) => ({ role, name, type: f.type, help: f.help })).sort((a, b) => a.name.localeCompare(b.name));
      expect(served).toEqual(declared.filter((d) => d.role === role).sort((a, b) => a.name.localeCompare(b.name)));
    }
    const peerMetrics = parsePrometheus(await (await peer.admin()).getText('/metrics'));
    expect(peerMetrics.get('IMEDistributedCacheHealth')?.samples).toEqual([2]);
    expect(peerMetrics.get('ClientsRegistered')?.samples).toEqual([1]);
    expect(peerMetrics.get('IMEDistributedCacheQuotaUsed')?.samples).toEqual([1000]);
    expect(parsePrometheus(await (await cm.admin()).getText('/metrics')).get('IMEServiceStatus')?.samples).toEqual([1]);
  });

  it('the INTERFACES.md administration commands run through the CLI with --json, one JSON object last', async () => {
    // Reads only, so they run a few at a time.
    const checks: (() => Promise<void>)[] = [
      async () => {
        const summary = await ok(['show', 'dht', 'summary'], peer);
        for (const k of ['peerId', 'health', 'bootstrap', 'lastContactSec', 'sequence', 'configsReceived', 'hopsFromBootstrap', 'peerCount']) expect(summary).toHaveProperty(k);
        expect(summary).toMatchObject({ peerId: peer.peerId, health: 'GREEN', peerCount: 3 });
      },
      async () => expect(await ok(['show', 'peerid'], peer)).toEqual({ peerId: peer.peerId }),
      async () => expect((await ok(['show', 'bootstrap', 'ip'], peer)).bootstraps).toEqual([expect.objectContaining({ peerId: bootstrap.peerId })]),
      async () => expect(await ok(['show', 'addressing'], peer)).toMatchObject({ validatorPort: 8470, dhtPort: expect.any(Number) }),
      async () => expect((await ok(['show', 'vapstatus', 'summary'], peer)).clients).toEqual([expect.objectContaining({ registrationStatus: 'Registered' })]),
      async () =>
        expect((await ok(['show', 'vservice', 'details'], peer)).vservices).toEqual([expect.objectContaining({ didCount: 1000, vservice: expect.objectContaining({ domain: CM_DOMAIN }) })]),
      async () => expect((await ok(['show', 'vapserver', 'all'], peer)).servers).toEqual([expect.objectContaining({ settings: expect.objectContaining({ name: 'cucm' }) })]),
      async () => expect(await ok(['utils', 'fetch', 'did', CM_NUMBER], ring.peers[1]!)).toMatchObject({ found: true, claims: [expect.objectContaining({ peerId: peer.peerId })] }),
      async () => expect(await ok(['show', 'validator', 'pools'], peer)).toMatchObject({ threshold: expect.any(Number), pools: [] }),
      async () => expect(await ok(['show', 'validator', 'routes'], peer)).toEqual({ routes: [] }),
      async () => expect((await ok(['show', 'customerinfo'], peer)).customerInfo).toMatchObject({ company: '' }),
      async () => expect((await ok(['bootstrap', 'summary'], bootstrap)).rosterSize).toBe(3),
      async () => expect((await ok(['bootstrap', 'roster'], bootstrap)).peers).toHaveLength(3),
      async () => expect(await ok(['cm', 'show', 'status'], cm)).toMatchObject({ domain: CM_DOMAIN, serviceStatus: 1, peerId: peer.peerId }),
      async () => expect(await ok(['cm', 'show', 'routes'], cm)).toEqual({ routes: [] }),
      async () => expect((await ok(['cm', 'show', 'counters'], cm)).counters).toMatchObject({ IMEServiceStatus: 1, RoutesPublished: 1000 }),
      async () => expect((await ok(['pstn', 'show', 'lines'], pstn)).lines).toEqual([expect.objectContaining({ domain: CM_DOMAIN })]),
      // The commands every role answers.
      ...roles.flatMap(([, m]) => [
        async () => expect((await ok(['show', 'counters'], m)).counters).toEqual(expect.any(Object)),
        async () => expect(await ok(['show', 'log', 'levels'], m)).toMatchObject({ level: 'warn', known: expect.arrayContaining([{ module: 'admin', level: 'warn' }]) }),
        async () => expect(await ok(['show', 'audit', '--last', '5'], m)).toMatchObject({ file: auditPath(m), entries: expect.any(Array) }),
        async () => expect((await ok(['show', 'alerts'], m)).alerts).toEqual(expect.any(Array)),
      ]),
    ];
    for (let i = 0; i < checks.length; i += 3) await Promise.all(checks.slice(i, i + 3).map((check) => check()));
  });

  it('log levels change while running on every role: a module at debug logs its debug lines, back at the default it stops', async () => {
    const adminDebugLines = (m: Member) =>
      readFileSync(logPath(m), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { level: string; module: string; msg: string })
        .filter((e) => e.level === 'debug' && e.module === 'admin' && e.msg === 'admin request').length;
    await Promise.all(
      roles.map(async ([, m]) => {
        const before = adminDebugLines(m);
        const set = await ok(['set', 'log', 'level', 'debug', '--module', 'admin'], m);
        expect(set).toMatchObject({ level: 'warn', modules: { admin: 'debug' } });
        await ok(['show', 'counters'], m);
        const during = adminDebugLines(m);
        expect(during).toBeGreaterThan(before);
        expect(await ok(['set', 'log', 'level', 'default', '--module', 'admin'], m)).toMatchObject({ modules: {} });
        await ok(['show', 'counters'], m);
        expect(adminDebugLines(m)).toBe(during);
      }),
    );
    const bad = await ime(['set', 'log', 'level', 'loud'], peer);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^ime: E_LOG_LEVEL: [^\n]+\n$/);
  });

  it('administrative changes on every role are audited append-only with their real outcome, secrets masked', async () => {
    const earlier = new Map(roles.map(([, m]) => [m, auditText(m)]));
    const count = new Map(roles.map(([, m]) => [m, auditFile(m).length]));

    // Bootstrap: the ring's quota and message of the day.
    await ok(['set', 'dht', 'global', 'storagequota', '50000'], bootstrap);
    await ok(['bootstrap', 'motd', '--text', MOTD], bootstrap);
    // Peer: the guide's settings, the bucket threshold, a VAP setting, new credentials (the ticket
    // password changes), and two refusals: the bootstrap-only quota and a too-short ticket password.
    await ok(['set', 'validator', 'local', 'bucketentropy', '24'], peer);
    await ok(['set', 'vapserver', 'cucm', 'keepaliveinterval', '20'], peer);
    const info = await ok(['set', 'customerinfo', '--company', 'Enterprise One', '--country', 'US', '--contact-email', 'noc@enterprise-1.example', '--contact-phone', '+1 408 555 0100'], peer);
    expect(info.customerInfo).toMatchObject({ company: 'Enterprise One', country: 'US', unit: '' });
    await refused(['set', 'dht', 'global', 'storagequota', '5'], peer, 'E_BOOTSTRAP_ONLY');
    await refused(['add', 'vapusercredentials', '--server', 'cucm', '--username', 'imeuser', '--password', VAP_PASSWORD, '--ticket-password', SHORT_TICKET_PASSWORD, '--epoch', '2'], peer, 'E_VAP_BAD_CREDENTIALS');
    await ok(['add', 'vapusercredentials', '--server', 'cucm', '--username', 'imeuser', '--password', VAP_PASSWORD, '--ticket-password', NEW_TICKET_PASSWORD, '--epoch', '2'], peer);
    // Call manager and switch: a manual VCR and a call.
    const start = new Date(Date.now() - 120_000);
    await ok(['cm', 'vcr', 'upload', '--calling', CM_NUMBER, '--called', '+12125559998', '--start', start.toISOString(), '--stop', new Date(start.getTime() + 60_000).toISOString()], cm);
    await ok(['pstn', 'call', '--from', CM_NUMBER, '--to', '+12125559999', '--duration', '30'], pstn);

    const expected: [Member, [string, 'success' | 'failure', string?][]][] = [
      [bootstrap, [['set-storage-quota', 'success'], ['set-motd', 'success']]],
      [
        peer,
        [
          ['set-validator-bucketentropy', 'success'],
          ['set-vapserver', 'success'],
          ['set-customerinfo', 'success'],
          ['set-storage-quota', 'failure', 'E_BOOTSTRAP_ONLY'],
          ['add-vapusercredentials', 'failure', 'E_VAP_BAD_CREDENTIALS'],
          ['add-vapusercredentials', 'success'],
        ],
      ],
      [cm, [['cm-vcr-upload', 'success']]],
      [pstn, [['pstn-call', 'success']]],
    ];
    for (const [m, changes] of expected) {
      const entries = auditFile(m);
      // Append-only: what was there is unchanged, and only these changes were added.
      expect(auditText(m).startsWith(earlier.get(m) as string)).toBe(true);
      const added = entries.slice(count.get(m));
      expect(added.map((e) => [e.action, e.outcome, ...(e.error ? [e.error.code] : [])])).toEqual(changes);
      // `ime show audit` reads the same entries through the admin API.
      const shown = await ok(['show', 'audit', '--last', String(added.length)], m);
      expect(shown.entries).toEqual(added);
    }
    const peerAdded = auditFile(peer).slice(count.get(peer));
    expect(peerAdded[2]?.params).toEqual({ company: 'Enterprise One', country: 'US', contactEmail: 'noc@enterprise-1.example', contactPhone: '+1 408 555 0100' });
    expect(peerAdded[3]?.params).toEqual({ quota: 5 });
    for (const e of peerAdded.slice(4)) expect(e.params).toMatchObject({ server: 'cucm', username: 'imeuser', password: '***', ticketPassword: '***', epoch: 2 });
    expect(auditFile(bootstrap).slice(count.get(bootstrap))[1]?.params).toEqual({ text: MOTD });
    // The set-up's own changes were audited too: debug logging, the VAP instance, the first credentials.
    expect(auditFile(peer).slice(0, 3).map((e) => [e.action, e.params.password ?? null])).toEqual([
      ['set-log-level', null],
      ['add-vapserver', null],
      ['add-vapusercredentials', '***'],
    ]);
  });

  it('no secret reaches an audit log or a log file of any component', async () => {
    const secrets = [VAP_PASSWORD, TICKET_PASSWORD, NEW_TICKET_PASSWORD, SHORT_TICKET_PASSWORD];
    // Admin tokens and the peers' enrollment tokens are secrets too.
    for (const m of [...roles.map(([, x]) => x), ...ring.peers]) secrets.push(readFileSync(m.ready.tokenFile, 'utf8').trim());
    for (const p of ring.peers) secrets.push(readFileSync(join(p.dir, 'enroll.token'), 'utf8').trim());
    const members = [bootstrap, ...ring.peers, cm, pstn];
    let checked = 0;
    for (const m of members) {
      for (const file of [auditPath(m), logPath(m), join(m.dir, 'stderr.log')]) {
        if (!existsSync(file)) continue;
        const text = readFileSync(file, 'utf8');
        for (const s of secrets) expect({ file, leaked: text.includes(s) }).toEqual({ file, leaked: false });
        checked++;
      }
    }
    // The peer's debug log (on while its credentials were added) and every audit log were searched.
    expect(checked).toBeGreaterThanOrEqual(members.length * 2);
    expect(readFileSync(logPath(peer), 'utf8')).toContain('"level":"debug"');
  });

  it('the guide\'s settings of a peer: customer information, and a public IPv4 address that the signed roster carries to the ring', async () => {
    expect((await ok(['show', 'customerinfo'], peer)).customerInfo).toEqual({
      company: 'Enterprise One',
      unit: '',
      state: '',
      country: 'US',
      contactName: '',
      contactEmail: 'noc@enterprise-1.example',
      contactPhone: '+1 408 555 0100',
    });
    await refused(['set', 'customerinfo', '--contact-email', 'not-an-address'], peer, 'E_CUSTOMERINFO_INVALID');

    const third = ring.peers[2]!;
    const set = await ok(['set', 'addressing', 'publicipaddrv4', PUBLIC_IP], third);
    const port = (await ok(['show', 'addressing'], third)).dhtPort as number;
    expect(set).toMatchObject({ publicIpAddrV4: PUBLIC_IP, announced: true, addresses: expect.arrayContaining([`/ip4/${PUBLIC_IP}/tcp/${port}`]) });
    const text = await ime(['show', 'addressing'], third, false);
    expect(text.stdout).toContain(`Public IP Address = ${PUBLIC_IP}`);
    await waitFor('the roster to carry the public address', async () => {
      const roster = (await ok(['bootstrap', 'roster'], bootstrap)).peers as { peerId: string; addresses: string[] }[];
      return roster.find((p) => p.peerId === third.peerId)?.addresses[0] === `/ip4/${PUBLIC_IP}/tcp/${port}`;
    }, 20_000, 250);
    const audit = auditFile(third);
    expect(audit.at(-1)).toMatchObject({ action: 'set-publicipaddrv4', outcome: 'success', params: { address: PUBLIC_IP } });
    await refused(['set', 'addressing', 'publicipaddrv4', '224.0.0.1'], third, 'E_ADDRESS_INVALID');
    expect(auditFile(third).at(-1)).toMatchObject({ action: 'set-publicipaddrv4', outcome: 'failure', error: { code: 'E_ADDRESS_INVALID' } });
    // The ring stays whole: the peer is still reached on its other addresses.
    await ring.converge();
  });

  it('alerts raised on purpose are listed by `ime show alerts` with time, name, severity and details, under the catalogue\'s names', async () => {
    await waitFor('every peer to raise MessageOfTheDay', async () => {
      const lists = await Promise.all(ring.peers.map((p) => ok(['show', 'alerts'], p)));
      return lists.every((l) => (l.alerts as { name: string }[]).some((a) => a.name === 'MessageOfTheDay'));
    }, 20_000, 250);
    const alerts = (await ok(['show', 'alerts'], peer)).alerts as { time: string; name: string; severity: string; details: Record<string, unknown> }[];
    expect(alerts).toEqual(
      expect.arrayContaining([
        { time: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/), name: 'MessageOfTheDay', severity: 'notice', details: { message: MOTD } },
        expect.objectContaining({ name: 'TicketPasswordChanged', severity: 'notice', details: expect.objectContaining({ instance: 'cucm', previousEpoch: 1, epoch: 2 }) }),
      ]),
    );
    const human = await ime(['show', 'alerts'], peer, false);
    expect(human.stdout).toMatch(new RegExp(`\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+notice\\s+MessageOfTheDay\\s+\\{"message":"${MOTD}"\\}`));
    // Whatever any role raised is in the catalogue (docs/OPERATIONS.md) with the same severity.
    for (const [role, m] of roles) {
      if (m === pstn) continue;
      const raised = ((await ok(['show', 'alerts'], m)).alerts as { name: string; severity: string }[]).map((a) => ({ role, name: a.name, severity: a.severity }));
      for (const a of raised) expect(ALERT_CATALOGUE.find((c) => c.role === a.role && c.name === a.name)?.severity).toBe(a.severity);
    }
  });
});

describe('every admin route that changes something is audited, on every role', () => {
  // Routes answer reads with POST when the question is too large for a URL, and the backup service
  // writes its own entries (one per restore, not one per chunk of the file).
  const NOT_CHANGES: Record<string, string> = {
    'POST /v1/dids/lookup': 'a read of many numbers',
    'POST /v1/ring/ping': 'a measurement',
  };
  const auditedByItsService = (route: string) => /^(POST|PUT|DELETE) \/v1\/(backup|restore)(\/|$)/.test(route);

  it('registers each role\'s routes and finds every POST, PUT, PATCH and DELETE with an audit action', () => {
    // Only the registration runs: handlers, which would use the component, are never called.
    const component: never = new Proxy(() => undefined, { get: (_t, key) => (key === Symbol.toPrimitive ? () => '' : component), apply: () => component }) as never;
    const registrations: [OperationsRole, (admin: AdminServer) => void][] = [
      ['bootstrap', (a) => registerBootstrapAdminRoutes(a, component)],
      ['peer', (a) => registerPeerAdminRoutes(a, component)],
      ['cm', (a) => registerCmAdminRoutes(a, component)],
      ['pstn', (a) => registerPstnAdminRoutes(a, component)],
    ];
    for (const [role, register] of registrations) {
      const admin = new AdminServer({ listen: '127.0.0.1:0', tokenFile: join(root, 'never-created.token') });
      register(admin);
      const routes = admin.routes.map((r) => ({ role, route: `${r.method} ${r.path}`, audit: r.audit }));
      const unaudited = routes.filter((r) => !r.route.startsWith('GET ') && r.audit === undefined && NOT_CHANGES[r.route] === undefined && !auditedByItsService(r.route));
      expect(unaudited).toEqual([]);
      // The operations routes are there on every role, the change among them audited.
      expect(routes).toEqual(expect.arrayContaining([
        { role, route: 'GET /v1/log/levels', audit: undefined },
        { role, route: 'PUT /v1/log/levels', audit: 'set-log-level' },
        { role, route: 'GET /v1/audit', audit: undefined },
        { role, route: 'GET /metrics', audit: undefined },
      ]));
    }
  });
});
