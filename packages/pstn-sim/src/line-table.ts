import {
  type EnrolledPattern,
  ImeError,
  parseDomain,
  parseEnrolledPattern,
  parseExclusionNumber,
  patternMatches,
} from '@ime/core';

/**
 * Who owns which numbers on the simulated PSTN. A call manager attaches its lines (enrolled
 * patterns, minus exclusion numbers) under its domain; a number belongs to the line whose matching
 * pattern is the most specific (fewest wildcards). Two domains attaching the very same pattern is
 * how a fraudulent enterprise looks from the PSTN: the first to attach keeps the calls — the real
 * owner had the line before anyone claimed it — and the later one is told its pattern is shadowed.
 * Pure: no I/O, so the rules are tested without sockets.
 */

export interface LineInput {
  readonly domain: unknown;
  readonly patterns: unknown;
  readonly exclusions?: unknown;
  readonly callbackUrl: unknown;
  readonly callbackToken: unknown;
}

export interface Line {
  readonly domain: string;
  readonly patterns: readonly EnrolledPattern[];
  readonly exclusions: ReadonlySet<string>;
  readonly callbackUrl: string;
  /** Bearer token the switch presents to the call manager; never shown by the API. */
  readonly callbackToken: string;
  readonly attachedAtMs: number;
  /** Order of first attachment; re-attaching keeps it (the line is the same subscriber). */
  readonly seniority: number;
}

export interface LineView {
  readonly domain: string;
  readonly patterns: readonly string[];
  readonly exclusions: readonly string[];
  readonly callbackUrl: string;
  readonly attachedAt: string;
}

export const MAX_PATTERNS_PER_LINE = 1000;
export const MAX_EXCLUSIONS_PER_LINE = 10_000;
export const MAX_LINES = 1000;
const TOKEN_RE = /^[A-Za-z0-9._~+/=-]{16,1024}$/;

function bad(code: string, message: string): ImeError {
  return new ImeError(code, message);
}

function stringList(value: unknown, what: string, max: number, code: string): unknown[] {
  if (!Array.isArray(value)) throw bad(code, `${what} must be a list`);
  if (value.length > max) throw bad(code, `${what}: at most ${max} items`);
  return value;
}

/** Checks an attach request; every refusal names what is wrong with an error code. */
export function parseLine(input: LineInput, nowMs: number, seniority: number): Line {
  const domain = parseDomain(input.domain);
  const rawPatterns = stringList(input.patterns, 'patterns', MAX_PATTERNS_PER_LINE, 'E_PSTN_PATTERNS');
  if (rawPatterns.length === 0) throw bad('E_PSTN_PATTERNS', 'patterns must name at least one enrolled pattern');
  const patterns = rawPatterns.map((p) => parseEnrolledPattern(p));
  const exclusions = new Set(
    stringList(input.exclusions ?? [], 'exclusions', MAX_EXCLUSIONS_PER_LINE, 'E_PSTN_EXCLUSIONS').map((x) => parseExclusionNumber(x) as string),
  );
  const callbackUrl = parseCallbackUrl(input.callbackUrl);
  if (typeof input.callbackToken !== 'string' || !TOKEN_RE.test(input.callbackToken)) {
    throw bad('E_PSTN_CALLBACK_TOKEN', 'callbackToken must be 16–1024 base64url characters');
  }
  return { domain, patterns, exclusions, callbackUrl, callbackToken: input.callbackToken, attachedAtMs: nowMs, seniority };
}

function parseCallbackUrl(value: unknown): string {
  if (typeof value !== 'string' || value.length > 2048) throw bad('E_PSTN_CALLBACK_URL', 'callbackUrl must be an http(s) URL');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('E_PSTN_CALLBACK_URL', 'callbackUrl is not a valid URL');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
    throw bad('E_PSTN_CALLBACK_URL', 'callbackUrl must be http(s)://host:port/path without credentials');
  }
  return url.href;
}

export interface Owner {
  readonly line: Line;
  /** The pattern that decided. */
  readonly pattern: EnrolledPattern;
}

export class LineTable {
  readonly #lines = new Map<string, Line>();
  #nextSeniority = 1;

  /** Attaches (or re-attaches, replacing) a call manager's lines; returns the patterns another line shadows. */
  attach(input: LineInput, nowMs: number): { line: Line; replaced: boolean; shadowed: string[] } {
    const domainKey = typeof input.domain === 'string' ? input.domain.toLowerCase().replace(/\.$/, '') : '';
    const previous = this.#lines.get(domainKey);
    if (previous === undefined && this.#lines.size >= MAX_LINES) throw bad('E_PSTN_TOO_MANY_LINES', `at most ${MAX_LINES} call managers may attach`);
    const line = parseLine(input, nowMs, previous?.seniority ?? this.#nextSeniority);
    if (previous === undefined) this.#nextSeniority++;
    this.#lines.set(line.domain, line);
    const shadowed = line.patterns
      .filter((p) => [...this.#lines.values()].some((o) => o !== line && o.seniority < line.seniority && o.patterns.some((q) => q.text === p.text)))
      .map((p) => p.text);
    return { line, replaced: previous !== undefined, shadowed };
  }

  detach(domain: string): boolean {
    return this.#lines.delete(domain.toLowerCase().replace(/\.$/, ''));
  }

  get size(): number {
    return this.#lines.size;
  }

  /** The line a call to `number` rings, or undefined for an unknown subscriber. */
  ownerOf(number: string): Owner | undefined {
    let best: Owner | undefined;
    for (const line of this.#lines.values()) {
      if (line.exclusions.has(number)) continue;
      for (const pattern of line.patterns) {
        if (!patternMatches(pattern, number)) continue;
        if (
          best === undefined ||
          pattern.wildcards < best.pattern.wildcards ||
          (pattern.wildcards === best.pattern.wildcards && line.seniority < best.line.seniority)
        ) {
          best = { line, pattern };
        }
      }
    }
    return best;
  }

  list(): LineView[] {
    return [...this.#lines.values()]
      .sort((a, b) => a.seniority - b.seniority)
      .map((l) => ({
        domain: l.domain,
        patterns: l.patterns.map((p) => p.text),
        exclusions: [...l.exclusions],
        callbackUrl: l.callbackUrl,
        attachedAt: new Date(l.attachedAtMs).toISOString(),
      }));
  }
}
