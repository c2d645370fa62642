import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Coding, List, ListEntry, MeasureReport, Resource } from '@medplum/fhirtypes';
import type { Pool } from 'pg';
import { GW } from '@gw/fhir';
import { sameSystem } from '@gw/ingest';
import { GatewayError, scopeAllows } from '@gw/platform';
import type { GatewayFeature, JobResult, Logger, QueueService } from '@gw/platform';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { actorOf } from '@gw/store';
import type { AuditLog, FhirRepository, Principal } from '@gw/store';
import { DENOMINATOR_POPULATIONS, MeasureCatalogue, isInForce } from './catalogue';
import type { CompiledMeasure, DenominatorPopulation } from './catalogue';
import { CareGapsService } from './care-gaps.service';
import { BenchmarkStore, attachBenchmarks, measureBenchmark } from './benchmarks';
import { MeasureEvaluator } from './evaluator';
import type { MeasureCounts, Period, RecallEntry, Scope } from './evaluator';
import {
  DATA_SINCE_EXTENSION,
  RECALL_EVENTS_EXTENSION,
  RECALL_EVIDENCE_EXTENSION,
  RECALL_LIST_EXTENSION,
  RECALL_OTHER_RECORD_EXTENSION,
  buildMeasureReport,
} from './report';
import { resolveScope } from './subject-scope.policy';
import { loadDrugAtc, parseMapFile } from './drug-atc.loader';
import type { DrugAtc } from './drug-atc.loader';
import type { ReportType, ScopeLookup } from './subject-scope.policy';

/** The gateway's own identity when it installs the catalogue (filed under the operator organization). */
export const INDICATORS_PRINCIPAL: Principal = {
  clientId: 'gateway-indicators',
  organization: 'Organization/gateway',
  admin: true,
  scopes: [],
};

export type { ReportType } from './subject-scope.policy';

export interface EvaluateParams {
  periodStart?: string;
  periodEnd?: string;
  reportType?: string;
  subject?: string;
  population?: string;
}

const DAY = /^(\d{4})(-(\d{2})(-(\d{2}))?)?/;

/** Identifier of a stored monthly report: `<measure id>|<subject>|<period end>` (a re-run replaces it). */
export const REPORT_RUN_SYSTEM = `${GW}/fhir/NamingSystem/measure-report-run`;
/** Options of the service beyond the small-cell threshold. */
export interface IndicatorsOptions {
  /**
   * Cell-key noise on the counts shown to non-admin callers (live population reports and the stored
   * monthly reports). Default true; false only where exact figures are the point (some tests).
   */
  noise?: boolean;
  /**
   * The shipped CIS/CIP → ATC map (fhir-profiles/drug-atc/drug-atc.tsv), added to ind_drug_atc
   * when the catalogue is installed; read (and checked) at load.
   */
  drugAtcFile?: string;
  /** Transactions evaluating a territory-wide scope's Measures side by side (MeasureEvaluator); default 2. */
  lanes?: number;
}

/** Structures that get monthly reports: CPTS (their territory) and care structures. */
const REPORTED_TYPES = ['CPTS', 'MSP', 'CDS', 'cabinet'];

/**
 * `$evaluate-measure` with the gateway's rules: who may ask for what (population reports for a
 * structure, its CPTS or a GP; recall lists only of a structure's own patients, never for a CPTS),
 * small-cell suppression, audit. The evaluation itself is {@link MeasureEvaluator}.
 */
export class IndicatorsService implements GatewayFeature {
  readonly evaluator: MeasureEvaluator;
  /** `Measure/$care-gaps` (care-gaps.service.ts). */
  readonly careGaps: CareGapsService;
  /** Published national benchmarks shown beside a territory's figure (open data, CLI loader). */
  readonly benchmarks: BenchmarkStore;
  private readonly scopeLookup: ScopeLookup;
  private readonly drugAtc: DrugAtc[];

