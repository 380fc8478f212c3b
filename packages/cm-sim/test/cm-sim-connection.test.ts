import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createVapCertificate } from '@ime/vap';
import type { CmStatus } from '../src/cm-simulator.js';
import { type StartedCm, TestBackend, codeOf, removeTempDirs, startCm, startVapServer, tempDir, waitFor } from './cm-fixture.js';

/** Registration failures, losses and reconnection, and the encrypted mode, against a real VAP server. */

const status = (c: StartedCm): Promise<CmStatus> => c.admin.get<CmStatus>('/v1/status');
const counters = async (c: StartedCm): Promise<Record<string, number>> => (await c.admin.get<{ counters: Record<string, number> }>('/v1/counters')).counters;
const alertNames = (c: StartedCm): string[] => c.cm.alerts.list().map((a) => a.name);

afterAll(() => removeTempDirs());

describe('registration failures and reconnection', () => {
  it('raises InvalidCredentials on a wrong password and retries every interval, forever', async () => {
    const backend = new TestBackend();
    const vap = await startVapServer({ backend });
    const c = await startCm({ vap: { primary: `127.0.0.1:${vap.port}` } }, 'not the password');
    try {
      await c.cm.firstConnection();
      const s = await status(c);
      expect(s).toMatchObject({ state: 'retrying', serviceStatus: 2, lastError: { code: 'E_VAP_AUTH' } });
      expect(c.cm.alerts.list().find((a) => a.name === 'InvalidCredentials')).toMatchObject({
        severity: 'critical',
        details: { username: 'vapuser', server: `127.0.0.1:${vap.port}`, code: 'E_VAP_AUTH' },
      });
      expect(c.cm.alerts.isActive('IMEServiceStatus')).toBe(true);
      const t0 = Date.now();
      // An attempt counts when it starts; its alert comes when it has failed.
      await waitFor(() => alertNames(c).filter((n) => n === 'InvalidCredentials').length >= 3, 4000, 'two more refused attempts');
      // One interval (1 s) between attempts: two retries take about two seconds, not less.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
      expect((await counters(c)).ReconnectAttempts).toBeGreaterThanOrEqual(2);
      expect(c.cm.status().connectionAttempts).toBeGreaterThanOrEqual(3);
      // At most one IMEServiceStatus an hour, however many attempts fail.
      expect(alertNames(c).filter((n) => n === 'IMEServiceStatus')).toHaveLength(1);
      expect(backend.sessions).toHaveLength(0);
      expect(await counters(c)).toMatchObject({ IMEServiceStatus: 2, VAPStatus: 2 });
      for (const line of c.logs) expect(line).not.toContain('not the password');
    } finally {
      await c.cm.stop();
      await vap.stop();
    }
  });

  it('raises TCPSetupToIMEFailed while the server is down, queues VCRs, and comes back when it does', async () => {
    const backend = new TestBackend();
    let health: 0 | 1 | 2 = 2;
    const vap = await startVapServer({ backend, ringHealth: () => health });
    const port = vap.port;
    const c = await startCm({ vap: { primary: `127.0.0.1:${port}` } });
    let restarted: Awaited<ReturnType<typeof startVapServer>> | undefined;
    try {
      await c.cm.firstConnection();
      expect(c.cm.state).toBe('registered');
      await waitFor(() => backend.enrollments.length === 1, 3000, 'the first enrollment');
      await vap.stop();
      await waitFor(() => c.cm.alerts.isActive('TCPSetupToIMEFailed'), 4000, 'TCPSetupToIMEFailed');
      const down = await status(c);
      expect(down).toMatchObject({ state: 'retrying', serviceStatus: 2, lastError: { code: 'E_VAP_CONNECT' } });
      expect(down.nextAttemptAt).not.toBeNull();
      expect(c.cm.alerts.isActive('IMEServiceStatus')).toBe(true);

      // A call while the server is down: the VCR waits in the queue.
      const answer = await c.cm.handlePstnEvent({ callId: 'down-1', direction: 'originating', calling: '+14085551000', called: '+12125550100', startMs: 1000, stopMs: 61_000, answered: true });
      expect(answer).toMatchObject({ vcr: 'queued' });
      expect((await status(c)).vcrQueue.size).toBe(1);

      // Back on the same port, with its ring inactive.
      health = 0;
      restarted = await startVapServer({ backend, port, ringHealth: () => health });
      await waitFor(() => c.cm.state === 'registered', 4000, 're-registration');
      await waitFor(() => backend.vcrs.some((v) => v.callId === 'down-1'), 3000, 'the queued VCR');
      expect(backend.vservices).toHaveLength(2);
      expect(backend.enrollments).toHaveLength(2);
      expect(c.cm.alerts.isActive('TCPSetupToIMEFailed')).toBe(false);
      expect(c.cm.alerts.isActive('IMEServiceStatus')).toBe(false);
      expect(c.cm.alerts.isActive('IMEDistributedCacheInactive')).toBe(true);
      restarted.server.registeredSessions()[0]?.notice({ kind: 'ring-active', detail: 'the ring is GREEN' });
      await waitFor(() => !c.cm.alerts.isActive('IMEDistributedCacheInactive'), 3000, 'ring active');
      const s = await status(c);
      expect(s).toMatchObject({ state: 'registered', serviceStatus: 1, vcrQueue: { size: 0 } });
      expect(s.reconnectAttempts).toBeGreaterThanOrEqual(1);
      expect((await counters(c)).VCRUploadRequests).toBe(1);
    } finally {
      await c.cm.stop();
      await restarted?.stop();
    }
  });

  it('fails over to the secondary IME server', async () => {
    const backend = new TestBackend();
    const secondary = await startVapServer({ backend });
    // Nothing listens on the primary: take a port and free it.
    const gone = await startVapServer({ backend: new TestBackend() });
    const deadPort = gone.port;
    await gone.stop();
    const c = await startCm({ vap: { primary: `127.0.0.1:${deadPort}`, secondary: `127.0.0.1:${secondary.port}` } });
    try {
      await c.cm.firstConnection();
      const s = await status(c);
      expect(s).toMatchObject({ state: 'registered', server: { label: 'secondary', address: `127.0.0.1:${secondary.port}` } });
      expect(alertNames(c)).toContain('TCPSetupToIMEFailed');
      // Registered in the end, so the failure is no longer active.
      expect(c.cm.alerts.isActive('TCPSetupToIMEFailed')).toBe(false);
      // Publication follows registration.
      await waitFor(() => backend.vservices.length === 1, 3000, 'the Vservice');
    } finally {
      await c.cm.stop();
      await secondary.stop();
    }
  });

  it('refuses a manual VCR while not registered', async () => {
    const gone = await startVapServer({ backend: new TestBackend() });
    const port = gone.port;
    await gone.stop();
    const c = await startCm({ vap: { primary: `127.0.0.1:${port}` } });
    try {
      await c.cm.firstConnection();
      expect(await codeOf(c.admin.post('/v1/vcrs', { calling: '+14085551000', called: '+12125550100', start: '2026-11-24T10:00:00Z', stop: '2026-11-24T10:01:00Z' }))).toBe(
        'E_CM_NOT_REGISTERED',
      );
    } finally {
      await c.cm.stop();
    }
  });
});

