import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '@gw/store';
import { GW } from '@gw/fhir';
import type { CompiledMeasure, DenominatorPopulation, MeasureCatalogue } from './catalogue';
import {
  SqlParams,
  compileCriterion,
  coveragePersons,
  escapeLike,
  eventSource,
  evidenceKinds,
  factPersons,
  latestFactSql,
} from './criteria';
import type { CompileContext, EvidenceKind } from './criteria';
import type { Counts } from './suppression';
import { CELL_KEY_MODULUS, perturb } from './cell-key';

/** See CompileContext.drugCodes. */
type DrugCodes = NonNullable<CompileContext['drugCodes']>;

/** Visits in primary care that make a patient part of the file active (a ValueSet of the catalogue). */
export const FILE_ACTIVE_VALUESET = `${GW}/fhir/ValueSet/consultation-ville`;

export const AGE_BANDS = ['0-15', '16-49', '50-64', '65-74', '75+'] as const;
/** Stratifiers of every report. */
export const STRATIFIERS = ['structure', 'age-band', 'sex'] as const;
/** Stratifiers computed only for the Measures that name them in `group.stratifier.code` (yes / no strata). */
export const OPTIONAL_STRATIFIERS = ['ald', 'age70', 'c2s'] as const;
export type Stratifier = (typeof STRATIFIERS)[number] | (typeof OPTIONAL_STRATIFIERS)[number];

/** Who is evaluated: the patients of a structure, of a CPTS's member structures, of a GP, of a Group, or everyone. */
export type Scope =
  | { kind: 'organization'; id: string }
  | { kind: 'cpts'; id: string }
  /** A GP's MT patientèle; `within`: only the patients of that structure or CPTS (a non-admin caller's). */
  | { kind: 'practitioner'; id: string; within?: Scope }
  | { kind: 'group'; patientIds: string[] }
  | { kind: 'patient'; id: string }
  | { kind: 'all' };

export interface Period {
  /** First day (YYYY-MM-DD), inclusive. */
  start: string;
  /** Last day (YYYY-MM-DD), inclusive. */
  end: string;
}

export interface MeasureCounts {
  measure: CompiledMeasure;
  population: DenominatorPopulation;
  total: Counts;
  strata: Record<Stratifier, (Counts & { key: string })[]>;
  /**
   * The persons to recall (denominator, not excluded, not in the numerator), when asked for: one
   * entry per person, as many as the denominator less exclusions and numerator of a person-basis
   * measure (this evaluation's own counts, never perturbed).
   */
  recall?: RecallEntry[];
  /** Whether the counts carry cell-key noise. */
  perturbed: boolean;
  ms: number;
}

/** One person of a recall list. */
export interface RecallEntry {
  /** The person's record shown: its record in scope (the smallest id when it has several there). */
  patientId: string;
  /** The person's other records in scope, merged into it (same trusted qualified INS, or linked). */
  otherRecords: string[];
  /** Event-basis measures: the person's events in the denominator and not in the numerator; 1 otherwise. */
  events: number;
  /** The person's latest fact of a kind the numerator counts, any time before the period's end. */
  evidence?: { kind: EvidenceKind; reference: string; system: string | null; code: string; at: string | null };
}

export interface EvaluateOptions {
  period: Period;
  scope: Scope;
  /** Overrides each measure's default denominator population. */
  population?: DenominatorPopulation;
  /** Organization whose own patient records may be listed for recall (undefined: no list; '*': any). */
  recallFor?: string;
  /**
   * Organizations (`Organization/<id>`) whose patient records and facts the evaluation may read;
   * undefined: all of them. Individual-level reports of a non-admin caller pass the organizations
   * the caller may read (today its own), so a person's records and facts filed elsewhere never
   * enter them. Sharing within a care team widens this list, nothing else.
   */
  factOwners?: string[];
  /** Perturb every count with the cell-key method (see cell-key.ts); for reports shown to non-admin callers. */
  cellKeys?: boolean;
}

