/** Counts of one cell of a report: the whole group, or one stratum. */
export interface Counts {
  initialPopulation: number;
  denominator: number;
  exclusion: number;
  numerator: number;
}

export interface Cell extends Counts {
  key: string;
}

export interface Shown<T> {
  cell: T;
  suppressed: false | 'small' | 'complementary';
}

/**
 * The quantities a reader can compute from one cell: its counts and the differences between
 * nested populations (initial population not in the denominator, denominator not excluded and not
 * in the numerator). A small value among any of them identifies few people.
 */
function quantities(c: Counts): number[] {
  return [
    c.initialPopulation,
    c.denominator,
    c.exclusion,
    c.numerator,
    c.initialPopulation - c.denominator,
    c.denominator - c.exclusion - c.numerator,
  ];
}

function isSmall(c: Counts, threshold: number): boolean {
  return quantities(c).some((v) => v > 0 && v < threshold);
}

function sum(cells: Counts[]): Counts {
  return cells.reduce<Counts>(
    (a, c) => ({
      initialPopulation: a.initialPopulation + c.initialPopulation,
      denominator: a.denominator + c.denominator,
      exclusion: a.exclusion + c.exclusion,
      numerator: a.numerator + c.numerator,
    }),
    { initialPopulation: 0, denominator: 0, exclusion: 0, numerator: 0 },
  );
}

/**
 * Small-cell suppression of one stratifier (cells that partition the total). A cell is suppressed
 * when one of its quantities is between 1 and threshold − 1 ("small"). Then complementary
 * suppression: while a single cell is hidden, or the hidden cells together still form a small
 * cell (the total minus the visible ones gives their sum), the smallest visible non-empty cell is
 * hidden too. When the total itself is small every cell is hidden.
 */
export function suppressStrata<T extends Cell>(total: Counts, cells: T[], threshold: number): Shown<T>[] {
  if (threshold <= 1) {
    return cells.map((cell) => ({ cell, suppressed: false }));
  }
  const totalSmall = isSmall(total, threshold);
  const shown: Shown<T>[] = cells.map((cell) => ({
    cell,
    suppressed: totalSmall || isSmall(cell, threshold) ? 'small' : false,
  }));
  if (totalSmall) {
    return shown;
  }
  for (;;) {
    const hidden = shown.filter((s) => s.suppressed);
    if (hidden.length === 0) {
      return shown;
    }
    const hiddenSum = sum(hidden.map((s) => s.cell));
    const derivable = hidden.length === 1 || isSmall(hiddenSum, threshold);
    if (!derivable) {
      return shown;
    }
    const candidates = shown
      .filter((s) => !s.suppressed && s.cell.initialPopulation > 0)
      .sort((a, b) => a.cell.initialPopulation - b.cell.initialPopulation || a.cell.key.localeCompare(b.cell.key));
    const next = candidates[0];
    if (!next) {
      // Nothing left to hide: the hidden cells are only derivable if the total is shown; the
      // caller hides the total's dependent figures by checking isSmall on it (not small here).
      return shown;
    }
    next.suppressed = 'complementary';
  }
}

/** Whether the group-level figures themselves must be hidden. */
export function totalSuppressed(total: Counts, threshold: number): boolean {
  return threshold > 1 && isSmall(total, threshold);
}
