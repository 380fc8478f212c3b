import type { LearnedRoute, Vcr } from '@ime/core';
import type { ime } from '@ime/wire';

/**
 * The contract of @ime/vap, shared by the peer (server side) and the call-manager simulator (client
 * side). docs/VAP.md describes the protocol; SPEC §5 is the contract it implements.
 */

/** `authenticated` = digest over TCP; `encrypted` = digest over TLS (recommended, guide L2515–L2533). */
export type VapAuthenticationMode = 'authenticated' | 'encrypted';

export const VAP_WIRE_VERSION = 1;
export const DEFAULT_VAP_PORT = 5620;
export const DEFAULT_KEEPALIVE_INTERVAL_SEC = 30;
/** Keepalive intervals without any frame from the other side before the connection is closed. */
export const MISSED_KEEPALIVES_TO_CLOSE = 3;
export const DEFAULT_MAX_CONNECTIONS = 16;
/** Largest frame either side accepts (the 4-byte length prefix excluded). */
export const DEFAULT_MAX_VAP_FRAME_BYTES = 1024 * 1024;

/** One named VAP server instance (guide L1686–L1730). */
export interface VapInstanceSettings {
  /** 1–32 characters of [A-Za-z0-9._-], unique on the peer. */
  readonly name: string;
  /** Listen address (default 0.0.0.0; tests use 127.0.0.1). */
  readonly host: string;
  /** TCP port, 0–65535 (0 picks a free port, reported by status). */
  readonly port: number;
  readonly authenticationMode: VapAuthenticationMode;
  readonly enabled: boolean;
  /** 1–3600 s (default 30). */
  readonly keepaliveIntervalSec: number;
  /** 1–10 000 (default 16). */
  readonly maxConnectionsAllowed: number;
}

/**
 * VAP user credentials of one instance (guide L1732–L1741). The password is what the call manager's
 * application user has; the ticket password and epoch are shared with the edge firewall.
 */
export interface VapCredentials {
  readonly username: string;
  readonly password: string;
  /** 10–64 printable ASCII characters without space (SPEC §7). */
  readonly ticketPassword: string;
  /** 1–255. */
  readonly epoch: number;
}

/** The Vservice a call manager publishes (guide L3904–L3928). */
export interface Vservice {
  readonly profileName: string;
  readonly id: string;
  readonly domain: string;
  readonly sipUri: string;
  readonly maxDidCount: number;
}

export interface EnrolledGroup {
  readonly name: string;
  readonly patterns: readonly string[];
}

export interface TrustElement {
  readonly kind: 'domain' | 'prefix';
  readonly value: string;
}

export interface TrustGroup {
  readonly name: string;
  /** true = whitelist, false = blacklist. */
  readonly trusted: boolean;
  readonly description: string;
  readonly elements: readonly TrustElement[];
}

/** What a Vservice publishes and whom it trusts; each PublishEnrollment replaces the previous one. */
export interface Enrollment {
  readonly vserviceId: string;
  readonly groups: readonly EnrolledGroup[];
  readonly exclusions: readonly string[];
  readonly trustGroups: readonly TrustGroup[];
}

/** The voice call record is the core's (VAP carries it, the validator stores it). */
export type { Vcr, VcrDirection } from '@ime/core';

/** Routes are the core's (the validator releases them, VAP carries them). */
export type { LearnedRoute };

export type VapNoticeKind = 'over-quota' | 'ring-inactive' | 'ring-active';

export interface VapNotice {
  readonly kind: VapNoticeKind;
  readonly detail: string;
}

/** A refusal of one item of a request (a VCR, a pattern), by its index in the request. */
export interface VapItemRefusal {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

/** The answer to a request: how many items were accepted, and why the others were not. */
export interface VapAck {
  readonly accepted: number;
  readonly refused: readonly VapItemRefusal[];
}

/** A registered call manager as the server sees it (`ime show vapstatus summary`, guide L3879–L3887). */
export interface VapSessionInfo {
  /** Client handle: unique per peer process, counting from 1. */
  readonly handle: number;
  readonly instance: string;
  readonly username: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  /** 'Registered' once the digest matched; 'Connected' before. */
  readonly registrationStatus: 'Connected' | 'Registered';
  readonly connectedAtMs: number;
  readonly packetsSent: number;
  readonly packetsReceived: number;
  readonly missedKeepalives: number;
  /** Vservices this session published (ids). */
  readonly vserviceIds: readonly string[];
}

/**
 * A registered session, handed to the backend: what it published arrives through the backend's
 * methods; routes and notices go back through it.
 */
export interface VapSession {
  readonly info: () => VapSessionInfo;
  /** Pushes learned routes; false when the connection is already closed. */
  pushRoutes(routes: readonly LearnedRoute[]): boolean;
  notice(notice: VapNotice): boolean;
  /** Closes the connection with an error frame naming `code`. */
  close(code: string, message: string): void;
}

/**
 * What the peer does with a call manager's requests. A thrown ImeError becomes an error frame with
 * its code (the connection stays open); anything else becomes E_INTERNAL.
 */
export interface VapBackend {
  onRegistered?(session: VapSession): void;
  publishVservice(session: VapSession, vservice: Vservice): Promise<void>;
  withdrawVservice(session: VapSession, vserviceId: string): Promise<void>;
  publishEnrollment(session: VapSession, enrollment: Enrollment): Promise<VapAck>;
  uploadVcrs(session: VapSession, vcrs: readonly Vcr[]): Promise<VapAck>;
  onClosed?(session: VapSession, reason: string): void;
}

/** Protocol events the server reports (alerts and counters are the peer's business). */
export interface VapServerEvents {
  /** Wrong username or digest: the alert carries the user and the client address, never a password. */
  onInvalidCredentials?(event: { instance: string; username: string; clientAddress: string; reason: string }): void;
  /** A frame that was too large, truncated, of an unknown type or version: the connection was closed. */
  onProtocolError?(event: { instance: string; clientAddress: string; code: string; message: string }): void;
  /** A connection refused because the instance already had maxConnectionsAllowed. */
  onConnectionRefused?(event: { instance: string; clientAddress: string; reason: string }): void;
}

/** The decoded frame type (re-exported so users need not import @ime/wire). */
export type VapFrame = ime.v1.VapFrame;
