import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { AdminClient, parseConfigText } from '@ime/runtime';
// @ime/pstn-sim is a dependency of these tests only, as in cm-sim-vap.test.ts.
import { type CallRecord, PstnSwitch, pstnConfigSchema } from '@ime/pstn-sim';
import { TestBackend, type TestVapServer, codeOf, removeTempDirs, startCm, startVapServer, tempDir } from './cm-fixture.js';

// A call manager and the PSTN switch in separate containers (docker/compose.yaml): the switch reaches
// the call manager's callback listener by a name of the compose network (pstn.callbackUrl), and both
// admin APIs listen on every interface of their container (admin.allowRemote).

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('call manager and PSTN switch listening beyond loopback', () => {
  const backend = new TestBackend();
  let vap: TestVapServer;
  let pstn: PstnSwitch;

  const pstnConfig = (admin: Record<string, unknown>) => parseConfigText(JSON.stringify({ dataDir: 'data', admin }), 'json', pstnConfigSchema, { baseDir: tempDir() });

  beforeAll(async () => {
    vap = await startVapServer({ backend });
    pstn = await PstnSwitch.start(pstnConfig({ listen: '0.0.0.0:0', allowRemote: true }));
  });

  afterAll(async () => {
    await pstn?.stop();
    await vap?.stop();
    removeTempDirs();
  });

  it('the switch needs admin.allowRemote for 0.0.0.0 and still wants its token', async () => {
    expect(await codeOf(PstnSwitch.start(pstnConfig({ listen: '0.0.0.0:0' })))).toBe('E_ADMIN_LISTEN');
    const port = new URL(pstn.adminUrl).port;
    expect(await (await AdminClient.fromTokenFile(`http://127.0.0.1:${port}`, pstn.adminTokenFile)).get('/v1/lines')).toEqual({ lines: [] });
    expect(await codeOf(new AdminClient({ url: `http://127.0.0.1:${port}`, token: 'A'.repeat(43) }).get('/v1/lines'))).toBe('E_ADMIN_AUTH');
  });

  it('gives the switch its callbackUrl, and takes the calls posted there', async () => {
    const pstnAdmin = `http://127.0.0.1:${new URL(pstn.adminUrl).port}`;
    const port = await freePort();
    const acme = await startCm({
      vap: { primary: `127.0.0.1:${vap.port}` },
      admin: { listen: '0.0.0.0:0', allowRemote: true },
      pstn: { admin: pstnAdmin, tokenFile: pstn.adminTokenFile, callbackListen: `0.0.0.0:${port}`, callbackUrl: `http://localhost:${port}` },
    });
    try {
      await acme.cm.firstConnection();
      expect(acme.cm.callbackUrl).toBe(`http://localhost:${port}/v1/pstn/events`);
      const switchAdmin = await AdminClient.fromTokenFile(pstnAdmin, pstn.adminTokenFile);
      const call = (await switchAdmin.post<{ call: CallRecord }>('/v1/calls', { from: '+14085551000', to: '+12125550150', durationSec: 30 })).call;
      expect(call.originating.answer).toMatchObject({ vcr: 'sent' });
      expect(backend.vcrs).toEqual([expect.objectContaining({ calling: '+14085551000', called: '+12125550150', direction: 'originating', callId: call.callId })]);
    } finally {
      await acme.cm.stop();
    }
  });

  it('refuses a callback listener beyond loopback without a callbackUrl, and a callbackUrl with a picked port', async () => {
    const common = { vap: { primary: `127.0.0.1:${vap.port}` }, pstn: { admin: pstn.adminUrl, tokenFile: pstn.adminTokenFile } };
    const port = await freePort();
    expect(await codeOf(startCm({ ...common, pstn: { ...common.pstn, callbackListen: `0.0.0.0:${port}` } }))).toBe('E_ADMIN_LISTEN');
    expect(await codeOf(startCm({ ...common, pstn: { ...common.pstn, callbackListen: '0.0.0.0:0', callbackUrl: 'http://cm-acme:9624' } }))).toBe('E_CONFIG_RANGE');
    expect(await codeOf(startCm({ ...common, admin: { listen: '0.0.0.0:0' } }))).toBe('E_ADMIN_LISTEN');
  });
});
