import { ImeError, isImeError } from '@ime/core';
import type { Logger } from '@ime/runtime';
import type { Enrollment, LearnedRoute, VapAck, VapAuthenticationMode, Vcr, VapNotice, Vservice } from '@ime/vap';
import type { VapTarget } from './cm-config.js';

/**
 * The call manager's side of the VAP connection (guide L2443–L2461): connect to the primary IME
 * server, else the secondary; once registered, stay; after a failure or a loss, try again every
 * reconnect interval, forever. A round tries each configured server once, back to back; rounds are
 * one interval apart; after a loss the next round starts with the other server. What to do once
 * registered (publish, upload) is the simulator's business, told through the callbacks.
 */

/** What the simulator uses of `VapClient` (structural, so unit tests may hand in their own). */
export interface VapClientLike {
  readonly registered: { readonly peerId: string; readonly keepaliveIntervalSec: number; readonly ringHealth: number };
  publishVservice(vservice: Vservice): Promise<unknown>;
  withdrawVservice(vserviceId: string): Promise<unknown>;
  publishEnrollment(enrollment: Enrollment): Promise<VapAck>;
  uploadVcrs(vcrs: Vcr[]): Promise<VapAck>;
  onRoutes(cb: (routes: LearnedRoute[]) => void): void;
  onNotice(cb: (notice: VapNotice) => void): void;
  onClose(cb: (code: string, message: string) => void): void;
  close(): unknown;
}

export interface VapConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly mode: VapAuthenticationMode;
  readonly username: string;
  readonly password: string;
  readonly tls?: { readonly caPem: string[]; readonly certPem: string; readonly keyPem: string; readonly servername?: string };
  readonly connectTimeoutMs?: number;
  readonly clientSoftware?: string;
}

export type VapConnect = (options: VapConnectOptions) => Promise<VapClientLike>;

export type LinkState = 'never-connected' | 'connecting' | 'registered' | 'retrying' | 'stopped';

export interface LinkError {
  readonly code: string;
  readonly message: string;
  readonly at: string;
  readonly server: string;
}

export interface VapLinkOptions {
  readonly targets: readonly VapTarget[];
  /** Credentials and TLS material for one attempt (read at start; never logged). */
  readonly connectOptions: (target: VapTarget) => VapConnectOptions;
  readonly connect: VapConnect;
  readonly reconnectIntervalMs: number;
  readonly connectTimeoutMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  /** Called synchronously once registered, so route and notice handlers miss nothing. */
  /** Called as each attempt begins (1 for the first). */
  readonly onAttempt?: (target: VapTarget, attempt: number) => void;
  readonly onRegistered: (client: VapClientLike, target: VapTarget) => void;
  readonly onAttemptFailed?: (error: ImeError, target: VapTarget, attempt: number) => void;
  readonly onLost?: (code: string, message: string, target: VapTarget) => void;
  /** Called whenever the 0/1/2 service status changes. */
  readonly onStatusChange?: (status: 0 | 1 | 2, previous: 0 | 1 | 2) => void;
}

export function serviceStatusOf(state: LinkState): 0 | 1 | 2 {
  if (state === 'registered') return 1;
  if (state === 'retrying') return 2;
  // A first attempt that has not failed yet is not unhealthy: nothing is known (0 "unknown").
  return 0;
}

export class VapLink {
  readonly #o: VapLinkOptions;
  readonly #now: () => number;
  #state: LinkState = 'never-connected';
  #everFailed = false;
  #client: VapClientLike | undefined;
  #target: VapTarget | undefined;
  #registeredAtMs: number | undefined;
  #attempts = 0;
  #lastError: LinkError | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #nextAttemptAtMs: number | undefined;
  #firstRound: Promise<void>;
  #resolveFirstRound: () => void = () => {};

  constructor(options: VapLinkOptions) {
    if (options.targets.length === 0) throw new TypeError('VapLink needs at least one IME server');
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#firstRound = new Promise((resolve) => (this.#resolveFirstRound = resolve));
  }