/**
 * Evaluates measures of the catalogue in SQL over the indicator projection: one temporary table of
 * the persons in scope (records of the same person — same qualified INS, or linked — merged), then
 * one aggregate query per measure with GROUPING SETS for the total and each stratifier. Nothing
 * is loaded into memory but the counts.
 */
export class MeasureEvaluator {
  constructor(
    private readonly pool: Pool,
    private readonly catalogue: MeasureCatalogue,
    /** Transactions evaluating a territory-wide scope's Measures side by side (see lanes). */
    private readonly territoryLanes = 2,
  ) {}

  async evaluate(
    measures: CompiledMeasure[],
    opts: EvaluateOptions,
  ): Promise<{ results: MeasureCounts[]; personsMs: number; persons: number }> {
    const started = Date.now();
    const results: MeasureCounts[] = new Array<MeasureCounts>(measures.length);
    let next = 0;
    // One lane: a transaction with its own persons table, taking the next Measure until none is left.
    const lane = (lanes: number) =>
      withTransaction(this.pool, async (db) => {
        if (next >= measures.length) {
          return undefined;
        }
        if (lanes > 1) {
          // The lanes already take the cores; parallel workers would only contend with them.
          await db.query('SET LOCAL max_parallel_workers_per_gather = 0');
        }
        const { drugs, withPatientele, persons } = await this.prepare(db, measures, opts);
        const personsMs = Date.now() - started;
        for (let i = next++; i < measures.length; i = next++) {
          results[i] = await this.evaluateOne(db, measures[i]!, opts, withPatientele, drugs);
        }
        return { persons, personsMs };
      });
    const lanes = this.lanes(measures, opts);
    const settled = await Promise.allSettled(Array.from({ length: lanes }, () => lane(lanes)));
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) {
      throw failed.reason;
    }
    const built = settled.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value] : []));
    return {
      results,
      personsMs: Math.max(0, ...built.map((b) => b.personsMs)),
      persons: built[0]?.persons ?? 0,
    };
  }

  /**
   * How many transactions evaluate the Measures side by side: a territory-wide scope (a CPTS, the
   * whole gateway) is hundreds of thousands of persons, where each Measure is a second of one core
   * (a temporary table is read by one process only); two lanes, each with its own persons table,
   * use both of this machine's cores. Smaller scopes take tens of milliseconds in one.
   */
  private lanes(measures: CompiledMeasure[], opts: EvaluateOptions): number {
    return measures.length > 1 && (opts.scope.kind === 'cpts' || opts.scope.kind === 'all') ? this.territoryLanes : 1;
  }

  /**
   * Runs `fn` in one transaction once the persons table (ev_person) of `opts` is built, with a
   * compile context of the evaluation per statement whose fact scans are restricted to those
   * persons, and whether ev_person holds a past patientèle (`mt_ref`, `cur`): what per-person
   * listings (care gaps) build on.
   */
  async withPersons<T>(
    measures: CompiledMeasure[],
    opts: EvaluateOptions,
    fn: (db: PoolClient, context: (params: SqlParams) => CompileContext, withPatientele: boolean) => Promise<T>,
  ): Promise<T> {
    return withTransaction(this.pool, async (db) => {
      const { drugs, withPatientele } = await this.prepare(db, measures, opts);
      // Fact scans restricted to these persons: listings are for small scopes (a GP, a structure).
      const context = (params: SqlParams): CompileContext =>
        Object.assign(this.context(params, opts, 'r', drugs), { persons: 'ev_person' });
      return fn(db, context, withPatientele);
    });
  }

  /**
   * What every evaluation transaction starts with: its memory per operation, the drug map, and the
   * persons table of `opts` with what `measures` need of it (whether they read a past patientèle,
   * whether a denominator is the file active).
   */
  private async prepare(
    db: PoolClient,
    measures: CompiledMeasure[],
    opts: EvaluateOptions,
  ): Promise<{ drugs: DrugCodes; withPatientele: boolean; persons: number }> {
    await db.query(`SET LOCAL work_mem = '64MB'`);
    const drugs = await this.drugMap(db);
    const withPatientele = measures.some((m) => !!m.patienteleDate && (opts.population ?? m.population) === 'mt');
    const withSeen = measures.some((m) => (opts.population ?? m.population) === 'file-active');
    const persons = await this.buildPersons(db, opts, withSeen, withPatientele, drugs);
    return { drugs, withPatientele, persons };
  }

  /**
   * ev_person: one row per person in scope with age at period end, band, sex, structure, MT status,
   * seen in the period (when asked), and, when a Measure's MT population is a past patientèle (the
   * FMT's, see patienteleSql), whether the person was in it (`mt_ref`) and whether they are in the
   * current scope (`cur`: a GP's patientèle then also holds their former patients); then ev_ref,
   * the rows of that patientèle.
   */
  private async buildPersons(
    db: PoolClient,
    opts: EvaluateOptions,
    withSeen: boolean,
    withPatientele: boolean,
    drugs: DrugCodes,
  ): Promise<number> {
    const params = new SqlParams();
    const ctx = this.context(params, opts, 'x', drugs);
    const seen = withSeen
      ? factPersons({ resource: 'Encounter', valueSet: FILE_ACTIVE_VALUESET, window: 'period', min: 1 }, ctx)
      : '';
    // Age in whole years at the end of the period, by arithmetic on the date's fields (age() costs
    // seconds at a million persons); the subquery is computed once (OFFSET 0), then banded. Whether
    // the person was seen in the period (a scan of the year's visits: seconds at a million persons)
    // only when a measure of this evaluation draws its denominator from the file active.
    const [endYear, endMonthDay] = [
      Number(opts.period.end.slice(0, 4)),
      Number(opts.period.end.slice(5, 7) + opts.period.end.slice(8, 10)),
    ];
    const age = `(${params.bind(endYear)}::int - date_part('year', x.birth_date)::int
      - CASE WHEN date_part('month', x.birth_date)::int * 100 + date_part('day', x.birth_date)::int > ${params.bind(endMonthDay)}::int THEN 1 ELSE 0 END)`;
    const ref = withPatientele ? patienteleSql(opts, params) : undefined;
    const scope = ref ? ref.scope : scopeWhere(opts.scope, params, opts.period.end);
    const sql = `CREATE TEMP TABLE ev_person ON COMMIT DROP AS
      SELECT y.*,
        CASE WHEN y.age IS NULL THEN 'unknown'
             WHEN y.age < 16 THEN '0-15'
             WHEN y.age < 50 THEN '16-49'
             WHEN y.age < 65 THEN '50-64'
             WHEN y.age < 75 THEN '65-74'
             ELSE '75+' END AS band
      FROM (SELECT x.*, ${age} AS age, ${withSeen ? `x.person IN (${seen})` : 'false'} AS seen, ${opts.cellKeys ? RECORD_KEY : '0'} AS rkey,
        ${ref ? `x.person IN (${ref.persons})` : 'false'} AS mt_ref
      FROM (
        SELECT p.person_key AS person, min(p.owner_org) AS structure,${opts.recallFor ? ` ${recordsSql(opts.recallFor, params)} AS records,` : ''} min(p.birth_date) AS birth_date, coalesce(min(p.sex), 'unknown') AS sex,
          CASE WHEN bool_or(p.gp IS NOT NULL AND NOT coalesce(p.gp IN (${NOT_COUNTED_GPS}), false)
                            AND coalesce(p.mt_status, 'declared') NOT IN ('departed', 'fictitious', 'none', 'seeking')) THEN 'active'
               WHEN bool_or(p.gp IS NOT NULL) THEN 'inactive' ELSE 'none' END AS mt,
          ${ref ? ref.current : 'true'} AS cur
        FROM ind_patient p
        WHERE p.active AND NOT p.deceased AND ${scope}${opts.factOwners ? ` AND p.owner_org = ANY(${params.bind(opts.factOwners)}::text[])` : ''}
        GROUP BY p.person_key
      ) x OFFSET 0) y`;
    const res = await db.query(sql, params.values);
    await db.query('ANALYZE ev_person');
    if (ref) {
      // The FMT Measures read only the past patientèle (a fifth of a territory's persons): their own
      // copy spares each of them a scan of every person (180 ms a Measure at a million persons).
      await db.query('CREATE TEMP TABLE ev_ref ON COMMIT DROP AS SELECT * FROM ev_person WHERE mt_ref');
      await db.query('ANALYZE ev_ref');
    }
    return res.rowCount ?? 0;
  }

  private async evaluateOne(
    db: PoolClient,
    m: CompiledMeasure,
    opts: EvaluateOptions,
    withPatientele: boolean,
    drugs: DrugCodes,
  ): Promise<MeasureCounts> {
    const started = Date.now();
    const population = opts.population ?? m.population;
    const params = new SqlParams();
    const ctx = this.context(params, opts, 'r', drugs);
    const { rows, ip, den, ex, num } = measureSql(m, population, ctx, withPatientele);
    // Only initial-population rows count anywhere (every count is filtered on ip), so the others are
    // dropped before the fact criteria of the other populations are evaluated for them.
    // The CTEs are inlined (not materialized): at a million persons a materialized copy spills to disk.
    const extra = OPTIONAL_STRATIFIERS.filter((s) => m.stratifiers.includes(s));
    const extraCols = extra.map((s) => `, ${optionalStratum(s, ctx)} AS b_${s}`).join('');
    const ctes = `WITH r AS (${rows}), f AS (SELECT r.person, r.structure, r.band, r.sex, r.rkey${extraCols}, (${den}) AS den, (${ex}) AS ex, (${num}) AS num FROM r WHERE ${ip})`;
    const keys = opts.cellKeys ? await this.cellKeySql(db, m, opts.period) : undefined;
    // Counted first per cell of every stratifier together (a few thousand cells, hashed), then the
    // cells rolled up into the total and each stratifier: GROUPING SETS straight over a million
    // rows sorted them by structure (and by each optional stratum), spilling to disk. The optional
    // strata are booleans in the cells: the planner counts two values for a boolean expression,
    // where a text one counts as many groups as rows and the cells were sorted instead of hashed.
    const columns = ['structure', 'band', 'sex', ...extra.map((s) => `b_${s}`)].join(', ');
    const sql = `${ctes},
      c AS (SELECT ${columns}, count(*) AS ip, count(*) FILTER (WHERE den) AS den, count(*) FILTER (WHERE den AND ex) AS ex,
              count(*) FILTER (WHERE den AND NOT ex AND num) AS num${keys ? `, ${keys.cellSums}` : ''}
            FROM f GROUP BY ${columns})
      SELECT grouping(structure) AS g_structure, grouping(band) AS g_band, grouping(sex) AS g_sex, structure, band, sex,
        ${extra.map((s) => `grouping(b_${s}) AS g_${s}, CASE WHEN b_${s} THEN 'yes' WHEN NOT b_${s} THEN 'no' ELSE 'unknown' END AS s_${s},`).join(' ')}
        sum(ip) AS ip, sum(den) AS den, sum(ex) AS ex, sum(num) AS num${keys ? `, ${keys.rollUp}` : ''}
      FROM c GROUP BY GROUPING SETS ((), (structure), (band), (sex)${extra.map((s) => `, (b_${s})`).join('')})`;
    const res = await db.query<{
      [k: `g_${string}` | `s_${string}`]: number | string | null;
      g_structure: number;
      g_band: number;
      g_sex: number;
      structure: string | null;
      band: string;
      sex: string;
      ip: string;
      den: string;
      ex: string;
      num: string;
      k_ip?: number;
      k_den?: number;
      k_ex?: number;
      k_num?: number;
    }>(sql, params.values);
    let total: Counts = { initialPopulation: 0, denominator: 0, exclusion: 0, numerator: 0 };
    const strata: MeasureCounts['strata'] = { structure: [], 'age-band': [], sex: [], ald: [], age70: [], c2s: [] };
    for (const row of res.rows) {
      const exact: Counts = {
        initialPopulation: Number(row.ip),
        denominator: Number(row.den),
        exclusion: Number(row.ex),
        numerator: Number(row.num),
      };
      const counts = keys
        ? perturb(exact, {
            initialPopulation: Number(row.k_ip),
            denominator: Number(row.k_den),
            exclusion: Number(row.k_ex),
            numerator: Number(row.k_num),
          })
        : exact;
      const optional = extra.find((s) => !row[`g_${s}`]);
      if (optional) {
        strata[optional].push({ key: String(row[`s_${optional}`]), ...counts });
      } else if (row.g_structure && row.g_band && row.g_sex) {
        total = counts;
      } else if (!row.g_structure) {
        strata.structure.push({ key: row.structure ?? 'unknown', ...counts });
      } else if (!row.g_band) {
        strata['age-band'].push({ key: row.band, ...counts });
      } else {
        strata.sex.push({ key: row.sex, ...counts });
      }
    }
    strata['age-band'].sort((a, b) => bandOrder(a.key) - bandOrder(b.key));
    strata.structure.sort((a, b) => a.key.localeCompare(b.key));
    strata.sex.sort((a, b) => a.key.localeCompare(b.key));
    for (const s of extra) strata[s].sort((a, b) => b.key.localeCompare(a.key)); // yes, no, unknown
    const recall = opts.recallFor ? await this.recall(db, m, ctes, params, ctx) : undefined;
    return { measure: m, population, total, strata, recall, perturbed: !!keys, ms: Date.now() - started };
  }

  /**
   * One row per person of the denominator, not excluded, not in the numerator (f has a row per
   * event on an event basis, so the persons are grouped), with the records ev_person kept for the
   * list and the latest evidence. Persons without a listable record (none filed by recallFor) drop out.
   */
  private async recall(
    db: PoolClient,
    m: CompiledMeasure,
    ctes: string,
    params: SqlParams,
    ctx: CompileContext,
  ): Promise<RecallEntry[]> {
    const kinds = evidenceKinds(m.numerator);
    const latest =
      kinds.length > 0
        ? latestFactSql(kinds, 'g.person', ctx)
        : 'SELECT NULL::int AS kind, NULL AS resource_type, NULL AS id, NULL AS system, NULL AS code, NULL::timestamptz AS at';
    const res = await db.query<{
      records: string[];
      events: string;
      kind: number | null;
      resource_type: string | null;
      id: string | null;
      system: string | null;
      code: string | null;
      at: Date | null;
    }>(
      `${ctes}, g AS (SELECT person, count(*) AS events FROM f WHERE den AND NOT ex AND NOT num GROUP BY person)
       SELECT e.records, g.events, ev.kind, ev.resource_type, ev.id, ev.system, ev.code, ev.at
       FROM g JOIN ev_person e ON e.person = g.person LEFT JOIN LATERAL (${latest}) ev ON true
       WHERE cardinality(e.records) > 0 ORDER BY e.records[1]`,
      params.values,
    );
    return res.rows.map((r) => {
      const [patientId, ...otherRecords] = r.records as [string, ...string[]];
      const kind = r.kind === null ? undefined : kinds[r.kind];
      return {
        patientId,
        otherRecords,
        events: Number(r.events),
        ...(kind && r.resource_type && r.id && r.code
          ? {
              evidence: {
                kind,
                reference: `${r.resource_type}/${r.id}`,
                system: r.system,
                code: r.code,
                at: r.at ? r.at.toISOString() : null,
              },
            }
          : {}),
      };
    });
  }

  /**
   * The cell-key columns of the aggregate: per count, the sum of its persons' record keys plus the
   * table's key (a keyed hash of the measure and the period), modulo CELL_KEY_MODULUS. The table
   * key makes the noise of an unchanged cell differ between two periods, so a difference of exactly
   * 0 does not tell that nobody changed; repeating the same query still gives the same figures.
   * The record keys of the persons counted are summed per cell (`cellSums`, over f), then per row
   * of the report with the table's key (`rollUp`, over the cells).
   */
  private async cellKeySql(
    db: PoolClient,
    m: CompiledMeasure,
    period: Period,
  ): Promise<{ cellSums: string; rollUp: string }> {
    const res = await db.query<{ k: number }>(
      `SELECT (hashtextextended($1 || secret, 0) & ${CELL_KEY_MODULUS - 1})::int AS k FROM ind_cell_key`,
      [`${m.id}|${period.start}|${period.end}`],
    );
    const table = res.rows[0]?.k ?? 0;
    const counts = { ip: 'true', den: 'den', ex: 'den AND ex', num: 'den AND NOT ex AND num' };
    return {
      cellSums: Object.entries(counts)
        .map(([k, filter]) => `sum(rkey) FILTER (WHERE ${filter}) AS r_${k}`)
        .join(', '),
      rollUp: Object.keys(counts)
        .map((k) => `((coalesce(sum(r_${k}), 0) + ${table}) % ${CELL_KEY_MODULUS})::int AS k_${k}`)
        .join(', '),
    };
  }

  /**
   * The part of the CIS/CIP → ATC map the catalogue's ATC codes and classes select, read once per
   * evaluation (a few rows per code: the map lists each presentation once per ATC it belongs to).
   */
  private async drugMap(db: PoolClient): Promise<DrugCodes> {
    const { exact, prefixes } = this.catalogue.atcCodes();
    const res = await db.query<{ atc: string; code: string }>(
      `SELECT atc, code FROM ind_drug_atc WHERE atc = ANY($1::text[]) OR atc LIKE ANY($2::text[])`,
      [exact, prefixes.map((p) => `${escapeLike(p)}%`)],
    );
    return (codes, classes) => [
      ...new Set(
        res.rows.filter((r) => codes.includes(r.atc) || classes.some((c) => r.atc.startsWith(c))).map((r) => r.code),
      ),
    ];
  }

  /** Period placeholders are bound on first use: PostgreSQL rejects a parameter the statement never mentions. */
  private context(params: SqlParams, opts: EvaluateOptions, row: string, drugCodes: DrugCodes): CompileContext {
    const period = opts.period;
    let start: string | undefined;
    let end: string | undefined;
    let owners: string | undefined;
    let refDate: string | undefined;
    return {
      params,
      resolve: this.catalogue.resolve,
      drugCodes,
      get periodStart() {
        return (start ??= params.bind(`${period.start}T00:00:00Z`));
      },
      get periodEnd() {
        return (end ??= params.bind(`${nextDay(period.end)}T00:00:00Z`));
      },
      get referenceDate() {
        return (refDate ??= params.bind(period.end));
      },
      get factOwners() {
        return opts.factOwners ? (owners ??= params.bind(opts.factOwners)) : undefined;
      },
      row,
    };
  }
}

