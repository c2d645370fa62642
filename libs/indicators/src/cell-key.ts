import type { Counts } from './suppression';

/**
 * Cell-key perturbation (the ABS TableBuilder method: Fraser & Wooton 2005, "A proposed method for
 * confidentialising tabular output to protect against differencing"; the method Eurostat
 * recommended for the 2021 census). Each person has a record key, a keyed hash of the person key
 * and a secret drawn once per database (computed in SQL, see the evaluator); a cell's key is the
 * sum of its persons' record keys (plus a key of the table: measure and period) modulo
 * {@link CELL_KEY_MODULUS}; a fixed table turns (count, cell key) into a small noise. The same
 * cell always gets the same noise, so repeating a query does not average it out; two cells that
 * differ by one person get unrelated noise, so their difference no longer tells that person's status.
 */
export const CELL_KEY_MODULUS = 1 << 20;

/** Cell keys of the four counts of a cell, each in [0, CELL_KEY_MODULUS). */
export interface CellKeys {
  initialPopulation: number;
  denominator: number;
  exclusion: number;
  numerator: number;
}

interface Row {
  noise: number[];
  /** Probabilities of each noise value (sum 1). */
  p: number[];
}

/**
 * The perturbation table. 0 stays 0 (an empty cell reveals nobody) and a non-zero count never
 * becomes 0 or negative; from 3 on the noise is -2..+2 with mean 0 (variance 1.6).
 */
const PTABLE: { 1: Row; 2: Row; more: Row } = {
  1: { noise: [0, 1, 2], p: [0.5, 0.3, 0.2] },
  2: { noise: [-1, 0, 1, 2], p: [0.3, 0.4, 0.2, 0.1] },
  more: { noise: [-2, -1, 0, 1, 2], p: [0.15, 0.2, 0.3, 0.2, 0.15] },
};

/** The noise the table gives a count with this cell key. */
export function cellNoise(count: number, cellKey: number): number {
  if (count <= 0) {
    return 0;
  }
  const row = count === 1 ? PTABLE[1] : count === 2 ? PTABLE[2] : PTABLE.more;
  const u = (((cellKey % CELL_KEY_MODULUS) + CELL_KEY_MODULUS) % CELL_KEY_MODULUS) / CELL_KEY_MODULUS;
  let acc = 0;
  for (let i = 0; i < row.noise.length; i++) {
    acc += row.p[i] as number;
    if (u < acc) {
      return row.noise[i] as number;
    }
  }
  return row.noise[row.noise.length - 1] as number;
}

/**
 * The published counts of a cell: each count plus its noise, then kept nested (denominator within
 * the initial population, exclusions within the denominator, numerator within the rest) using the
 * perturbed values only.
 */
export function perturb(c: Counts, k: CellKeys): Counts {
  const initialPopulation = c.initialPopulation + cellNoise(c.initialPopulation, k.initialPopulation);
  const denominator = Math.min(c.denominator + cellNoise(c.denominator, k.denominator), initialPopulation);
  const exclusion = Math.min(c.exclusion + cellNoise(c.exclusion, k.exclusion), denominator);
  const numerator = Math.min(c.numerator + cellNoise(c.numerator, k.numerator), denominator - exclusion);
  return { initialPopulation, denominator, exclusion, numerator };
}
