import type { AlertSeverity, Counters } from '@ime/runtime';

/**
 * The call manager's counters and alerts under the guide's names (checklist §3.2, §3.4), plus a few
 * of ours, marked so. Severities follow the guide's: its "Alert" and "Critical" are our critical,
 * its "Error" our error.
 */

export const CM_COUNTERS = {
  RoutesRejected: 'Learned routes rejected because the number or domain is blacklisted, or not whitelisted (guide L8962)',
  VCRUploadRequests: 'VCRs sent to the IME server (guide L8969)',
  CallsSetup: 'Outbound IME calls answered by the remote side: PSTN calls the switch placed to a number with an enabled learned route (guide L8914)',
  CallsAttempted: 'Inbound IME calls, whatever their outcome (guide L8899)',
  CallsReceived: 'Inbound IME calls, counted when they start (guide L8907)',
  CallsAccepted: 'Inbound IME calls answered (guide L8893)',
  VCRsSkipped: 'PSTN calls for which no VCR was uploaded; the reasons are in the status (ours)',
  VCRsRefused: 'VCRs the IME server refused (ours)',
  RoutesInvalid: 'Pushed routes dropped because they were malformed or already expired (ours)',
  ReconnectAttempts: 'Connection attempts to an IME server after the first one (ours)',
} as const;

export type CmCounterName = keyof typeof CM_COUNTERS;

export interface CmGaugeSources {
  /** 0 never connected, 1 registered, 2 trying after a failure or loss. */
  readonly serviceStatus: () => number;
  readonly routesLearned: () => number;
  readonly routesPublished: () => number;
  readonly domainsUnique: () => number;
  readonly queuedVcrs: () => number;
}

export function defineCmCounters(counters: Counters, sources: CmGaugeSources): void {
  counters.gauge('IMEServiceStatus', 'VAP connection: 0 unknown (never connected), 1 healthy (registered), 2 unhealthy (retrying) (guide L8985)', sources.serviceStatus);
  counters.gauge('VAPStatus', 'Same as IMEServiceStatus, under the name of guide L3889', sources.serviceStatus);
  counters.gauge('RoutesLearned', 'Distinct numbers in the learned routes table (guide L8946)', sources.routesLearned);
  counters.gauge('RoutesPublished', 'DIDs the IME server accepted for publication from the last enrollment (guide L8954)', sources.routesPublished);
  counters.gauge('DomainsUnique', 'Distinct domains of the learned routes (guide L8920)', sources.domainsUnique);
  counters.gauge('VCRQueueLength', 'VCRs waiting for the IME server (ours)', sources.queuedVcrs);
  for (const [name, help] of Object.entries(CM_COUNTERS)) counters.define(name, help, 'counter');
}

export const CM_ALERTS = {
  InvalidCredentials: 'critical',
  TCPSetupToIMEFailed: 'critical',
  TLSConnectionToIMEFailed: 'critical',
  IMEOverQuota: 'critical',
  IMEDistributedCacheInactive: 'error',
  IMEServiceStatus: 'critical',
} as const satisfies Record<string, AlertSeverity>;

export type CmAlertName = keyof typeof CM_ALERTS;

/** IMEServiceStatus: at most one per hour (guide L9827). */
export const SERVICE_STATUS_ALERT_THROTTLE_MS = 3_600_000;
