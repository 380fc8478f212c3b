import { peerIdFromString } from '@libp2p/peer-id';
import {
  type RingConfiguration,
  decodeSignedRingConfiguration,
  encodeSignedRingConfiguration,
  verifySignedRingConfiguration,
} from '@ime/admission';
import { ImeError, decodeWire, isImeError } from '@ime/core';
import { type Database, type RpcClient, getJson, putJson } from '@ime/runtime';
import { ime } from '@ime/wire';

/**
 * Keeps this peer's copy of the signed ring configuration current (SPEC §3): polls every bootstrap,
 * accepts pushes from bootstraps and neighbours, and pushes what it accepts on to its neighbours, so
 * a change reaches every peer even while the bootstrap that made it is down. Only a configuration
 * signed by the pinned authority with a higher sequence is accepted; anything else is refused and
 * counted.
 */

const STORED_KEY = 'meta/ring-configuration';
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface CurrentConfiguration {
  readonly config: RingConfiguration;
  readonly signed: ime.v1.ISignedRingConfiguration;
  /** Hops from a bootstrap when it arrived (1 = straight from a bootstrap). */
  readonly hops: number;
  readonly receivedAtMs: number;
}

export interface ConfigSyncStatus {
  readonly sequence: number;
  readonly configsReceived: number;
  readonly configsRefused: number;
  readonly hopsFromBootstrap: number;
  /** PeerId of the bootstrap that answered last. */
  readonly bootstrap: string | undefined;
  readonly lastContactMs: number | undefined;
  readonly lastRefusal: { code: string; message: string; atMs: number } | undefined;
}

export interface ConfigSyncOptions {
  readonly db: Database;
  /** The ring authority's certificate (DER), known once enrolled. */
  readonly authority: () => Uint8Array | undefined;
  /** PeerIds of the bootstraps to poll. */
  readonly bootstraps: () => readonly string[];
  /** RPC client on CONFIG_PROTOCOL. */
  readonly configRpc: RpcClient;
  /** Pushes a configuration on to this peer's neighbours, except `exclude`. */
  readonly gossip: (push: ime.v1.IConfigurationPush, exclude: string | undefined) => Promise<void>;
  readonly now?: () => number;
  readonly onRefused?: (code: string, message: string, from: string | undefined) => void;
}

type Listener = (current: CurrentConfiguration, previous: CurrentConfiguration | undefined) => void;

export class ConfigSync {
  readonly #o: ConfigSyncOptions;
  readonly #now: () => number;
  readonly #listeners = new Set<Listener>();
  #current: CurrentConfiguration | undefined;
  #configsReceived = 0;
  #configsRefused = 0;
  #bootstrap: string | undefined;
  #lastContactMs: number | undefined;
  #lastRefusal: ConfigSyncStatus['lastRefusal'];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #polling = false;
  #stopped = false;

