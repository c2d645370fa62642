import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Measure, MeasureGroupPopulation, ValueSet } from '@medplum/fhirtypes';
import { GW } from '@gw/fhir';
import { systemIdentities } from '@gw/ingest';
import { CRITERIA_LANGUAGE, CriteriaError, parseCriterion as parseCriterionJson } from './criteria';
import type { CodeMatch, Criterion, FactCriterion } from './criteria';
import { ATC_SYSTEMS } from './fmt-projection.schema';
import { OPTIONAL_STRATIFIERS, STRATIFIERS } from './evaluator';
import type { Stratifier } from './evaluator';

export const POPULATION_BASIS_EXTENSION = 'http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-populationBasis';
export const DENOMINATOR_POPULATION_EXTENSION = `${GW}/fhir/StructureDefinition/measure-denominator-population`;
export const OBJECTIVES_EXTENSION = `${GW}/fhir/StructureDefinition/measure-objectives`;
/**
 * `valueCode` `previous-year-end`: the Measure's MT population is the patientèle on 31 December of
 * the year before the period's end (the 2026 forfait médecin traitant), not today's médecin traitant.
 */
export const PATIENTELE_DATE_EXTENSION = `${GW}/fhir/StructureDefinition/measure-patientele-date`;
export const PATIENTELE_DATES = ['previous-year-end'] as const;
export type PatienteleDate = (typeof PATIENTELE_DATES)[number];
/** The system of `group.stratifier.code` (also the codes of the report's strata). */
export const STRATIFIER_SYSTEM = `${GW}/fhir/CodeSystem/measure-stratifier`;
const KNOWN_STRATIFIERS: readonly string[] = [...STRATIFIERS, ...OPTIONAL_STRATIFIERS];

/** Who the denominator is drawn from: MT patientèle, file active (seen in the period) or every known patient. */
export const DENOMINATOR_POPULATIONS = ['mt', 'file-active', 'all'] as const;
export type DenominatorPopulation = (typeof DENOMINATOR_POPULATIONS)[number];

export interface Objectives {
  /** ROSP "seuil minimal": below this denominator the indicator is not assessed. */
  minimumDenominator: number;
  intermediate?: number;
  target?: number;
}

/** A Measure of the catalogue, checked and ready to compile. */
export interface CompiledMeasure {
  resource: Measure;
  id: string;
  url: string;
  basis: 'person' | 'event';
  population: DenominatorPopulation;
  improvement: 'increase' | 'decrease';
  objectives: Objectives;
  initialPopulation: Criterion;
  denominator: Criterion;
  exclusion?: Criterion;
  numerator: Criterion;
  /** Event-basis measures: the facts that are the events. */
  event?: FactCriterion;
  /** The stratifiers of its reports: the three of every report, plus the optional ones the Measure names. */
  stratifiers: Stratifier[];
  /** Set when the MT population is a past patientèle (FMT Measures). */
  patienteleDate?: PatienteleDate;
  /** Days (YYYY-MM-DD, inclusive) the Measure is in force: `effectivePeriod`; end absent = open-ended. */
  effective: { start: string; end?: string };
  /** Canonical URLs (without version) of the Measures `relatedArtifact` names as predecessor / successor. */
  predecessors: string[];
  successors: string[];
}

export class CatalogueError extends Error {}

/**
 * The indicator catalogue: `Measure-*.json` and `ValueSet-*.json` of a folder (default
 * fhir-profiles/measures), checked at boot — every criterion parses, every ValueSet it names exists
 * and has codes — so a broken file stops the gateway with its name instead of failing a report.
 */
export class MeasureCatalogue {
  private constructor(
    readonly measures: Map<string, CompiledMeasure>,
    readonly valueSets: Map<string, ValueSet>,
    private readonly codes: Map<string, CodeMatch[]>,
  ) {}

