import type { Extension, Measure, MeasureReport } from '@medplum/fhirtypes';
import type { Pool } from 'pg';
import { GW } from '@gw/fhir';
import type { Migration } from '@gw/platform';

/**
 * National benchmarks published as open data (e.g. the Assurance Maladie's share of ALD patients
 * without a médecin traitant, by département), loaded from CSV and shown beside a territory's own
 * figure. A benchmark is published aggregate data, never patient data: its table has no person key.
 */
export const BENCHMARK_MIGRATIONS: Migration[] = [
  {
    version: 34,
    feature: 'indicators',
    name: 'published national benchmarks of the indicators (open data)',
    sql: `
CREATE TABLE ind_benchmark (
  indicator text NOT NULL,
  territory_level text NOT NULL CHECK (territory_level IN ('france', 'region', 'departement')),
  territory_code text NOT NULL,
  observed date NOT NULL,
  percent numeric(7,3) NOT NULL CHECK (percent >= 0 AND percent <= 100),
  source_url text NOT NULL,
  note text,
  loaded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (indicator, territory_level, territory_code, observed)
);
`,
  },
];

/** On a Measure: which published benchmark its reports show, and which of its strata compares to it. */
export const MEASURE_BENCHMARK_EXTENSION = `${GW}/fhir/StructureDefinition/measure-benchmark`;
/** On a MeasureReport group (0..*): one published figure for one territory (sub-extensions below). */
export const REPORT_BENCHMARK_EXTENSION = `${GW}/fhir/StructureDefinition/measure-report-benchmark`;

export const TERRITORY_LEVELS = ['france', 'region', 'departement'] as const;
export type TerritoryLevel = (typeof TERRITORY_LEVELS)[number];

/** The columns of a benchmark CSV, in this order (header line required; `;` separated, UTF-8). */
export const BENCHMARK_COLUMNS = [
  'indicator',
  'territory_level',
  'territory_code',
  'date',
  'percent',
  'source_url',
  'note',
] as const;

export interface BenchmarkRow {
  indicator: string;
  level: TerritoryLevel;
  /** `FR`, an INSEE region code, or a département code (`01`…`95`, `2A`, `2B`, `971`…`976`). */
  code: string;
  /** The day the figure describes (YYYY-MM-DD). */
  observed: string;
  percent: number;
  sourceUrl: string;
  note?: string;
}

export class BenchmarkFormatError extends Error {}

const INDICATOR = /^[a-z0-9][a-z0-9-]{0,63}$/;
// 20 is no département since Corsica's split (2A, 2B).
const DEPARTEMENT = /^(0[1-9]|1[0-9]|2[1-9]|[3-8][0-9]|9[0-5]|2A|2B|97[1-6])$/;
const REGION = /^[0-9]{2}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Reads a benchmark CSV (see {@link BENCHMARK_COLUMNS}). Every line is checked; the first bad one
 * stops the load with its line number, so a file is loaded whole or not at all.
 */
export function parseBenchmarkCsv(text: string): BenchmarkRow[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = (lines[0] ?? '').split(';').map((h) => h.trim());
  if (header.join(';') !== BENCHMARK_COLUMNS.join(';')) {
    throw new BenchmarkFormatError(`line 1: the header must be ${BENCHMARK_COLUMNS.join(';')}`);
  }
  const rows: BenchmarkRow[] = [];
  lines.slice(1).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) {
      return;
    }
    rows.push(parseLine(line, i + 2));
  });
  if (rows.length === 0) {
    throw new BenchmarkFormatError('the file has no benchmark line');
  }
  return rows;
}

