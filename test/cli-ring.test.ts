import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RingHarness } from '@ime/harness';
import { type ImeRun, lastJson, runIme } from './cli-helpers.js';

// The `ime` administration commands of INTERFACES.md, run as a separate process against a live ring.

function ime(...argv: string[]): Promise<ImeRun> {
  return runIme(argv);
}

describe('ime administration of a running ring', () => {
  let ring: RingHarness;
  let peer: string[];
  let bootstrap: string[];

  beforeAll(async () => {
    ring = await RingHarness.start({ peers: 3, mode: 'in-process' });
    await ring.converge();
    const p = ring.peers[0]!.ready;
    const b = ring.bootstraps[0]!.ready;
    peer = ['--admin', p.admin, '--token-file', p.tokenFile];
    bootstrap = ['--admin', b.admin, '--token-file', b.tokenFile];
  }, 120_000);

  afterAll(async () => {
    await ring?.stop();
  }, 60_000);

  it('shows the DHT summary with the fields of INTERFACES.md, as text and JSON', async () => {
    const text = await ime('show', 'dht', 'summary', ...peer);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^Peer ID = 12D3KooW/);
    expect(text.stdout).toMatch(/DHT Health\.+ = GREEN/);
    const json = lastJson((await ime('show', 'dht', 'summary', ...peer, '--json')).stdout);
    for (const k of ['peerId', 'health', 'bootstrap', 'lastContactSec', 'sequence', 'configsReceived', 'hopsFromBootstrap', 'peerCount']) {
      expect(json).toHaveProperty(k);
    }
    expect(json).toMatchObject({ health: 'GREEN', peerCount: 3, bootstrap: ring.bootstraps[0]!.peerId });
  });

  it('shows peer id, bootstrap, addressing, counters and alerts', async () => {
    expect((await ime('show', 'peerid', ...peer)).stdout.trim()).toBe(ring.peers[0]!.peerId);
    expect((await ime('show', 'bootstrap', 'ip', ...peer)).stdout).toContain(ring.bootstraps[0]!.peerId);
    const addressing = lastJson((await ime('show', 'addressing', ...peer, '--json')).stdout);
    expect(addressing).toMatchObject({ validatorPort: 8470 });
    expect(typeof addressing.dhtPort).toBe('number');
    const counters = lastJson((await ime('show', 'counters', ...peer, '--json')).stdout).counters as Record<string, number>;
    for (const name of ['IMEDistributedCacheHealth', 'IMEDistributedCacheNodeCount', 'IMEDistributedCacheStores', 'IMEDistributedCacheReads', 'IMEDistributedCacheStoredData', 'IMEDistributedCacheQuota', 'IMEDistributedCacheQuotaUsed', 'DaysUntilCertExpiry']) {
      expect(counters).toHaveProperty(name);
    }
    expect(counters.IMEDistributedCacheHealth).toBe(2);
    expect(counters.DaysUntilCertExpiry).toBeGreaterThan(360);
    expect((await ime('show', 'alerts', ...peer, '--json')).status).toBe(0);
  });

  it('publishes, fetches and withdraws a DID', async () => {
    const published = lastJson((await ime('utils', 'publish', 'did', '--vservice', 'cli-vs', '--number', '+4412345678', ...peer, '--json')).stdout);
    expect(published).toMatchObject({ published: 1, failed: [] });
    const other = ring.peers[2]!.ready;
    const fetched = lastJson((await ime('utils', 'fetch', 'did', '+4412345678', '--admin', other.admin, '--token-file', other.tokenFile, '--json')).stdout);
    expect(fetched).toMatchObject({ found: true, claims: [{ peerId: ring.peers[0]!.peerId, vserviceId: 'cli-vs' }] });
    expect((fetched.replicas as string[]).length).toBe(3);
    // Each replica's own store holds the copy; a peer outside the replicas holds none.
    for (const member of ring.peers) {
      const local = await (await member.admin()).get<{ held: boolean; records: number }>(`/v1/store/dids/${encodeURIComponent('+4412345678')}`);
      expect(local).toEqual((fetched.replicas as string[]).includes(member.peerId) ? { held: true, records: 1 } : { held: false, records: 0 });
    }
    await expect((await ring.peers[0]!.admin()).get('/v1/store/dids/4412345678')).rejects.toMatchObject({ code: 'E_E164_MISSING_PLUS' });
    expect(lastJson((await ime('utils', 'withdraw', 'did', '--number', '+4412345678', ...peer, '--json')).stdout)).toMatchObject({ published: 1 });
    expect(lastJson((await ime('utils', 'fetch', 'did', '+4412345678', ...peer, '--json')).stdout)).toMatchObject({ found: false });
  });

  it('sets the storage quota only on a bootstrap', async () => {
    const refused = (await ime('set', 'dht', 'global', 'storagequota', '5000', ...peer));
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^ime: E_BOOTSTRAP_ONLY: /);
    const ok = (await ime('set', 'dht', 'global', 'storagequota', '5000', ...bootstrap, '--json'));
    expect(ok.status).toBe(0);
    expect(lastJson((await ime('bootstrap', 'summary', ...bootstrap, '--json')).stdout)).toMatchObject({ storageQuota: 5000 });
  });

  it('creates enrollment tokens into a file and refuses bad input with codes', async () => {
    const out = join(ring.dir, 'token.txt');
    expect((await ime('bootstrap', 'token', 'create', '--domain', 'newco.example', '--out', out, ...bootstrap)).status).toBe(0);
    expect(existsSync(out) && readFileSync(out, 'utf8').trim().length).toBeGreaterThan(10);
    expect((await ime('utils', 'fetch', 'did', '4412345678', ...peer)).stderr).toMatch(/^ime: E_E164_MISSING_PLUS: /);
    expect((await ime('utils', 'fetch', 'did', ...peer)).stderr).toMatch(/^ime: E_CLI_MISSING_ARGUMENT: /);
    const noToken = (await ime('show', 'dht', 'summary', '--admin', ring.peers[0]!.ready.admin, '--token-file', join(ring.dir, 'absent.token')));
    expect(noToken.stderr).toMatch(/^ime: E_ADMIN_TOKEN_FILE: /);
    const down = (await ime('show', 'dht', 'summary', '--admin', 'http://127.0.0.1:1', '--token-file', ring.peers[0]!.ready.tokenFile));
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/^ime: E_ADMIN_UNREACHABLE: /);
  });
});