  static fromDirectory(dir: string): MeasureCatalogue {
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
    const valueSets = new Map<string, ValueSet>();
    const codes = new Map<string, CodeMatch[]>();
    const raw: { file: string; measure: Measure }[] = [];
    for (const file of files) {
      let doc: { resourceType?: string };
      try {
        doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { resourceType?: string };
      } catch (err) {
        throw new CatalogueError(`${file}: not JSON (${(err as Error).message})`);
      }
      if (doc.resourceType === 'ValueSet') {
        const vs = doc as ValueSet;
        if (!vs.url || !vs.id) {
          throw new CatalogueError(`${file}: a ValueSet needs an id and a url`);
        }
        valueSets.set(vs.url, vs);
        codes.set(vs.url, expand(vs, file));
      } else if (doc.resourceType === 'Measure') {
        raw.push({ file, measure: doc as Measure });
      } else {
        throw new CatalogueError(
          `${file}: expected a Measure or a ValueSet, got ${doc.resourceType ?? 'no resourceType'}`,
        );
      }
    }
    const measures = new Map<string, CompiledMeasure>();
    const fileOf = new Map<string, string>();
    for (const { file, measure } of raw) {
      const compiled = compileMeasure(measure, file, (url) => {
        if (!codes.has(url)) {
          throw new CatalogueError(`${file}: unknown ValueSet ${url}`);
        }
      });
      if (measures.has(compiled.id)) {
        throw new CatalogueError(`${file}: duplicate Measure id ${compiled.id}`);
      }
      measures.set(compiled.id, compiled);
      fileOf.set(compiled.id, file);
    }
    checkLineage(measures, fileOf);
    return new MeasureCatalogue(measures, valueSets, codes);
  }

  /** The Measures in force on a day (YYYY-MM-DD): effectivePeriod.start ≤ day ≤ effectivePeriod.end. */
  inForce(day: string): CompiledMeasure[] {
    return [...this.measures.values()].filter((m) => isInForce(m, day));
  }

  /**
   * What replaces a Measure on a day it is not in force: the Measures in force then that it names
   * as successor or that name it as predecessor; when none does, every Measure in force then.
   */
  replacements(m: CompiledMeasure, day: string): CompiledMeasure[] {
    const now = this.inForce(day);
    const linked = now.filter((x) => m.successors.includes(x.url) || x.predecessors.includes(m.url));
    return linked.length > 0 ? linked : now;
  }

  get(id: string): CompiledMeasure | undefined {
    return this.measures.get(id);
  }

  /** Every ATC code and class (prefix) the catalogue's ValueSets name: what the CIS/CIP → ATC map is read for. */
  atcCodes(): { exact: string[]; prefixes: string[] } {
    const atc = [...this.codes.values()].flat().filter((c) => ATC_SYSTEMS.includes(c.system));
    const distinct = (prefix: boolean): string[] => [
      ...new Set(atc.filter((c) => !!c.prefix === prefix).map((c) => c.code)),
    ];
    return { exact: distinct(false), prefixes: distinct(true) };
  }

  resolve = (url: string): CodeMatch[] => {
    const found = this.codes.get(url);
    if (!found) {
      throw new CatalogueError(`unknown ValueSet ${url}`);
    }
    return found;
  };
}

/**
 * Codes of a ValueSet's compose: explicit concepts, and `is-a` filters as code prefixes (ATC, CIM-10,
 * CCAM are hierarchical by prefix). Each code is matched under every name of its system (the
 * terminology module's alias table): the intake stores the ANS canonicals, but facts stored before
 * canonicalisation (http://www.whocc.no/atc, the CCAM OID, http://hl7.org/fhir/sid/icd-10) must keep
 * counting, whichever of the names a ValueSet file writes.
 */
function expand(vs: ValueSet, file: string): CodeMatch[] {
  const out: CodeMatch[] = [];
  for (const inc of vs.compose?.include ?? []) {
    if (!inc.system) {
      throw new CatalogueError(`${file}: every compose.include needs a system`);
    }
    const systems = systemIdentities(inc.system);
    for (const c of inc.concept ?? []) {
      for (const system of systems) out.push({ system, code: c.code as string, prefix: false });
    }
    for (const f of inc.filter ?? []) {
      if (f.property !== 'concept' || (f.op !== 'is-a' && f.op !== 'descendent-of') || !f.value) {
        throw new CatalogueError(
          `${file}: only "concept is-a <code>" filters are supported, got ${f.property} ${f.op}`,
        );
      }
      for (const system of systems) out.push({ system, code: f.value, prefix: true });
    }
  }
  if (vs.compose?.exclude?.length) {
    throw new CatalogueError(`${file}: compose.exclude is not supported`);
  }
  if (out.length === 0) {
    throw new CatalogueError(`${file}: the ValueSet has no codes`);
  }
  return out;
}

