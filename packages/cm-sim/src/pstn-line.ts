import { AdminClient, readAdminTokenFile } from '@ime/runtime';

/**
 * The call manager's line on the simulated PSTN switch: attached at start with the numbers it
 * really owns and where the switch reports calls (with a token only the switch gets), detached at
 * stop so the switch stops ringing a call manager that is gone.
 */

export interface PstnLineOptions {
  readonly admin: string;
  readonly tokenFile: string;
  readonly domain: string;
  readonly patterns: readonly string[];
  readonly exclusions: readonly string[];
  readonly callbackUrl: string;
  readonly callbackToken: string;
}

export interface PstnAttachment {
  readonly shadowed: readonly string[];
  detach(): Promise<void>;
}

export async function attachPstnLine(options: PstnLineOptions): Promise<PstnAttachment> {
  const token = await readAdminTokenFile(options.tokenFile);
  const client = new AdminClient({ url: options.admin, token, timeoutMs: 10_000 });
  const answer = await client.post<{ shadowed?: unknown }>('/v1/lines', {
    domain: options.domain,
    patterns: options.patterns,
    exclusions: options.exclusions,
    callbackUrl: options.callbackUrl,
    callbackToken: options.callbackToken,
  });
  const shadowed = Array.isArray(answer?.shadowed) ? answer.shadowed.filter((s): s is string => typeof s === 'string') : [];
  return {
    shadowed,
    async detach(): Promise<void> {
      // Short: a switch that is gone must not hold up the call manager's shutdown.
      const quick = new AdminClient({ url: options.admin, token, timeoutMs: 2000 });
      await quick.delete(`/v1/lines/${encodeURIComponent(options.domain)}`);
    },
  };
}
