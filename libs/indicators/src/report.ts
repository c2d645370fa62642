import type {
  Extension,
  MeasureReport,
  MeasureReportGroupPopulation,
  MeasureReportGroupStratifierStratum,
  Quantity,
} from '@medplum/fhirtypes';
import { GW } from '@gw/fhir';
import { DENOMINATOR_POPULATION_EXTENSION, STRATIFIER_SYSTEM } from './catalogue';
import type { MeasureCounts, Period, Stratifier } from './evaluator';
import { suppressStrata, totalSuppressed } from './suppression';
import type { Counts } from './suppression';

export const DATA_ABSENT_REASON = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';
export const SUPPRESSION_EXTENSION = `${GW}/fhir/StructureDefinition/measure-suppression`;
export const OBJECTIVE_STATUS_EXTENSION = `${GW}/fhir/StructureDefinition/measure-objective-status`;
export const RECALL_LIST_EXTENSION = `${GW}/fhir/StructureDefinition/measure-recall-list`;
/**
 * On a stored report: the first day of the first month with a primary-care visit recorded by the
 * subject's structures (a CPTS: the latest such month among them). A report whose period starts
 * before it is computed on incomplete history (docs/indicators.md "History").
 */
export const DATA_SINCE_EXTENSION = `${GW}/fhir/StructureDefinition/measure-data-since`;
/** On a recall List entry: the person's latest fact of a kind the numerator counts (reference, code, date). */
export const RECALL_EVIDENCE_EXTENSION = `${GW}/fhir/StructureDefinition/measure-recall-evidence`;
/** On a recall List entry: another record of the same person in scope, merged into the entry's. */
export const RECALL_OTHER_RECORD_EXTENSION = `${GW}/fhir/StructureDefinition/measure-recall-other-record`;
/** On a recall List entry of an event-basis measure: how many of the person's events are to follow up. */
export const RECALL_EVENTS_EXTENSION = `${GW}/fhir/StructureDefinition/measure-recall-events`;
const POPULATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/measure-population';

export type ObjectiveStatus =
  'target-reached' | 'intermediate-reached' | 'not-reached' | 'below-minimum-denominator' | 'suppressed';

export interface ReportOptions {
  period: Period;
  subject?: string;
  type: 'summary' | 'subject-list' | 'individual';
  threshold: number;
  /** Display names of structures (Organization/id → name) for the structure stratifier. */
  structureNames: Map<string, string>;
  now?: Date;
}

const MASKED: Extension = { url: DATA_ABSENT_REASON, valueCode: 'masked' };

/** A proportion, or undefined when the denominator (less exclusions) is empty. */
export function score(c: Counts): number | undefined {
  const d = c.denominator - c.exclusion;
  return d > 0 ? Math.round((c.numerator / d) * 10_000) / 10_000 : undefined;
}

/** Where the score stands against the measure's ROSP-style objectives. */
export function objectiveStatus(r: MeasureCounts, s: number | undefined): ObjectiveStatus {
  const { minimumDenominator, intermediate, target } = r.measure.objectives;
  if (s === undefined || r.total.denominator - r.total.exclusion < minimumDenominator) {
    return 'below-minimum-denominator';
  }
  const reached = (goal: number | undefined): boolean =>
    goal !== undefined && (r.measure.improvement === 'increase' ? s >= goal : s <= goal);
  return reached(target) ? 'target-reached' : reached(intermediate) ? 'intermediate-reached' : 'not-reached';
}

/**
 * The MeasureReport of one evaluated measure. Counts under the threshold (and their complements)
 * are not zeroed but left out and marked: data-absent-reason `masked` on the population or score.
 * Individual reports (one patient, seen by a client allowed to see it) are not suppressed.
 */
export function buildMeasureReport(r: MeasureCounts, opts: ReportOptions): MeasureReport {
  const threshold = opts.type === 'individual' ? 1 : opts.threshold;
  const hideTotal = totalSuppressed(r.total, threshold);
  const totalScore = hideTotal ? undefined : score(r.total);
  const status: ObjectiveStatus = hideTotal ? 'suppressed' : objectiveStatus(r, totalScore);
  const stratifier = r.measure.stratifiers.map((code: Stratifier) => {
    const cells = suppressStrata(r.total, r.strata[code], threshold);
    return {
      code: [{ coding: [{ system: STRATIFIER_SYSTEM, code }], text: code }],
      stratum: cells.map(({ cell, suppressed }): MeasureReportGroupStratifierStratum => ({
        value: {
          coding: [{ system: STRATIFIER_SYSTEM, code: cell.key }],
          text: code === 'structure' ? (opts.structureNames.get(cell.key) ?? cell.key) : cell.key,
        },
        population: populations(cell, !!suppressed),
        measureScore: suppressed ? { extension: [MASKED] } : quantity(score(cell)),
        ...(suppressed ? { extension: [{ url: SUPPRESSION_EXTENSION, valueCode: suppressed }] } : {}),
      })),
    };
  });
  const report: MeasureReport = {
    resourceType: 'MeasureReport',
    status: 'complete',
    type: opts.type,
    measure: `${r.measure.url}|${r.measure.resource.version ?? ''}`.replace(/\|$/, ''),
    ...(opts.subject ? { subject: { reference: opts.subject } } : {}),
    date: (opts.now ?? new Date()).toISOString(),
    period: { start: opts.period.start, end: opts.period.end },
    improvementNotation: r.measure.resource.improvementNotation,
    extension: [
      { url: DENOMINATOR_POPULATION_EXTENSION, valueCode: r.population },
      {
        url: SUPPRESSION_EXTENSION,
        extension: [
          { url: 'threshold', valueInteger: threshold },
          // Counts carry cell-key noise (-2..+2); scores are computed from the perturbed counts.
          ...(r.perturbed ? [{ url: 'cell-key-perturbation', valueBoolean: true }] : []),
        ],
      },
    ],
    group: [
      {
        extension: [{ url: OBJECTIVE_STATUS_EXTENSION, valueCode: status }],
        population: populations(r.total, hideTotal),
        measureScore: hideTotal ? { extension: [MASKED] } : quantity(totalScore),
        stratifier,
      },
    ],
  };
  return report;
}

function populations(c: Counts, hidden: boolean): MeasureReportGroupPopulation[] {
  const entries: [string, string, number][] = [
    ['initial-population', 'Initial Population', c.initialPopulation],
    ['denominator', 'Denominator', c.denominator],
    ['denominator-exclusion', 'Denominator Exclusion', c.exclusion],
    ['numerator', 'Numerator', c.numerator],
  ];
  return entries.map(([code, display, count]) => ({
    code: { coding: [{ system: POPULATION_SYSTEM, code, display }] },
    ...(hidden ? { extension: [MASKED] } : { count }),
  }));
}

function quantity(v: number | undefined): Quantity {
  return v === undefined
    ? { extension: [{ url: DATA_ABSENT_REASON, valueCode: 'not-applicable' }] }
    : { value: v, unit: '1', system: 'http://unitsofmeasure.org', code: '1' };
}
