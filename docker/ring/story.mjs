#!/usr/bin/env node
// The IME story on the compose ring: the demo-story service of docker/compose.yaml plays it, and
// test/compose-topology.test.ts plays the very same script against the ring's loopback twin.
//
//   story.mjs RING.json [--timeout SECONDS]
//
// 1. waits until every call manager is registered over VAP and has published its numbers;
// 2. places each enterprise's PSTN calls (`ime pstn call`): its caller calls the numbers of the
//    enterprise named as callee, both call managers upload a VCR, the caller's peer validates them;
// 3. waits until the caller's call manager has learned a route to every called number
//    (`ime cm show routes`): the callee's domain, its SIP URI and a ticket signed by the callee;
// 4. checks every ticket at the callee's edge (`ime ticket verify` with the callee's ticket
//    password): accepted for the caller's domain and the number, refused for another domain
//    (domain-mismatch) and for another number (number-not-permitted).
//
// Ends with one JSON line: {"ok":…,"pstnCalls":…,"routesLearned":…,"ticketChecks":{…},"routes":[…]};
// exit status 0 only when every check came out as expected. Playing it again on the same ring is
// fine: calls to numbers with a learned route go over IME, and the routes are still there.
import { ScriptError, adminOptions, ime, imeOk, loadRing, main, say } from './ime.mjs';

const POLL_MS = 1000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(what, deadline, check) {
  for (;;) {
    const done = await check();
    if (done) return done;
    if (Date.now() > deadline) throw new ScriptError('E_STORY_TIMEOUT', `gave up waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

function timeoutOption(args) {
  const i = args.indexOf('--timeout');
  if (i === -1) return 180;
  const seconds = Number(args[i + 1]);
  if (!Number.isInteger(seconds) || seconds < 1) throw new ScriptError('E_SCRIPT_USAGE', '--timeout takes a whole number of seconds');
  return seconds;
}

/** The edge check of one ticket: the verdict `ime ticket verify` gives, and whether it was expected. */
async function edgeCheck(ring, callee, ticket, callingDomain, called, expected) {
  const r = await ime([
    'ticket', 'verify', '--ticket', ticket, '--password-file', ring.path(callee.ticket.passwordFile),
    '--epoch', String(callee.ticket.epoch), '--calling-domain', callingDomain, '--called', called,
  ]);
  const verdict = r.json ?? {};
  const got = verdict.valid === true ? 'accepted' : `refused (${verdict.reason ?? r.stderr})`;
  const want = expected === 'accepted' ? 'accepted' : `refused (${expected})`;
  const ok = got === want && r.ok === (expected === 'accepted');
  say(`  ${ok ? 'ok  ' : 'FAIL'} ${callingDomain} → ${called}: ${got}${ok ? '' : `, expected ${want}`}`);
  return { ok, accepted: verdict.valid === true };
}

main('story', async () => {
  const args = process.argv.slice(2);
  const ring = loadRing(args[0]);
  const deadline = Date.now() + timeoutOption(args) * 1000;
  const pstn = adminOptions(ring, ring.pstn);
  const byDomain = new Map(ring.enterprises.map((e) => [e.domain, e]));

  say('1. call managers: registered over VAP, numbers published');
  for (const e of ring.enterprises) {
    const status = await until(`${e.domain}'s call manager to register and publish`, deadline, async () => {
      const r = await ime(['cm', 'show', 'status', ...adminOptions(ring, e.cm)]);
      const s = r.json;
      return r.ok && s.state === 'registered' && s.vservice.published && s.enrollment.accepted > 0 ? s : undefined;
    });
    say(`  ${e.domain}: registered on ${status.server.address}, ${status.enrollment.accepted} numbers published`);
  }

  say('2. PSTN calls');
  let pstnCalls = 0;
  for (const e of ring.enterprises) {
    for (const number of e.story.calls) {
      const { call } = await imeOk(['pstn', 'call', '--from', e.story.caller, '--to', number, '--duration', '60', ...pstn]);
      pstnCalls++;
      // Nothing could be learned from a call nobody (or somebody else) answered: say so now.
      if (call.originating.domain !== e.domain || call.terminating.domain !== e.story.callee) {
        throw new ScriptError('E_STORY_NUMBERS', `${call.from} → ${call.to} connects ${call.originating.domain ?? 'nobody'} to ${call.terminating.domain ?? 'nobody'}, not ${e.domain} to ${e.story.callee}: fix the story's numbers in ring.json`);
      }
      say(`  ${call.from} (${e.domain}) → ${call.to} (${call.terminating.domain ?? 'nobody'}): ${call.route === 'ime' ? 'over IME (route already learned)' : 'over the PSTN'}`);
    }
  }

  say('3. routes learned by validation');
  const learned = [];
  for (const e of ring.enterprises) {
    const routes = await until(`${e.domain} to learn routes to ${e.story.calls.join(', ')}`, deadline, async () => {
      const r = await ime(['cm', 'show', 'routes', ...adminOptions(ring, e.cm)]);
      if (!r.ok) return undefined;
      const found = e.story.calls.map((n) => r.json.routes.find((route) => route.number === n));
      return found.every((route) => route !== undefined) ? found : undefined;
    });
    for (const route of routes) {
      say(`  ${e.domain}: ${route.number} → ${route.domain} ${route.sipUri} (until ${route.expiresOn})`);
      learned.push({ caller: e.domain, number: route.number, domain: route.domain, sipUri: route.sipUri, ticket: route.ticket });
    }
  }

  say("4. edge checks at the callee (`ime ticket verify`)");
  let allOk = true;
  const checks = { accepted: 0, refused: 0 };
  for (const route of learned) {
    const caller = byDomain.get(route.caller);
    const callee = byDomain.get(caller.story.callee);
    if (callee === undefined) throw new ScriptError('E_SCRIPT_RING', `${caller.domain}: its callee ${caller.story.callee} is not an enterprise of the ring`);
    if (route.domain !== callee.domain) {
      say(`  FAIL ${route.number} was learned from ${route.domain}, not ${callee.domain}`);
      allOk = false;
      continue;
    }
    const otherDomain = ring.enterprises.find((x) => x.domain !== caller.domain && x.domain !== callee.domain)?.domain ?? 'elsewhere.example';
    const otherNumber = caller.story.calls.find((n) => n !== route.number) ?? callee.story.caller;
    for (const [domain, number, expected] of [
      [caller.domain, route.number, 'accepted'],
      [otherDomain, route.number, 'domain-mismatch'],
      [caller.domain, otherNumber, 'number-not-permitted'],
    ]) {
      const { ok, accepted } = await edgeCheck(ring, callee, route.ticket, domain, number, expected);
      allOk &&= ok;
      checks[accepted ? 'accepted' : 'refused']++;
    }
  }

  const summary = {
    ok: allOk,
    pstnCalls,
    routesLearned: learned.length,
    ticketChecks: checks,
    routes: learned.map(({ caller, number, domain, sipUri }) => ({ caller, number, domain, sipUri })),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return allOk ? 0 : 1;
});
