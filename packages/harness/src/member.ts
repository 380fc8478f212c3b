import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream, existsSync, openSync, readFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BootstrapServer, bootstrapConfigSchema } from '@ime/bootstrap';
import { ImeError } from '@ime/core';
import { PEER_PROCESS_ENV, PEER_PROCESS_NODE_ARGS, PeerNode, peerConfigSchema } from '@ime/peer';
import { AdminClient, loadConfigFile } from '@ime/runtime';

/**
 * One component of a harness ring — a bootstrap or a peer — run either as its own process (`ime
 * <role> start --config FILE --json`, exactly as an operator runs it) or inside this process (same
 * code, same configuration file, real sockets). Tests and benchmarks talk to both through the admin
 * API; in-process members also expose the object itself.
 */

/** Ring roles, and the simulators around them (call managers and the PSTN), which run as processes only. */
export type Role = 'bootstrap' | 'peer' | 'cm' | 'pstn';
export type Mode = 'process' | 'in-process';

const CLI = fileURLToPath(new URL('../../cli/bin/ime.js', import.meta.url));
const READY_TIMEOUT_MS = 90_000;

export interface ReadyInfo {
  /** Empty for the simulators, which have no ring identity. */
  readonly peerId: string;
  readonly listen: readonly string[];
  readonly admin: string;
  readonly tokenFile: string;
}

function tail(file: string, lines = 15): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
}

export interface MemberOptions {
  /**
   * A command the process is started through, e.g. `['ip', 'netns', 'exec', 'ns-a']` to run it inside
   * a network namespace (test/multi-host.test.ts). The prefix must exec the member's command rather
   * than fork it, so that the pid signalled by stop() and kill() is the member's own. Process mode only.
   */
  readonly launchPrefix?: readonly string[];
}

export class Member {
  readonly role: Role;
  readonly name: string;
  readonly mode: Mode;
  readonly configFile: string;
  readonly dir: string;
  readonly launchPrefix: readonly string[];
  #ready: ReadyInfo | undefined;
  #child: ChildProcess | undefined;
  #exited: Promise<number | null> | undefined;
  #peer: PeerNode | undefined;
  #bootstrap: BootstrapServer | undefined;
  #admin: AdminClient | undefined;

  constructor(role: Role, name: string, mode: Mode, configFile: string, dir: string, options: MemberOptions = {}) {
    this.role = role;
    this.name = name;
    this.mode = mode;
    this.configFile = configFile;
    this.dir = dir;
    this.launchPrefix = [...(options.launchPrefix ?? [])];
    if (this.launchPrefix.length > 0 && mode !== 'process') {
      throw new ImeError('E_HARNESS_MODE', `${name}: a launch prefix needs process mode (an in-process member shares this process's network)`);
    }
  }

  get running(): boolean {
    return this.#peer !== undefined || this.#bootstrap !== undefined || this.#child !== undefined;
  }

  get ready(): ReadyInfo {
    if (!this.#ready) throw new ImeError('E_HARNESS_STATE', `${this.name} has not started`);
    return this.#ready;
  }

  get peerId(): string {
    return this.ready.peerId;
  }

  /** The first listen address with /p2p/<PeerId>, as other components dial it. */
  get dialAddress(): string {
    const a = this.ready.listen.find((l) => l.includes('/ip4/127.0.0.1/')) ?? this.ready.listen[0];
    return `${a}/p2p/${this.peerId}`;
  }

  /** The in-process peer (undefined in process mode). */
  get node(): PeerNode | undefined {
    return this.#peer;
  }

  /** The in-process bootstrap (undefined in process mode). */
  get server(): BootstrapServer | undefined {
    return this.#bootstrap;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async admin(): Promise<AdminClient> {
    this.#admin ??= await AdminClient.fromTokenFile(this.ready.admin, this.ready.tokenFile);
    return this.#admin;
  }

  async start(): Promise<ReadyInfo> {
    if (this.running) throw new ImeError('E_HARNESS_STATE', `${this.name} is already running`);
    this.#admin = undefined;
    this.#ready = this.mode === 'process' ? await this.#spawn() : await this.#startHere();
    return this.#ready;
  }

  async #startHere(): Promise<ReadyInfo> {
    if (this.role === 'cm' || this.role === 'pstn') {
      throw new ImeError('E_HARNESS_MODE', `the ${this.role} simulator runs as its own process only`);
    }
    if (this.role === 'peer') {
      const node = await PeerNode.start(await loadConfigFile(this.configFile, peerConfigSchema));
      this.#peer = node;
      return { peerId: node.peerId, listen: node.addresses(), admin: node.adminUrl, tokenFile: node.adminTokenFile };
    }
    const server = await BootstrapServer.start(await loadConfigFile(this.configFile, bootstrapConfigSchema));
    this.#bootstrap = server;
    return { peerId: server.peerId, listen: server.addresses, admin: server.adminUrl, tokenFile: server.tokenFile };
  }