/**
 * The practitioners a médecin traitant declaration naming them does not count for (inactive or
 * fictitious), as references. A few rows, hashed once and probed per record: a join to the whole
 * practitioner table was planned as a sort of the million records by GP and a merge.
 */
const NOT_COUNTED_GPS = `SELECT 'Practitioner/' || pr.id FROM ind_practitioner pr
  WHERE NOT coalesce(pr.active, true) OR coalesce(pr.fictitious, false)`;
const FICTITIOUS_GPS = `SELECT 'Practitioner/' || pr.id FROM ind_practitioner pr WHERE pr.fictitious`;

/** A person's record key: a keyed hash of the person key (the secret never leaves the database). */
const RECORD_KEY = `(hashtextextended(x.person || (SELECT secret FROM ind_cell_key), 0) & ${CELL_KEY_MODULUS - 1})::int`;

/** One measure's SQL over ev_person (see {@link measureSql}). */
export interface MeasureSql {
  /** The rows counted (persons, or events joined to their person) within the denominator population. */
  rows: string;
  ip: string;
  den: string;
  ex: string;
  num: string;
}

/**
 * One measure's SQL over ev_person: the rows it counts within its denominator population and its
 * population criteria compiled. The counts and the care gaps both build on it, so a person is
 * counted in one exactly as in the other.
 */
