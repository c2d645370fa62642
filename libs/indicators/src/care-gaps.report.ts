import { randomUUID } from 'node:crypto';
import type {
  Bundle,
  Coding,
  Composition,
  CompositionSection,
  DetectedIssue,
  Extension,
  MeasureReport,
  ParametersParameter,
} from '@medplum/fhirtypes';
import { GW } from '@gw/fhir';
import { sameSystem } from '@gw/ingest';
import type { MeasureCatalogue } from './catalogue';
import type { CareGapItem, GapEvidence, PatientGaps } from './care-gaps';
import type { Period } from './evaluator';
import { RECALL_EVIDENCE_EXTENSION, RECALL_OTHER_RECORD_EXTENSION } from './report';

/** DEQM (Da Vinci Data Exchange for Quality Measures) gap status, a modifier extension on DetectedIssue. */
export const GAP_STATUS_EXTENSION = 'http://hl7.org/fhir/us/davinci-deqm/StructureDefinition/extension-gapStatus';
export const GAP_STATUS_SYSTEM = 'http://hl7.org/fhir/us/davinci-deqm/CodeSystem/gaps-status';
/** On an open gap's DetectedIssue: the last day to close it in the period (the period end). */
export const CARE_GAP_CLOSES_BY_EXTENSION = `${GW}/fhir/StructureDefinition/care-gap-closes-by`;
/** On an open gap's DetectedIssue: the first day it is open in the period. */
export const CARE_GAP_SINCE_EXTENSION = `${GW}/fhir/StructureDefinition/care-gap-since`;
/** On a closed gap's DetectedIssue: the last period end for which its evidence still counts (its date + the window). */
export const CARE_GAP_VALID_UNTIL_EXTENSION = `${GW}/fhir/StructureDefinition/care-gap-valid-until`;
const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const POPULATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/measure-population';
const LOINC = 'http://loinc.org';

export interface CareGapsReportOptions {
  period: Period;
  catalogue: MeasureCatalogue;
  now?: Date;
}

/**
 * The `$care-gaps` answer as JSON text, one chunk per patient: a Parameters with one `return`
 * per patient, each a document Bundle (Composition, one section per measure; per measure an
 * individual MeasureReport; per open or closed gap a DetectedIssue). Built patient by patient so
 * a thousand-patient list is never one object graph in memory.
 */
export function* careGapsJson(patients: PatientGaps[], opts: CareGapsReportOptions): Generator<string> {
  yield '{"resourceType":"Parameters","parameter":[';
  let first = true;
  for (const p of patients) {
    const param: ParametersParameter = { name: 'return', resource: patientBundle(p, opts) };
    yield `${first ? '' : ','}${JSON.stringify(param)}`;
    first = false;
  }
  yield ']}';
}

/** One patient's DEQM gaps-in-care document. */
export function patientBundle(p: PatientGaps, opts: CareGapsReportOptions): Bundle {
  const now = (opts.now ?? new Date()).toISOString();
  const subject = { reference: `Patient/${p.patientId}` };
  const entries: { fullUrl: string; resource: MeasureReport | DetectedIssue }[] = [];
  const sections: CompositionSection[] = [];
  for (const item of p.items) {
    const reportUrl = `urn:uuid:${randomUUID()}`;
    entries.push({ fullUrl: reportUrl, resource: individualReport(item, subject, opts.period, now) });
    const section: CompositionSection = {
      title: item.measure.resource.title ?? item.measure.id,
      focus: { reference: reportUrl },
      code: { coding: [{ system: GAP_STATUS_SYSTEM, code: item.status }] },
    };
    if (item.status !== 'not-applicable') {
      const issueUrl = `urn:uuid:${randomUUID()}`;
      entries.push({ fullUrl: issueUrl, resource: detectedIssue(item, subject, reportUrl, now, opts.catalogue) });
      section.entry = [{ reference: issueUrl }];
    }
    sections.push(section);
  }
  const composition: Composition = {
    resourceType: 'Composition',
    status: 'final',
    type: { coding: [{ system: LOINC, code: '96315-7', display: 'Gaps in care report' }] },
    subject,
    date: now,
    author: [{ reference: 'Organization/gateway' }],
    title: 'Écarts de soins (care gaps)',
    ...(p.otherRecords.length > 0
      ? {
          extension: p.otherRecords.map((id): Extension => ({
            url: RECALL_OTHER_RECORD_EXTENSION,
            valueReference: { reference: `Patient/${id}` },
          })),
        }
      : {}),
    section: sections,
  };
  return {
    resourceType: 'Bundle',
    type: 'document',
    identifier: { system: 'urn:ietf:rfc:3986', value: `urn:uuid:${randomUUID()}` },
    timestamp: now,
    entry: [{ fullUrl: `urn:uuid:${randomUUID()}`, resource: composition }, ...entries],
  };
}