function compileMeasure(m: Measure, file: string, checkValueSet: (url: string) => void): CompiledMeasure {
  if (!m.id || !m.url) {
    throw new CatalogueError(`${file}: a Measure needs an id and a url`);
  }
  const scoring = m.scoring?.coding?.[0]?.code;
  if (scoring !== 'proportion') {
    throw new CatalogueError(`${file}: only proportion measures are supported (scoring ${scoring ?? 'missing'})`);
  }
  if (m.group?.length !== 1) {
    throw new CatalogueError(`${file}: exactly one group expected`);
  }
  const pops = m.group[0]?.population ?? [];
  const criterion = (code: string, required: boolean): Criterion | undefined => {
    const found = pops.filter((p) => p.code?.coding?.some((c) => c.code === code));
    if (found.length > 1) {
      throw new CatalogueError(`${file}: population ${code} appears twice`);
    }
    if (!found[0]) {
      if (required) {
        throw new CatalogueError(`${file}: population ${code} is missing`);
      }
      return undefined;
    }
    return parseCriterion(found[0], code, file, checkValueSet);
  };
  const basisCode = ext(m, POPULATION_BASIS_EXTENSION)?.valueCode ?? 'boolean';
  if (basisCode !== 'boolean' && basisCode !== 'Encounter') {
    throw new CatalogueError(`${file}: population basis ${basisCode} is not supported (boolean or Encounter)`);
  }
  const population = (ext(m, DENOMINATOR_POPULATION_EXTENSION)?.valueCode ?? 'mt') as DenominatorPopulation;
  if (!DENOMINATOR_POPULATIONS.includes(population)) {
    throw new CatalogueError(
      `${file}: denominator population ${population} is not one of ${DENOMINATOR_POPULATIONS.join(', ')}`,
    );
  }
  const initialPopulation = criterion('initial-population', true) as Criterion;
  const compiled: CompiledMeasure = {
    resource: m,
    id: m.id,
    url: m.url,
    basis: basisCode === 'Encounter' ? 'event' : 'person',
    population,
    improvement: m.improvementNotation?.coding?.[0]?.code === 'decrease' ? 'decrease' : 'increase',
    objectives: objectives(m),
    initialPopulation,
    denominator: criterion('denominator', true) as Criterion,
    exclusion: criterion('denominator-exclusion', false),
    numerator: criterion('numerator', true) as Criterion,
    stratifiers: stratifiers(m, file),
    patienteleDate: patienteleDate(m, file),
    effective: effectivePeriod(m, file),
    predecessors: related(m, file, 'predecessor'),
    successors: related(m, file, 'successor'),
  };
  if (compiled.basis === 'event') {
    compiled.event = findEvent(initialPopulation);
    if (!compiled.event) {
      throw new CatalogueError(
        `${file}: an Encounter-basis measure needs an "event" criterion in its initial population`,
      );
    }
  }
  return compiled;
}