export function measureSql(
  m: CompiledMeasure,
  population: DenominatorPopulation,
  ctx: CompileContext,
  withPatientele: boolean,
): MeasureSql {
  // A past patientèle (FMT) is the MT population of the Measures that ask for it; the others keep
  // today's médecin traitant and today's scope (cur).
  // ev_ref: the persons of ev_person in that patientèle (mt_ref), built with it.
  const [persons, pop] =
    population === 'mt' && m.patienteleDate
      ? ['ev_ref', 'true']
      : [
          'ev_person',
          `${population === 'mt' ? `e.mt = 'active'` : population === 'file-active' ? 'e.seen' : 'true'}${withPatientele ? ' AND e.cur' : ''}`,
        ];
  const rows =
    m.basis === 'event'
      ? `SELECT e.*, ev.event_id, ev.at_end FROM (${eventSource(m.event!, ctx)}) ev JOIN ${persons} e ON e.person = ev.person WHERE ${pop}`
      : `SELECT e.* FROM ${persons} e WHERE ${pop}`;
  const ip = compileCriterion(m.initialPopulation, ctx);
  // Rows are already in the initial population: a denominator that repeats it is true (most do).
  const den =
    JSON.stringify(m.denominator) === JSON.stringify(m.initialPopulation)
      ? 'true'
      : compileCriterion(m.denominator, ctx);
  const ex = m.exclusion ? compileCriterion(m.exclusion, ctx) : 'false';
  const num = compileCriterion(m.numerator, ctx);
  return { rows, ip, den, ex, num };
}

