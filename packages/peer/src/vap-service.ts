import { readFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  type EnrolledPattern,
  ImeError,
  type TrustGroup,
  expandPatterns,
  isImeError,
  parseEnrolledPattern,
  parseExclusionNumber,
  parseTrustGroup,
  patternMatches,
} from '@ime/core';
import { type Alerts, type Counters, type Database, type Logger, getJson, keyOf, putJson } from '@ime/runtime';
import type { VcrStore } from '@ime/validator';
import {
  type Enrollment,
  type LearnedRoute,
  type VapAck,
  type VapCredentials,
  type VapBackend,
  type VapItemRefusal,
  VapServers,
  createVapCertificate,
  type VapSession,
  type Vcr,
  type Vservice,
} from '@ime/vap';
import type { PublishReport } from './did-publisher.js';

/**
 * What the peer does for its call managers (SPEC §5): Vservices and their enrollments become DID
 * publications in the ring, VCRs go to the validator's store, and the ring's state and refusals go
 * back to the call managers as notices.
 *
 * Vservices and enrollments are kept in the database so that, after a restart, the peer still knows
 * which numbers belong to which Vservice before its call managers reconnect.
 *
 *   vservice/<id> → { vservice, enrollment?, updatedAtMs }
 */

const VSERVICE_PREFIX = 'vservice/';

/** What the peer keeps of one Vservice. */
export interface VserviceRecord {
  readonly vservice: Vservice;
  readonly enrollment?: Enrollment;
  /** DIDs the enrollment expands to (patterns minus exclusions). */
  readonly didCount: number;
  readonly updatedAtMs: number;
  /** The VAP instance the Vservice was published through: its credentials sign the tickets. */
  readonly instance?: string;
}

/** Whose a number is here: the Vservice that enrolls it, and whether it is excluded. */
export interface NumberOwner {
  readonly record: VserviceRecord;
  readonly excluded: boolean;
  /** The Vservice's trust lists, parsed. */
  readonly trustGroups: readonly TrustGroup[];
}

interface ParsedEnrollment {
  readonly record: VserviceRecord;
  readonly patterns: readonly EnrolledPattern[];
  readonly exclusions: ReadonlySet<string>;
  readonly trustGroups: readonly TrustGroup[];
}

/** The peer's ring publication, as the VAP service uses it. */
export interface VapPublication {
  publish(vserviceId: string, numbers: readonly string[]): Promise<PublishReport>;
  withdraw(numbers: readonly string[]): Promise<PublishReport>;
  publishedNumbers(vserviceId: string): Promise<string[]>;
}

export interface PeerVapServiceOptions {
  readonly db: Database;
  /** The peer's domain, bound in its ring certificate: a Vservice must be of this domain. */
  readonly domain: string;
  readonly publication: VapPublication;
  readonly vcrs: VcrStore;
  readonly counters: Counters;
  readonly alerts: Alerts;
  readonly log: Logger;
  readonly peerId: () => string;
  /** 0 red, 1 yellow, 2 green. */
  readonly ringHealth: () => 0 | 1 | 2;
  readonly tls: () => { certPem: string; keyPem: string };
  /** Listen address of VAP instances that do not name one. */
  readonly defaultHost: string;
  readonly now?: () => number;
}

const TLS_KEY = 'vap-tls';
/** Routes per VAP push: a few hundred bytes each, well under the frame limit. */
const ROUTES_PER_PUSH = 500;

function routePushes(routes: readonly LearnedRoute[]): LearnedRoute[][] {
  const pushes: LearnedRoute[][] = [];
  for (let i = 0; i < routes.length; i += ROUTES_PER_PUSH) pushes.push(routes.slice(i, i + ROUTES_PER_PUSH));
  return pushes;
}

/**
 * The certificate and key of this peer's encrypted VAP listeners: the operator's files when the
 * configuration names them, else a self-signed pair made once and kept in the database, so the
 * certificate call managers were told to trust does not change at every restart.
 */
