import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { CONFIG_PROTOCOL, admissionOf, decodeSignedRingConfiguration, encodeSignedRingConfiguration, signRingConfiguration } from '@ime/admission';
import { type DidRecord, ImeError, type Publisher, didRecordKey, didRecordProblem, encodeDidRecord, isImeError, openDidRecord, parseE164, publisherFromSeed, sealDidRecord, verifyDidRecord } from '@ime/core';
import { type Member, waitFor } from '@ime/harness';
import { RING_PROTOCOL } from '@ime/peer';
import { type Database, RpcClient, type RpcContext, createRingHost, loadOrCreateIdentity, openDatabase, serveRpc } from '@ime/runtime';
import { ime } from '@ime/wire';
import { ConfigSync } from '../../../../packages/peer/src/config-sync.js';
import { RecordStore } from '../../../../packages/peer/src/record-store.js';
import { createRingHandler } from '../../../../packages/peer/src/ring-service.js';
import { RpcRingTransport } from '../../../../packages/peer/src/ring-transport.js';
import { ACCEPTED, type FuzzOptions, type FuzzOutcome, type FuzzReport, type FuzzTarget, Mutator, checkCode, hex, inputHash, newReport, oracle, prng, refusedWith, runOne } from '../engine.js';
import { DAY_MS, FUZZ_NOW_MS, type IdentityName, NUMBERS, RING_SALT, baseConfiguration, identities, loadAuthority } from '../fixture.js';
import { sealRecord } from '../generate.js';

/**
 * Ring RPCs: the peer's request handler (ring-service.ts) called in-process exactly as the RPC layer
 * calls it — the payload of a request frame and the context of the libp2p connection it came on —
 * with a real RecordStore on LevelDB behind it and the real ConfigSync taking configuration pushes.
 * The connections are real (loopback libp2p hosts for an admitted member, a second member, the
 * ring's bootstrap and a stranger), so admission is decided on real PeerIds.
 *
 * Oracle, besides "accepted or refused with a code": the answer must decode; a refused record carries
 * a code; a record the store accepted from anyone but its own publisher has a valid signature; what a
 * fetch returns is well-formed and unexpired. Records for numbers the fuzzer knows are also opened
 * with the number (did-record.ts), which must succeed or refuse with a code.
 */

type Libp2p = Awaited<ReturnType<typeof createRingHost>>;

/** Which connection an input arrives on, from the input's hash: mostly the admitted member. */
const SENDERS: readonly IdentityName[] = [...Array<IdentityName>(14).fill('alpha'), 'beta', 'beta', 'beta', 'bootstrap', 'bootstrap', 'stranger'];

export interface RingTargetHandle {
  readonly target: FuzzTarget;
  /** What happened to the records inside store, withdraw and handoff requests: accepted or refused by code. */
  readonly recordCodes: ReadonlyMap<string, number>;
  /** The answers this peer reads from a member (see inside). */
  readonly responseTarget: FuzzTarget;
  close(): Promise<void>;
}

