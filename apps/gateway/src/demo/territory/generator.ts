import type { Organization, Resource } from '@medplum/fhirtypes';
import { buildPerson } from './person';
import type { PersonRecords } from './person';
import { buildLayout } from './structures';
import type { Layout } from './structures';

export interface TerritoryOptions {
  /** Seed of the random streams: the same seed, size and date give the same resources and ids. */
  seed: number;
  /** Number of persons (a few percent of them have a second record in another practice). */
  patients: number;
  /** Last day of the data (YYYY-MM-DD): the 12 months before it are the indicator year. */
  asOf: string;
}

/**
 * A synthetic CPTS territory (issue #5): the CPTS, its MSPs, centres de santé and isolated GPs,
 * professionals, and patients with their médecin traitant, chronic conditions, prevention,
 * visits and hospital stays, generated lazily. Deterministic: ids are name-based UUIDs of
 * (seed, patients, asOf, what), and each person draws from a random stream of its own.
 */
export class TerritoryGenerator {
  readonly options: TerritoryOptions;
  private readonly layout: Layout;

  constructor(options: TerritoryOptions) {
    if (!Number.isInteger(options.patients) || options.patients < 1 || options.patients > 5_000_000) {
      throw new Error(`patients must be an integer from 1 to 5 000 000, got ${options.patients}`);
    }
    if (!Number.isInteger(options.seed)) {
      throw new Error(`seed must be an integer, got ${options.seed}`);
    }
    if (!/^\d{4}-\d{2}-\d{2}$/.test(options.asOf) || Number.isNaN(Date.parse(options.asOf))) {
      throw new Error(`asOf must be a day (YYYY-MM-DD), got ${options.asOf}`);
    }
    this.options = { ...options };
    this.layout = buildLayout(options.seed, options.patients, options.asOf);
  }

  /** The CPTS Organization (written last by the loader: its presence marks a complete load). */
  get cpts(): Organization & { id: string } {
    return this.layout.cpts;
  }

  /** Member structures, hospitals, practitioners and their roles. */
  structures(): readonly Resource[] {
    return this.layout.resources;
  }

  /** Organizations of the territory by kind, for callers and tests (`Organization/<id>`). */
  organizations(): { kind: string; ref: string; name: string }[] {
    return [
      ...this.layout.structures.map((s) => ({ kind: s.kind, ref: s.ref, name: s.name })),
      ...this.layout.hospitals.map((h) => ({ kind: 'hospital', ref: h.ref, name: h.name })),
    ];
  }

  /** The persons of indexes [from, to), one at a time (never all in memory). */
  *people(from = 0, to = this.options.patients): Generator<PersonRecords> {
    for (let i = from; i < Math.min(to, this.options.patients); i++) {
      yield buildPerson(this.layout, this.options.seed, i, this.options.asOf);
    }
  }
}
