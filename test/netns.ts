import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ImeError } from '@ime/core';

/**
 * Network namespaces for multi-host tests (test/multi-host.test.ts): each "host" is a namespace with
 * its own loopback and one interface on a private /24, plugged into a bridge that lives in a "switch"
 * namespace of its own, so the machine's own network is never touched. Every name carries the
 * prefix, the pid and a counter: parallel runs never collide, and leftovers are recognisable.
 *
 * Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and iproute2; `netnsUnavailable()` says why not.
 */

export const NETNS_PREFIX = 'imetest-';
/** Leftovers of a run that could not clean up (killed by SIGKILL) are removed after this long. */
const STALE_AFTER_MS = 3600_000;
const NETNS_DIR = '/run/netns';

export interface Host {
  readonly label: string;
  /** The namespace's name, for `ip netns exec`. */
  readonly netns: string;
  /** Its address on the shared /24. */
  readonly address: string;
  /** The bridge port it is plugged into, inside the switch namespace. */
  readonly port: string;
}

/** A TCP port on 127.0.0.1 of the namespace the relay runs in, or a Unix socket path (not namespaced). */
export type Endpoint = { readonly port: number } | { readonly path: string };
export interface RelayRoute {
  readonly listen: Endpoint;
  readonly connect: Endpoint;
}

