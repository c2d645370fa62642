import { CELL_KEY_MODULUS, cellNoise, perturb } from './cell-key';

describe('cell-key perturbation', () => {
  const keys = (n: number) => Array.from({ length: n }, (_, i) => Math.floor(((i + 0.5) / n) * CELL_KEY_MODULUS));

  it('leaves 0 at 0 and never makes a non-zero count 0 or negative', () => {
    for (const k of keys(1000)) {
      expect(cellNoise(0, k)).toBe(0);
      for (const c of [1, 2, 3, 10]) {
        expect(c + cellNoise(c, k)).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it('draws -2..+2 with mean 0 for counts from 3, following the table over uniform keys', () => {
    const noise = keys(10_000).map((k) => cellNoise(25, k));
    expect(new Set(noise)).toEqual(new Set([-2, -1, 0, 1, 2]));
    expect(noise.reduce((a, b) => a + b, 0) / noise.length).toBeCloseTo(0, 2);
    expect(noise.filter((n) => n === 0).length / noise.length).toBeCloseTo(0.3, 2);
  });

  it('is a function of (count, cell key): the same cell always gets the same noise', () => {
    expect(cellNoise(40, 123_456)).toBe(cellNoise(40, 123_456));
    expect(cellNoise(40, 123_456 + CELL_KEY_MODULUS)).toBe(cellNoise(40, 123_456));
  });

  it('keeps the perturbed populations nested', () => {
    for (const k of keys(500)) {
      const c = perturb(
        { initialPopulation: 12, denominator: 12, exclusion: 3, numerator: 9 },
        {
          initialPopulation: k,
          denominator: (k * 7) % CELL_KEY_MODULUS,
          exclusion: (k * 13) % CELL_KEY_MODULUS,
          numerator: (k * 31) % CELL_KEY_MODULUS,
        },
      );
      expect(c.denominator).toBeLessThanOrEqual(c.initialPopulation);
      expect(c.exclusion).toBeLessThanOrEqual(c.denominator);
      expect(c.numerator).toBeLessThanOrEqual(c.denominator - c.exclusion);
      expect(c.numerator).toBeGreaterThanOrEqual(0);
    }
  });
});
