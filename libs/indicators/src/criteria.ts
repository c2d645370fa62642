import { z } from 'zod';
import { ATC_SYSTEMS, BDPM_SYSTEMS } from './fmt-projection.schema';

/**
 * The criteria language of the indicator catalogue: JSON carried by each Measure population's
 * `criteria.expression` (language {@link CRITERIA_LANGUAGE}). Every atom compiles to SQL over the
 * indicator projection (ind_person for the evaluated persons, ind_fact for coded facts), so a new
 * indicator is a new JSON file, never new TypeScript.
 *
 * Person basis: a criterion is true or false of a person (a patient counted once across practices).
 * Event basis (Measure populationBasis = Encounter): the population is a set of events (for example
 * hospital discharges); `event` selects them, `followedBy` looks for what happened after each.
 */
export const CRITERIA_LANGUAGE = 'application/x-gw-criteria+json';

/**
 * Where a fact must fall: the measurement period, N years/months back from its end, ever (up to its
 * end), or while the person was aged `min`..`max` whole months (up to the period's end).
 */
const windowSchema = z.union([
  z.literal('period'),
  z.literal('ever'),
  z.strictObject({ years: z.number().int().min(1).max(20) }),
  z.strictObject({ months: z.number().int().min(1).max(240) }),
  z.strictObject({
    ageMonths: z
      .strictObject({ min: z.number().int().min(0).max(1560), max: z.number().int().min(0).max(1560) })
      .refine((a) => a.min <= a.max, { message: 'ageMonths.min must not exceed ageMonths.max' }),
  }),
]);
export type Window = z.infer<typeof windowSchema>;

export const FACT_TYPES = [
  'Observation',
  'Immunization',
  'Procedure',
  'Condition',
  'MedicationRequest',
  'MedicationStatement',
  'MedicationDispense',
  'Encounter',
  'Task',
] as const;
export type FactType = (typeof FACT_TYPES)[number];

const factSchema = z.strictObject({
  resource: z.enum(FACT_TYPES),
  /** Canonical URL of a ValueSet of the catalogue. */
  valueSet: z.string().url(),
  /** Statuses that count (default per type: final/amended/corrected, completed, active, finished…). */
  status: z.array(z.string().min(1)).optional(),
  window: windowSchema.default('period'),
  /** At least this many distinct facts (e.g. two HbA1c assays). */
  min: z.number().int().min(1).max(100).default(1),
});
export type FactCriterion = z.infer<typeof factSchema>;

export type Criterion =
  | { all: Criterion[] }
  | { any: Criterion[] }
  | { not: Criterion }
  | { age: { min?: number; max?: number; unit?: 'years' | 'months' } }
  | { ald: { numbers?: string[] } }
  | { c2s: Record<string, never> }
  | { sex: 'male' | 'female' | 'other' | 'unknown' }
  | { mt: 'active' | 'inactive' | 'none' }
  | { has: FactCriterion }
  | { event: FactCriterion }
  | {
      followedBy: {
        resource: FactType;
        valueSet: string;
        status?: string[];
        days: number;
        relation: 'focus' | 'same-patient';
      };
    };

const followedBySchema = z.strictObject({
  resource: z.enum(FACT_TYPES),
  valueSet: z.string().url(),
  status: z.array(z.string().min(1)).optional(),
  days: z.number().int().min(0).max(365),
  /** focus: a fact whose focus/context is the event (a Task about the stay); same-patient: any fact of the person after the event's end. */
  relation: z.enum(['focus', 'same-patient']),
});

/** Leaf criteria: one key, its value checked by a schema. */
const LEAVES: Record<string, z.ZodType> = {
  age: z
    .strictObject({
      min: z.number().int().min(0).max(1560).optional(),
      max: z.number().int().min(0).max(1560).optional(),
      unit: z.enum(['years', 'months']).optional(),
    })
    .refine((a) => a.unit === 'months' || ((a.min ?? 0) <= 130 && (a.max ?? 0) <= 130), {
      message: 'an age in years is at most 130',
    }),
  /** An ALD exemption in force at the end of the period (optionally one of these ALD numbers). */
  ald: z.strictObject({
    numbers: z
      .array(z.string().regex(/^\d{1,2}$/))
      .min(1)
      .optional(),
  }),
  /** A C2S coverage in force at the end of the period. */
  c2s: z.strictObject({}),
  sex: z.enum(['male', 'female', 'other', 'unknown']),
  mt: z.enum(['active', 'inactive', 'none']),
  has: factSchema,
  event: factSchema,
  followedBy: followedBySchema,
};

