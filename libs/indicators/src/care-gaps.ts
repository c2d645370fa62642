import type { PoolClient } from 'pg';
import type { CompiledMeasure } from './catalogue';
import { SqlParams, latestFactSql } from './criteria';
import type { CompileContext, Criterion, EvidenceKind, Window } from './criteria';
import { measureSql } from './evaluator';
import type { EvaluateOptions, MeasureEvaluator, Period, Scope } from './evaluator';

/** DEQM gap status of one patient for one measure. */
export type GapStatus = 'open-gap' | 'closed-gap' | 'not-applicable';
/** The statuses a caller may ask for (`status` parameter); not-applicable is reported for one patient only. */
export const GAP_STATUSES = ['open-gap', 'closed-gap'] as const;
export type RequestedGapStatus = (typeof GAP_STATUSES)[number];

/** A kind of fact the numerator counts, with the window it counts in (undefined: relative to an event). */
export interface GapKind extends EvidenceKind {
  window?: Window;
}

/** The fact shown for an item: the person's latest of a kind the numerator counts, before the period's end. */
export interface GapEvidence {
  kind: GapKind;
  /** `Type/id` of the fact. */
  reference: string;
  system: string | null;
  code: string;
  /** The fact's date (ISO instant), or null when it has none. */
  at: string | null;
  /** Last day (YYYY-MM-DD) of a period end for which this fact still counts: its date + the window; absent: no limit or not datable. */
  validUntil?: string;
}

/** One measure for one patient. */
export interface CareGapItem {
  measure: CompiledMeasure;
  status: GapStatus;
  /** In the denominator but excluded (not-applicable for that reason). */
  excluded: boolean;
  /** In the initial population (false: the patient is not concerned by the measure at all). */
  inPopulation: boolean;
  /** Event-basis measures: the person's events in the denominator (not excluded) and how many stay open. */
  events?: { applicable: number; open: number };
  evidence?: GapEvidence;
  /** Open gaps: the first day the gap is open in this period (the period start, or the day the last fact stopped counting). */
  since?: string;
  /** Open gaps: the last day to close it in this period (the period end). */
  closesBy?: string;
}

/** One patient's items (a person's records in scope are merged: the record shown is the smallest id). */
export interface PatientGaps {
  patientId: string;
  otherRecords: string[];
  items: CareGapItem[];
}

export interface CareGapsOptions {
  period: Period;
  scope: Scope;
  /** Organization whose own patient records may be listed ('*': any). */
  listFor: string;
  /** Organizations whose records and facts may be read (undefined: all). */
  factOwners?: string[];
  /** Statuses to keep; not-applicable items are kept only when `notApplicable` is set (one patient). */
  statuses: readonly RequestedGapStatus[];
  notApplicable?: boolean;
}

/** The facts a criterion counts (`has` and `followedBy` leaves, not under `not`), with their windows. */
export function gapKinds(c: Criterion): GapKind[] {
  if ('all' in c) {
    return c.all.flatMap(gapKinds);
  }
  if ('any' in c) {
    return c.any.flatMap(gapKinds);
  }
  if ('has' in c) {
    return [{ resource: c.has.resource, valueSet: c.has.valueSet, status: c.has.status, window: c.has.window }];
  }
  if ('followedBy' in c) {
    return [{ resource: c.followedBy.resource, valueSet: c.followedBy.valueSet, status: c.followedBy.status }];
  }
  return [];
}

/**
 * Until when a fact of `window` dated `at` counts: the last period end whose window still holds
 * it. `period`: this period only; years/months back from the period's end: the date plus that
 * span less a day; `ever`: no limit (undefined). Other windows (relative to an event, or to the
 * person's age) have no date of their own here (undefined).
 */