function parseLine(line: string, n: number): BenchmarkRow {
  const cells = line.split(';').map((c) => c.trim());
  if (cells.length < 6 || cells.length > 7) {
    throw new BenchmarkFormatError(`line ${n}: expected 6 or 7 fields separated by ";", got ${cells.length}`);
  }
  const [indicator, level, code, observed, percentText, sourceUrl, note] = cells as [
    string,
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  const bad = (what: string): BenchmarkFormatError => new BenchmarkFormatError(`line ${n}: ${what}`);
  if (!INDICATOR.test(indicator)) throw bad(`indicator "${indicator}" is not a lower-case code`);
  if (!(TERRITORY_LEVELS as readonly string[]).includes(level)) {
    throw bad(`territory_level must be one of ${TERRITORY_LEVELS.join(', ')}`);
  }
  const validCode =
    level === 'france' ? code === 'FR' : level === 'region' ? REGION.test(code) : DEPARTEMENT.test(code);
  if (!validCode) throw bad(`territory_code "${code}" is not a ${level} code`);
  if (!DAY.test(observed) || !isCalendarDay(observed)) {
    throw bad(`date "${observed}" is not YYYY-MM-DD`);
  }
  // Published French figures write a decimal comma.
  const percent = Number(percentText.replace(',', '.'));
  if (percentText === '' || !Number.isFinite(percent) || percent < 0 || percent > 100) {
    throw bad(`percent "${percentText}" is not a number from 0 to 100`);
  }
  if (!/^https?:\/\/\S+$/.test(sourceUrl)) throw bad('source_url must be the http(s) address of the publication');
  return {
    indicator,
    level: level as TerritoryLevel,
    code,
    observed,
    percent,
    sourceUrl,
    ...(note ? { note } : {}),
  };
}

function isCalendarDay(day: string): boolean {
  const d = new Date(`${day}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === day;
}

/** The département of an INSEE commune code (overseas: 3 digits; Corsica: 2A/2B). */
export function departementOf(commune: string): string | undefined {
  if (!/^([0-9]{2}|2[AB])[0-9]{3}$/.test(commune)) return undefined;
  return commune.startsWith('97') ? commune.slice(0, 3) : commune.slice(0, 2);
}

/** What a Measure's reports compare: the benchmark indicator and the stratum that matches it. */
export interface MeasureBenchmark {
  indicator: string;
  /** A stratum of the report (`<stratifier>:<value>`, e.g. `ald:yes`), or absent: the total. */
  stratum?: string;
}

export function measureBenchmark(m: Measure): MeasureBenchmark | undefined {
  const ext = m.extension?.find((e) => e.url === MEASURE_BENCHMARK_EXTENSION);
  const indicator = ext?.extension?.find((e) => e.url === 'indicator')?.valueCode;
  if (!indicator) return undefined;
  const stratum = ext?.extension?.find((e) => e.url === 'stratum')?.valueString;
  return { indicator, ...(stratum ? { stratum } : {}) };
}

/** The benchmark table: loading files, and the figures shown beside a territory's report. */
export class BenchmarkStore {
  constructor(private readonly pool: Pool) {}

  /** Upserts the rows in one transaction (a re-load of a corrected file replaces the figures). */
  async load(rows: BenchmarkRow[]): Promise<{ rows: number; inserted: number; updated: number }> {
    const client = await this.pool.connect();
    let inserted = 0;
    try {
      await client.query('BEGIN');
      for (const r of rows) {
        const res = await client.query<{ inserted: boolean }>(
          `INSERT INTO ind_benchmark (indicator, territory_level, territory_code, observed, percent, source_url, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (indicator, territory_level, territory_code, observed)
           DO UPDATE SET percent = EXCLUDED.percent, source_url = EXCLUDED.source_url, note = EXCLUDED.note, loaded_at = now()
           RETURNING (xmax = 0) AS inserted`,
          [r.indicator, r.level, r.code, r.observed, r.percent, r.sourceUrl, r.note ?? null],
        );
        if (res.rows[0]?.inserted) inserted += 1;
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
    return { rows: rows.length, inserted, updated: rows.length - inserted };
  }

  /**
   * For each territory, the latest figure of the indicator observed on or before `asOf`: France,
   * and the départements given (those of a CPTS's communes).
   */
  async latest(indicator: string, departements: string[], asOf: string): Promise<BenchmarkRow[]> {
    const res = await this.pool.query<{
      territory_level: TerritoryLevel;
      territory_code: string;
      observed: string;
      percent: string;
      source_url: string;
      note: string | null;
    }>(
      `SELECT DISTINCT ON (territory_level, territory_code)
              territory_level, territory_code, to_char(observed, 'YYYY-MM-DD') AS observed, percent::text,
              source_url, note
         FROM ind_benchmark
        WHERE indicator = $1 AND observed <= $2::date
          AND (territory_level = 'france' OR (territory_level = 'departement' AND territory_code = ANY($3::text[])))
        ORDER BY territory_level DESC, territory_code, observed DESC`,
      [indicator, asOf, departements],
    );
    return res.rows.map((r) => ({
      indicator,
      level: r.territory_level,
      code: r.territory_code,
      observed: r.observed,
      percent: Number(r.percent),
      sourceUrl: r.source_url,
      ...(r.note ? { note: r.note } : {}),
    }));
  }

  /** The départements of a CPTS's communes (empty for another organization). */
  async departementsOf(organizationId: string): Promise<string[]> {
    const res = await this.pool.query<{ communes: string[] }>(
      "SELECT communes FROM ind_organization WHERE id = $1 AND type = 'CPTS'",
      [organizationId],
    );
    const codes = (res.rows[0]?.communes ?? []).map(departementOf).filter((d): d is string => !!d);
    return [...new Set(codes)].sort();
  }
}

/** Puts the published figures on the report's group, beside the stratum (or total) they compare to. */
export function attachBenchmarks(report: MeasureReport, bench: MeasureBenchmark, rows: BenchmarkRow[]): void {
  const group = report.group?.[0];
  if (!group || rows.length === 0) return;
  group.extension = [...(group.extension ?? []), ...rows.map((r) => benchmarkExtension(bench, r))];
}

function benchmarkExtension(bench: MeasureBenchmark, r: BenchmarkRow): Extension {
  return {
    url: REPORT_BENCHMARK_EXTENSION,
    extension: [
      { url: 'indicator', valueCode: r.indicator },
      { url: 'level', valueCode: r.level },
      { url: 'territory', valueString: r.code },
      { url: 'value', valueQuantity: { value: r.percent, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } },
      { url: 'date', valueDate: r.observed },
      { url: 'source', valueUri: r.sourceUrl },
      ...(bench.stratum ? [{ url: 'stratum', valueString: bench.stratum }] : []),
      ...(r.note ? [{ url: 'note', valueString: r.note }] : []),
    ],
  };
}
