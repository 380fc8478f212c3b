import { ImeError } from '@ime/core';
import { createVapVerifier } from '../src/vap-digest.js';
import { VapInstanceServer, type VapInstanceServerOptions } from '../src/vap-server.js';
import type { Enrollment, VapAck, VapBackend, VapInstanceSettings, VapServerEvents, VapSession, Vcr, Vservice } from '../src/vap-types.js';

export const USER = 'cucm-app';
export const PASSWORD = 'correct horse battery staple';
export const PEER_ID = '12D3KooWTestPeer';

/** A backend that records what reaches it and misbehaves on request, by Vservice id or call id. */
export class TestBackend implements VapBackend {
  readonly log: string[] = [];
  readonly vservices: Vservice[] = [];
  readonly enrollments: Enrollment[] = [];
  readonly vcrs: Vcr[] = [];
  readonly registered: VapSession[] = [];
  readonly closed: { session: VapSession; reason: string }[] = [];
  delayMs = 0;

  onRegistered(session: VapSession): void {
    this.registered.push(session);
  }

  async publishVservice(_s: VapSession, v: Vservice): Promise<void> {
    this.log.push(`publish:start:${v.id}`);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (v.id === 'over-quota') throw new ImeError('E_RING_OVER_QUOTA', 'the ring refused: quota used up');
    if (v.id === 'bug') throw new TypeError("Cannot read properties of undefined (reading 'x')");
    this.vservices.push(v);
    this.log.push(`publish:end:${v.id}`);
  }

  async withdrawVservice(_s: VapSession, id: string): Promise<void> {
    this.log.push(`withdraw:${id}`);
  }

  async publishEnrollment(_s: VapSession, e: Enrollment): Promise<VapAck> {
    this.enrollments.push(e);
    return { accepted: e.groups.reduce((n, g) => n + g.patterns.length, 0), refused: [] };
  }

  async uploadVcrs(_s: VapSession, vcrs: readonly Vcr[]): Promise<VapAck> {
    const refused = vcrs.flatMap((v, index) => (v.callId === 'dup' ? [{ index, code: 'E_VCR_DUPLICATE', message: 'already uploaded' }] : []));
    for (const v of vcrs) if (v.callId !== 'dup') this.vcrs.push(v);
    return { accepted: vcrs.length - refused.length, refused };
  }

  onClosed(session: VapSession, reason: string): void {
    this.closed.push({ session, reason });
  }
}

export interface RecordedEvents extends VapServerEvents {
  readonly invalid: Parameters<NonNullable<VapServerEvents['onInvalidCredentials']>>[0][];
  readonly protocol: Parameters<NonNullable<VapServerEvents['onProtocolError']>>[0][];
  readonly refused: Parameters<NonNullable<VapServerEvents['onConnectionRefused']>>[0][];
}

export function recordEvents(): RecordedEvents {
  const invalid: RecordedEvents['invalid'] = [];
  const protocol: RecordedEvents['protocol'] = [];
  const refused: RecordedEvents['refused'] = [];
  return {
    invalid,
    protocol,
    refused,
    onInvalidCredentials: (e) => invalid.push(e),
    onProtocolError: (e) => protocol.push(e),
    onConnectionRefused: (e) => refused.push(e),
  };
}

export const SETTINGS: VapInstanceSettings = {
  name: 'test',
  host: '127.0.0.1',
  port: 0,
  authenticationMode: 'authenticated',
  enabled: true,
  keepaliveIntervalSec: 30,
  maxConnectionsAllowed: 16,
};

// 1 000 iterations: the minimum, so the suite spends its time on sockets, not PBKDF2.
export const VERIFIER = createVapVerifier(USER, PASSWORD, { iterations: 1_000 });

export async function startInstance(
  overrides: Partial<VapInstanceSettings> = {},
  options: Partial<VapInstanceServerOptions> = {},
): Promise<{ server: VapInstanceServer; backend: TestBackend; events: RecordedEvents; port: number }> {
  const backend = new TestBackend();
  const events = recordEvents();
  const server = new VapInstanceServer({
    settings: { ...SETTINGS, ...overrides },
    backend,
    events,
    lookup: (u) => (u === USER ? VERIFIER : undefined),
    peerId: () => PEER_ID,
    ringHealth: () => 2,
    ...options,
  });
  await server.start();
  return { server, backend, events, port: server.boundPort as number };
}
