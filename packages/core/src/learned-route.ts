/**
 * A route learned by validation (guide L4363–L4408): the validator releases it, VAP carries it to the
 * call managers, and they keep it. One definition for all three.
 */
export interface LearnedRoute {
  readonly number: string;
  readonly domain: string;
  readonly sipUri: string;
  /** base64url ticket, exactly what the SIP header carries. */
  readonly ticket: string;
  readonly learnedOnMs: number;
  readonly expiresOnMs: number;
}
