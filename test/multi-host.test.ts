import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAST_TUNING, Member, type Role, waitFor } from '@ime/harness';
import { AdminClient } from '@ime/runtime';
import { type Host, NetnsLab, type RelayRoute, netnsUnavailable } from './netns.js';
import type { Summary } from './ring-test-helpers.js';

// Issue 7 item 5: the validation story across three hosts (network namespaces on one bridge).
//   host a: the bootstrap, acme.example's peer and call manager, and the simulated PSTN switch
//   host b: globex.example's peer and call manager
//   host c: initech.example's peer and call manager
// acme calls globex and initech numbers and learns routes to both; then host c is cut off the
// network: the peers on a and b turn YELLOW (a ring neighbour is down), c turns RED (it is alone,
// below the write quorum), acme's validation toward initech fails cleanly while its validations
// toward globex still succeed; plugged back in, every peer is GREEN again and acme learns an
// initech route.
//
// The PSTN is not the IP network: cutting initech's IP link does not stop a phone call from ringing
// there. So the simulated switch reaches the call managers on b and c over relays that do not go
// through the bridge (loopback to loopback through Unix sockets), which the cut leaves alone: during
// the cut initech's call manager still hears the call and uploads its VCR to its own peer, and what
// fails is what really would, acme's peer reaching initech's peer to validate. The test reaches every
// admin API (loopback-only by design) the same way.

const unavailable = netnsUnavailable();
if (unavailable !== undefined) console.warn(`multi-host test skipped: ${unavailable}`);
const describeIfNetns = unavailable === undefined ? describe : describe.skip;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'packages/cli/bin/ime.js');
const VAP_PASSWORD = 'cm-vap-password-123';
// Every host is its own machine: each role keeps its default ports.
const PORT = { bootstrapRing: 6080, peerRing: 6084, vap: 5620, peerAdmin: 9620, bootstrapAdmin: 9621, cmAdmin: 9622, pstnAdmin: 9623 };

interface Enterprise {
  readonly key: 'acme' | 'globex' | 'initech';
  readonly host: 'a' | 'b' | 'c';
  readonly domain: string;
  readonly pattern: string;
  readonly ticketPassword: string;
  /** Where its call manager hears PSTN calls, on its own host's loopback (and, relayed, on a's). */
  readonly callbackPort: number;
}

const ENTERPRISES: readonly Enterprise[] = [
  { key: 'acme', host: 'a', domain: 'acme.example', pattern: '+14085551XXX', ticketPassword: 'ticket-password-acme-0123', callbackPort: 5640 },
  { key: 'globex', host: 'b', domain: 'globex.example', pattern: '+12125550XXX', ticketPassword: 'ticket-password-globex-45', callbackPort: 5641 },
  { key: 'initech', host: 'c', domain: 'initech.example', pattern: '+13125550XXX', ticketPassword: 'ticket-password-initech-6', callbackPort: 5642 },
];
const ACME_CALLER = '+14085551234';
const GLOBEX = ['+12125550101', '+12125550102'];
const INITECH = ['+13125550201', '+13125550202', '+13125550203'];