/**
 * The person's records a recall list may show, smallest id first: those in scope (the grouped
 * rows), of the organization the list is for ('*': any).
 */
function recordsSql(recallFor: string, params: SqlParams): string {
  const owner = recallFor === '*' ? '' : ` FILTER (WHERE p.owner_org = ${params.bind(recallFor)})`;
  return `coalesce(array_agg(p.id ORDER BY p.id)${owner}, '{}')`;
}

/**
 * The organizations where a GP (a bound `Practitioner/<id>`) holds an active PractitionerRole on
 * `day` (a bound date) that the gateway stands behind — an operator vouched for it, or the GP is the
 * organization's own practitioner (it owns the Practitioner resource): only a médecin-traitant
 * declaration filed by one of them counts for that GP (docs/indicators.md, "Whose declaration
 * counts"). Uncorrelated: computed once per statement (the owner an InitPlan by primary key), a
 * hashed semi-join on the periods' or records' organization.
 */
function verifiedOrganizations(gp: string, day: string): string {
  return `SELECT r.organization FROM ind_practitioner_role r
    WHERE r.practitioner = ${gp} AND r.active
      AND (r.started IS NULL OR r.started <= ${day}::date) AND (r.ended IS NULL OR r.ended >= ${day}::date)
      AND (r.vouched OR r.organization = (SELECT pr.owner_org FROM ind_practitioner pr WHERE pr.id = substring(${gp} FROM 14)))`;
}