describe('encrypted mode (digest over mutual TLS)', () => {
  it('registers with certificates each side trusts, and raises TLSConnectionToIMEFailed when the peer does not trust it', async () => {
    const serverCert = createVapCertificate({ commonName: 'ime-peer.test' });
    const dir = tempDir();
    const peerCertificateFile = join(dir, 'ime-peer.crt');
    writeFileSync(peerCertificateFile, serverCert.certPem);
    // The trusted call manager's own pair, made beforehand and imported into the peer.
    const client = createVapCertificate({ commonName: 'cucm-acme' });
    writeFileSync(join(dir, 'cm.crt'), client.certPem);
    writeFileSync(join(dir, 'cm.key'), client.keyPem, { mode: 0o600 });
    const backend = new TestBackend();
    const vap = await startVapServer({
      backend,
      mode: 'encrypted',
      tls: () => ({ certPem: serverCert.certPem, keyPem: serverCert.keyPem, trustedPems: [client.certPem] }),
    });
    const tls = { peerCertificateFile: 'ime-peer.crt' };
    const trusted = await startCm({ vap: { primary: `127.0.0.1:${vap.port}`, mode: 'encrypted', tls: { ...tls, certificateFile: 'cm.crt', keyFile: 'cm.key' } } }, undefined, dir);
    // Another call manager whose certificate is made at start and never imported.
    const otherDir = tempDir();
    writeFileSync(join(otherDir, 'ime-peer.crt'), serverCert.certPem);
    const untrusted = await startCm({ name: 'cucm-other', vap: { primary: `127.0.0.1:${vap.port}`, mode: 'encrypted', tls } }, undefined, otherDir);
    try {
      await Promise.all([trusted.cm.firstConnection(), untrusted.cm.firstConnection()]);
      expect(await status(trusted)).toMatchObject({ state: 'registered', mode: 'encrypted', serviceStatus: 1 });
      await waitFor(() => backend.vservices.length > 0, 3000, 'the Vservice');
      expect(backend.vservices.map((v) => v.profileName)).toEqual(['cucm-acme']);

      const u = await status(untrusted);
      expect(u).toMatchObject({ state: 'retrying', lastError: { code: 'E_VAP_TLS' } });
      expect(untrusted.cm.alerts.isActive('TLSConnectionToIMEFailed')).toBe(true);
      expect(u.clientCertificateFile).toBe(join(otherDir, 'data', 'vap-client.crt'));
      expect(readFileSync(join(otherDir, 'data', 'vap-client.crt'), 'utf8')).toContain('BEGIN CERTIFICATE');
      expect(existsSync(join(otherDir, 'data', 'vap-client.key'))).toBe(true);
      // It keeps trying at its interval.
      const n = untrusted.cm.status().connectionAttempts;
      await waitFor(() => untrusted.cm.status().connectionAttempts > n, 3000, 'another attempt');
    } finally {
      await Promise.all([trusted.cm.stop(), untrusted.cm.stop()]);
      await vap.stop();
    }
  });
});
