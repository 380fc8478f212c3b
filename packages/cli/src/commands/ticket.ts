import {
  DEFAULT_EPOCH_GRACE_MS,
  TicketIssuer,
  TicketVerifier,
  type TicketClaims,
  inspectTicket,
  ticketRefusalCode,
} from '@ime/ticket';
import { parseDomain, parseE164 } from '@ime/core';
import { UsageError, checkArgument, optionInteger, optionString, optionStrings, optionTime } from '../args.js';
import type { Command } from '../command.js';
import { EXIT_OK, EXIT_REFUSED } from '../output.js';
import { readSecret, secretOptions } from '../secret-input.js';

const DAY_MS = 24 * 3600 * 1000;

function claimsJson(c: TicketClaims): Record<string, unknown> {
  return {
    ticketId: c.ticketId,
    issuerDomain: c.issuerDomain,
    callingDomain: c.callingDomain,
    numbers: c.numbers,
    issued: new Date(c.issuedAtMs).toISOString(),
    expires: new Date(c.expiresAtMs).toISOString(),
  };
}

function claimsLines(c: TicketClaims): string[] {
  return [
    `  ticket id      ${c.ticketId}`,
    `  issued by      ${c.issuerDomain}`,
    `  calling domain ${c.callingDomain}`,
    `  numbers        ${c.numbers.join(', ')}`,
    `  valid          ${new Date(c.issuedAtMs).toISOString()} → ${new Date(c.expiresAtMs).toISOString()}`,
  ];
}

export const ticketIssue: Command = {
  path: ['ticket', 'issue'],
  summary: 'mint a ticket (what a terminating peer hands a validated caller)',
  options: [
    ...secretOptions('password', 'the ticket password shared with the edge'),
    { name: 'epoch', type: 'string', required: true, valueName: '1-255', description: 'ticket epoch' },
    { name: 'issuer-domain', type: 'string', required: true, valueName: 'DOMAIN', description: 'terminating enterprise issuing the ticket' },
    { name: 'calling-domain', type: 'string', required: true, valueName: 'DOMAIN', description: 'enterprise allowed to call' },
    { name: 'number', type: 'strings', required: true, valueName: '+E164', description: 'permitted called number (repeatable)' },
    { name: 'valid-days', type: 'integer', valueName: 'N', description: 'validity in days (default 365)' },
    { name: 'valid-seconds', type: 'integer', valueName: 'N', description: 'validity in seconds, for tests' },
    { name: 'at', type: 'string', valueName: 'ISO8601', description: 'issue as if it were this time (default now)' },
  ],
  examples: [
    'ime ticket issue --password-file pw.txt --epoch 1 --issuer-domain globex.example --calling-domain acme.example --number +14085550100',
  ],
  run({ options, out }) {
    const password = checkArgument(() => readSecret(options, 'password', true));
    const days = optionInteger(options, 'valid-days');
    const seconds = optionInteger(options, 'valid-seconds');
    if (days !== undefined && seconds !== undefined) {
      throw new UsageError('E_CLI_CONFLICTING_OPTIONS', 'give either --valid-days or --valid-seconds, not both');
    }
    const validForMs = seconds !== undefined ? seconds * 1000 : days !== undefined ? days * DAY_MS : undefined;
    const issuer = checkArgument(() => new TicketIssuer(password, optionString(options, 'epoch')));
    const { ticket, claims } = checkArgument(() =>
      issuer.issue({
        issuerDomain: optionString(options, 'issuer-domain') as string,
        callingDomain: optionString(options, 'calling-domain') as string,
        numbers: optionStrings(options, 'number'),
        nowMs: optionTime(options, 'at') ?? Date.now(),
        ...(validForMs === undefined ? {} : { validForMs }),
      }),
    );
    // Human output is the ticket alone, so `T=$(ime ticket issue …)` works; --json has the details.
    out.result({ ticket, expires: new Date(claims.expiresAtMs).toISOString(), epoch: issuer.epoch, ...claimsJson(claims) }, [ticket]);
    return EXIT_OK;
  },
};