function ip(args: readonly string[], options: { check?: boolean } = {}): { ok: boolean; out: string; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 20_000 });
  const ok = r.status === 0;
  if (!ok && options.check !== false) {
    throw new ImeError('E_NETNS_COMMAND', `ip ${args.join(' ')} failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  }
  return { ok, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** Why namespaces cannot be used here, or undefined when they can (the check makes and removes one). */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add); run the test as root to include it';
  const probe = `${NETNS_PREFIX}${process.pid}-probe`;
  const add = ip(['netns', 'add', probe], { check: false });
  if (!add.ok) return `ip netns add does not work here: ${add.err.trim() || 'iproute2 missing?'}`;
  ip(['netns', 'del', probe], { check: false });
  return undefined;
}

/** Kills what runs inside a namespace: only processes this lab started can be there. */
function killInside(netns: string): void {
  for (const pid of ip(['netns', 'pids', netns], { check: false }).out.split('\n')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Our namespaces older than an hour: a run killed before its cleanup left them. */
function removeStale(): void {
  const listed = ip(['netns', 'list'], { check: false }).out;
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (!name.startsWith(NETNS_PREFIX)) continue;
    let age: number;
    try {
      age = Date.now() - statSync(`${NETNS_DIR}/${name}`).mtimeMs;
    } catch {
      continue;
    }
    // Deleting the switch namespace also deletes the veths plugged into it.
    if (age > STALE_AFTER_MS) {
      killInside(name);
      ip(['netns', 'del', name], { check: false });
    }
  }
}

/** A random 10.77.x.0/24 that neither this machine nor any other namespace uses. */
function pickSubnet(): string {
  const inUse = [ip(['-o', 'addr', 'show'], { check: false }).out, ip(['route', 'show', 'table', 'all'], { check: false }).out];
  for (const line of ip(['netns', 'list'], { check: false }).out.split('\n')) {
    const name = line.split(' ')[0];
    if (name) inUse.push(ip(['-n', name, '-o', 'addr', 'show'], { check: false }).out);
  }
  const text = inUse.join('\n');
  for (let tries = 0; tries < 200; tries++) {
    const x = 1 + Math.floor(Math.random() * 254);
    if (!text.includes(`10.77.${x}.`)) return `10.77.${x}`;
  }
  throw new ImeError('E_NETNS_SUBNET', 'no free 10.77.x.0/24 found');
}

let labs = 0;

/**
 * Relays carry TCP between namespaces without the bridge: a small Node process that listens on a
 * 127.0.0.1 port or a Unix socket and pipes each connection to another. Unix socket paths are in the
 * file system, which every namespace shares, so a pair of relays joins two namespaces' loopbacks.
 * It exits when its standard input closes, i.e. when the test process is gone.
 */
const RELAY_SCRIPT = `
import net from 'node:net';
import { rmSync } from 'node:fs';
const routes = JSON.parse(process.argv[1]);
const target = (e) => (e.path !== undefined ? { path: e.path } : { host: '127.0.0.1', port: e.port });
const ports = await Promise.all(routes.map((r) => new Promise((resolve, reject) => {
  const server = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = net.connect({ ...target(r.connect), allowHalfOpen: true });
    const drop = () => { inbound.destroy(); outbound.destroy(); };
    inbound.on('error', drop);
    outbound.on('error', drop);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  server.once('error', reject);
  if (r.listen.path !== undefined) rmSync(r.listen.path, { force: true });
  server.listen(r.listen.path !== undefined ? { path: r.listen.path } : { host: '127.0.0.1', port: r.listen.port }, () => {
    const a = server.address();
    resolve(typeof a === 'object' && a !== null ? a.port : 0);
  });
})));
process.stdout.write(JSON.stringify({ ready: true, ports }) + '\\n');
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * The last resort: jest runs a test file in a sandbox whose process object is a copy that never emits
 * 'exit', and a worker killed by a signal runs no hook at all. So each lab has a watchdog process of
 * its own, in its own process group (Ctrl-C does not reach it): when its standard input closes
 * without a word (the test process is gone) it kills whatever still runs inside the lab's namespaces
 * (only the test's own processes can be there) and deletes them. destroy() dismisses it with SIGTERM.
 */
const WATCHDOG_SCRIPT = `
import { spawnSync } from 'node:child_process';
const names = JSON.parse(process.argv[1]);
const sweep = () => {
  for (const name of names) {
    const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split('\\n').filter((p) => /^[0-9]+$/.test(p))) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch {}
    }
    spawnSync('ip', ['netns', 'del', name]);
  }
  process.exit(0);
};
process.on('SIGINT', () => {});
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', sweep);
process.stdin.on('close', sweep);
process.stdin.resume();
`;

export class Relay {
  readonly #child: ChildProcess;
  /** The bound port of each route that listens on a TCP port (0 for Unix sockets), in order. */
  readonly ports: readonly number[];

  private constructor(child: ChildProcess, ports: readonly number[]) {
    this.#child = child;
    this.ports = ports;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  static start(prefix: readonly string[], routes: readonly RelayRoute[]): Promise<Relay> {
    const [command, ...args] = [...prefix, process.execPath, '--input-type=module', '-e', RELAY_SCRIPT, JSON.stringify(routes)];
    const child = spawn(command as string, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      lines.once('line', (line) => {
        try {
          const msg = JSON.parse(line) as { ready?: boolean; ports?: number[] };
          if (msg.ready && Array.isArray(msg.ports)) return resolve(new Relay(child, msg.ports));
        } catch {
          // fall through
        }
        child.kill('SIGKILL');
        reject(new ImeError('E_NETNS_RELAY', `relay said ${line}`));
      });
      child.once('error', (err) => reject(new ImeError('E_NETNS_RELAY', `relay could not start: ${err.message}`)));
      child.once('exit', (code) => reject(new ImeError('E_NETNS_RELAY', `relay exited with ${code}: ${stderr.trim()}`)));
    });
  }

  stop(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

/**
 * N hosts on one switch. `destroy()` stops the relays, kills whatever still runs on the hosts and
 * removes every namespace (the bridge and the veths go with them); it is synchronous, so any cleanup
 * path can call it.
 */
export class NetnsLab {
  readonly subnet: string;
  readonly hosts: ReadonlyMap<string, Host>;
  readonly #switch: string;
  readonly #relays: Relay[] = [];
  readonly #watchdog: ChildProcess;
  #destroyed = false;

  private constructor(subnet: string, switchNs: string, hosts: Map<string, Host>) {
    this.subnet = subnet;
    this.#switch = switchNs;
    this.hosts = hosts;
    this.#watchdog = spawn(process.execPath, ['--input-type=module', '-e', WATCHDOG_SCRIPT, JSON.stringify(this.#names())], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    // Without it, destroy() still cleans up; only the last resort would be missing.
    this.#watchdog.once('error', (err) => console.warn(`netns watchdog could not start: ${err.message}`));
  }

  #names(): string[] {
    return [...[...this.hosts.values()].map((h) => h.netns), this.#switch];
  }

  /** Creates one namespace per label, all on one bridge. Throws (having removed what it made) on failure. */
  static create(labels: readonly string[]): NetnsLab {
    if (labels.length === 0 || labels.length > 200 || new Set(labels).size !== labels.length || labels.some((l) => !/^[a-z0-9]{1,8}$/.test(l))) {
      throw new ImeError('E_NETNS_LABELS', 'labels must be 1–200 distinct short lowercase names');
    }
    removeStale();
    const base = `${NETNS_PREFIX}${process.pid}-${++labs}`;
    const subnet = pickSubnet();
    const hosts = new Map<string, Host>();
    labels.forEach((label, i) => hosts.set(label, { label, netns: `${base}-${label}`, address: `${subnet}.${i + 1}`, port: `p${i + 1}` }));
    const lab = new NetnsLab(subnet, `${base}-sw`, hosts);
    try {
      ip(['netns', 'add', lab.#switch]);
      ip(['-n', lab.#switch, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', lab.#switch, 'link', 'set', 'br0', 'up']);
      for (const h of hosts.values()) {
        ip(['netns', 'add', h.netns]);
        ip(['-n', h.netns, 'link', 'set', 'lo', 'up']);
        // Made inside the namespaces, so no interface name is ever visible (or clashing) on the host.
        ip(['-n', lab.#switch, 'link', 'add', h.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.netns]);
        ip(['-n', lab.#switch, 'link', 'set', h.port, 'master', 'br0']);
        ip(['-n', lab.#switch, 'link', 'set', h.port, 'up']);
        ip(['-n', h.netns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0']);
        ip(['-n', h.netns, 'link', 'set', 'eth0', 'up']);
      }
    } catch (err) {
      lab.destroy();
      throw err;
    }
    return lab;
  }

  host(label: string): Host {
    const h = this.hosts.get(label);
    if (!h) throw new ImeError('E_NETNS_HOST', `no host ${label}`);
    return h;
  }

  /** The command prefix that runs a program on a host. */
  exec(label: string): string[] {
    return ['ip', 'netns', 'exec', this.host(label).netns];
  }

  /**
   * Cuts a host off the network: its switch port goes down, as if its cable were pulled at the
   * switch. Its own interface stays configured, so nothing on either side gets a quick "unreachable"
   * or a reset: frames are just dropped, established TCP connections stall and new ones get no answer,
   * which is what a real network failure looks like and what the peers' failure detector has to notice
   * by its timeouts. (Taking the host's own interface down instead would remove its routes, and its
   * programs would fail fast with ENETUNREACH, which no remote failure looks like.)
   */
  cut(label: string): void {
    ip(['-n', this.#switch, 'link', 'set', this.host(label).port, 'down']);
  }

  /** Plugs a cut host back in. */
  heal(label: string): void {
    ip(['-n', this.#switch, 'link', 'set', this.host(label).port, 'up']);
  }

  /** Starts a relay on a host (or, with `undefined`, in this process's own namespace). */
  async relay(label: string | undefined, routes: readonly RelayRoute[]): Promise<Relay> {
    if (this.#destroyed) throw new ImeError('E_NETNS_STATE', 'the lab was destroyed');
    const relay = await Relay.start(label === undefined ? [] : this.exec(label), routes);
    this.#relays.push(relay);
    return relay;
  }

  /**
   * Reaches the hosts' admin APIs (loopback-only by design) from here without the bridge, so cutting
   * or splitting the network never cuts the test off its components: on each host a relay from Unix
   * sockets in `dir` to its admin ports (plus that host's `extra` routes, in the same relay), and here
   * one local port per socket. Returns the local admin URL by "label:port".
   */
  async relayAdmins(dir: string, adminPorts: Readonly<Record<string, readonly number[]>>, extra: Readonly<Record<string, readonly RelayRoute[]>> = {}): Promise<Map<string, string>> {
    const sock = (label: string, port: number) => ({ path: join(dir, `admin-${label}-${port}.sock`) });
    const keys = Object.entries(adminPorts).flatMap(([label, ports]) => ports.map((port) => ({ label, port })));
    for (const [label, ports] of Object.entries(adminPorts)) {
      await this.relay(label, [...ports.map((port): RelayRoute => ({ listen: sock(label, port), connect: { port } })), ...(extra[label] ?? [])]);
    }
    const here = await this.relay(undefined, keys.map((k) => ({ listen: { port: 0 }, connect: sock(k.label, k.port) })));
    return new Map(keys.map((k, i) => [`${k.label}:${k.port}`, `http://127.0.0.1:${here.ports[i]}`]));
  }

  /** Removes everything this lab made; safe to call more than once. */
  destroy(): void {
    this.#destroyed = true;
    for (const r of this.#relays.splice(0)) r.stop();
    for (const name of this.#names()) {
      killInside(name);
      ip(['netns', 'del', name], { check: false });
    }
    this.#watchdog.kill('SIGTERM');
  }

  /** Namespaces of this lab still present (for the test's own cleanup check). */
  leftovers(): string[] {
    const listed = new Set(ip(['netns', 'list'], { check: false }).out.split('\n').map((l) => l.split(' ')[0]));
    return this.#names().filter((n) => listed.has(n));
  }
}