  constructor(options: ConfigSyncOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Restores the configuration kept from the last run. It is not re-checked for expiry: stale beats none. */
  async load(): Promise<void> {
    const stored = await getJson<{ signed: string; hops: number; receivedAtMs: number }>(this.#o.db, STORED_KEY);
    const authority = this.#o.authority();
    if (!stored || !authority) return;
    const signed = decodeSignedRingConfiguration(Buffer.from(stored.signed, 'base64'));
    const config = verifySignedRingConfiguration(signed, { authorityCertificateDer: authority }, { nowMs: 0 });
    this.#current = { config, signed, hops: stored.hops, receivedAtMs: stored.receivedAtMs };
  }

  get current(): CurrentConfiguration | undefined {
    return this.#current;
  }

  onChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): ConfigSyncStatus {
    return {
      sequence: this.#current?.config.sequence ?? 0,
      configsReceived: this.#configsReceived,
      configsRefused: this.#configsRefused,
      hopsFromBootstrap: this.#current?.hops ?? 0,
      bootstrap: this.#bootstrap,
      lastContactMs: this.#lastContactMs,
      lastRefusal: this.#lastRefusal,
    };
  }

  /**
   * Takes a configuration from a bootstrap (hops 1) or a neighbour. The same sequence again is a
   * harmless duplicate (gossip brings each configuration several times); an older one, a forgery or
   * one from another authority is refused and counted.
   */
  async accept(signed: unknown, hops: number, from: string | undefined): Promise<'accepted' | 'duplicate' | 'refused'> {
    const authority = this.#o.authority();
    if (!authority) return this.#refuse(new ImeError('E_NOT_ENROLLED', 'no ring authority known yet'), from);
    let config: RingConfiguration;
    try {
      config = verifySignedRingConfiguration(
        signed,
        { authorityCertificateDer: authority },
        { nowMs: this.#now(), ...(this.#current ? { knownSequence: this.#current.config.sequence } : {}) },
      );
    } catch (err) {
      if (isImeError(err) && err.code === 'E_RINGCONF_STALE' && this.#isSameSequence(signed)) return 'duplicate';
      return this.#refuse(err, from);
    }
    const normalized = decodeSignedRingConfiguration(encodeSignedRingConfiguration(signed as ime.v1.ISignedRingConfiguration));
    const previous = this.#current;
    const current: CurrentConfiguration = { config, signed: normalized, hops: Math.max(1, hops), receivedAtMs: this.#now() };
    this.#current = current;
    this.#configsReceived++;
    await putJson(this.#o.db, STORED_KEY, {
      signed: Buffer.from(encodeSignedRingConfiguration(normalized)).toString('base64'),
      hops: current.hops,
      receivedAtMs: current.receivedAtMs,
    });
    for (const l of this.#listeners) l(current, previous);
    this.#o.gossip({ configuration: normalized, hops: current.hops + 1 }, from).catch(() => undefined);
    return 'accepted';
  }

  #isSameSequence(signed: unknown): boolean {
    try {
      const s = signed instanceof Uint8Array ? decodeSignedRingConfiguration(signed) : (signed as ime.v1.ISignedRingConfiguration);
      const c = decodeWire(ime.v1.RingConfiguration, s.configuration, MAX_CONFIG_BYTES, 'ring configuration');
      return c.sequence === this.#current?.config.sequence;
    } catch {
      return false;
    }
  }

  #refuse(err: unknown, from: string | undefined): 'refused' {
    const code = isImeError(err) ? err.code : 'E_INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    this.#configsRefused++;
    this.#lastRefusal = { code, message, atMs: this.#now() };
    this.#o.onRefused?.(code, message, from);
    return 'refused';
  }

  /** Asks every bootstrap for a newer configuration; records which answered. */
  async pollOnce(): Promise<void> {
    const known = this.#current?.config.sequence ?? 0;
    const request = ime.v1.ConfigurationRequest.encode({ version: 1, knownSequence: known }).finish();
    await Promise.all(
      this.#o.bootstraps().map(async (bootstrap) => {
        try {
          const bytes = await this.#o.configRpc.request(peerIdFromString(bootstrap), request);
          const response = decodeWire(ime.v1.ConfigurationResponse, bytes, MAX_CONFIG_BYTES + 1024, 'configuration response');
          this.#lastContactMs = this.#now();
          this.#bootstrap = bootstrap;
          if (response.configuration) await this.accept(response.configuration, 1, bootstrap);
        } catch {
          // An unreachable bootstrap is what health reports (no contact for 3 intervals); others may answer.
        }
      }),
    );
  }

  /** Polls every `intervalMs()` (the interval comes from the current configuration). */
  start(intervalMs: () => number): void {
    this.#stopped = false;
    const loop = async () => {
      if (this.#stopped) return;
      if (!this.#polling) {
        this.#polling = true;
        await this.pollOnce().finally(() => (this.#polling = false));
      }
      if (!this.#stopped) this.#timer = setTimeout(() => void loop(), intervalMs());
    };
    void loop();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