export function validUntil(window: Window | undefined, at: string | null, period: Period): string | undefined {
  if (!at || window === undefined || window === 'ever') {
    return undefined;
  }
  if (window === 'period') {
    return period.end;
  }
  const d = new Date(`${at.slice(0, 10)}T00:00:00Z`);
  if ('years' in window && typeof window.years === 'number') {
    d.setUTCFullYear(d.getUTCFullYear() + window.years);
  } else if ('months' in window && typeof window.months === 'number') {
    d.setUTCMonth(d.getUTCMonth() + window.months);
  } else {
    return undefined;
  }
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

/** The measures in force on `day` (their effectivePeriod holds it; a Measure without one always is). */
export function measuresInForce(measures: CompiledMeasure[], day: string): CompiledMeasure[] {
  return measures.filter((m) => {
    const p = m.resource.effectivePeriod;
    return (!p?.start || p.start.slice(0, 10) <= day) && (!p?.end || p.end.slice(0, 10) >= day);
  });
}

/**
 * Care gaps in SQL: the evaluator's persons table for the subject, then one query per measure
 * giving, per person of the initial population, whether the person is applicable, excluded, open
 * or closed, with the latest evidence by a LATERAL probe of ind_fact on the person's index.
 * Only the rows a caller asked for leave PostgreSQL; nothing else is held in memory.
 */
export class CareGapsEvaluator {
  constructor(private readonly evaluator: MeasureEvaluator) {}

  async evaluate(measures: CompiledMeasure[], opts: CareGapsOptions): Promise<PatientGaps[]> {
    const evalOpts: EvaluateOptions = {
      period: opts.period,
      scope: opts.scope,
      recallFor: opts.listFor,
      factOwners: opts.factOwners,
    };
    const byPatient = new Map<string, PatientGaps>();
    await this.evaluator.withPersons(measures, evalOpts, async (db, context, withPatientele) => {
      for (const m of measures) {
        for (const row of await this.measureRows(db, m, opts, context, withPatientele)) {
          const entry = byPatient.get(row.patientId) ?? {
            patientId: row.patientId,
            otherRecords: row.otherRecords,
            items: [],
          };
          entry.items.push(row.item);
          byPatient.set(row.patientId, entry);
        }
      }
      if (opts.notApplicable) {
        await this.addNotApplicable(db, measures, byPatient, opts);
      }
    });
    return [...byPatient.values()].sort((a, b) => a.patientId.localeCompare(b.patientId));
  }

  private async measureRows(
    db: PoolClient,
    m: CompiledMeasure,
    opts: CareGapsOptions,
    context: (params: SqlParams) => CompileContext,
    withPatientele: boolean,
  ): Promise<{ patientId: string; otherRecords: string[]; item: CareGapItem }[]> {
    const params = new SqlParams();
    const ctx = context(params);
    // The same rows and populations as the counts (measureSql): a person is counted here as there.
    const { rows, ip, den, ex, num: reached } = measureSql(m, m.population, ctx, withPatientele);
    // An inverse measure (improvement "decrease": the numerator is the outcome to avoid, e.g. no
    // médecin traitant) has its gap open when the person IS in the numerator (DEQM).
    const num = m.improvement === 'decrease' ? `(NOT ${reached})` : reached;
    const kinds = gapKinds(m.numerator);
    const latest =
      kinds.length > 0
        ? latestFactSql(kinds, 'g.person', ctx)
        : 'SELECT NULL::int AS kind, NULL AS resource_type, NULL AS id, NULL AS system, NULL AS code, NULL::timestamptz AS at';
    const want = new Set(opts.statuses);
    // Which persons leave PostgreSQL: those of the asked statuses (all of the initial population for one patient).
    const keep = opts.notApplicable
      ? 'true'
      : want.has('open-gap') && want.has('closed-gap')
        ? 'g.applicable > 0'
        : want.has('open-gap')
          ? 'g.open > 0'
          : 'g.applicable > 0 AND g.open = 0';
    // The records come along with the rows (r is ev_person's), not by joining ev_person back: that
    // join, on two misestimated row counts, was planned as a nested loop comparing every pair
    // (250 000 pairs, ~10 ms for a GP's list). Persons without a listable record are dropped before
    // their criteria are evaluated.
    const sql = `WITH r AS (${rows}),
      f AS (SELECT r.person, r.records, (${den}) AS den, (${ex}) AS ex, (${num}) AS num FROM r
             WHERE cardinality(r.records) > 0 AND ${ip}),
      g AS (SELECT person, records, count(*) FILTER (WHERE den AND NOT ex) AS applicable, count(*) FILTER (WHERE den AND ex) AS excluded,
                   count(*) FILTER (WHERE den AND NOT ex AND NOT num) AS open
              FROM f GROUP BY person, records)
      SELECT g.records, g.applicable, g.excluded, g.open, ev.kind, ev.resource_type, ev.id, ev.system, ev.code, ev.at
        FROM g LEFT JOIN LATERAL (${latest}) ev ON true
       WHERE ${keep}`;
    const res = await db.query<{
      records: string[];
      applicable: string;
      excluded: string;
      open: string;
      kind: number | null;
      resource_type: string | null;
      id: string | null;
      system: string | null;
      code: string | null;
      at: Date | null;
    }>(sql, params.values);
    return res.rows.map((r) => {
      const [patientId, ...otherRecords] = r.records as [string, ...string[]];
      const applicable = Number(r.applicable);
      const open = Number(r.open);
      const kind = r.kind === null ? undefined : kinds[r.kind];
      const at = r.at ? r.at.toISOString() : null;
      const evidence: GapEvidence | undefined =
        kind && r.resource_type && r.id && r.code
          ? {
              kind,
              reference: `${r.resource_type}/${r.id}`,
              system: r.system,
              code: r.code,
              at,
              validUntil: validUntil(kind.window, at, opts.period),
            }
          : undefined;
      const status: GapStatus = applicable === 0 ? 'not-applicable' : open > 0 ? 'open-gap' : 'closed-gap';
      const item: CareGapItem = {
        measure: m,
        status,
        excluded: applicable === 0 && Number(r.excluded) > 0,
        inPopulation: true,
        ...(m.basis === 'event' ? { events: { applicable, open } } : {}),
        ...(evidence ? { evidence } : {}),
        ...(status === 'open-gap' ? { since: openSince(evidence, opts.period), closesBy: opts.period.end } : {}),
      };
      return { patientId, otherRecords, item };
    });
  }

  /** One patient: every measure the patient is not in the initial population of, as not-applicable. */
  private async addNotApplicable(
    db: PoolClient,
    measures: CompiledMeasure[],
    byPatient: Map<string, PatientGaps>,
    opts: CareGapsOptions,
  ): Promise<void> {
    if (byPatient.size === 0) {
      const res = await db.query<{ records: string[] }>(
        'SELECT records FROM ev_person WHERE cardinality(records) > 0 ORDER BY records[1]',
      );
      for (const row of res.rows) {
        const [patientId, ...otherRecords] = row.records as [string, ...string[]];
        byPatient.set(patientId, { patientId, otherRecords, items: [] });
      }
    }
    for (const entry of byPatient.values()) {
      for (const m of measures) {
        if (!entry.items.some((i) => i.measure.id === m.id)) {
          entry.items.push({ measure: m, status: 'not-applicable', excluded: false, inPopulation: false });
        }
      }
      entry.items.sort((a, b) => measures.indexOf(a.measure) - measures.indexOf(b.measure));
      entry.items = entry.items.filter(
        (i) => i.status === 'not-applicable' || opts.statuses.includes(i.status as RequestedGapStatus),
      );
    }
  }
}

/** When an open gap opened within the period: the day after the last fact stopped counting, else the period start. */
function openSince(evidence: GapEvidence | undefined, period: Period): string {
  const lapsed = evidence?.validUntil;
  if (!lapsed || lapsed >= period.end) {
    return period.start;
  }
  const d = new Date(`${lapsed}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  const day = d.toISOString().slice(0, 10);
  return day > period.start ? day : period.start;
}