export class CriteriaError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${message} at ${path || '(root)'}`);
  }
}

/** Checks a criterion read from JSON; errors name the path of the offending node (e.g. `all.0.age.min`). */
export function parseCriterion(v: unknown, path = ''): Criterion {
  const at = (k: string | number): string => (path ? `${path}.${k}` : String(k));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new CriteriaError('expected an object with one key', path);
  }
  const keys = Object.keys(v);
  if (keys.length !== 1) {
    throw new CriteriaError(
      `expected exactly one key (all, any, not, ${Object.keys(LEAVES).join(', ')}), got ${keys.join(', ') || 'none'}`,
      path,
    );
  }
  const key = keys[0] as string;
  const value = (v as Record<string, unknown>)[key];
  if (key === 'all' || key === 'any') {
    if (!Array.isArray(value) || value.length === 0) {
      throw new CriteriaError(`${key} needs a non-empty array`, at(key));
    }
    return { [key]: value.map((x, i) => parseCriterion(x, at(`${key}.${i}`))) } as Criterion;
  }
  if (key === 'not') {
    return { not: parseCriterion(value, at('not')) };
  }
  const schema = LEAVES[key];
  if (!schema) {
    throw new CriteriaError(`unknown criterion "${key}"`, path);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CriteriaError(issue?.message ?? 'invalid', [at(key), ...(issue?.path ?? []).map(String)].join('.'));
  }
  return { [key]: parsed.data } as Criterion;
}

/** Statuses that make a fact count when a criterion does not list its own. */
export const DEFAULT_STATUSES: Record<FactType, string[]> = {
  Observation: ['final', 'amended', 'corrected'],
  Immunization: ['completed'],
  Procedure: ['completed'],
  Condition: ['active', 'recurrence', 'relapse'],
  MedicationRequest: ['active', 'completed'],
  MedicationStatement: ['active', 'completed'],
  MedicationDispense: ['completed'],
  Encounter: ['finished'],
  Task: ['completed'],
};

/** One code of a value set: exact, or every code under a prefix (hierarchical ATC / CIM-10 / CCAM "is-a"). */
export interface CodeMatch {
  system: string;
  code: string;
  prefix: boolean;
}

/** Resolves a ValueSet canonical URL to its codes (the catalogue's ValueSets). */
export type ValueSetResolver = (url: string) => CodeMatch[];

/** Collects parameter values and hands out `$n` placeholders. */
export class SqlParams {
  readonly values: unknown[] = [];

  bind(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/** The SQL shapes the compiler writes into; the evaluator provides the tables they name. */
export interface CompileContext {
  params: SqlParams;
  resolve: ValueSetResolver;
  /** Placeholders holding the measurement period bounds (timestamptz; periodEnd is exclusive: the day after the last). */
  periodStart: string;
  periodEnd: string;
  /** Placeholder holding the period's last day (date): the reference date of ALD, C2S and ages. */
  referenceDate: string;
  /** Alias of the evaluated row: a person (`person`, `age`, `birth_date`, `sex`, `mt` columns) or an event (`event_id`, `at_end`, `person`, the person's columns). */
  row: string;
  /**
   * Placeholder of a text[] of the organizations whose facts may be read (`Organization/<id>`), or
   * undefined for every fact: the one place an evaluation is narrowed to what its caller may read.
   */
  factOwners?: string;
  /**
   * Set when the evaluated persons are few (one GP's or one structure's care gaps): fact criteria
   * are then probed per row on the person's index (see factExists) instead of reading every
   * matching fact of the database once.
   */
  persons?: string;
  /**
   * The CIS/CIP codes the map (ind_drug_atc) puts under ATC codes (exact) or classes (prefixes), read
   * once per evaluation: bound as a constant array, PostgreSQL estimates `code = ANY(…)` from the
   * codes themselves and probes ind_fact (code, at). Absent: the map is read by a subquery, whose
   * array PostgreSQL cannot see when planning (it then reads every fact of the type).
   */
  drugCodes?: (exact: string[], prefixes: string[]) => string[];
}

/** ` AND <alias>.owner_org = ANY(…)` when the evaluation may read only some organizations' facts. */
function ownerWhere(alias: string, ctx: CompileContext): string {
  const owners = ctx.factOwners;
  return owners ? ` AND ${alias}.owner_org = ANY(${owners}::text[])` : '';
}

/** Compiles a person- or event-level criterion to a SQL boolean expression over `ctx.row`. */
export function compileCriterion(c: Criterion, ctx: CompileContext): string {
  if ('all' in c) {
    return `(${c.all.map((x) => compileCriterion(x, ctx)).join(' AND ')})`;
  }
  if ('any' in c) {
    return `(${c.any.map((x) => compileCriterion(x, ctx)).join(' OR ')})`;
  }
  if ('not' in c) {
    return `(NOT ${compileCriterion(c.not, ctx)})`;
  }
  if ('age' in c) {
    const age = c.age.unit === 'months' ? ageInMonths(`${ctx.row}.birth_date`, ctx) : `${ctx.row}.age`;
    const parts: string[] = [];
    if (c.age.min !== undefined) {
      parts.push(`${age} >= ${ctx.params.bind(c.age.min)}::int`);
    }
    if (c.age.max !== undefined) {
      parts.push(`${age} <= ${ctx.params.bind(c.age.max)}::int`);
    }
    return parts.length > 0 ? `(${parts.join(' AND ')})` : 'true';
  }
  if ('ald' in c) {
    return coverageCriterion('ald', c.ald.numbers, ctx);
  }
  if ('c2s' in c) {
    return coverageCriterion('c2s', undefined, ctx);
  }
  if ('sex' in c) {
    return `(${ctx.row}.sex = ${ctx.params.bind(c.sex)})`;
  }
  if ('mt' in c) {
    return `(${ctx.row}.mt = ${ctx.params.bind(c.mt)})`;
  }
  if ('has' in c) {
    return ctx.persons ? factExists(c.has, ctx) : `(${ctx.row}.person IN (${factPersons(c.has, ctx)}))`;
  }
  if ('event' in c) {
    // Events are selected when the event table is built (see eventSource); as a criterion on an event row it always holds.
    return 'true';
  }
  return followedBy(c.followedBy, ctx);
}

/**
 * Whole months between a birth date and the reference date, by arithmetic on the fields (age()
 * costs seconds at a million persons): a month is complete once its day of the month is reached.
 */
function ageInMonths(birthDate: string, ctx: CompileContext): string {
  const d = `${ctx.referenceDate}::date`;
  return `((date_part('year', ${d})::int * 12 + date_part('month', ${d})::int) - (date_part('year', ${birthDate})::int * 12 + date_part('month', ${birthDate})::int) - CASE WHEN date_part('day', ${birthDate})::int > date_part('day', ${d})::int THEN 1 ELSE 0 END)`;
}

/** `SELECT person` of the persons with an ALD exemption / a C2S coverage in force on the reference date. */
export function coveragePersons(kind: 'ald' | 'c2s', numbers: string[] | undefined, ctx: CompileContext): string {
  return `SELECT c.person FROM ind_coverage c WHERE ${coverageWhere(kind, numbers, ctx)}`;
}

function coverageWhere(kind: 'ald' | 'c2s', numbers: string[] | undefined, ctx: CompileContext): string {
  const d = `${ctx.referenceDate}::date`;
  const codes = numbers ? ` AND c.code = ANY(${ctx.params.bind(numbers)}::text[])` : '';
  return `c.kind = ${ctx.params.bind(kind)}${codes}
    AND (c.started IS NULL OR c.started <= ${d}) AND (c.ended IS NULL OR c.ended >= ${d})${ownerWhere('c', ctx)}`;
}

/**
 * The row's person has an ALD exemption / a C2S coverage in force. For a few evaluated persons
 * (ctx.persons) a probe of their own coverages on the (person, kind) index; otherwise the persons
 * with one, read once and hashed: the hashed form for a GP's list read every structure's ALD
 * coverages of a million persons (70 ms of a GP's care gaps for each Measure naming an ALD).
 */
function coverageCriterion(kind: 'ald' | 'c2s', numbers: string[] | undefined, ctx: CompileContext): string {
  return ctx.persons
    ? `EXISTS (SELECT 1 FROM ind_coverage c WHERE c.person = ${ctx.row}.person AND ${coverageWhere(kind, numbers, ctx)} OFFSET 0)`
    : `(${ctx.row}.person IN (${coveragePersons(kind, numbers, ctx)}))`;
}

/** `SELECT person` of the persons with at least `min` matching facts in the window. */
export function factPersons(f: FactCriterion, ctx: CompileContext): string {
  const where = factWhere('f', f.resource, f.valueSet, f.status, f.window, ctx, 'scan');
  const having = f.min > 1 ? ` GROUP BY f.person HAVING count(DISTINCT f.id) >= ${ctx.params.bind(f.min)}::int` : '';
  if (typeof f.window === 'object' && 'ageMonths' in f.window) {
    // The person's birth date is in the evaluated persons' table (ev_person, one row per person).
    const { min, max } = f.window.ageMonths;
    const within = `f.at >= b.birth_date + make_interval(months => ${ctx.params.bind(min)}::int) AND f.at < b.birth_date + make_interval(months => ${ctx.params.bind(max + 1)}::int)`;
    return `SELECT f.person FROM ind_fact f JOIN ev_person b ON b.person = f.person WHERE ${where} AND ${within}${having}`;
  }
  return `SELECT f.person FROM ind_fact f WHERE ${where}${having}`;
}

/**
 * The correlated form of {@link factPersons} for a small set of evaluated persons (ctx.persons):
 * the row's person's facts probed on the (person, code, at) index, instead of every matching fact
 * of the database read once and hashed (a million persons' flu shots for one GP's list).
 */
function factExists(f: FactCriterion, ctx: CompileContext): string {
  const where = factWhere('f', f.resource, f.valueSet, f.status, f.window, ctx, 'probe');
  let within = '';
  if (typeof f.window === 'object' && 'ageMonths' in f.window) {
    const { min, max } = f.window.ageMonths;
    within = ` AND f.at >= ${ctx.row}.birth_date + make_interval(months => ${ctx.params.bind(min)}::int) AND f.at < ${ctx.row}.birth_date + make_interval(months => ${ctx.params.bind(max + 1)}::int)`;
  }
  const facts = `FROM ind_fact f WHERE f.person = ${ctx.row}.person AND ${where}${within}`;
  // OFFSET 0 keeps the EXISTS a per-person probe of ind_fact (person, code, at): without it the
  // planner may turn it into a semi-join that scans every fact of the type in the database (a
  // million persons' prescriptions for one GP's list of a thousand).
  return f.min > 1
    ? `((SELECT count(DISTINCT f.id) ${facts}) >= ${ctx.params.bind(f.min)}::int)`
    : `EXISTS (SELECT 1 ${facts} OFFSET 0)`;
}

/** The events of an event-basis measure: `(event_id, person, at_end)` of the matching facts ending in the window. */
export function eventSource(f: FactCriterion, ctx: CompileContext): string {
  const codes = codeWhere('f', f.valueSet, ctx, ctx.persons ? 'probe' : 'scan');
  const statuses = ctx.params.bind(f.status ?? DEFAULT_STATUSES[f.resource]);
  const end = 'coalesce(f.at_end, f.at)';
  return `SELECT DISTINCT f.resource_type || '/' || f.id AS event_id, f.person, ${end} AS at_end
    FROM ind_fact f
    WHERE f.resource_type = ${ctx.params.bind(f.resource)} AND ${codes} AND f.status = ANY(${statuses}::text[])
      AND ${windowWhere(end, f.window, ctx)}${ownerWhere('f', ctx)}${
        // A few evaluated persons (care gaps): their events only, by the person index.
        ctx.persons ? ` AND f.person = ANY(ARRAY(SELECT person FROM ${ctx.persons}))` : ''
      }`;
}

function followedBy(f: Extract<Criterion, { followedBy: unknown }>['followedBy'], ctx: CompileContext): string {
  const statuses = ctx.params.bind(f.status ?? DEFAULT_STATUSES[f.resource]);
  const days = ctx.params.bind(f.days);
  const base = `f.resource_type = ${ctx.params.bind(f.resource)} AND ${codeWhere('f', f.valueSet, ctx, ctx.persons ? 'probe' : 'scan')} AND f.status = ANY(${statuses}::text[])${ownerWhere('f', ctx)}`;
  const within = `f.at >= ${ctx.row}.at_end AND f.at <= ${ctx.row}.at_end + make_interval(days => ${days}::int)`;
  if (f.relation === 'focus') {
    return `EXISTS (SELECT 1 FROM ind_fact f WHERE f.context = ${ctx.row}.event_id AND ${base} AND ${within})`;
  }
  return `EXISTS (SELECT 1 FROM ind_fact f WHERE f.person = ${ctx.row}.person AND ${base} AND ${within})`;
}

function factWhere(
  alias: string,
  resource: FactType,
  valueSet: string,
  status: string[] | undefined,
  window: Window,
  ctx: CompileContext,
  use: CodeUse,
): string {
  const statuses = ctx.params.bind(status ?? DEFAULT_STATUSES[resource]);
  return `${alias}.resource_type = ${ctx.params.bind(resource)} AND ${codeWhere(alias, valueSet, ctx, use)} AND ${alias}.status = ANY(${statuses}::text[]) AND ${windowWhere(`${alias}.at`, window, ctx)}${ownerWhere(alias, ctx)}`;
}

/**
 * How a code condition is used: `scan`, by a set-based scan of the facts of the whole evaluation
 * (its conditions should be index conditions on ind_fact (code, at)); `probe`, on the facts of
 * one person (or event) already found by their index, where it is a filter evaluated per fact.
 */
type CodeUse = 'scan' | 'probe';

/**
 * Exact codes as one `= ANY` (index-friendly) checked against their system, prefixes by
 * {@link prefixWhere}. ATC codes also match the drugs coded only in CIS/CIP that the map
 * ind_drug_atc puts under them (a dispensation coded by its CIP13 counts for an ATC class).
 */
function codeWhere(alias: string, valueSet: string, ctx: CompileContext, use: CodeUse): string {
  const codes = ctx.resolve(valueSet);
  if (codes.length === 0) {
    throw new Error(`ValueSet ${valueSet} has no codes`);
  }
  const exact = codes.filter((c) => !c.prefix);
  const parts: string[] = [];
  const atc = codes.filter((c) => ATC_SYSTEMS.includes(c.system));
  if (atc.length > 0) {
    parts.push(drugMapWhere(alias, atc, ctx));
  }
  if (exact.length > 0) {
    parts.push(
      `(${alias}.code = ANY(${ctx.params.bind(exact.map((c) => c.code))}::text[]) AND (${alias}.system, ${alias}.code) IN (SELECT * FROM unnest(${ctx.params.bind(exact.map((c) => c.system))}::text[], ${ctx.params.bind(exact.map((c) => c.code))}::text[])))`,
    );
  }
  parts.push(
    ...prefixWhere(
      alias,
      codes.filter((c) => c.prefix),
      ctx,
      use,
    ),
  );
  return `(${parts.join(' OR ')})`;
}

/**
 * Prefix codes, grouped: a ValueSet lists each prefix under every name of its system (catalogue
 * expand), so the systems sharing one list of prefixes are checked once, by `= ANY`.
 *
 * scan: one `code LIKE 'X%'` per distinct prefix. Under the C collation (the embedded databases)
 * PostgreSQL turns each into a range of ind_fact (code, at) and ORs the ranges (BitmapOr); under
 * another collation it stays a correct filter.
 *
 * probe: `left(code, n) = ANY('{…}')` per distinct prefix length, deliberately not an index
 * condition: the person's facts (a handful) are read by one descent of ind_fact (person, code, at)
 * and filtered by a hash lookup, instead of one index descent per prefix and system name
 * (36 for the flu "at risk" ValueSet, per person). `left` counts characters and COLLATE "C" makes
 * the comparison bytewise, as LIKE's match is: the same answer under any collation, and no LIKE
 * metacharacter to escape.
 */
function prefixWhere(alias: string, prefixes: CodeMatch[], ctx: CompileContext, use: CodeUse): string[] {
  const systemsOf = new Map<string, string[]>();
  for (const p of prefixes) {
    systemsOf.set(p.code, [...new Set([...(systemsOf.get(p.code) ?? []), p.system])]);
  }
  const groups = new Map<string, { systems: string[]; codes: string[] }>();
  for (const [code, systems] of systemsOf) {
    const key = JSON.stringify([...systems].sort());
    const group = groups.get(key) ?? { systems, codes: [] };
    group.codes.push(code);
    groups.set(key, group);
  }
  return [...groups.values()].flatMap(({ systems, codes }) => {
    const system = `${alias}.system = ANY(${ctx.params.bind(systems)}::text[])`;
    if (use === 'scan') {
      return codes.map((c) => `(${alias}.code LIKE ${ctx.params.bind(`${escapeLike(c)}%`)} AND ${system})`);
    }
    const byLength = new Map<number, string[]>();
    for (const c of codes) {
      const n = [...c].length;
      byLength.set(n, [...(byLength.get(n) ?? []), c]);
    }
    const heads = [...byLength].map(
      ([n, cs]) => `left(${alias}.code, ${n}) COLLATE "C" = ANY(${ctx.params.bind(cs)}::text[])`,
    );
    return [`(${system} AND ${heads.length > 1 ? `(${heads.join(' OR ')})` : heads[0]})`];
  });
}

function windowWhere(column: string, w: Window, ctx: CompileContext): string {
  const end = `${column} < ${ctx.periodEnd}::timestamptz`;
  if (w === 'period') {
    return `${column} >= ${ctx.periodStart}::timestamptz AND ${end}`;
  }
  if (w === 'ever' || 'ageMonths' in w) {
    // ageMonths: the age bounds are checked against the person's birth date (factPersons).
    return end;
  }
  const back =
    'years' in w
      ? `make_interval(years => ${ctx.params.bind(w.years)}::int)`
      : `make_interval(months => ${ctx.params.bind(w.months)}::int)`;
  return `${column} >= ${ctx.periodEnd}::timestamptz - ${back} AND ${end}`;
}

/** A fact coded in CIS/CIP whose code the map puts under one of the ATC codes (exact) or classes (prefix). */
function drugMapWhere(alias: string, atc: CodeMatch[], ctx: CompileContext): string {
  const exact = [...new Set(atc.filter((c) => !c.prefix).map((c) => c.code))];
  const prefixes = [...new Set(atc.filter((c) => c.prefix).map((c) => c.code))];
  const bdpm = (): string => `${alias}.system = ANY(${ctx.params.bind(BDPM_SYSTEMS)}::text[])`;
  if (ctx.drugCodes) {
    const codes = ctx.drugCodes(exact, prefixes);
    return codes.length > 0 ? `(${alias}.code = ANY(${ctx.params.bind(codes)}::text[]) AND ${bdpm()})` : 'false';
  }
  const conds = [
    ...(exact.length > 0 ? [`m.atc = ANY(${ctx.params.bind(exact)}::text[])`] : []),
    ...prefixes.map((p) => `m.atc LIKE ${ctx.params.bind(`${escapeLike(p)}%`)}`),
  ];
  // ARRAY(subquery) is computed once (an InitPlan) and `code = ANY(…)` stays an index condition on
  // ind_fact (code, at), so the other arms of the OR keep their index scans too.
  return `(${alias}.code = ANY(ARRAY(SELECT m.code FROM ind_drug_atc m WHERE ${conds.join(' OR ')})) AND ${bdpm()})`;
}

export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** A kind of fact a criterion looks for, whatever its window: what a recall list shows as evidence. */
export interface EvidenceKind {
  resource: FactType;
  valueSet: string;
  status?: string[];
}

/**
 * The facts a criterion counts (`has` and `followedBy` leaves), skipping those under `not`: a
 * person's latest such fact is the evidence a recall list shows ("last HbA1c: 2024-03-02").
 */
export function evidenceKinds(c: Criterion): EvidenceKind[] {
  if ('all' in c) {
    return c.all.flatMap(evidenceKinds);
  }
  if ('any' in c) {
    return c.any.flatMap(evidenceKinds);
  }
  if ('has' in c) {
    return [{ resource: c.has.resource, valueSet: c.has.valueSet, status: c.has.status }];
  }
  if ('followedBy' in c) {
    return [{ resource: c.followedBy.resource, valueSet: c.followedBy.valueSet, status: c.followedBy.status }];
  }
  return [];
}

/**
 * `(kind, resource_type, id, system, code, at)` of the person's latest fact of one of `kinds` before
 * the end of the period, any time before (the recall list's "last done"); `kind` indexes `kinds`.
 * Reads only the facts the evaluation may read (ctx.factOwners). For a LATERAL join on `person`.
 */
export function latestFactSql(kinds: EvidenceKind[], person: string, ctx: CompileContext): string {
  const which = kinds.map(
    (k, i) =>
      `WHEN x.resource_type = ${ctx.params.bind(k.resource)} AND ${codeWhere('x', k.valueSet, ctx, 'probe')} AND x.status = ANY(${ctx.params.bind(k.status ?? DEFAULT_STATUSES[k.resource])}::text[]) THEN ${i}`,
  );
  return `SELECT y.* FROM (
      SELECT CASE ${which.join(' ')} END AS kind, x.resource_type, x.id, x.system, x.code, x.at
      FROM ind_fact x WHERE x.person = ${person} AND x.at < ${ctx.periodEnd}::timestamptz${ownerWhere('x', ctx)}
    ) y WHERE y.kind IS NOT NULL ORDER BY y.at DESC LIMIT 1`;
}