/**
 * Today's médecin traitant is this GP, declared by a record of an organization where the GP works
 * on `day` (a bound date, the period's end).
 */
function verifiedGp(gp: string, day: string): string {
  return `(p.gp = ${gp} AND p.owner_org IN (${verifiedOrganizations(gp, day)}))`;
}

/** The records in scope; `end` (YYYY-MM-DD): the period's last day, when a GP's declarations are verified. */
function scopeWhere(scope: Scope, params: SqlParams, end: string): string {
  switch (scope.kind) {
    case 'organization':
      return `p.owner_org = ${params.bind(`Organization/${scope.id}`)}`;
    case 'cpts': {
      const id = params.bind(scope.id);
      return `(p.owner_org = 'Organization/' || ${id} OR p.owner_org IN (SELECT 'Organization/' || o.id FROM ind_organization o WHERE o.part_of = ${id}))`;
    }
    case 'practitioner': {
      const gp = verifiedGp(params.bind(`Practitioner/${scope.id}`), params.bind(end));
      return scope.within ? `${gp} AND ${scopeWhere(scope.within, params, end)}` : gp;
    }
    case 'group':
      return `p.id = ANY(${params.bind(scope.patientIds)}::text[])`;
    case 'patient':
      return `p.person_key = (SELECT person_key FROM ind_patient WHERE id = ${params.bind(scope.id)})`;
    case 'all':
      return 'true';
  }
}

