import { suppressStrata, totalSuppressed } from './suppression';
import type { Cell } from './suppression';

const cell = (key: string, den: number, num: number, ex = 0): Cell => ({
  key,
  initialPopulation: den,
  denominator: den,
  exclusion: ex,
  numerator: num,
});
const total = (cells: Cell[]) =>
  cells.reduce(
    (a, c) => ({
      initialPopulation: a.initialPopulation + c.initialPopulation,
      denominator: a.denominator + c.denominator,
      exclusion: a.exclusion + c.exclusion,
      numerator: a.numerator + c.numerator,
    }),
    { initialPopulation: 0, denominator: 0, exclusion: 0, numerator: 0 },
  );

describe('small-cell suppression', () => {
  it('shows every cell when none is small', () => {
    const cells = [cell('a', 100, 60), cell('b', 50, 20), cell('c', 40, 30)];
    expect(suppressStrata(total(cells), cells, 10).map((s) => s.suppressed)).toEqual([false, false, false]);
  });

  it('hides a small cell and the smallest other one, so the small one cannot be recomputed from the total', () => {
    const cells = [cell('a', 100, 60), cell('b', 4, 2), cell('c', 40, 30), cell('d', 300, 200)];
    const shown = suppressStrata(total(cells), cells, 10);
    expect(shown.map((s) => [s.cell.key, s.suppressed])).toEqual([
      ['a', false],
      ['b', 'small'],
      ['c', 'complementary'],
      ['d', false],
    ]);
  });

  it('treats a small complement as small: 48 of 50 in the numerator leaves 2 people not reached', () => {
    const cells = [cell('a', 50, 48), cell('b', 60, 30), cell('c', 70, 30)];
    const shown = suppressStrata(total(cells), cells, 10);
    expect(shown[0]!.suppressed).toBe('small');
    expect(shown.filter((s) => s.suppressed)).toHaveLength(2);
  });

  it('keeps hiding while the hidden cells together are still small (1 + 2 people)', () => {
    const cells = [cell('a', 1, 1), cell('b', 2, 1), cell('c', 30, 15), cell('d', 500, 250)];
    const shown = suppressStrata(total(cells), cells, 10);
    expect(shown.map((s) => s.suppressed)).toEqual(['small', 'small', 'complementary', false]);
  });

  it('does not count empty cells as hidden or as complements, and a zero is not small', () => {
    const cells = [cell('a', 0, 0), cell('b', 3, 1), cell('c', 30, 15), cell('d', 40, 20)];
    const shown = suppressStrata(total(cells), cells, 10);
    expect(shown.map((s) => s.suppressed)).toEqual([false, 'small', 'complementary', false]);
  });

  it('hides everything when the total itself is small; threshold 1 disables suppression', () => {
    const cells = [cell('a', 3, 1), cell('b', 2, 2)];
    expect(totalSuppressed(total(cells), 10)).toBe(true);
    expect(suppressStrata(total(cells), cells, 10).every((s) => s.suppressed)).toBe(true);
    expect(totalSuppressed(total(cells), 1)).toBe(false);
    expect(suppressStrata(total(cells), cells, 1).some((s) => s.suppressed)).toBe(false);
  });
});
