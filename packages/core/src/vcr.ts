/**
 * A voice call record (guide L232–L237): what a call manager uploads after every PSTN call, on either
 * side. VAP carries it and the validator stores it; both use this one definition.
 */

export type VcrDirection = 'originating' | 'terminating';

/** Times in ms since the epoch. */
export interface Vcr {
  readonly calling: string;
  readonly called: string;
  readonly startMs: number;
  readonly stopMs: number;
  readonly direction: VcrDirection;
  /** The call manager's id of the call, so a retried upload is not counted twice. */
  readonly callId: string;
}