export const ticketVerify: Command = {
  path: ['ticket', 'verify'],
  summary: "check a ticket as the terminating enterprise's edge does",
  options: [
    { name: 'ticket', type: 'string', required: true, valueName: 'TICKET', description: 'the ticket (base64url)' },
    ...secretOptions('password', 'the current ticket password'),
    { name: 'epoch', type: 'string', required: true, valueName: '1-255', description: 'the current ticket epoch' },
    { name: 'calling-domain', type: 'string', required: true, valueName: 'DOMAIN', description: "the caller's authenticated domain" },
    { name: 'called', type: 'string', required: true, valueName: '+E164', description: 'the called number' },
    ...secretOptions('previous-password', 'the password in force before the last rotation'),
    { name: 'previous-epoch', type: 'string', valueName: '1-255', description: 'the epoch in force before the last rotation' },
    { name: 'previous-retired', type: 'string', valueName: 'ISO8601', description: 'when the previous epoch was retired' },
    { name: 'grace-days', type: 'integer', valueName: 'N', description: 'how long the previous epoch stays valid (default 7)' },
    { name: 'at', type: 'string', valueName: 'ISO8601', description: 'verify as if it were this time (default now)' },
  ],
  examples: [
    'ime ticket verify --ticket "$T" --password-file pw.txt --epoch 1 --calling-domain acme.example --called +14085550100',
  ],
  run({ options, out, io }) {
    const password = checkArgument(() => readSecret(options, 'password', true));
    const callingDomain = checkArgument(() => parseDomain(optionString(options, 'calling-domain')));
    const called = checkArgument(() => parseE164(optionString(options, 'called')));
    const nowMs = optionTime(options, 'at') ?? Date.now();
    const previousPassword = checkArgument(() => readSecret(options, 'previous-password', false));
    const previousEpoch = optionString(options, 'previous-epoch');
    const previousRetired = optionTime(options, 'previous-retired');
    const previousGiven = [previousPassword, previousEpoch, previousRetired].filter((v) => v !== undefined).length;
    if (previousGiven !== 0 && previousGiven !== 3) {
      throw new UsageError(
        'E_CLI_MISSING_OPTION',
        'a previous epoch needs all of --previous-password (or -file), --previous-epoch and --previous-retired',
      );
    }
    const graceDays = optionInteger(options, 'grace-days');
    if (graceDays !== undefined && graceDays < 0) throw new UsageError('E_CLI_BAD_VALUE', '--grace-days must not be negative');
    const verifier = checkArgument(
      () =>
        new TicketVerifier({
          current: { password, epoch: optionString(options, 'epoch') },
          ...(previousGiven === 3
            ? { previous: { password: previousPassword, epoch: previousEpoch, retiredAtMs: previousRetired as number } }
            : {}),
          graceMs: graceDays === undefined ? DEFAULT_EPOCH_GRACE_MS : graceDays * 24 * 3600 * 1000,
        }),
    );
    const verdict = verifier.verify(optionString(options, 'ticket'), { callingDomain, calledNumber: called, nowMs });
    if (verdict.valid) {
      out.result({ valid: true, epoch: verdict.epoch, ...claimsJson(verdict.claims) }, [
        `valid: ${callingDomain} may call ${called} (epoch ${verdict.epoch})`,
        ...claimsLines(verdict.claims),
      ]);
      return EXIT_OK;
    }
    const code = ticketRefusalCode(verdict.reason);
    out.result({ valid: false, reason: verdict.reason, code, detail: verdict.detail }, [
      `refused: ${verdict.reason}: ${verdict.detail}`,
    ]);
    io.stderr.write(`ime: ${code}: ticket refused (${verdict.reason})\n`);
    return EXIT_REFUSED;
  },
};

export const ticketInspect: Command = {
  path: ['ticket', 'inspect'],
  summary: 'show what a ticket claims, WITHOUT verifying it (for diagnosing refusals)',
  options: [{ name: 'ticket', type: 'string', required: true, valueName: 'TICKET', description: 'the ticket (base64url)' }],
  run({ options, out }) {
    const { version, epoch, claims } = checkArgument(() => inspectTicket(optionString(options, 'ticket')));
    out.result({ verified: false, version, epoch, ...claimsJson(claims) }, [
      `ticket (NOT verified: anyone can write these claims; use \`ime ticket verify\`)`,
      `  version        ${version}`,
      `  epoch          ${epoch}`,
      ...claimsLines(claims),
    ]);
    return EXIT_OK;
  },
};
