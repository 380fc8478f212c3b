import { describe, expect, it } from '@jest/globals';
import { type CallDetails, DEFAULT_TOLERANCE_MS, type ProofKind, type SecretCells, canonicalCallSecret, cellWidthMs, originatorPlan, proofValue, terminatorCells, timeCell } from '../src/pvp-secret.js';

const CALL: CallDetails = { calling: '+14085550100', called: '+12125550199', startMs: 1_770_000_003_000, stopMs: 1_770_000_187_000 };

/** Does any entry of the originator's plan equal the terminator's secret for this kind? */
function meets(o: CallDetails, t: CallDetails, kind: ProofKind, cellMs: number): boolean {
  const want = canonicalCallSecret(t, terminatorCells(t, kind, cellMs), cellMs);
  return originatorPlan(o, cellMs).some((cells) => canonicalCallSecret(o, cells, cellMs) === want);
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('cells', () => {
  it('uses cells of twice the tolerance and refuses tolerances outside 1 ms..60 s', () => {
    expect(cellWidthMs(DEFAULT_TOLERANCE_MS)).toBe(10_000);
    expect(cellWidthMs(1)).toBe(2);
    expect(cellWidthMs(60_000)).toBe(120_000);
    for (const bad of [0, -5, 60_001, 1.5, Number.NaN]) expect(codeOf(() => cellWidthMs(bad))).toBe('E_PVP_PARAMETERS');
  });

  it('floors times into cells, also below zero', () => {
    expect(timeCell(0, 10_000)).toBe(0);
    expect(timeCell(9_999, 10_000)).toBe(0);
    expect(timeCell(10_000, 10_000)).toBe(1);
    expect(timeCell(-1, 10_000)).toBe(-1);
  });

  it('plans the six entries in the specified order (own cell first, neighbour on the nearer boundary)', () => {
    const cellMs = 10_000;
    // start 3 s into its cell (nearer the lower boundary → neighbour c-1), stop 7 s in (→ c+1)
    const cs = timeCell(CALL.startMs, cellMs);
    const ce = timeCell(CALL.stopMs, cellMs);
    expect(CALL.startMs % cellMs).toBe(3_000);
    expect(CALL.stopMs % cellMs).toBe(7_000);
    const plan: SecretCells[] = originatorPlan(CALL, cellMs);
    expect(plan).toEqual([
      { kind: 'start-stop', startCell: cs, stopCell: ce },
      { kind: 'start-stop', startCell: cs, stopCell: ce + 1 },
      { kind: 'start-stop', startCell: cs - 1, stopCell: ce },
      { kind: 'start-stop', startCell: cs - 1, stopCell: ce + 1 },
      { kind: 'start-only', startCell: cs },
      { kind: 'start-only', startCell: cs - 1 },
    ]);
    // exactly half-way counts as the upper half
    const half = originatorPlan({ ...CALL, startMs: cs * cellMs + 5_000, stopMs: ce * cellMs + 4_999 }, cellMs);
    expect(half[2]).toEqual({ kind: 'start-stop', startCell: cs + 1, stopCell: ce });
    expect(half[1]).toEqual({ kind: 'start-stop', startCell: cs, stopCell: ce - 1 });
  });

  it('gives the terminator its own cells, with a stop cell only for start-stop', () => {
    expect(terminatorCells(CALL, 'start-stop', 10_000)).toEqual({ kind: 'start-stop', startCell: 177_000_000, stopCell: 177_000_018 });
    expect(terminatorCells(CALL, 'start-only', 10_000)).toEqual({ kind: 'start-only', startCell: 177_000_000 });
    expect(codeOf(() => terminatorCells({ ...CALL, stopMs: CALL.startMs - 1 }, 'start-stop', 10_000))).toBe('E_PVP_PARAMETERS');
  });

  it.each([1, 7, DEFAULT_TOLERANCE_MS, 60_000])('meets for every skew within ±tolerance (tolerance %i ms), for both kinds', (tolerance) => {
    const cellMs = cellWidthMs(tolerance);
    // O's times: on a boundary, just either side of it, at the middle and either side of the middle.
    const base = 1_770_000_000_000 - (1_770_000_000_000 % cellMs);
    const positions = [0, 1, tolerance - 1, tolerance, tolerance + 1, cellMs - 1].filter((p) => p >= 0 && p < cellMs);
    const skews = new Set<number>();
    for (const s of [-tolerance, -tolerance + 1, -1, 0, 1, tolerance - 1, tolerance]) skews.add(s);
    for (let k = 0; k <= 20; k++) skews.add(Math.round(-tolerance + (2 * tolerance * k) / 20));
    let checked = 0;
    for (const ps of positions) {
      for (const pe of positions) {
        const o: CallDetails = { ...CALL, startMs: base + ps, stopMs: base + 20 * cellMs + pe };
        for (const ds of skews) {
          expect(meets(o, { ...o, startMs: o.startMs + ds }, 'start-only', cellMs)).toBe(true);
          for (const de of skews) {
            const t = { ...o, startMs: o.startMs + ds, stopMs: o.stopMs + de };
            if (!meets(o, t, 'start-stop', cellMs)) throw new Error(`no meeting: tolerance ${tolerance}, positions ${ps}/${pe}, skews ${ds}/${de}`);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('never meets when a time is skewed by more than 3× tolerance', () => {
    const tolerance = DEFAULT_TOLERANCE_MS;
    const cellMs = cellWidthMs(tolerance);
    let checked = 0;
    for (let p = 0; p < cellMs; p += 250) {
      const o: CallDetails = { ...CALL, startMs: 1_770_000_000_000 + p, stopMs: 1_770_000_200_000 + p };
      for (const excess of [1, 2, 999, 5_000, 20_000]) {
        for (const skew of [3 * tolerance + excess, -(3 * tolerance + excess)]) {
          expect(meets(o, { ...o, startMs: o.startMs + skew }, 'start-only', cellMs)).toBe(false);
          expect(meets(o, { ...o, startMs: o.startMs + skew }, 'start-stop', cellMs)).toBe(false);
          expect(meets(o, { ...o, stopMs: o.stopMs + skew }, 'start-stop', cellMs)).toBe(false);
          checked++;
        }
      }
    }
    expect(checked).toBe(400);
  });
});

describe('canonicalCallSecret', () => {
  const cellMs = 10_000;
  const cells: SecretCells = { kind: 'start-stop', startCell: 177_000_000, stopCell: 177_000_018 };

  it('has the documented shape', () => {
    expect(canonicalCallSecret(CALL, cells, cellMs)).toBe(
      'ime-pvp-v1|start-stop|cell=10000|calling=+14085550100|called=+12125550199|start=177000000|stop=177000018',
    );
    expect(canonicalCallSecret(CALL, { kind: 'start-only', startCell: 177_000_000 }, cellMs)).toBe(
      'ime-pvp-v1|start-only|cell=10000|calling=+14085550100|called=+12125550199|start=177000000',
    );
  });

  it('differs whenever a number, a cell, the kind or the cell width differs', () => {
    const variants = [
      canonicalCallSecret(CALL, cells, cellMs),
      canonicalCallSecret({ ...CALL, calling: '+14085550101' }, cells, cellMs),
      canonicalCallSecret({ ...CALL, called: '+12125550198' }, cells, cellMs),
      canonicalCallSecret(CALL, { ...cells, startCell: cells.startCell + 1 }, cellMs),
      canonicalCallSecret(CALL, { ...cells, stopCell: 177_000_019 }, cellMs),
      canonicalCallSecret(CALL, { kind: 'start-only', startCell: cells.startCell }, cellMs),
      canonicalCallSecret(CALL, cells, 12_000),
    ];
    expect(new Set(variants).size).toBe(variants.length);
  });

  it('refuses numbers that are not +E.164 and inconsistent cells', () => {
    expect(codeOf(() => canonicalCallSecret({ ...CALL, calling: '4085550100' }, cells, cellMs))).toBe('E_E164_MISSING_PLUS');
    expect(codeOf(() => canonicalCallSecret({ ...CALL, called: '+1 212 555 0199' }, cells, cellMs))).toBe('E_E164_INVALID_CHARACTER');
    expect(codeOf(() => canonicalCallSecret({ ...CALL, calling: 'anonymous' }, cells, cellMs))).toBe('E_E164_MISSING_PLUS');
    expect(codeOf(() => canonicalCallSecret(CALL, { kind: 'start-stop', startCell: 1 }, cellMs))).toBe('E_PVP_PARAMETERS');
    expect(codeOf(() => canonicalCallSecret(CALL, { kind: 'start-only', startCell: 1, stopCell: 2 }, cellMs))).toBe('E_PVP_PARAMETERS');
    expect(codeOf(() => canonicalCallSecret(CALL, { kind: 'start-stop', startCell: 1.5, stopCell: 2 }, cellMs))).toBe('E_PVP_PARAMETERS');
    expect(codeOf(() => canonicalCallSecret(CALL, { kind: 'both' as ProofKind, startCell: 1 }, cellMs))).toBe('E_PVP_PARAMETERS');
    expect(codeOf(() => canonicalCallSecret(CALL, cells, 0))).toBe('E_PVP_PARAMETERS');
  });
});

describe('proofValue', () => {
  it('is 12 for start and stop, 8 for start only', () => {
    expect(proofValue('start-stop')).toBe(12);
    expect(proofValue('start-only')).toBe(8);
  });
});