  async #spawn(): Promise<ReadyInfo> {
    const stderrFile = join(this.dir, 'stderr.log');
    const stderr = openSync(stderrFile, 'a');
    // IME_HARNESS_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles or tunes member
    // processes: NODE_OPTIONS refuses such flags.
    const nodeArgs = (process.env.IME_HARNESS_NODE_ARGS ?? '').split(/\s+/).filter((a) => a.length > 0);
    // A peer is launched the way a deployment should launch it (peer-process.ts); the caller's own
    // environment and IME_HARNESS_NODE_ARGS still win.
    const peer = this.role === 'peer';
    const launchArgs = peer ? [...PEER_PROCESS_NODE_ARGS.filter((a) => !nodeArgs.some((n) => n.split('=')[0] === a.split('=')[0])), ...nodeArgs] : nodeArgs;
    const [command, ...args] = [...this.launchPrefix, process.execPath, ...launchArgs, CLI, this.role, 'start', '--config', this.configFile, '--json'];
    const child = spawn(command as string, args, {
      stdio: ['ignore', 'pipe', stderr],
      env: { ...(peer ? PEER_PROCESS_ENV : {}), ...process.env, IME_DEBUG: '1' },
    });
    closeSync(stderr);
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = undefined;
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const ready = new Promise<ReadyInfo>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ImeError('E_HARNESS_START', `${this.name} was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${tail(stderrFile)}`)), READY_TIMEOUT_MS);
      lines.on('line', (line) => {
        try {
          const msg = JSON.parse(line) as { ready?: boolean; peerId?: string; listen?: string[]; admin?: string; tokenFile?: string };
          const simulator = this.role === 'cm' || this.role === 'pstn';
          if (msg.ready && (msg.peerId || simulator) && msg.admin && msg.tokenFile) {
            clearTimeout(timer);
            resolve({ peerId: msg.peerId ?? '', listen: msg.listen ?? [], admin: msg.admin, tokenFile: msg.tokenFile });
          }
        } catch {
          // not the ready line
        }
      });
      void this.#exited?.then((code) => {
        clearTimeout(timer);
        reject(new ImeError('E_HARNESS_START', `${this.name} exited with ${code} before it was ready:\n${tail(stderrFile)}\n${tail(join(this.dir, 'log.jsonl'))}`));
      });
    });
    return ready;
  }

  /** Stops cleanly (SIGTERM for a process), waiting until it is gone. */
  async stop(): Promise<void> {
    if (this.#peer) {
      const p = this.#peer;
      this.#peer = undefined;
      await p.stop();
    }
    if (this.#bootstrap) {
      const b = this.#bootstrap;
      this.#bootstrap = undefined;
      await b.stop();
    }
    if (this.#child) {
      const exited = this.#exited;
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child?.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
  }

  /** SIGKILL: the process dies at once, with no chance to flush or say goodbye (process mode only). */
  async kill(): Promise<void> {
    if (this.mode !== 'process') throw new ImeError('E_HARNESS_STATE', 'only a process can be killed; use stop() in process');
    if (!this.#child) return;
    const exited = this.#exited;
    this.#child.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<ReadyInfo> {
    await this.stop();
    return this.start();
  }

  /** The member's JSON-lines log (its `log.file`). */
  logLines(): AsyncIterable<string> {
    return createInterface({ input: createReadStream(join(this.dir, 'log.jsonl')) });
  }
}