  constructor(
    private readonly pool: Pool,
    private readonly repo: FhirRepository,
    readonly catalogue: MeasureCatalogue,
    private readonly audit: AuditLog,
    private readonly threshold: number,
    private readonly logger: Logger,
    private readonly options: IndicatorsOptions = {},
  ) {
    this.evaluator = new MeasureEvaluator(pool, catalogue, options.lanes);
    this.benchmarks = new BenchmarkStore(pool);
    const mapFile = options.drugAtcFile;
    this.drugAtc = mapFile && existsSync(mapFile) ? parseMapFile(readFileSync(mapFile, 'utf8'), mapFile) : [];
    this.scopeLookup = {
      organization: async (id) => {
        const row = (
          await this.pool.query<{ type: string | null; part_of: string | null }>(
            'SELECT type, part_of FROM ind_organization WHERE id = $1',
            [id],
          )
        ).rows[0];
        return row ? { type: row.type, partOf: row.part_of } : undefined;
      },
      read: (principal, type, id) => this.repo.read(principal, type, id),
    };
    this.careGaps = new CareGapsService(repo, catalogue, this.evaluator, audit, logger, this.scopeLookup);
  }

  static load(
    dir: string,
    pool: Pool,
    repo: FhirRepository,
    audit: AuditLog,
    threshold: number,
    logger: Logger,
    options: IndicatorsOptions = {},
  ): IndicatorsService {
    return new IndicatorsService(pool, repo, MeasureCatalogue.fromDirectory(dir), audit, threshold, logger, options);
  }

  private get noise(): boolean {
    return this.options.noise ?? true;
  }

  /** Writes the catalogue's Measures and ValueSets into the store (a new version only when a file changed). */
  async install(): Promise<{ written: number }> {
    const resources: Resource[] = [
      ...this.catalogue.valueSets.values(),
      ...[...this.catalogue.measures.values()].map((m) => m.resource),
    ];
    let written = 0;
    await loadDrugAtc(this.pool, this.drugAtc);
    for (const r of resources) {
      const stored = await this.repo.readSystem(r.resourceType, r.id as string);
      if (stored && sameContent(stored, r)) {
        continue;
      }
      await this.repo.update(r.resourceType, r.id as string, r, { principal: INDICATORS_PRINCIPAL });
      written += 1;
    }
    if (written > 0) {
      this.logger.info(
        { written, measures: this.catalogue.measures.size, valueSets: this.catalogue.valueSets.size },
        'indicator catalogue installed',
      );
    }
    return { written };
  }