function individualReport(
  item: CareGapItem,
  subject: { reference: string },
  period: Period,
  now: string,
): MeasureReport {
  const m = item.measure;
  const events = item.events;
  // Person basis: 0/1 per population; event basis: the person's events.
  const ip = events ? events.applicable : item.inPopulation ? 1 : 0;
  const den = item.status === 'not-applicable' && !item.excluded ? 0 : events ? events.applicable : 1;
  const ex = item.excluded ? 1 : 0;
  const num =
    item.status === 'closed-gap' ? (events ? events.applicable : 1) : events ? events.applicable - events.open : 0;
  const population = (code: string, count: number) => ({
    code: { coding: [{ system: POPULATION_SYSTEM, code }] },
    count,
  });
  return {
    resourceType: 'MeasureReport',
    status: 'complete',
    type: 'individual',
    measure: m.url,
    subject,
    date: now,
    period: { start: period.start, end: period.end },
    improvementNotation: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/measure-improvement-notation', code: m.improvement }],
    },
    group: [
      {
        population: [
          population('initial-population', ip),
          population('denominator', den),
          population('denominator-exclusion', ex),
          population('numerator', num),
        ],
      },
    ],
    ...(item.evidence ? { evaluatedResource: [{ reference: item.evidence.reference }] } : {}),
  };
}

function detectedIssue(
  item: CareGapItem,
  patient: { reference: string },
  reportUrl: string,
  now: string,
  catalogue: MeasureCatalogue,
): DetectedIssue {
  const extension: Extension[] = [];
  if (item.evidence) {
    extension.push(evidenceExtension(item.evidence, catalogue));
    if (item.status === 'closed-gap' && item.evidence.validUntil) {
      extension.push({ url: CARE_GAP_VALID_UNTIL_EXTENSION, valueDate: item.evidence.validUntil });
    }
  }
  if (item.status === 'open-gap') {
    extension.push(
      { url: CARE_GAP_SINCE_EXTENSION, valueDate: item.since },
      { url: CARE_GAP_CLOSES_BY_EXTENSION, valueDate: item.closesBy },
    );
  }
  return {
    resourceType: 'DetectedIssue',
    modifierExtension: [
      {
        url: GAP_STATUS_EXTENSION,
        valueCodeableConcept: { coding: [{ system: GAP_STATUS_SYSTEM, code: item.status }] },
      },
    ],
    ...(extension.length > 0 ? { extension } : {}),
    status: 'final',
    code: { coding: [{ system: ACT_CODE, code: 'CAREGAP', display: 'Care Gaps' }] },
    patient,
    identifiedDateTime: now,
    evidence: [
      { detail: [{ reference: reportUrl }] },
      ...(item.status === 'closed-gap' && item.evidence
        ? [{ detail: [{ reference: item.evidence.reference, display: item.evidence.at?.slice(0, 10) }] }]
        : []),
    ],
  };
}

/** The recall list's evidence shape (fact, code with the ValueSet's display, date): one reading for both. */
function evidenceExtension(e: GapEvidence, catalogue: MeasureCatalogue): Extension {
  const vs = catalogue.valueSets.get(e.kind.valueSet);
  const concept = vs?.compose?.include
    // The stored fact may name the system by a legacy alias of the ValueSet's canonical.
    ?.filter((i) => !!i.system && !!e.system && sameSystem(i.system, e.system))
    .flatMap((i) => i.concept ?? [])
    .find((c) => c.code === e.code);
  const coding: Coding = {
    ...(e.system ? { system: e.system } : {}),
    code: e.code,
    ...(concept?.display ? { display: concept.display } : {}),
  };
  return {
    url: RECALL_EVIDENCE_EXTENSION,
    extension: [
      { url: 'fact', valueReference: { reference: e.reference, display: vs?.title ?? vs?.name } },
      { url: 'code', valueCoding: coding },
      ...(e.at ? [{ url: 'date', valueDateTime: e.at }] : []),
    ],
  };
}
