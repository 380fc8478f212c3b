import type { AlertSeverity } from './telemetry.js';

/**
 * Every alert a role raises, with the guide's name, severity and threshold (checklist §3.3–§3.4).
 * The guide's severities map to ours as: Alert and Critical → critical, Error → error, Warning →
 * warning, Notice → notice. docs/OPERATIONS.md's alerts table is generated from this list
 * (scripts/ops-reference.mjs), which refuses to run when a role's code raises an alert missing
 * here or with another severity, so the table and the code cannot drift apart.
 */

export type OperationsRole = 'bootstrap' | 'peer' | 'cm' | 'pstn';

export interface AlertSpec {
  readonly name: string;
  readonly role: OperationsRole;
  readonly severity: AlertSeverity;
  /** When it is raised, and how often it repeats while the condition holds. */
  readonly threshold: string;
  /** Where the guide describes it (`L9021`), or `ours` for an alert the guide does not have. */
  readonly guide: string;
  readonly meaning: string;
}

export const ALERT_CATALOGUE: readonly AlertSpec[] = [
  {
    name: 'BannedFromNetwork',
    role: 'peer',
    severity: 'critical',
    threshold: 'the signed ring configuration bans this peer, or a bootstrap refuses its refresh as banned; cleared when the ban is lifted',
    guide: 'L9021',
    meaning: 'The ring operators banned this peer: other peers disconnect it and it cannot store, fetch or validate.',
  },
  {
    name: 'IMEDistributedCacheCertificateExpiring',
    role: 'peer',
    severity: 'warning',
    threshold: 'fewer than 14 days until the ring certificate expires; at most once a day',
    guide: 'L9075',
    meaning: 'The ring certificate is near expiry (the peer renews it from 30 days before; this says renewal has not happened).',
  },
  {
    name: 'IMEDistributedCacheFailure',
    role: 'peer',
    severity: 'critical',
    threshold: 'health turns RED (0); cleared when it is YELLOW or GREEN again',
    guide: 'L9127',
    meaning: 'The peer cannot store or read: no certificate, not admitted, or cut off from its replicas.',
  },
  {
    name: 'InvalidCertificate',
    role: 'peer',
    severity: 'critical',
    threshold: 'the ring certificate has expired; at most once a day',
    guide: 'L9237',
    meaning: 'The ring runs without a valid certificate: other peers refuse this one.',
  },
  {
    name: 'InvalidCredentials',
    role: 'peer',
    severity: 'error',
    threshold: 'each VAP registration refused for a wrong username or password (one instance per VAP instance, user and client address)',
    guide: 'L9284',
    meaning: "A call manager's VAP credentials do not match the instance's (the alert names the user, never a password).",
  },
  {
    name: 'MessageOfTheDay',
    role: 'peer',
    severity: 'notice',
    threshold: 'the ring configuration carries a new message of the day (`ime bootstrap motd`)',
    guide: 'L9341',
    meaning: 'The ring operators have a message for every peer; the details hold it.',
  },
  {
    name: 'SWUpdateRequired',
    role: 'peer',
    severity: 'warning',
    threshold: 'this peer runs a version below the ring minimum (`ime bootstrap min-version`); at most once an hour until upgraded',
    guide: 'L9393',
    meaning: 'The ring requires newer software than this peer runs.',
  },
  {
    name: 'TicketPasswordChanged',
    role: 'peer',
    severity: 'notice',
    threshold: "a VAP instance's ticket password or epoch changes (`ime add vapusercredentials`)",
    guide: 'L9443',
    meaning: 'Tickets are now signed with a new secret: confirm the change was authorised and update the edge.',
  },
  {
    name: 'ValidationsPendingExceeded',
    role: 'peer',
    severity: 'critical',
    threshold: 'ValidationsPending above validator.pendingHighWatermark (default 100), at once then at most once an hour; cleared at or below pendingLowWatermark (80)',
    guide: 'L9497',
    meaning: 'The validation backlog is growing faster than validations run.',
  },
  {
    name: 'PeerBootstrapUnreachable',
    role: 'bootstrap',
    severity: 'warning',
    threshold: 'three state exchanges in a row with a peer bootstrap failed; at most once an hour per peer bootstrap',
    guide: 'ours',
    meaning: 'This bootstrap cannot reach another bootstrap of the ring, so enrollments made at one are not known at the other.',
  },
  {
    name: 'IMEDistributedCacheInactive',
    role: 'cm',
    severity: 'error',
    threshold: "at registration or by a notice from the peer, whenever the peer's ring is RED; cleared when it is usable again",
    guide: 'L9550',
    meaning: 'The call manager is connected, but its IME server cannot use the ring (no certificate, not admitted).',
  },
  {
    name: 'IMEOverQuota',
    role: 'cm',
    severity: 'critical',
    threshold: "the peer refuses the call manager's DIDs over the ring's storage quota",
    guide: 'L9604',
    meaning: 'The enrolled patterns name more DIDs than the service may publish; split them across services.',
  },
  {
    name: 'IMEServiceStatus',
    role: 'cm',
    severity: 'critical',
    threshold: 'the VAP connection becomes unhealthy (IMEServiceStatus 2); at most once an hour; cleared when registered again',
    guide: 'L9827',
    meaning: 'The call manager lost its IME server and is retrying.',
  },
  {
    name: 'InvalidCredentials',
    role: 'cm',
    severity: 'critical',
    threshold: 'each registration the IME server refuses for wrong credentials',
    guide: 'L9880',
    meaning: "The call manager's VAP username or password does not match the IME server's.",
  },
  {
    name: 'TCPSetupToIMEFailed',
    role: 'cm',
    severity: 'critical',
    threshold: 'each failed TCP connection attempt to the IME server',
    guide: 'L9935',
    meaning: 'Wrong VAP address or port, or no network path to the IME server.',
  },
  {
    name: 'TLSConnectionToIMEFailed',
    role: 'cm',
    severity: 'critical',
    threshold: 'each failed TLS handshake with the IME server (encrypted mode)',
    guide: 'L9989',
    meaning: "The IME server's VAP certificate expired or is not trusted by the call manager.",
  },
  {
    name: 'PstnNotificationFailed',
    role: 'pstn',
    severity: 'warning',
    threshold: 'a call notification to an attached call manager failed or was refused; at most once a minute per enterprise, cleared by the next one delivered',
    guide: 'ours',
    meaning: "That enterprise's call manager did not hear of a call, so it uploaded no VCR and the call cannot lead to a validation.",
  },
];

/** The catalogue entry of a role's alert, or undefined when the role does not raise it. */
export function alertSpec(role: OperationsRole, name: string): AlertSpec | undefined {
  return ALERT_CATALOGUE.find((a) => a.role === role && a.name === name);
}