  async evaluateMeasure(
    p: Principal,
    measureId: string,
    params: EvaluateParams,
    requestId?: string,
  ): Promise<MeasureReport> {
    if (!scopeAllows(p.scopes, 'Measure', 'r') && !p.admin) {
      throw new GatewayError('forbidden', { text: 'The token\'s scopes do not allow "r" on Measure' });
    }
    const measure = this.catalogue.get(measureId);
    if (!measure) {
      throw new GatewayError('not-found', { text: `Measure/${measureId} is not in the indicator catalogue` });
    }
    const period = this.periodInForce(measure, parsePeriod(params.periodStart, params.periodEnd), !params.periodEnd);
    const reportType = (params.reportType ?? 'population') as ReportType;
    if (!['population', 'subject-list', 'subject'].includes(reportType)) {
      throw new GatewayError('invalid', {
        text: `reportType must be population, subject-list or subject (got ${params.reportType})`,
        expression: 'reportType',
      });
    }
    const population = params.population as DenominatorPopulation | undefined;
    if (population !== undefined && !DENOMINATOR_POPULATIONS.includes(population)) {
      throw new GatewayError('invalid', {
        text: `population must be one of ${DENOMINATOR_POPULATIONS.join(', ')}`,
        expression: 'population',
      });
    }
    if (!p.admin && reportType === 'population') {
      checkAggregatePeriod(period);
    }
    const subject = params.subject ?? (p.admin ? undefined : p.organization);
    if (p.person && reportType !== 'population') {
      await this.checkPersonIndividualReport(p, subject);
    }
    const scope = await resolveScope(this.scopeLookup, p, subject, reportType);
    const recallFor = reportType === 'subject-list' ? (p.admin ? '*' : p.organization) : undefined;
    // What a non-admin caller's report may read: individual-level reports (one patient, a recall
    // list) and reports over a Group (a list of individuals the caller composes, down to one
    // person) use only the records and facts the caller may read. Population reports of a
    // structure, a CPTS or a GP aggregate every practice's facts, under cell-key noise.
    const individual = reportType !== 'population' || scope.kind === 'group';
    const factOwners = !p.admin && individual ? [p.organization] : undefined;
    const cellKeys = !p.admin && reportType === 'population' && this.noise;
    const { results } = await this.evaluator.evaluate([measure], {
      period,
      scope,
      population,
      recallFor,
      factOwners,
      cellKeys,
    });
    const result = results[0] as MeasureCounts;
    if (p.person && result.recall) {
      // A person's recall list names only the patients they may read now (an opposition to them,
      // a care-circle participation that ended): the list may be shorter than the counts.
      const readable = await this.repo.readableIds(
        p,
        'Patient',
        result.recall.map((r) => r.patientId),
      );
      result.recall = result.recall.filter((r) => readable.has(r.patientId));
    }
    const report = buildMeasureReport(result, {
      period,
      subject,
      type: reportType === 'population' ? 'summary' : reportType === 'subject' ? 'individual' : 'subject-list',
      threshold: this.threshold,
      structureNames: await this.structureNames(result),
    });
    if (result.recall) {
      attachRecall(report, result.recall, this.catalogue, result.measure.basis === 'event');
    }
    if (reportType === 'population') {
      await this.withBenchmarks(report, result.measure, scope, period);
    }
    const patients = [
      ...(subject?.startsWith('Patient/') ? [subject.slice('Patient/'.length)] : []),
      ...(result.recall ?? []).flatMap((r) => [r.patientId, ...r.otherRecords]),
    ];
    this.audit.record({
      ...actorOf(p),
      interaction: 'operation:evaluate-measure',
      resourceType: 'Measure',
      entity: [
        `Measure/${measureId}`,
        ...(subject ? [subject] : []),
        ...(result.recall ?? []).flatMap((r) => [r.patientId, ...r.otherRecords].map((id) => `Patient/${id}`)),
      ],
      patients: [...new Set(patients)],
      outcome: 200,
      requestId,
    });
    this.logger.info({ measure: measureId, reportType, ms: result.ms }, 'measure evaluated');
    return report;
  }

  /**
   * A Measure is evaluated only over a period whose end it is in force on (docs/indicators.md,
   * "Versions"): the default period (no periodEnd given) of a Measure no longer in force is its last
   * 12 whole months in force; an explicit period ending outside its effectivePeriod is refused (422)
   * naming the Measures in force then (its successors when the catalogue links them).
   */
  private periodInForce(measure: CompiledMeasure, period: Period, defaulted: boolean): Period {
    if (isInForce(measure, period.end)) {
      return period;
    }
    const last = measure.effective.end;
    if (defaulted && last !== undefined && last < period.end) {
      return twelveMonthsTo(lastOfMonth(last) === last ? last : lastOfPreviousMonth(last));
    }
    const instead = this.catalogue.replacements(measure, period.end).map((m) => `Measure/${m.id}`);
    throw new GatewayError('business-rule', {
      text: `Measure/${measure.id} is not in force on ${period.end} (effectivePeriod ${measure.effective.start} to ${measure.effective.end ?? 'open'}); in force on that day: ${instead.join(', ') || 'none'}`,
      expression: 'periodEnd',
    });
  }

  /**
   * Individual reports (a recall list, one patient's report) tell clinical facts of named patients:
   * a person gets them only if their profession reads clinical content (the sharing matrix) and,
   * for one patient, only for a patient they may read.
   */
  private async checkPersonIndividualReport(p: Principal, subject: string | undefined): Promise<void> {
    if (!this.repo.readsType(p, 'Observation')) {
      throw new GatewayError('forbidden', {
        text: 'Patient-level indicator reports (recall lists, one patient) show clinical facts: only professionals whose profession reads clinical content get them (the sharing matrix); population reports stay open',
      });
    }
    const patientId = subject?.startsWith('Patient/') ? subject.slice('Patient/'.length) : undefined;
    if (patientId && !(await this.repo.readableIds(p, 'Patient', [patientId])).has(patientId)) {
      throw new GatewayError('not-found', { text: `${subject} not found` });
    }
  }