function bytesEqual(a: Uint8Array | null | undefined, b: Uint8Array | null | undefined): boolean {
  return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function recordsOf(request: ime.v1.RingRequest): readonly ime.v1.IDidRecord[] {
  return request.store?.records ?? request.withdraw?.tombstones ?? request.handoff?.records ?? [];
}

/** The ring keys of the corpus's numbers, to open the records that carry them. */
const keyToNumber = new Map<string, string>(NUMBERS.map((n) => [hex(didRecordKey(RING_SALT, parseE164(n))), n]));

function openWithNumber(record: ime.v1.IDidRecord): void {
  const number = keyToNumber.get(hex(record.key ?? new Uint8Array(0)));
  if (number === undefined) return;
  try {
    openDidRecord(record as DidRecord, { ringSalt: RING_SALT, number: parseE164(number) });
  } catch (err) {
    if (!isImeError(err)) throw err;
  }
}

export async function ringTarget(seeds: readonly Uint8Array[]): Promise<RingTargetHandle> {
  const ids = await identities();
  const { signer, certificateDer } = loadAuthority();
  const dir = mkdtempSync(join(tmpdir(), 'ime-fuzz-ring-'));
  const hosts: Libp2p[] = [];
  const clients: RpcClient[] = [];
  let db: Database | undefined;
  const close = async () => {
    for (const c of clients) c.stop();
    await Promise.all(
      hosts.map(async (h) => {
        try {
          await h.stop();
        } catch {
          // closing anyway: a host that fails to stop must not keep the rest open
        }
      }),
    );
    await db?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    db = await openDatabase(dir);
    const now = () => FUZZ_NOW_MS;
    const self = await createRingHost({ privateKey: await loadOrCreateIdentity(db), listen: ['/ip4/127.0.0.1/tcp/0'] });
    hosts.push(self);
    const contexts = {} as Record<IdentityName, RpcContext>;
    for (const name of Object.keys(ids) as IdentityName[]) {
      const remote = await createRingHost({ privateKey: ids[name].privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] });
      hosts.push(remote);
      await remote.dial(self.getMultiaddrs());
      // The handler sees the connection from the serving side, as serveRpc hands it over; that side
      // registers it a moment after the dialler's promise resolves.
      await waitFor(`the connection from ${name}`, () => self.getConnections(remote.peerId).length > 0, 10_000, 10);
      const connection = self.getConnections(remote.peerId)[0];
      oracle(connection !== undefined, `no connection from ${name}`);
      contexts[name] = { remotePeer: connection.remotePeer, connection };
    }

    const configSync = new ConfigSync({
      db,
      authority: () => certificateDer,
      bootstraps: () => [ids.bootstrap.peerId],
      // Only polling uses it, and nothing polls here.
      configRpc: new RpcClient(self, CONFIG_PROTOCOL),
      // This peer has no neighbours here: a configuration it accepts goes nowhere further.
      gossip: async () => undefined,
      now,
    });
    // As the peer takes it from a bootstrap's answer: the decoded message.
    const first = decodeSignedRingConfiguration(encodeSignedRingConfiguration(signRingConfiguration(baseConfiguration(ids, 1), signer)));
    oracle((await configSync.accept(first, 1, ids.bootstrap.peerId)) === 'accepted', 'the first configuration was refused');
    const isAdmitted = (id: string) => {
      const c = configSync.current;
      return c !== undefined && admissionOf(c.config, id, now()).admitted;
    };
    const isBootstrap = (id: string) => id === ids.bootstrap.peerId || (configSync.current?.config.bootstraps.some((b) => b.peerId === id) ?? false);
    const store = await RecordStore.open({ db, now, maxTtlMs: DAY_MS, capFor: () => 2000 });
    const handler = createRingHandler({
      store,
      isAdmitted,
      isBootstrap,
      onConfigurationPush: async (push, from) => {
        const outcome = await configSync.accept(push.configuration, push.hops, from);
        return { sequence: configSync.current?.config.sequence ?? 0, accepted: outcome === 'accepted' };
      },
      onPing: () => configSync.current?.config.sequence ?? 0,
    });

    // The handler's own answers to the corpus's requests, taken now while the store holds only the
    // corpus's records (later a range fetch would answer with thousands): the seeds of `responseTarget`.
    const requests = new Map<string, ime.v1.RingRequest>();
    const answers: Uint8Array[] = [];
    for (const seed of seeds) {
      const request = ime.v1.RingRequest.decode(seed);
      requests.set(String(request.body), request);
      answers.push(await handler(seed, contexts.alpha));
    }
    answers.push(ime.v1.RingResponse.encode({ version: 1, error: { code: 'E_OVER_QUOTA', message: 'the publisher is over its quota at this replica' } }).finish());
    answers.push(ime.v1.ErrorInfo.encode({ code: 'E_RPC_BUSY', message: 'too many requests in progress' }).finish());

    const unverifiedHeld = new Set<string>();
    const recordCodes = new Map<string, number>();
    const target: FuzzTarget = {
      name: 'ring',
      seeds,
      async run(input) {
        const sender = ids[SENDERS[inputHash(input) % SENDERS.length] as IdentityName];
        const answer = await handler(input, contexts[sender.name]);
        return checkAnswer(input, answer, sender.publisher, 'in-process', unverifiedHeld, recordCodes);
      },
    };

    /**
     * The other direction: a member's answers as this peer's RpcRingTransport (ring-transport.ts)
     * reads them, over a real libp2p stream from the member (beta), which answers each request with
     * the input — as a response, or (one input in four that parses as an ErrorInfo) as an RPC error
     * frame carrying it. The seeds are the handler's own answers to the corpus's requests. Records that
     * come back are read as the coordinator reads them: verified, and opened when the number is known.
     */
    const responder = hosts[1 + Object.keys(ids).indexOf('beta')] as Libp2p;
    let answer: Uint8Array = new Uint8Array(0);
    let asErrorFrame = false;
    await serveRpc(responder, RING_PROTOCOL, () => {
      if (!asErrorFrame) return answer;
      // The RPC layer writes the code and message of what the handler throws into the error frame.
      const info = ime.v1.ErrorInfo.decode(answer);
      throw new ImeError(info.code, info.message);
    });
    const responseClient = new RpcClient(self, RING_PROTOCOL, { timeoutMs: 10_000 });
    clients.push(responseClient);
    const transport = new RpcRingTransport(responseClient);
    const kinds = [...requests.keys()];
    const responseTarget: FuzzTarget = {
      name: 'ring-responses',
      seeds: answers,
      async run(input) {
        answer = input;
        asErrorFrame = false;
        if (inputHash(input) % 4 === 0) {
          try {
            ime.v1.ErrorInfo.decode(input);
            asErrorFrame = true;
          } catch {
            // not an ErrorInfo: sent as a response
          }
        }
        // Ask what the answer answers, when it still says, so the transport reads past the kind check.
        let kind: string | undefined;
        try {
          const body = ime.v1.RingResponse.decode(input).body;
          kind = body === 'pong' ? 'ping' : body;
        } catch {
          kind = undefined;
        }
        const request = requests.get(kind ?? '') ?? (requests.get(kinds[inputHash(input) % kinds.length] as string) as ime.v1.RingRequest);
        const response = await transport.request(ids.beta.peerId, request);
        for (const entry of [...(response.fetch?.entries ?? []), ...(response.rangeFetch?.entries ?? [])]) {
          for (const r of entry.records) {
            try {
              verifyDidRecord(r as DidRecord);
            } catch (err) {
              if (!isImeError(err)) throw err;
            }
            openWithNumber(r);
          }
        }
        return { accepted: true, note: String(response.body) };
      },
    };
    return { target, responseTarget, recordCodes, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A record's identity as the store compares records (every field), for the set below. */
function recordId(r: DidRecord): string {
  return hex(encodeDidRecord({ key: r.key, publisherKey: r.publisherKey, sequence: r.sequence, expiresAtMs: r.expiresAtMs, tombstone: r.tombstone, nonce: r.nonce, sealedClaim: r.sealedClaim, signature: r.signature }));
}

/**
 * Checks the handler's answer to one request; the outcome is the answer's body or its error code.
 *
 * A publisher's own records skip the signature check (Noise authenticated the sender), so the store
 * may hold a record of its own whose signature does not verify; `unverifiedHeld` remembers those. The
 * same record sent again by anyone is accepted as "already held" without a new check: that is the
 * one way a record with a bad signature may be accepted from a peer that is not its publisher.
 */
function checkAnswer(input: Uint8Array, answer: Uint8Array, sender: Publisher, where: string, unverifiedHeld: Set<string>, recordCodes?: Map<string, number>): FuzzOutcome {
  let response: ime.v1.RingResponse;
  try {
    response = ime.v1.RingResponse.decode(answer);
  } catch (err) {
    oracle(false, `${where}: the peer's answer does not decode (${(err as Error).message})`);
  }
  oracle(response.version === 1, `${where}: answered with version ${response.version}`);
  if (response.body === 'error') return refusedWith(checkCode(response.error?.code, `${where} ring error`));
  // The request decoded on the peer's side, so it decodes here.
  const request = ime.v1.RingRequest.decode(input);
  const records = recordsOf(request);
  for (const r of records) openWithNumber(r);
  const results = response.store?.results ?? response.withdraw?.results ?? response.handoff?.results;
  const codes = new Set<string>();
  if (results) {
    oracle(results.length === records.length, `${where}: ${results.length} results for ${records.length} records`);
    results.forEach((res, i) => {
      const record = records[i] as DidRecord;
      if (!res.accepted) {
        const code = checkCode(res.error?.code, `${where} record ${i}`);
        codes.add(code);
        recordCodes?.set(code, (recordCodes.get(code) ?? 0) + 1);
        return;
      }
      recordCodes?.set('accepted', (recordCodes.get('accepted') ?? 0) + 1);
      oracle(didRecordProblem(record) === undefined, `${where}: a malformed record was accepted`);
      const own = request.body !== 'handoff' && bytesEqual(record.publisherKey, sender.publicKey);
      let verifies = true;
      try {
        verifyDidRecord(record);
      } catch {
        verifies = false;
      }
      if (verifies) return;
      if (own) unverifiedHeld.add(recordId(record));
      else oracle(unverifiedHeld.has(recordId(record)), `${where}: a record with a bad signature was accepted from a peer that is not its publisher`);
    });
  }
  for (const entry of [...(response.fetch?.entries ?? []), ...(response.rangeFetch?.entries ?? [])]) {
    for (const r of entry.records) {
      oracle(didRecordProblem(r as DidRecord) === undefined, `${where}: the store returned a malformed record`);
      oracle(r.expiresAtMs > FUZZ_NOW_MS || where !== 'in-process', `${where}: the store returned an expired record`);
    }
  }
  const note = codes.size === 0 ? String(response.body) : `${String(response.body)}:${[...codes].sort().join(',')}`;
  return note === 'undefined' ? ACCEPTED : { accepted: true, note };
}

// ---------------------------------------------------------------------------------------------
// Over a real libp2p stream to a real peer

/**
 * A slice of mutated requests over the ring protocol to a running peer of a harness ring. The sender
 * is `borrowed`, a stopped member of the same ring whose identity this host takes over: an admitted
 * peer that has started sending garbage. Every answer must decode or be an RPC refusal with a code —
 * never E_INTERNAL (a handler that threw something other than an ImeError) and never a timeout —
 * and the peer must still answer a real store and fetch afterwards.
 */
export async function fuzzRingOverLibp2p(
  seeds: readonly Uint8Array[],
  target: Member,
  borrowed: Member,
  options: FuzzOptions & { parallel: number },
): Promise<FuzzReport> {
  const report = newReport('ring-libp2p', options.seed);
  const db = await openDatabase(join(borrowed.dir, 'data', 'db'));
  const privateKey = await loadOrCreateIdentity(db).finally(() => db.close());
  const host = await createRingHost({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'] });
  const started = performance.now();
  const client = new RpcClient(host, RING_PROTOCOL, { timeoutMs: Math.max(10_000, 5 * options.hangMs) });
  try {
    const peer = peerIdFromString(target.peerId);
    await host.peerStore.merge(peer, { multiaddrs: target.ready.listen.map((a) => multiaddr(a)) });
    // Records this identity really publishes, fresh: the peer's clock is the real one.
    const publisher = publisherFromSeed(privateKey.raw.subarray(0, 32));
    const fresh = (n: number, seq: number) => sealRecord(publisher, n, seq, Date.now());
    const request = (r: ime.v1.IRingRequest) => ime.v1.RingRequest.encode({ version: 1, ...r }).finish();
    const liveSeeds = [
      ...seeds,
      request({ store: { records: [fresh(0, 1), fresh(1, 1)] } }),
      request({ store: { records: [fresh(2, 2)] } }),
      request({ fetch: { keys: [fresh(0, 1).key, fresh(2, 1).key] } }),
    ];
    const unverifiedHeld = new Set<string>();
    const mutator = new Mutator(prng(options.seed ^ 0x51f), liveSeeds);
    const inputs = Array.from({ length: options.count }, () => mutator.next());
    let next = 0;
    await Promise.all(
      Array.from({ length: options.parallel }, async () => {
        while (next < inputs.length) {
          const index = next++;
          const input = inputs[index] as Uint8Array;
          await runOne(report, options, index, input, async () => {
            let answer: Uint8Array;
            try {
              answer = await client.request(peer, input);
            } catch (err) {
              // An RPC error frame: the handler threw. Only an ImeError may be the reason.
              if (isImeError(err)) return refusedWith(checkCode(err.code, 'RPC error from the peer'));
              throw err;
            }
            return checkAnswer(input, answer, publisher, 'libp2p', unverifiedHeld);
          });
          if ((index + 1) % Math.max(1, Math.floor(inputs.length / 5)) === 0) options.log?.(`fuzz ring-libp2p: ${index + 1}/${inputs.length} requests`);
        }
      }),
    );

    // The peer still serves: a real record stored and read back, a ping answered.
    // A number no seed uses, so no fuzzed record can hold its key with a higher sequence.
    const record = sealDidRecord({
      ringSalt: RING_SALT,
      number: parseE164('+16505550199'),
      publisher,
      claim: { vserviceId: 'after-the-attack', publishedAtMs: Date.now() },
      sequence: 1,
      expiresAtMs: Date.now() + 12 * 3600 * 1000,
    });
    const stored = ime.v1.RingResponse.decode(await client.request(peer, request({ store: { records: [record] } })));
    oracle(stored.store?.results[0]?.accepted === true, `after the attack the peer refused a real record: ${JSON.stringify(stored.toJSON())}`);
    const fetched = ime.v1.RingResponse.decode(await client.request(peer, request({ fetch: { keys: [record.key] } })));
    oracle(fetched.fetch?.entries[0]?.records.some((r) => bytesEqual(r.signature, record.signature)) === true, 'after the attack the peer did not return the record it stored');
    const pong = ime.v1.RingResponse.decode(await client.request(peer, request({ ping: { configurationSequence: 0 } })));
    oracle(pong.body === 'pong', 'after the attack the peer did not answer a ping');
  } finally {
    client.stop();
    await host.stop();
  }
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
