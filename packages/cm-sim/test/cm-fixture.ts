import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImeError, countDids, isE164, parseEnrolledPattern } from '@ime/core';
import { AdminClient, Logger, parseConfigText } from '@ime/runtime';
import {
  type Enrollment,
  type VapAck,
  type VapAuthenticationMode,
  type VapBackend,
  VapInstanceServer,
  type VapSession,
  type VapTlsMaterial,
  type Vcr,
  type Vservice,
  createVapVerifier,
} from '@ime/vap';
import { CallManagerSimulator } from '../src/cm-simulator.js';
import { cmConfigSchema } from '../src/cm-config.js';
import { rejectionCode as codeOf } from '../../core/test/helpers.js';
export { codeOf };

/**
 * A real VAP server on 127.0.0.1 with a small backend that records what call managers publish and
 * judges it the way the peer does where a test needs a refusal: a DID quota, and +E.164 numbers in
 * VCRs. Plus helpers to start simulators in temporary directories.
 */

export const USER = 'vapuser';
export const PASSWORD = 'correct horse battery staple';

export class TestBackend implements VapBackend {
  readonly sessions: VapSession[] = [];
  readonly vservices: Vservice[] = [];
  readonly enrollments: Enrollment[] = [];
  readonly vcrs: Vcr[] = [];
  /** DIDs one enrollment may publish; beyond it the enrollment is refused with E_OVER_QUOTA. */
  quota = 100_000;

  onRegistered(session: VapSession): void {
    this.sessions.push(session);
  }

  async publishVservice(_session: VapSession, vservice: Vservice): Promise<void> {
    this.vservices.push(vservice);
  }

  async withdrawVservice(): Promise<void> {}

  async publishEnrollment(_session: VapSession, enrollment: Enrollment): Promise<VapAck> {
    this.enrollments.push(enrollment);
    const patterns = enrollment.groups.flatMap((g) => g.patterns.map((p) => parseEnrolledPattern(p)));
    const dids = countDids(patterns, enrollment.exclusions);
    if (dids > this.quota) throw new ImeError('E_OVER_QUOTA', `${dids} DIDs would exceed the quota of ${this.quota}`);
    return { accepted: dids, refused: [] };
  }

  async uploadVcrs(_session: VapSession, vcrs: readonly Vcr[]): Promise<VapAck> {
    const refused: VapAck['refused'][number][] = [];
    vcrs.forEach((v, index) => {
      if (!isE164(v.calling) || !isE164(v.called)) refused.push({ index, code: 'E_VCR_NOT_E164', message: 'VCR numbers must be +E.164' });
      else this.vcrs.push(v);
    });
    return { accepted: vcrs.length - refused.length, refused };
  }

  /** The newest registered session. */
  get session(): VapSession {
    const s = this.sessions.at(-1);
    if (s === undefined) throw new Error('no call manager registered');
    return s;
  }
}

export interface TestVapServer {
  readonly server: VapInstanceServer;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startVapServer(options: {
  backend: VapBackend;
  mode?: VapAuthenticationMode;
  port?: number;
  tls?: () => VapTlsMaterial;
  ringHealth?: () => 0 | 1 | 2;
}): Promise<TestVapServer> {
  // The fewest iterations the protocol allows: registration is exercised, PBKDF2 need not be slow here.
  const verifier = createVapVerifier(USER, PASSWORD, { iterations: 1000 });
  const server = new VapInstanceServer({
    settings: {
      name: 'test',
      host: '127.0.0.1',
      port: options.port ?? 0,
      authenticationMode: options.mode ?? 'authenticated',
      enabled: true,
      keepaliveIntervalSec: 30,
      maxConnectionsAllowed: 16,
    },
    backend: options.backend,
    lookup: (username) => (username === USER ? verifier : undefined),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    peerId: () => '12D3KooWTestPeer',
    ringHealth: options.ringHealth ?? (() => 2),
  });
  await server.start();
  return { server, port: server.boundPort as number, stop: () => server.stop() };
}

const dirs: string[] = [];

export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ime-cm-'));
  dirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface StartedCm {
  readonly cm: CallManagerSimulator;
  readonly admin: AdminClient;
  readonly dir: string;
  /** Every log line the simulator wrote. */
  readonly logs: string[];
}

/** Starts a simulator with `config` merged over a minimal one; the password file holds `password`. */
export async function startCm(config: Record<string, unknown>, password = PASSWORD, dir = tempDir()): Promise<StartedCm> {
  writeFileSync(join(dir, 'vap.password'), `${password}\n`, { mode: 0o600 });
  const base = {
    name: 'cucm-acme',
    domain: 'acme.example',
    enrolledPatterns: ['+14085551XXX'],
    dataDir: 'data',
    admin: { listen: '127.0.0.1:0' },
    ...config,
    vap: { username: USER, passwordFile: 'vap.password', reconnectIntervalSec: 1, connectTimeoutSec: 5, ...(config.vap as object) },
  };
  const parsed = parseConfigText(JSON.stringify(base), 'json', cmConfigSchema, { baseDir: dir });
  const logs: string[] = [];
  const log = new Logger({ level: 'debug', sink: (line) => logs.push(line) });
  const cm = await CallManagerSimulator.start(parsed, { log });
  const admin = await AdminClient.fromTokenFile(cm.adminUrl, cm.adminTokenFile);
  return { cm, admin, dir, logs };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 8000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