  /**
   * The published figures of the Measure's benchmark (if it names one) beside the report: France's,
   * and for a CPTS those of the départements of its communes, the latest observed by the period's end.
   */
  private async withBenchmarks(
    report: MeasureReport,
    measure: CompiledMeasure,
    scope: Scope,
    period: Period,
  ): Promise<void> {
    const bench = measureBenchmark(measure.resource);
    if (!bench) return;
    const departements = scope.kind === 'cpts' ? await this.benchmarks.departementsOf(scope.id) : [];
    attachBenchmarks(report, bench, await this.benchmarks.latest(bench.indicator, departements, period.end));
  }

  private async structureNames(r: MeasureCounts): Promise<Map<string, string>> {
    const ids = r.strata.structure.map((s) => s.key.replace(/^Organization\//, ''));
    const res = await this.pool.query<{ id: string; name: string | null }>(
      'SELECT id, name FROM ind_organization WHERE id = ANY($1::text[])',
      [ids],
    );
    return new Map(res.rows.map((row) => [`Organization/${row.id}`, row.name ?? row.id]));
  }

  readonly name = 'indicators';

  register(queue: QueueService): void {
    queue.register('indicators.monthly-run', async (payload): Promise<JobResult> => {
      const r = await this.storeMonthlyReports(payload.periodEnd);
      return { status: 'success', detail: { reports: r.reports, subjects: r.subjects, ms: r.ms } };
    });
  }

  /** Monthly, on the 2nd at 04:10: the 12 months to the end of the previous month. */
  /** The monthly report run (one scheduler id: replicas upsert the same entry). */
  async start(queue: QueueService): Promise<void> {
    await queue
      .queue('indicators')
      .upsertJobScheduler('monthly-run', { pattern: '10 4 2 * *' }, { name: 'indicators.monthly-run', data: {} });
  }

  /**
   * Evaluates the whole catalogue for every CPTS and care structure over the 12 months to
   * `periodEnd` (default: end of last month) and stores the suppressed summary MeasureReports,
   * each filed under its subject organization (its clients read them; a CPTS its territory's).
   */
  async storeMonthlyReports(
    periodEnd?: string,
    today = new Date(),
  ): Promise<{ reports: number; subjects: number; period: Period; ms: number }> {
    const started = Date.now();
    const last = parsePeriod(undefined, undefined, today);
    // Snapped to the end of its month: stored reports are read by non-admin clients, whose population
    // reports cover 12 whole calendar months (checkAggregatePeriod).
    const given = periodEnd ? new Date(`${parsePeriod(periodEnd, periodEnd).end}T00:00:00Z`) : undefined;
    const end = given
      ? new Date(Date.UTC(given.getUTCFullYear(), given.getUTCMonth() + 1, 0)).toISOString().slice(0, 10)
      : last.end;
    const endDate = new Date(`${end}T00:00:00Z`);
    const start = new Date(Date.UTC(endDate.getUTCFullYear(), endDate.getUTCMonth() - 11, 1))
      .toISOString()
      .slice(0, 10);
    const period: Period = { start, end };
    const subjects = await this.pool.query<{ id: string; type: string }>(
      'SELECT id, type FROM ind_organization WHERE type = ANY($1::text[]) ORDER BY id',
      [REPORTED_TYPES],
    );
    const since = await this.dataSince();
    let reports = 0;
    for (const s of subjects.rows) {
      const subject = `Organization/${s.id}`;
      const dataSince = since.get(s.id);
      const scope: Scope = s.type === 'CPTS' ? { kind: 'cpts', id: s.id } : { kind: 'organization', id: s.id };
      // Stored reports are read by the subject's clients: perturbed like a live population report.
      // The catalogue in force on the period's end (ROSP Measures up to 2025, FMT ones from 2026).
      const { results } = await this.evaluator.evaluate(this.catalogue.inForce(period.end), {
        period,
        scope,
        cellKeys: this.noise,
      });
      for (const result of results) {
        const report = buildMeasureReport(result, {
          period,
          subject,
          type: 'summary',
          threshold: this.threshold,
          structureNames: await this.structureNames(result),
        });
        const key = `${result.measure.id}|${subject}|${end}`;
        report.identifier = [{ system: REPORT_RUN_SYSTEM, value: key }];
        report.meta = { tag: [{ system: OWNER_TAG_SYSTEM, code: subject }] };
        if (dataSince) {
          report.extension?.push({ url: DATA_SINCE_EXTENSION, valueDate: dataSince });
        }
        await this.withBenchmarks(report, result.measure, scope, period);
        const id = `mr-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
        await this.repo.update('MeasureReport', id, report, { principal: INDICATORS_PRINCIPAL });
        reports += 1;
      }
    }
    const ms = Date.now() - started;
    this.logger.info({ reports, subjects: subjects.rowCount, periodEnd: end, ms }, 'monthly indicator reports stored');
    return { reports, subjects: subjects.rowCount ?? 0, period, ms };
  }

  /**
   * Per reported organization, the first day of the first month with a visit (Encounter) its
   * structures recorded; a CPTS: the latest of its member structures' (every one must cover a
   * window for the territory's figure to be complete). One scan of the visits per run.
   */
  private async dataSince(): Promise<Map<string, string>> {
    const res = await this.pool.query<{ id: string; since: string }>(
      `WITH s AS (SELECT substring(owner_org FROM '^Organization/(.+)$') AS org, min(at) AS first
                    FROM ind_fact WHERE resource_type = 'Encounter' AND at IS NOT NULL GROUP BY owner_org)
       SELECT o.id, to_char(date_trunc('month', greatest(s.first, m.first) AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS since
         FROM ind_organization o
         LEFT JOIN s ON s.org = o.id
         LEFT JOIN LATERAL (SELECT max(s2.first) AS first FROM ind_organization c JOIN s s2 ON s2.org = c.id
                             WHERE c.part_of = o.id) m ON o.type = 'CPTS'
        WHERE o.type = ANY($1::text[]) AND greatest(s.first, m.first) IS NOT NULL`,
      [REPORTED_TYPES],
    );
    return new Map(res.rows.map((r) => [r.id, r.since]));
  }

  /** The catalogue's measures, in file order. */
  measures(): CompiledMeasure[] {
    return [...this.catalogue.measures.values()];
  }
}

function attachRecall(
  report: MeasureReport,
  entries: RecallEntry[],
  catalogue: MeasureCatalogue,
  events: boolean,
): void {
  const list: List = {
    resourceType: 'List',
    id: 'recall',
    status: 'current',
    mode: 'snapshot',
    title: 'Patients à rappeler (dénominateur, hors numérateur)',
    entry: entries.map((e) => recallEntry(e, catalogue, events)),
  };
  report.contained = [list];
  report.group?.[0]?.extension?.push({ url: RECALL_LIST_EXTENSION, valueReference: { reference: '#recall' } });
}

/** One person of the recall List: the record shown, the records merged into it, the latest evidence. */
function recallEntry(e: RecallEntry, catalogue: MeasureCatalogue, events: boolean): ListEntry {
  const extension: NonNullable<ListEntry['extension']> = e.otherRecords.map((id) => ({
    url: RECALL_OTHER_RECORD_EXTENSION,
    valueReference: { reference: `Patient/${id}` },
  }));
  if (events) {
    extension.push({ url: RECALL_EVENTS_EXTENSION, valueInteger: e.events });
  }
  if (e.evidence) {
    const vs = catalogue.valueSets.get(e.evidence.kind.valueSet);
    const factSystem = e.evidence.system;
    const concept = vs?.compose?.include
      // The stored fact may name the system by a legacy alias of the ValueSet's canonical.
      ?.filter((i) => !!i.system && !!factSystem && sameSystem(i.system, factSystem))
      .flatMap((i) => i.concept ?? [])
      .find((c) => c.code === e.evidence?.code);
    const coding: Coding = {
      ...(e.evidence.system ? { system: e.evidence.system } : {}),
      code: e.evidence.code,
      ...(concept?.display ? { display: concept.display } : {}),
    };
    extension.push({
      url: RECALL_EVIDENCE_EXTENSION,
      extension: [
        { url: 'fact', valueReference: { reference: e.evidence.reference, display: vs?.title ?? vs?.name } },
        { url: 'code', valueCoding: coding },
        ...(e.evidence.at ? [{ url: 'date', valueDateTime: e.evidence.at }] : []),
      ],
    });
  }
  return { ...(extension.length > 0 ? { extension } : {}), item: { reference: `Patient/${e.patientId}` } };
}

/** periodStart/periodEnd as dates (a year, a month or a day; a dateTime is cut to its day). Default: the last 12 whole months. */
export function parsePeriod(start: string | undefined, end: string | undefined, today = new Date()): Period {
  const first = start ? day(start, 'start', 'periodStart') : undefined;
  const last = end ? day(end, 'end', 'periodEnd') : undefined;
  if (!first || !last) {
    if (first || last) {
      throw new GatewayError('invalid', {
        text: 'periodStart and periodEnd go together',
        expression: first ? 'periodEnd' : 'periodStart',
      });
    }
    const e = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 0));
    const s = new Date(Date.UTC(e.getUTCFullYear() - 1, e.getUTCMonth() + 1, 1));
    return { start: s.toISOString().slice(0, 10), end: e.toISOString().slice(0, 10) };
  }
  if (first > last) {
    throw new GatewayError('invalid', { text: 'periodStart is after periodEnd', expression: 'periodStart' });
  }
  return { start: first, end: last };
}

/**
 * The periods a non-admin caller may ask a population report for: 12 whole calendar months (the
 * ROSP year; the default period and the monthly reports' one). Two reports then differ by at least
 * a whole month at each end, never by a day, and each cell has at most one report per month end.
 */
export function checkAggregatePeriod(period: Period): void {
  if (period.start.slice(8) !== '01') {
    throw new GatewayError('invalid', {
      text: 'periodStart must be the first day of a month for a population report (12 whole calendar months)',
      expression: 'periodStart',
    });
  }
  const end = new Date(`${period.end}T00:00:00Z`);
  const lastDay = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() + 1, 0)).getUTCDate();
  const start = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - 11, 1)).toISOString().slice(0, 10);
  if (end.getUTCDate() !== lastDay) {
    throw new GatewayError('invalid', {
      text: 'periodEnd must be the last day of a month for a population report (12 whole calendar months)',
      expression: 'periodEnd',
    });
  }
  if (period.start !== start) {
    throw new GatewayError('invalid', {
      text: `a population report covers 12 whole calendar months: for periodEnd ${period.end}, periodStart is ${start}`,
      expression: 'periodStart',
    });
  }
}

/** The 12 whole calendar months ending on `end` (a month's last day). */
function twelveMonthsTo(end: string): Period {
  const e = new Date(`${end}T00:00:00Z`);
  const start = new Date(Date.UTC(e.getUTCFullYear(), e.getUTCMonth() - 11, 1)).toISOString().slice(0, 10);
  return { start, end };
}

function lastOfMonth(d: string): string {
  const e = new Date(`${d}T00:00:00Z`);
  return new Date(Date.UTC(e.getUTCFullYear(), e.getUTCMonth() + 1, 0)).toISOString().slice(0, 10);
}

function lastOfPreviousMonth(d: string): string {
  const e = new Date(`${d}T00:00:00Z`);
  return new Date(Date.UTC(e.getUTCFullYear(), e.getUTCMonth(), 0)).toISOString().slice(0, 10);
}

function day(v: string, side: 'start' | 'end', name: string): string {
  const m = DAY.exec(v);
  if (!m) {
    throw new GatewayError('invalid', {
      text: `${name} must be a date (YYYY, YYYY-MM or YYYY-MM-DD)`,
      expression: name,
    });
  }
  const y = Number(m[1]);
  const mo = m[3] ? Number(m[3]) : side === 'start' ? 1 : 12;
  const d = m[5] ? Number(m[5]) : side === 'start' ? 1 : new Date(Date.UTC(y, mo, 0)).getUTCDate();
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) {
    throw new GatewayError('invalid', { text: `${name} is not a valid date: ${v}`, expression: name });
  }
  return date.toISOString().slice(0, 10);
}

function sameContent(a: Resource, b: Resource): boolean {
  const strip = (r: Resource): string => JSON.stringify({ ...r, meta: undefined });
  return strip(a) === strip(b);
}