interface ValidationView {
  called: string;
  domain: string;
  outcome: 'success' | 'failure' | 'refused' | 'error';
  code?: string;
  released?: number;
}
interface RouteView {
  number: string;
  domain: string;
  ticket: string;
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

const TITLE = 'multi-host: the validation story across three network namespaces, with one host cut off and back';
describeIfNetns(unavailable === undefined ? TITLE : `${TITLE} (skipped: ${unavailable})`, () => {
  let lab: NetnsLab | undefined;
  let dir: string;
  const members = new Map<string, Member>();
  /** Admin URLs in this process's namespace, by "host:port" on the member's host (see the relays). */
  let relayedAdmin = new Map<string, string>();
  const adminUrls = new Map<string, string>();
  const clients = new Map<string, AdminClient>();

  const member = (name: string): Member => members.get(name) as Member;
  const admin = async (name: string): Promise<AdminClient> => {
    let c = clients.get(name);
    if (!c) {
      c = await AdminClient.fromTokenFile(adminUrls.get(name) as string, member(name).ready.tokenFile);
      clients.set(name, c);
    }
    return c;
  };
  const summary = async (peer: string) => (await admin(peer)).get<Summary>('/v1/dht/summary');
  const counters = async (name: string) => (await (await admin(name)).get<{ counters: Record<string, number> }>('/v1/counters')).counters;
  const validations = async () => (await (await admin('peer-acme')).get<{ validations: ValidationView[] }>('/v1/validator/validations')).validations;
  const acmeRoutes = async () => (await (await admin('cm-acme')).get<{ routes: RouteView[] }>('/v1/routes')).routes;
  const call = async (to: string) =>
    (await (await admin('pstn')).post<{ call: { originating: { notified: boolean }; terminating: { notified: boolean } } }>('/v1/calls', { from: ACME_CALLER, to, durationSec: 60 })).call;

  /** Writes `<dir>/<name>/<role>.json` and makes the member, run on `host`. */
  const define = (role: Role, name: string, host: Host, adminPort: number, config: Record<string, unknown>): Member => {
    const home = join(dir, name);
    mkdirSync(home, { recursive: true });
    const file = join(home, `${role}.json`);
    writeJson(file, { name, dataDir: 'data', admin: { listen: `127.0.0.1:${adminPort}` }, log: { level: 'warn', file: 'log.jsonl' }, ...config });
    const m = new Member(role, name, 'process', file, home, { launchPrefix: (lab as NetnsLab).exec(host.label) });
    members.set(name, m);
    const url = relayedAdmin.get(`${host.label}:${adminPort}`);
    if (url === undefined) throw new Error(`no relay to ${host.label}:${adminPort}`);
    adminUrls.set(name, url);
    return m;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ime-mh-'));
    lab = NetnsLab.create(['a', 'b', 'c']);
    const host = (l: string) => (lab as NetnsLab).host(l);
    const a = host('a');
    const sock = (what: string) => ({ path: join(dir, `${what}.sock`) });

    // Relays (outside the bridge): on each host, its admin APIs exposed on Unix sockets; the PSTN
    // switch's admin API (which call managers attach to) and the call managers' PSTN callbacks joined
    // across hosts; here, one local port per admin API.
    const adminPorts: Record<string, number[]> = {
      a: [PORT.bootstrapAdmin, PORT.peerAdmin, PORT.cmAdmin, PORT.pstnAdmin],
      b: [PORT.peerAdmin, PORT.cmAdmin],
      c: [PORT.peerAdmin, PORT.cmAdmin],
    };
    const remote = ENTERPRISES.filter((e) => e.host !== 'a');
    const hostRoutes: Record<string, RelayRoute[]> = {
      a: [{ listen: sock('pstn'), connect: { port: PORT.pstnAdmin } }, ...remote.map((e) => ({ listen: { port: e.callbackPort }, connect: sock(`callback-${e.key}`) }))],
      b: [],
      c: [],
    };
    for (const e of remote) {
      hostRoutes[e.host]?.push({ listen: { port: PORT.pstnAdmin }, connect: sock('pstn') }, { listen: sock(`callback-${e.key}`), connect: { port: e.callbackPort } });
    }
    relayedAdmin = await lab.relayAdmins(dir, adminPorts, hostRoutes);

    const bootstrap = define('bootstrap', 'bootstrap', a, PORT.bootstrapAdmin, {
      listen: [`/ip4/${a.address}/tcp/${PORT.bootstrapRing}`],
      admission: 'auto',
      ordinal: 0,
      syncIntervalSec: 1,
      parameters: { pollIntervalSec: 1 },
    });
    await bootstrap.start();

    for (const e of ENTERPRISES) {
      const { token } = await (await admin('bootstrap')).post<{ token: string }>('/v1/tokens', { domain: e.domain, note: `multi-host ${e.key}` });
      const h = host(e.host);
      const p = define('peer', `peer-${e.key}`, h, PORT.peerAdmin, {
        domain: e.domain,
        listen: [`/ip4/${h.address}/tcp/${PORT.peerRing}`],
        bootstraps: [bootstrap.dialAddress],
        enrollmentTokenFile: 'enroll.token',
        tuning: FAST_TUNING,
        // A validation that could not run is tried again every few seconds (production: 10 s doubling to 10 min).
        validator: { delaySec: 2, retryAfterErrorSec: 2, retryAfterErrorMaxSec: 4 },
      });
      writeFileSync(join(p.dir, 'enroll.token'), `${token}\n`, { mode: 0o600 });
    }
    await Promise.all(ENTERPRISES.map((e) => member(`peer-${e.key}`).start()));
    const peers = ENTERPRISES.map((e) => `peer-${e.key}`);
    await waitFor('three peers GREEN on the latest configuration, three members each', async () => {
      const { sequence } = await (await admin('bootstrap')).get<{ sequence: number }>('/v1/summary');
      const all = await Promise.all(peers.map(summary));
      return all.every((s) => s.health === 'GREEN' && s.sequence === sequence && s.peerCount === 3);
    }, 90_000, 250);

    const pstn = define('pstn', 'pstn', a, PORT.pstnAdmin, { clockSkewMs: 0 });
    await pstn.start();
    await Promise.all(ENTERPRISES.map(async (e) => {
      const peer = await admin(`peer-${e.key}`);
      await peer.post('/v1/vap/servers', { name: 'cucm', host: '127.0.0.1', port: PORT.vap });
      await peer.post('/v1/vap/credentials', { server: 'cucm', username: 'imeuser', password: VAP_PASSWORD, ticketPassword: e.ticketPassword, epoch: 1 });
      const cm = define('cm', `cm-${e.key}`, host(e.host), PORT.cmAdmin, {
        domain: e.domain,
        enrolledPatterns: [e.pattern],
        vservice: { maxDidCount: 10_000 },
        vap: { primary: `127.0.0.1:${PORT.vap}`, username: 'imeuser', passwordFile: 'vap.password', reconnectIntervalSec: 1 },
        // On b and c, 127.0.0.1:9623 is the relay to the switch on a.
        pstn: { admin: `http://127.0.0.1:${PORT.pstnAdmin}`, tokenFile: pstn.ready.tokenFile, callbackListen: `127.0.0.1:${e.callbackPort}` },
      });
      writeFileSync(join(cm.dir, 'vap.password'), `${VAP_PASSWORD}\n`, { mode: 0o600 });
      await cm.start();
    }));
    await waitFor('every call manager registered and its 1000 numbers published', async () => {
      const all = await Promise.all(peers.map(counters));
      return all.every((c) => c.ClientsRegistered === 1 && c.IMEDistributedCacheQuotaUsed === 1000);
    }, 90_000, 250);
    // One 12-point success (start and stop proven) exceeds 10: each validation releases its route.
    await (await admin('peer-acme')).put('/v1/validator/bucketentropy', { value: 10 });
  }, 300_000);

  afterAll(async () => {
    // Plugged back in first, so that nothing waits on a dead link while it stops.
    for (const l of ['a', 'b', 'c']) {
      try {
        lab?.heal(l);
      } catch {
        // the lab may not exist
      }
    }
    const stopAll = (names: string[]) => Promise.all(names.map((n) => members.get(n)?.stop().catch(() => undefined)));
    await stopAll(['cm-acme', 'cm-globex', 'cm-initech']);
    await stopAll(['pstn']);
    await stopAll(['peer-acme', 'peer-globex', 'peer-initech']);
    await stopAll(['bootstrap']);
    // Also kills anything of ours still running on the hosts; if this process dies before getting
    // here, the lab's watchdog does it (see test/netns.ts). The bridge and the veths go with the
    // namespaces: nothing was ever made outside them.
    lab?.destroy();
    if (dir && !process.env.IME_KEEP_RING) rmSync(dir, { recursive: true, force: true });
    const left = lab?.leftovers() ?? [];
    if (left.length > 0) throw new Error(`network namespaces left behind: ${left.join(', ')}`);
  }, 90_000);

  it('acme learns routes to a globex and an initech number, each peer on its own host', async () => {
    const calls = [await call(GLOBEX[0] as string), await call(INITECH[0] as string)];
    for (const c of calls) expect(c.terminating.notified).toBe(true);
    await waitFor('acme to learn both routes', async () => (await acmeRoutes()).length === 2, 60_000, 250);
    const routes = await acmeRoutes();
    expect(routes.map((r) => [r.number, r.domain]).sort()).toEqual([
      [GLOBEX[0], 'globex.example'],
      [INITECH[0], 'initech.example'],
    ]);
  }, 90_000);

  it('cut off, initech is RED; the peers of acme and globex turn YELLOW with a neighbour down', async () => {
    (lab as NetnsLab).cut('c');
    await waitFor('acme and globex YELLOW, initech RED', async () => {
      const [acme, globex, initech] = await Promise.all(['peer-acme', 'peer-globex', 'peer-initech'].map(summary));
      return acme?.health === 'YELLOW' && globex?.health === 'YELLOW' && initech?.health === 'RED';
    }, 30_000, 250);
    for (const peer of ['peer-acme', 'peer-globex']) {
      const s = await summary(peer);
      expect(s.healthReasons).toEqual([expect.stringMatching(/^1 ring neighbour\(s\) down$/)]);
      expect(s.peerCount).toBe(3);
    }
    expect((await summary('peer-initech')).healthReasons.join(' ')).toMatch(/live members/);
  }, 60_000);

  it('during the cut, a validation toward initech fails cleanly with a code and is kept for later, while globex still validates', async () => {
    const before = await counters('peer-acme');
    const initechVcrs = (await counters('peer-initech')).TerminatingVCRs ?? 0;
    const toInitech = await call(INITECH[1] as string);
    const toGlobex = await call(GLOBEX[1] as string);
    // The phone network still rings initech: its call manager hears the call and tells its peer.
    expect(toInitech.terminating.notified).toBe(true);
    expect(toGlobex.terminating.notified).toBe(true);
    await waitFor('initech\'s VCR of the call on its own peer', async () => (await counters('peer-initech')).TerminatingVCRs === initechVcrs + 1, 30_000, 250);

    await waitFor('acme to try both validations', async () => {
      const done = (await validations()).filter((v) => v.called === INITECH[1] || v.called === GLOBEX[1]);
      return done.some((v) => v.called === INITECH[1]) && done.some((v) => v.called === GLOBEX[1]);
    }, 60_000, 250);
    const byNumber = new Map((await validations()).map((v) => [v.called, v]));
    expect(byNumber.get(GLOBEX[1] as string)).toEqual(expect.objectContaining({ domain: 'globex.example', outcome: 'success', released: 1 }));
    expect(byNumber.get(INITECH[1] as string)).toEqual(expect.objectContaining({ domain: 'initech.example', outcome: 'error', code: expect.stringMatching(/^E_RPC_/) }));

    // What an operator on host a sees: `ime show validator validations` names the error code.
    const peerAcme = member('peer-acme');
    const shown = spawnSync(
      'ip',
      ['netns', 'exec', (lab as NetnsLab).host('a').netns, process.execPath, bin, 'show', 'validator', 'validations', '--admin', `http://127.0.0.1:${PORT.peerAdmin}`, '--token-file', peerAcme.ready.tokenFile, '--json'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(shown.status).toBe(0);
    const lines = shown.stdout.trim().split('\n');
    const json = JSON.parse(lines[lines.length - 1] as string) as { validations: ValidationView[] };
    expect(json.validations.find((v) => v.called === INITECH[1])).toEqual(expect.objectContaining({ outcome: 'error', code: byNumber.get(INITECH[1] as string)?.code }));

    const after = await counters('peer-acme');
    // Tried again every few seconds while the cut lasts, never counted as a failed proof; the call is
    // kept (pending) rather than used up.
    expect(after.ValidationErrors).toBeGreaterThanOrEqual((before.ValidationErrors ?? 0) + 1);
    expect(after.ValidationsSucceeded).toBe((before.ValidationsSucceeded ?? 0) + 1);
    expect(after.ValidationsFailed).toBe(before.ValidationsFailed ?? 0);
    expect(after.ValidationsPending).toBe(1);
    const routes = (await acmeRoutes()).map((r) => r.number);
    expect(routes).toContain(GLOBEX[1]);
    expect(routes).not.toContain(INITECH[1]);
    expect(peerAcme.running).toBe(true);
  }, 90_000);

  it('plugged back in, every peer is GREEN again; the kept call and a new one toward initech both validate', async () => {
    (lab as NetnsLab).heal('c');
    await waitFor('all three peers GREEN', async () => {
      const all = await Promise.all(['peer-acme', 'peer-globex', 'peer-initech'].map(summary));
      return all.every((s) => s.health === 'GREEN' && s.peerCount === 3);
    }, 60_000, 250);
    const c = await call(INITECH[2] as string);
    expect(c.terminating.notified).toBe(true);
    await waitFor('acme to learn both initech routes', async () => {
      const numbers = (await acmeRoutes()).map((r) => r.number);
      return numbers.includes(INITECH[1] as string) && numbers.includes(INITECH[2] as string);
    }, 60_000, 250);
    const routes = (await acmeRoutes()).map((r) => r.number).sort();
    expect(routes).toEqual([...GLOBEX, ...INITECH].sort());
    expect((await counters('peer-acme')).ValidationsPending).toBe(0);
    expect((await validations()).find((v) => v.called === INITECH[2])).toEqual(expect.objectContaining({ domain: 'initech.example', outcome: 'success' }));
  }, 90_000);
});