export async function loadVapTls(
  db: Database,
  config: { certificateFile?: string; keyFile?: string },
  commonName: string,
): Promise<{ certPem: string; keyPem: string }> {
  if ((config.certificateFile === undefined) !== (config.keyFile === undefined)) {
    throw new ImeError('E_CONFIG_MISSING', 'vap.certificateFile and vap.keyFile go together: give both or neither');
  }
  if (config.certificateFile !== undefined && config.keyFile !== undefined) {
    const read = async (file: string, what: string) => {
      try {
        return await readFile(file, 'utf8');
      } catch (err) {
        throw new ImeError('E_VAP_TLS_FILE', `cannot read the VAP ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    };
    const certPem = await read(config.certificateFile, 'certificate');
    const keyPem = await read(config.keyFile, 'key');
    try {
      const cert = new X509Certificate(certPem);
      if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the key does not belong to the certificate');
    } catch (err) {
      throw new ImeError('E_VAP_TLS_FILE', `the VAP certificate and key cannot be used: ${(err as Error).message}`);
    }
    return { certPem, keyPem };
  }
  const held = await getJson<{ certPem: string; keyPem: string }>(db, TLS_KEY);
  if (held) return held;
  const made = createVapCertificate({ commonName });
  await putJson(db, TLS_KEY, made);
  return made;
}

function refusalsOf(report: PublishReport, index: Map<string, number>): VapItemRefusal[] {
  return report.failed.map((f) => ({ index: index.get(f.number) ?? 0, code: f.code, message: `${f.number}: ${f.message}` }));
}

export class PeerVapService implements VapBackend {
  readonly #o: PeerVapServiceOptions;
  readonly #now: () => number;
  readonly #vservices = new Map<string, VserviceRecord>();
  /** Publications of one Vservice run one after another (two call managers of a cluster may race). */
  readonly #queues = new Map<string, Promise<unknown>>();
  #servers: VapServers | undefined;
  #lastRingHealth: 0 | 1 | 2 | undefined;
  #parsed: ParsedEnrollment[] | undefined;
  #learnedRoutes: () => readonly LearnedRoute[] = () => [];

  private constructor(options: PeerVapServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  static async open(options: PeerVapServiceOptions): Promise<PeerVapService> {
    const service = new PeerVapService(options);
    for await (const [, v] of options.db.iterator({ gte: keyOf(VSERVICE_PREFIX), lt: keyOf(`${VSERVICE_PREFIX}\uffff`) })) {
      const record = JSON.parse(new TextDecoder().decode(v)) as VserviceRecord;
      service.#vservices.set(record.vservice.id, record);
    }
    const { counters, alerts } = options;
    counters.gauge('ClientsRegistered', 'Call managers registered over VAP now', () => service.sessions().filter((s) => s.registrationStatus === 'Registered').length);
    counters.gauge('TerminatingVCRs', 'Terminating VCRs stored for validation', () => options.vcrs.counts().terminating);
    counters.gauge('OriginatingVCRs', 'Originating VCRs stored, waiting to be validated', () => options.vcrs.counts().originating);
    counters.gauge('VservicesPublished', 'Vservices the call managers of this peer published', () => service.#vservices.size);
    counters.define('VCRsReceived', 'VCRs uploaded by call managers (accepted or not)');
    counters.define('VCRsRefused', 'VCRs refused (not E.164, bad times, stale)');
    counters.define('VAPInvalidCredentials', 'VAP registrations refused for wrong credentials');
    counters.define('VAPProtocolErrors', 'VAP connections closed for a malformed, oversized or unexpected frame');
    counters.define('VAPConnectionsRefused', 'VAP connections refused because an instance had its maximum');
    service.#servers = await VapServers.open({
      db: options.db,
      backend: service,
      events: {
        onInvalidCredentials: (e) => {
          counters.inc('VAPInvalidCredentials');
          // The guide's alert carries the user and the client's address (L9284); never a password.
          alerts.raise('InvalidCredentials', {
            severity: 'error',
            key: `${e.instance}/${e.username}/${e.clientAddress}`,
            details: { instance: e.instance, user: e.username, clientAddress: e.clientAddress, reason: e.reason },
          });
        },
        onProtocolError: (e) => {
          counters.inc('VAPProtocolErrors');
          options.log.info('VAP connection closed for a protocol error', e);
        },
        onConnectionRefused: (e) => {
          counters.inc('VAPConnectionsRefused');
          options.log.warn('VAP connection refused', e);
        },
      },
      tls: options.tls,
      peerId: options.peerId,
      ringHealth: options.ringHealth,
      log: options.log,
      defaultHost: options.defaultHost,
    });
    return service;
  }

  get vcrs(): VcrStore {
    return this.#o.vcrs;
  }

  /** This peer's VAP certificate (what call managers in encrypted mode must trust). */
  certificate(): { certPem: string } {
    return { certPem: this.#o.tls().certPem };
  }

  get servers(): VapServers {
    if (!this.#servers) throw new ImeError('E_VAP_STOPPED', 'the VAP service is not running');
    return this.#servers;
  }

  sessions() {
    return this.#servers?.sessions() ?? [];
  }

  vservices(): VserviceRecord[] {
    return [...this.#vservices.values()].sort((a, b) => a.vservice.id.localeCompare(b.vservice.id));
  }

  /**
   * Which Vservice enrolls a number (its patterns, minus its exclusions): the validator's test of
   * "our own number" on both sides of a call.
   */
  numberOwner(number: string): NumberOwner | undefined {
    this.#parsed ??= this.vservices().flatMap((record) => {
      const e = record.enrollment;
      if (!e) return [];
      return [
        {
          record,
          patterns: e.groups.flatMap((g) => g.patterns.map((p) => parseEnrolledPattern(p))),
          exclusions: new Set(e.exclusions.map((x) => parseExclusionNumber(x) as string)),
          trustGroups: e.trustGroups.map((g) => parseTrustGroup({ ...g, elements: g.elements.map((el) => el.value) })),
        },
      ];
    });
    for (const p of this.#parsed) {
      if (p.patterns.some((pattern) => patternMatches(pattern, number))) return { record: p.record, excluded: p.exclusions.has(number), trustGroups: p.trustGroups };
    }
    return undefined;
  }

  /** Where the routes learned so far come from, for call managers that register later. */
  setLearnedRoutes(source: () => readonly LearnedRoute[]): void {
    this.#learnedRoutes = source;
  }

  /** Pushes learned routes to every registered call manager of this enterprise; returns how many got them. */
  deliverRoutes(routes: readonly LearnedRoute[]): number {
    let sessions = 0;
    for (const push of routePushes(routes)) sessions = this.#servers?.pushRoutes(() => true, push) ?? 0;
    return sessions;
  }

  /**
   * Sets an instance's VAP credentials; a changed ticket password or epoch raises
   * TicketPasswordChanged (guide L9443), since the edge firewall must be given the new one.
   */
  async setCredentials(instance: string, credentials: VapCredentials): Promise<unknown> {
    const before = this.servers.ticketSecret(instance);
    const result = await this.servers.setCredentials(instance, credentials);
    if (before && (before.ticketPassword !== credentials.ticketPassword || before.epoch !== credentials.epoch)) {
      this.#o.alerts.raise('TicketPasswordChanged', {
        severity: 'notice',
        key: instance,
        details: { instance, previousEpoch: before.epoch, epoch: credentials.epoch, retiredAt: new Date(this.#now()).toISOString() },
      });
    }
    return result;
  }

  /** Tells every call manager when the ring becomes unusable or usable again (IMEDistributedCacheInactive). */
  ringHealthChanged(level: 0 | 1 | 2, reasons: readonly string[]): void {
    const before = this.#lastRingHealth;
    this.#lastRingHealth = level;
    if (before === undefined || (before === 0) === (level === 0)) return;
    const notice = level === 0 ? { kind: 'ring-inactive' as const, detail: reasons.join('; ') } : { kind: 'ring-active' as const, detail: 'the ring is usable again' };
    this.#servers?.notice(() => true, notice);
  }

  async stop(): Promise<void> {
    await this.#servers?.stop();
    this.#servers = undefined;
  }

  // --- VapBackend --------------------------------------------------------------------------------

  onRegistered(session: VapSession): void {
    const routes = this.#learnedRoutes();
    for (const push of routePushes(routes)) session.pushRoutes(push);
  }

  async publishVservice(session: VapSession, vservice: Vservice): Promise<void> {
    // The domain a validation proves is the one in this peer's ring certificate (SPEC §6).
    if (vservice.domain.toLowerCase() !== this.#o.domain.toLowerCase()) {
      throw new ImeError('E_VSERVICE_DOMAIN', `the Vservice domain ${vservice.domain} is not this peer's domain ${this.#o.domain}`);
    }
    await this.#serialised(vservice.id, async () => {
      const held = this.#vservices.get(vservice.id);
      const record: VserviceRecord = { ...held, vservice, didCount: held?.didCount ?? 0, updatedAtMs: this.#now(), instance: session.info().instance };
      await this.#save(record);
    });
  }

  async withdrawVservice(_session: VapSession, vserviceId: string): Promise<void> {
    await this.#serialised(vserviceId, async () => {
      if (!this.#vservices.has(vserviceId)) throw new ImeError('E_VSERVICE_NOT_FOUND', `no Vservice ${vserviceId} is published here`);
      const numbers = await this.#o.publication.publishedNumbers(vserviceId);
      if (numbers.length > 0) await this.#o.publication.withdraw(numbers);
      await this.#o.db.del(keyOf(`${VSERVICE_PREFIX}${vserviceId}`));
      this.#vservices.delete(vserviceId);
      this.#parsed = undefined;
    });
  }

  async publishEnrollment(session: VapSession, enrollment: Enrollment): Promise<VapAck> {
    return this.#serialised(enrollment.vserviceId, async () => {
      const held = this.#vservices.get(enrollment.vserviceId);
      if (!held) throw new ImeError('E_VSERVICE_NOT_FOUND', `publish the Vservice ${enrollment.vserviceId} before its enrollment`);
      const patterns = enrollment.groups.flatMap((g) => g.patterns.map((p) => parseEnrolledPattern(p)));
      const numbers = expandPatterns(patterns, enrollment.exclusions.map((x) => parseExclusionNumber(x)));
      const max = held.vservice.maxDidCount;
      if (max > 0 && numbers.length > max) {
        throw new ImeError('E_VSERVICE_TOO_MANY_DIDS', `the enrollment expands to ${numbers.length} DIDs, over the Vservice's maximum of ${max}`, {
          dids: numbers.length,
          max,
        });
      }
      const wanted = new Set<string>(numbers);
      const published = new Set(await this.#o.publication.publishedNumbers(enrollment.vserviceId));
      const gone = [...published].filter((n) => !wanted.has(n));
      const added = numbers.filter((n) => !published.has(n));
      if (gone.length > 0) await this.#o.publication.withdraw(gone);
      let report: PublishReport = { requested: 0, published: 0, failed: [] };
      if (added.length > 0) {
        try {
          report = await this.#o.publication.publish(enrollment.vserviceId, added);
        } catch (err) {
          if (isImeError(err) && err.code === 'E_OVER_QUOTA') {
            this.#servers?.notice((s) => s.vserviceIds.includes(enrollment.vserviceId) || s.handle === session.info().handle, {
              kind: 'over-quota',
              detail: err.message,
            });
          }
          throw err;
        }
      }
      await this.#save({ ...held, enrollment, didCount: numbers.length, updatedAtMs: this.#now() });
      const index = new Map(numbers.map((n, i) => [n, i]));
      this.#o.log.info('enrollment published', {
        vservice: enrollment.vserviceId,
        dids: numbers.length,
        added: report.published,
        withdrawn: gone.length,
        failed: report.failed.length,
      });
      return { accepted: numbers.length - report.failed.length, refused: refusalsOf(report, index) };
    });
  }

  async uploadVcrs(session: VapSession, vcrs: readonly Vcr[]): Promise<VapAck> {
    const info = session.info();
    const result = await this.#o.vcrs.add(vcrs, `${info.instance}/${info.username}`);
    this.#o.counters.inc('VCRsReceived', vcrs.length);
    if (result.refused.length > 0) this.#o.counters.inc('VCRsRefused', result.refused.length);
    return { accepted: result.accepted, refused: result.refused };
  }

  // -----------------------------------------------------------------------------------------------

  async #save(record: VserviceRecord): Promise<void> {
    await putJson(this.#o.db, `${VSERVICE_PREFIX}${record.vservice.id}`, record);
    this.#vservices.set(record.vservice.id, record);
    this.#parsed = undefined;
  }

  #serialised<T>(vserviceId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(vserviceId) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.catch(() => undefined);
    this.#queues.set(vserviceId, tail);
    void tail.then(() => {
      if (this.#queues.get(vserviceId) === tail) this.#queues.delete(vserviceId);
    });
    return run;
  }
}

