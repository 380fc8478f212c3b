import { ImeError, VALUE_START_AND_STOP, VALUE_START_ONLY, parseE164 } from '@ime/core';

/**
 * The shared password of a peer validation (PVP): the details of one PSTN call as both ends saw it.
 *
 * The originator (O, caller's peer) and the terminator (T, callee's peer) each hold a voice call record
 * of the same call, but their clocks differ by up to a tolerance. A PAKE needs both sides to type the
 * *same* password, so times are quantised into cells of twice the tolerance. T uses its own cells, one
 * secret per candidate and kind; O, not knowing which side of a cell boundary T's clock fell, tries its
 * own cell and the one neighbour on the side of the nearer boundary — for each time. Within ±tolerance
 * one of those always equals T's cell; beyond 3× tolerance none can (the two cells O tries span 4×
 * tolerance around its time, and O's time is at least one tolerance from either end).
 *
 * This module is pure: no randomness, no cryptography, no I/O.
 */

/** What a successful validation proves: the start and stop time of the call, or only its start. */
export type ProofKind = 'start-stop' | 'start-only';

export interface CallDetails {
  /** The caller, +E.164. */
  readonly calling: string;
  /** The callee, +E.164. */
  readonly called: string;
  readonly startMs: number;
  readonly stopMs: number;
}

/** The quantised times one secret is made of; `stopCell` only for `start-stop`. */
export interface SecretCells {
  readonly kind: ProofKind;
  readonly startCell: number;
  readonly stopCell?: number;
}

export const DEFAULT_TOLERANCE_MS = 5000;
export const MIN_TOLERANCE_MS = 1;
/** Beyond a minute the cells are so wide that one secret covers many calls of a busy number. */
export const MAX_TOLERANCE_MS = 60_000;

/** Version tag of the canonical string; changing the format means a new tag, never a silent change. */
export const PVP_SECRET_VERSION = 'ime-pvp-v1';

const PROOF_KINDS: readonly ProofKind[] = ['start-stop', 'start-only'];

function parameterError(message: string, details?: Readonly<Record<string, unknown>>): ImeError<'E_PVP_PARAMETERS'> {
  return new ImeError('E_PVP_PARAMETERS', message, details);
}

/** Width of a time cell for a clock tolerance: twice the tolerance (see the module comment for why). */
export function cellWidthMs(toleranceMs: number): number {
  if (!Number.isInteger(toleranceMs) || toleranceMs < MIN_TOLERANCE_MS || toleranceMs > MAX_TOLERANCE_MS) {
    throw parameterError(
      `the clock tolerance must be a whole number of milliseconds from ${MIN_TOLERANCE_MS} to ${MAX_TOLERANCE_MS}, got ${String(toleranceMs)}`,
      { toleranceMs },
    );
  }
  return 2 * toleranceMs;
}

/** The cell a time falls in. Floor, not truncation, so negative offsets land in the right cell too. */
export function timeCell(ms: number, cellMs: number): number {
  return Math.floor(ms / cellMs);
}

function assertCellMs(cellMs: number): void {
  if (!Number.isInteger(cellMs) || cellMs < 2 * MIN_TOLERANCE_MS || cellMs > 2 * MAX_TOLERANCE_MS || cellMs % 2 !== 0) {
    throw parameterError(`a cell width must be an even number of milliseconds from 2 to ${2 * MAX_TOLERANCE_MS}, got ${String(cellMs)}`, { cellMs });
  }
}

function assertTime(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw parameterError(`${name} must be a whole number of milliseconds since the epoch`, { [name]: ms });
}

function assertTimes(call: CallDetails): void {
  assertTime('startMs', call.startMs);
  assertTime('stopMs', call.stopMs);
  if (call.stopMs < call.startMs) throw parameterError('a call cannot stop before it starts', { startMs: call.startMs, stopMs: call.stopMs });
}

