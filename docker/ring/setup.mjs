#!/usr/bin/env node
// The one-shot set-up steps of the compose ring (docker/compose.yaml), everything through the `ime`
// command, idempotent so that every `docker compose up` may run them again:
//
//   setup.mjs ring RING.json   once bootstrap-1 is up: the ring authority's state for bootstrap-2,
//                              one enrollment token per peer (bound to its domain), and each call
//                              manager's VAP password and ticket password (generated, mode 0600)
//   setup.mjs vap RING.json    once the peers are GREEN: on each enterprise's peer, the VAP instance
//                              its call manager registers on, with the credentials made above
//
// Files that exist are kept: a peer enrolls with its token once, and passwords stay what the peers
// and call managers already hold.
import { randomBytes } from 'node:crypto';
import { ScriptError, adminOptions, ime, imeOk, loadRing, main, once, say, writeSecret } from './ime.mjs';

/** 32 base64url characters: inside the ticket password's 10–64 printable characters. */
function newPassword() {
  return randomBytes(24).toString('base64url');
}

async function setupRing(ring) {
  const bootstrap = adminOptions(ring, ring.bootstrap);
  const state = ring.path(ring.bootstrap.stateFile);
  const exported = await once(state, (tmp) => imeOk(['bootstrap', 'export-state', '--out', tmp, ...bootstrap]));
  say(`ring authority state for the other bootstraps: ${exported ? 'exported to' : 'kept'} ${state}`);
  for (const peer of ring.peers) {
    const file = ring.path(peer.enrollmentTokenFile);
    const made = await once(file, (tmp) => imeOk(['bootstrap', 'token', 'create', '--domain', peer.domain, '--note', `compose ${peer.name}`, '--out', tmp, ...bootstrap]));
    say(`enrollment token of ${peer.name} (${peer.domain}): ${made ? 'created' : 'kept'} ${file}`);
  }
  for (const e of ring.enterprises) {
    for (const [what, file] of [['VAP password', e.vap.passwordFile], ['ticket password', e.ticket.passwordFile]]) {
      const made = await once(ring.path(file), async (tmp) => writeSecret(tmp, newPassword()));
      say(`${what} of ${e.domain}: ${made ? 'generated' : 'kept'} ${ring.path(file)}`);
    }
  }
}

function portOf(address) {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ScriptError('E_SCRIPT_RING', `${address} does not end in :PORT`);
  return port;
}

/** The enterprise's VAP instance as ring.json describes it: added when missing, port and mode kept in step. */
async function setupVap(ring, e) {
  const peer = ring.peers.find((p) => p.name === e.peer);
  if (peer === undefined) throw new ScriptError('E_SCRIPT_RING', `${e.domain}: no peer is named ${e.peer}`);
  const admin = adminOptions(ring, peer);
  const { instance, mode } = e.vap;
  const port = portOf(e.vap.address);
  const shown = await ime(['show', 'vapserver', instance, ...admin]);
  if (!shown.ok) {
    if (shown.json?.error?.code !== 'E_VAP_SERVER_NOT_FOUND') throw new ScriptError(shown.json?.error?.code ?? 'E_SCRIPT_IME', `${peer.name}: ${shown.stderr}`);
    await imeOk(['add', 'vapserver', '--name', instance, '--port', String(port), '--authentication-mode', mode, ...admin]);
    say(`${peer.name}: VAP instance ${instance} added on port ${port} (${mode})`);
  } else {
    const settings = shown.json.settings;
    if (settings.port !== port) await imeOk(['set', 'vapserver', instance, 'port', String(port), ...admin]);
    if (settings.authenticationMode !== mode) await imeOk(['set', 'vapserver', instance, 'authenticationmode', mode, ...admin]);
    say(`${peer.name}: VAP instance ${instance} on port ${port} (${mode})`);
  }
  // Setting the same credentials again changes nothing a call manager sees; a changed file is taken.
  await imeOk([
    'add', 'vapusercredentials', '--server', instance, '--username', e.vap.username,
    '--password-file', ring.path(e.vap.passwordFile), '--ticket-password-file', ring.path(e.ticket.passwordFile),
    '--epoch', String(e.ticket.epoch), ...admin,
  ]);
  say(`${peer.name}: credentials of ${instance} set (user ${e.vap.username}, ticket epoch ${e.ticket.epoch})`);
}

main('setup', async () => {
  const [step, file] = process.argv.slice(2);
  if (step !== 'ring' && step !== 'vap') throw new ScriptError('E_SCRIPT_USAGE', 'usage: setup.mjs ring|vap RING.json');
  // Secrets this script writes are for the ring's own user only.
  process.umask(0o077);
  const ring = loadRing(file);
  if (step === 'ring') await setupRing(ring);
  else await Promise.all(ring.enterprises.map((e) => setupVap(ring, e)));
  return 0;
});
