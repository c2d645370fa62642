import { randomUUID } from 'node:crypto';
import type { CodeableConcept, Coding, DiagnosticReport, Observation, Quantity, Reference } from '@medplum/fhirtypes';
import { FINESS, GW } from '@gw/fhir';
import { PATIENT_PLACEHOLDER } from '../intake/extraction';
import type { ExtractedResource, Extraction, ExtractionWarning } from '../intake/extraction';
import type { HprimCharset, HprimPart, HprimResult } from './hprim.reader';
import { ucumOf } from './ucum';

export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
const INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const REPORT_CATEGORY = 'http://terminology.hl7.org/CodeSystem/v2-0074';
/** CR-BIO: the LOINC document type of a lab report. */
const LAB_REPORT: Coding = { system: LOINC, code: '11502-2', display: 'Laboratory report' };

/** What a lab's code map says of one of its local codes (see LabCodeMap). */
export interface LabCodeEntry {
  /** The lab's local code. */
  code: string;
  loinc: string;
  display: string;
  /** UCUM unit the value is filed in (the lab's unit mapped to UCUM when absent). */
  unit?: string;
  /** Multiplies the lab's value (and reference range) into {@link unit}: 100 for g/L → mg/dL. */
  factor?: number;
}

export type CodeLookup = (localCode: string) => LabCodeEntry | undefined;

/** The code system of a lab's local codes (kept beside the LOINC coding). */
export function labCodeSystem(lab: string): string {
  return `${GW}/fhir/CodeSystem/hprim-lab/${encodeURIComponent(lab)}`;
}

export interface HprimExtractionOptions {
  /**
   * The lab's code map. Given: only results whose code it maps are in the extraction (LOINC +
   * UCUM), the others are returned as `unmapped`. Absent: every result with its local code only.
   */
  codes?: CodeLookup;
  /** Document version (a re-filing after new codes were mapped replaces the earlier facts). */
  version?: number;
}

/**
 * One HPRIM patient part as the intake pipeline's Extraction: the part kept as a text/plain
 * document (CR-BIO type), a DiagnosticReport and one Observation per result. Never creates a
 * patient: a lab file only files results for a patient already known.
 */
export function hprimExtraction(
  part: HprimPart,
  charset: HprimCharset,
  opts: HprimExtractionOptions = {},
): { extraction: Extraction; unmapped: HprimResult[] } {
  const warnings: ExtractionWarning[] = [...part.warnings];
  const resources: ExtractedResource[] = [];
  const unmapped: HprimResult[] = [];
  for (const r of part.results) {
    const entry = opts.codes?.(r.code);
    if (opts.codes && !entry) {
      unmapped.push(r);
      continue;
    }
    resources.push({ resource: observation(part, r, entry, warnings), fullUrl: `urn:uuid:${randomUUID()}` });
  }
  const organization = {
    ...(/^\d{9}$/.test(part.lab) ? { identifier: { system: FINESS, value: part.lab } } : {}),
    ...(part.labText ? { name: part.labText } : {}),
  };
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    status: part.results.some((r) => r.status === 'P') ? 'partial' : 'final',
    category: [{ coding: [{ system: REPORT_CATEGORY, code: 'LAB', display: 'Laboratory' }] }],
    code: { coding: [LAB_REPORT], text: 'Résultats de biologie' },
    subject: { reference: PATIENT_PLACEHOLDER },
    ...(part.date ? { effectiveDateTime: part.date } : {}),
    ...(part.requestNumber
      ? { identifier: [{ system: `${labCodeSystem(part.lab)}/request`, value: part.requestNumber }] }
      : {}),
    result: resources.map((r): Reference<Observation> => ({ reference: r.fullUrl })),
    ...(part.notes.length > 0 ? { conclusion: part.notes.join('\n') } : {}),
  };
  resources.push({ resource: report, fullUrl: `urn:uuid:${randomUUID()}` });
  const extraction: Extraction = {
    patient: part.patient,
    document: {
      // One id per version: the pipeline answers a known uniqueId with what it filed before, and
      // replaces the facts of an earlier version of the same setId by the new version's.
      uniqueId: (opts.version ?? 1) > 1 ? `${part.digest}.v${opts.version}` : part.digest,
      setId: part.digest,
      version: opts.version ?? 1,
      type: LAB_REPORT,
      title: part.labText ? `Résultats de biologie — ${part.labText}` : 'Résultats de biologie',
      ...(part.date ? { date: part.date } : {}),
      ...(Object.keys(organization).length > 0 ? { author: { organization }, custodian: organization } : {}),
      contentType: `text/plain; charset=${charset}`,
      content: part.raw,
    },
    resources,
    warnings,
    neverCreatePatient: true,
  };
  return { extraction, unmapped };
}