/**
 * A column of an optional stratifier, as a boolean: yes / no, null for `unknown` (age70 without a
 * birth date). ALD and C2S as at the period's end, like the `ald` / `c2s` criteria.
 */
function optionalStratum(s: (typeof OPTIONAL_STRATIFIERS)[number], ctx: CompileContext): string {
  switch (s) {
    case 'age70':
      return '(r.age >= 70)';
    case 'ald':
    case 'c2s':
      return `coalesce(r.person IN (${coveragePersons(s, undefined, ctx)}), false)`;
  }
}

/**
 * The FMT patientèle: the persons whose médecin traitant (ind_mt_period, any source) on 31 December
 * of the year before the period's end year was a (non-fictitious) GP — for a GP's scope, that GP,
 * whose scope then also takes in the records they were MT of on that day (`current` tells today's).
 * A GP's periods count only when verified on that day: filed by an organization where the GP then
 * held an active PractitionerRole (today's MT: on the period's end). Reproducible for a past date:
 * periods are kept, never overwritten.
 */
function patienteleSql(opts: EvaluateOptions, params: SqlParams): { persons: string; scope: string; current: string } {
  const day = params.bind(`${Number(opts.period.end.slice(0, 4)) - 1}-12-31`);
  const held = `m.started <= ${day}::date AND (m.ended IS NULL OR m.ended >= ${day}::date)`;
  const scope = opts.scope;
  if (scope.kind === 'practitioner') {
    const gp = params.bind(`Practitioner/${scope.id}`);
    const end = params.bind(opts.period.end);
    const within = scope.within ? ` AND ${scopeWhere(scope.within, params, opts.period.end)}` : '';
    const verified = `${held} AND m.owner_org IN (${verifiedOrganizations(gp, day)})`;
    return {
      persons: `SELECT m.person FROM ind_mt_period m WHERE m.practitioner = ${gp} AND ${verified}`,
      scope: `(${verifiedGp(gp, end)} OR p.id IN (SELECT m.patient FROM ind_mt_period m WHERE m.practitioner = ${gp} AND ${verified}))${within}`,
      current: `bool_or(${verifiedGp(gp, end)})`,
    };
  }
  return {
    persons: `SELECT m.person FROM ind_mt_period m
      WHERE ${held} AND NOT coalesce(m.practitioner IN (${FICTITIOUS_GPS}), false)`,
    scope: scopeWhere(scope, params, opts.period.end),
    current: 'true',
  };
}

function nextDay(day: string): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function bandOrder(band: string): number {
  const i = (AGE_BANDS as readonly string[]).indexOf(band);
  return i === -1 ? AGE_BANDS.length : i;
}