  start(): void {
    if (this.#state !== 'never-connected' || this.#attempts > 0) return;
    void this.#round(0);
  }

  /** Resolves when the first round of attempts has ended, registered or not. */
  firstRound(): Promise<void> {
    return this.#firstRound;
  }

  get state(): LinkState {
    return this.#state;
  }

  get serviceStatus(): 0 | 1 | 2 {
    return serviceStatusOf(this.#state);
  }

  get client(): VapClientLike | undefined {
    return this.#state === 'registered' ? this.#client : undefined;
  }

  get target(): VapTarget | undefined {
    return this.#state === 'registered' ? this.#target : undefined;
  }

  get registeredAtMs(): number | undefined {
    return this.#state === 'registered' ? this.#registeredAtMs : undefined;
  }

  /** Every connection attempt so far, the first included. */
  get attempts(): number {
    return this.#attempts;
  }

  get lastError(): LinkError | undefined {
    return this.#lastError;
  }

  get nextAttemptAtMs(): number | undefined {
    return this.#nextAttemptAtMs;
  }

  #setState(state: LinkState): void {
    const before = serviceStatusOf(this.#state);
    this.#state = state;
    const after = serviceStatusOf(state);
    if (before !== after) this.#o.onStatusChange?.(after, before);
  }

  #recordError(code: string, message: string, target: VapTarget): void {
    this.#lastError = { code, message, at: new Date(this.#now()).toISOString(), server: `${target.host}:${target.port}` };
  }

  async #round(startIndex: number): Promise<void> {
    this.#timer = undefined;
    this.#nextAttemptAtMs = undefined;
    const targets = this.#o.targets;
    for (let i = 0; i < targets.length; i++) {
      if (this.#state === 'stopped') return;
      const target = targets[(startIndex + i) % targets.length] as VapTarget;
      if (await this.#attempt(target)) {
        this.#resolveFirstRound();
        return;
      }
    }
    this.#resolveFirstRound();
    if (this.#state === 'stopped') return;
    this.#schedule(0);
  }

  #schedule(startIndex: number): void {
    const delay = this.#o.reconnectIntervalMs;
    this.#nextAttemptAtMs = this.#now() + delay;
    this.#timer = setTimeout(() => void this.#round(startIndex), delay);
  }

  async #attempt(target: VapTarget): Promise<boolean> {
    this.#attempts++;
    const attempt = this.#attempts;
    const server = `${target.host}:${target.port}`;
    if (!this.#everFailed) this.#setState('connecting');
    this.#o.onAttempt?.(target, attempt);
    this.#o.log.debug('connecting to the IME server', { server, label: target.label, attempt });
    let client: VapClientLike;
    try {
      client = await this.#connectWithDeadline(target);
    } catch (err) {
      const error = isImeError(err) ? err : new ImeError('E_VAP_CONNECT', (err as Error)?.message ?? String(err));
      this.#recordError(error.code, error.message, target);
      this.#o.log.warn('cannot register with the IME server', { server, label: target.label, attempt, code: error.code, message: error.message });
      this.#everFailed = true;
      if (this.#state !== 'stopped') this.#setState('retrying');
      this.#o.onAttemptFailed?.(error, target, attempt);
      return false;
    }
    if (this.#state === 'stopped') {
      await Promise.resolve(client.close()).catch(() => undefined);
      return false;
    }
    this.#client = client;
    this.#target = target;
    this.#registeredAtMs = this.#now();
    client.onClose((code, message) => this.#lost(client, target, code, message));
    this.#setState('registered');
    this.#o.log.info('registered with the IME server', { server, label: target.label, peerId: client.registered.peerId, ringHealth: client.registered.ringHealth });
    this.#o.onRegistered(client, target);
    return true;
  }

  /** VapClient has its own connect timeout; this bounds the whole attempt, registration included. */
  #connectWithDeadline(target: VapTarget): Promise<VapClientLike> {
    const limit = this.#o.connectTimeoutMs;
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        reject(new ImeError('E_VAP_TIMEOUT', `no registration within ${limit} ms`));
      }, limit + 1000);
      this.#o.connect({ ...this.#o.connectOptions(target), connectTimeoutMs: limit }).then(
        (client) => {
          clearTimeout(timer);
          if (done) void Promise.resolve(client.close()).catch(() => undefined);
          else resolve(client);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!done) reject(err);
        },
      );
    });
  }

  #lost(client: VapClientLike, target: VapTarget, code: string, message: string): void {
    if (this.#client !== client || this.#state === 'stopped') return;
    this.#client = undefined;
    this.#registeredAtMs = undefined;
    this.#recordError(code, message, target);
    this.#o.log.warn('lost the connection to the IME server', { server: `${target.host}:${target.port}`, code, message });
    this.#everFailed = true;
    this.#setState('retrying');
    this.#o.onLost?.(code, message, target);
    const index = this.#o.targets.indexOf(target);
    this.#schedule((index + 1) % this.#o.targets.length);
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextAttemptAtMs = undefined;
    const client = this.#client;
    this.#client = undefined;
    this.#setState('stopped');
    this.#resolveFirstRound();
    if (client !== undefined) await Promise.resolve(client.close()).catch(() => undefined);
  }
}