function parseCriterion(
  p: MeasureGroupPopulation,
  code: string,
  file: string,
  checkValueSet: (url: string) => void,
): Criterion {
  if ((p.criteria?.language as string | undefined) !== CRITERIA_LANGUAGE || !p.criteria?.expression) {
    throw new CatalogueError(`${file}: population ${code} needs criteria in ${CRITERIA_LANGUAGE}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(p.criteria.expression);
  } catch (err) {
    throw new CatalogueError(`${file}: population ${code}: criteria is not JSON (${(err as Error).message})`);
  }
  let parsed: Criterion;
  try {
    parsed = parseCriterionJson(json);
  } catch (err) {
    if (err instanceof CriteriaError) {
      throw new CatalogueError(`${file}: population ${code}: ${err.message}`);
    }
    throw err;
  }
  visitValueSets(parsed, checkValueSet);
  return parsed;
}

function visitValueSets(c: Criterion, fn: (url: string) => void): void {
  if ('all' in c) c.all.forEach((x) => visitValueSets(x, fn));
  else if ('any' in c) c.any.forEach((x) => visitValueSets(x, fn));
  else if ('not' in c) visitValueSets(c.not, fn);
  else if ('has' in c) fn(c.has.valueSet);
  else if ('event' in c) fn(c.event.valueSet);
  else if ('followedBy' in c) fn(c.followedBy.valueSet);
}

function findEvent(c: Criterion): FactCriterion | undefined {
  if ('event' in c) return c.event;
  if ('all' in c) return c.all.map(findEvent).find(Boolean);
  return undefined;
}

/** Whether a Measure is in force on a day (YYYY-MM-DD). */
export function isInForce(m: CompiledMeasure, day: string): boolean {
  return m.effective.start <= day && (m.effective.end === undefined || day <= m.effective.end);
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** effectivePeriod: a start day, an optional end day not before it (the catalogue is versioned by it). */
function effectivePeriod(m: Measure, file: string): { start: string; end?: string } {
  const p = m.effectivePeriod;
  if (!p?.start || !DAY.test(p.start) || Number.isNaN(Date.parse(p.start))) {
    throw new CatalogueError(
      `${file}: effectivePeriod.start must be a day (YYYY-MM-DD): when the Measure comes into force`,
    );
  }
  if (p.end !== undefined && (!DAY.test(p.end) || Number.isNaN(Date.parse(p.end)) || p.end < p.start)) {
    throw new CatalogueError(
      `${file}: effectivePeriod.end must be a day (YYYY-MM-DD) not before effectivePeriod.start`,
    );
  }
  return { start: p.start, ...(p.end ? { end: p.end } : {}) };
}

/**
 * relatedArtifact: at least one `citation` (the legal source) or `documentation` (the gateway's
 * own indicators) with a display; the predecessor / successor Measures' canonicals.
 */
function related(m: Measure, file: string, type: 'predecessor' | 'successor'): string[] {
  const artifacts = m.relatedArtifact ?? [];
  if (!artifacts.some((a) => (a.type === 'citation' || a.type === 'documentation') && a.display)) {
    throw new CatalogueError(
      `${file}: relatedArtifact needs a citation (the legal source: text, article or annex) or a documentation entry, with a display`,
    );
  }
  return artifacts
    .filter((a) => a.type === type)
    .map((a) => {
      if (!a.resource) {
        throw new CatalogueError(
          `${file}: a relatedArtifact of type ${type} needs a resource (the Measure's canonical)`,
        );
      }
      return a.resource.split('|')[0] as string;
    });
}

/** Every predecessor / successor names a Measure of the catalogue. */
function checkLineage(measures: Map<string, CompiledMeasure>, files: Map<string, string>): void {
  const urls = new Set([...measures.values()].map((m) => m.url));
  for (const m of measures.values()) {
    for (const url of [...m.predecessors, ...m.successors]) {
      if (!urls.has(url)) {
        throw new CatalogueError(
          `${files.get(m.id) ?? m.id}: relatedArtifact names ${url}, not a Measure of the catalogue`,
        );
      }
    }
  }
}

/** Stratifier codes of the Measure's group (system {@link STRATIFIER_SYSTEM}); unknown codes stop the boot. */
function stratifiers(m: Measure, file: string): Stratifier[] {
  const named = (m.group?.[0]?.stratifier ?? []).flatMap((s) =>
    (s.code?.coding ?? []).filter((c) => c.system === STRATIFIER_SYSTEM).map((c) => c.code ?? ''),
  );
  const unknown = named.filter((c) => !KNOWN_STRATIFIERS.includes(c));
  if (unknown.length > 0) {
    throw new CatalogueError(
      `${file}: unknown stratifier ${unknown.join(', ')} (known: ${KNOWN_STRATIFIERS.join(', ')})`,
    );
  }
  return [...STRATIFIERS, ...OPTIONAL_STRATIFIERS.filter((s) => named.includes(s))];
}

function patienteleDate(m: Measure, file: string): PatienteleDate | undefined {
  const v = ext(m, PATIENTELE_DATE_EXTENSION)?.valueCode;
  if (v !== undefined && !(PATIENTELE_DATES as readonly string[]).includes(v)) {
    throw new CatalogueError(`${file}: ${PATIENTELE_DATE_EXTENSION} must be one of ${PATIENTELE_DATES.join(', ')}`);
  }
  return v as PatienteleDate | undefined;
}

function ext(m: Measure, url: string): { valueCode?: string } | undefined {
  return m.extension?.find((e) => e.url === url);
}

function objectives(m: Measure): Objectives {
  const e = m.extension?.find((x) => x.url === OBJECTIVES_EXTENSION)?.extension ?? [];
  const num = (url: string): number | undefined => {
    const v = e.find((x) => x.url === url);
    return v?.valueDecimal ?? v?.valueInteger;
  };
  return {
    minimumDenominator: num('minimumDenominator') ?? 5,
    intermediate: num('intermediate'),
    target: num('target'),
  };
}