/** The neighbour cell on the side of the nearer cell boundary. */
function neighbourCell(ms: number, cellMs: number): number {
  const c = timeCell(ms, cellMs);
  return ms - c * cellMs < cellMs / 2 ? c - 1 : c + 1;
}

/**
 * Originator's attempt order (6 entries): with c = own cell and n = the neighbour cell on the side of the
 * nearer cell boundary (c-1 if ms mod cell < cell/2, else c+1), for start s and stop e:
 * start-stop (cs,ce),(cs,ne),(ns,ce),(ns,ne), then start-only (cs),(ns).
 * Any skew within ±tolerance therefore hits the terminator's cell in one of them; a skew beyond
 * 3×tolerance never does. The more valuable proof comes first, and the own cells before the guesses,
 * because equal clocks are the common case.
 */
export function originatorPlan(call: CallDetails, cellMs: number): SecretCells[] {
  assertCellMs(cellMs);
  assertTimes(call);
  const cs = timeCell(call.startMs, cellMs);
  const ns = neighbourCell(call.startMs, cellMs);
  const ce = timeCell(call.stopMs, cellMs);
  const ne = neighbourCell(call.stopMs, cellMs);
  return [
    { kind: 'start-stop', startCell: cs, stopCell: ce },
    { kind: 'start-stop', startCell: cs, stopCell: ne },
    { kind: 'start-stop', startCell: ns, stopCell: ce },
    { kind: 'start-stop', startCell: ns, stopCell: ne },
    { kind: 'start-only', startCell: cs },
    { kind: 'start-only', startCell: ns },
  ];
}

/** The terminator's one secret per candidate and kind: its own cells. */
export function terminatorCells(call: CallDetails, kind: ProofKind, cellMs: number): SecretCells {
  assertCellMs(cellMs);
  assertTimes(call);
  assertKind(kind);
  const startCell = timeCell(call.startMs, cellMs);
  return kind === 'start-stop' ? { kind, startCell, stopCell: timeCell(call.stopMs, cellMs) } : { kind, startCell };
}

function assertKind(kind: unknown): asserts kind is ProofKind {
  if (!PROOF_KINDS.includes(kind as ProofKind)) throw parameterError(`unknown proof kind ${JSON.stringify(String(kind)).slice(0, 40)}`);
}

function assertCell(name: string, cell: unknown): asserts cell is number {
  if (typeof cell !== 'number' || !Number.isSafeInteger(cell)) throw parameterError(`${name} must be a whole number`, { [name]: cell });
}

/**
 * Canonical string, e.g. `ime-pvp-v1|start-stop|cell=10000|calling=+1408…|called=+1212…|start=177…|stop=177…`
 * (no stop for start-only). Numbers are parsed with parseE164, so both sides refuse the same malformed
 * input instead of hashing two spellings of one number into two passwords. The cell width is part of
 * the string: peers configured with different tolerances must fail, not meet by accident.
 */
export function canonicalCallSecret(call: Pick<CallDetails, 'calling' | 'called'>, cells: SecretCells, cellMs: number): string {
  assertCellMs(cellMs);
  assertKind(cells.kind);
  assertCell('startCell', cells.startCell);
  const calling = parseE164(call.calling);
  const called = parseE164(call.called);
  const head = `${PVP_SECRET_VERSION}|${cells.kind}|cell=${cellMs}|calling=${calling}|called=${called}|start=${cells.startCell}`;
  if (cells.kind === 'start-only') {
    if (cells.stopCell !== undefined) throw parameterError('a start-only secret has no stop cell');
    return head;
  }
  assertCell('stopCell', cells.stopCell);
  return `${head}|stop=${cells.stopCell}`;
}

/** What a validation of this kind is worth in the validation pools. */
export function proofValue(kind: ProofKind): typeof VALUE_START_ONLY | typeof VALUE_START_AND_STOP {
  assertKind(kind);
  return kind === 'start-stop' ? VALUE_START_AND_STOP : VALUE_START_ONLY;
}