function observation(
  part: HprimPart,
  r: HprimResult,
  entry: LabCodeEntry | undefined,
  warnings: ExtractionWarning[],
): Observation {
  const local: Coding = { system: labCodeSystem(part.lab), code: r.code, ...(r.label ? { display: r.label } : {}) };
  const code: CodeableConcept = {
    coding: entry ? [{ system: LOINC, code: entry.loinc, display: entry.display }, local] : [local],
    ...(r.label ? { text: r.label } : {}),
  };
  const obs: Observation = {
    resourceType: 'Observation',
    status: STATUS[r.status] ?? 'final',
    category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: 'laboratory', display: 'Laboratory' }] }],
    code,
    subject: { reference: PATIENT_PLACEHOLDER },
    ...(part.date ? { effectiveDateTime: part.date } : {}),
  };
  Object.assign(obs, valueOf(r, entry, warnings));
  const interpretation = INTERPRETATIONS[r.flag];
  if (interpretation) {
    obs.interpretation = [{ coding: [{ system: INTERPRETATION, ...interpretation }] }];
  } else if (r.flag) {
    warnings.push({
      location: `line ${r.line}`,
      text: `Abnormality flag "${r.flag.slice(0, 4)}" not understood: kept as text`,
    });
    obs.interpretation = [{ text: r.flag }];
  }
  if (r.notes.length > 0) {
    obs.note = r.notes.map((text) => ({ text }));
  }
  return obs;
}

/** valueQuantity (UCUM when the unit maps) for numeric results, valueString otherwise; the reference range in the same unit. */
function valueOf(
  r: HprimResult,
  entry: LabCodeEntry | undefined,
  warnings: ExtractionWarning[],
): Pick<Observation, 'valueQuantity' | 'valueString' | 'referenceRange'> {
  const parsed = number(r.value);
  if (!parsed || r.type === 'A' || r.type === 'T') {
    if (r.type === 'N' && r.value) {
      warnings.push({ location: `line ${r.line}`, text: 'Numeric result (type N) that is not a number: kept as text' });
    }
    return r.value ? { valueString: [r.value, r.unit].filter(Boolean).join(' ') } : {};
  }
  const ucum = entry?.unit ?? ucumOf(r.unit);
  const factor = entry?.unit ? (entry.factor ?? 1) : 1;
  if (!ucum && r.unit) {
    warnings.push({
      location: `line ${r.line}`,
      text: `Unit "${r.unit.slice(0, 20)}" has no UCUM mapping: kept as text`,
    });
  }
  const quantity = (value: number, comparator?: Quantity['comparator']): Quantity => ({
    value: scale(value, factor),
    ...(comparator ? { comparator } : {}),
    ...(ucum ? { unit: ucum, system: UCUM, code: ucum } : r.unit ? { unit: r.unit } : {}),
  });
  const low = number(r.low);
  const high = number(r.high);
  return {
    valueQuantity: quantity(parsed.value, parsed.comparator),
    ...(low || high
      ? {
          referenceRange: [
            {
              ...(low ? { low: quantity(low.value) } : {}),
              ...(high ? { high: quantity(high.value) } : {}),
            },
          ],
        }
      : {}),
  };
}

/** `5,6`, `5.6`, `< 0,5`, `>=90`: the decimal comma of French labs, an optional comparator. */
function number(text: string): { value: number; comparator?: Quantity['comparator'] } | undefined {
  const m = /^(<=|>=|<|>)?\s*([+-]?\d+(?:[.,]\d+)?)$/.exec(text.trim());
  if (!m) {
    return undefined;
  }
  return { value: Number(m[2]!.replace(',', '.')), ...(m[1] ? { comparator: m[1] as Quantity['comparator'] } : {}) };
}

/** value × factor without binary noise (0.95 × 100 = 95, not 94.99999999999999). */
function scale(value: number, factor: number): number {
  return factor === 1 ? value : Number((value * factor).toPrecision(12));
}

const STATUS: Record<string, Observation['status']> = {
  F: 'final',
  V: 'final',
  P: 'preliminary',
  I: 'preliminary',
  C: 'corrected',
  M: 'amended',
  X: 'cancelled',
};

/** HPRIM abnormality flags → v3 ObservationInterpretation. */
const INTERPRETATIONS: Record<string, Coding> = {
  N: { code: 'N', display: 'Normal' },
  L: { code: 'L', display: 'Low' },
  B: { code: 'L', display: 'Low' },
  '-': { code: 'L', display: 'Low' },
  '<': { code: 'L', display: 'Low' },
  H: { code: 'H', display: 'High' },
  '+': { code: 'H', display: 'High' },
  '>': { code: 'H', display: 'High' },
  LL: { code: 'LL', display: 'Critical low' },
  '--': { code: 'LL', display: 'Critical low' },
  HH: { code: 'HH', display: 'Critical high' },
  '++': { code: 'HH', display: 'Critical high' },
  A: { code: 'A', display: 'Abnormal' },
  '*': { code: 'A', display: 'Abnormal' },
};
