import { randomUUID } from 'node:crypto';
import type {
  AllergyIntolerance,
  CodeableConcept,
  Condition,
  Encounter,
  Immunization,
  MedicationDispense,
  MedicationStatement,
  Observation,
  Patient,
  Procedure,
  Reference,
  SupplyDelivery,
} from '@medplum/fhirtypes';
import { CONDITION_CLINICAL, CONDITION_VER_STATUS, V3_ACT_CODE, V3_INTERPRETATION } from '../terminology/code-systems';
import { PATIENT_PLACEHOLDER, type ExtractedResource, type ExtractionWarning } from '../intake/extraction';
import { cdaCodings, cdaConcept, cdaInterval, cdaPeriod, cdaQuantity, cdaTime, xsiType } from './cda-values';
import { all, at, attr, first, hasTemplate, text, type XmlNode } from './cda-xml';

/** Entry templates (IHE PCC / PALM, CI-SIS) the reader turns into facts. */
const T = {
  problemEntry: '1.3.6.1.4.1.19376.1.5.3.1.4.5',
  allergyConcern: '1.3.6.1.4.1.19376.1.5.3.1.4.5.3',
  medication: '1.3.6.1.4.1.19376.1.5.3.1.4.7',
  immunization: '1.3.6.1.4.1.19376.1.5.3.1.4.12',
  procedure: '1.3.6.1.4.1.19376.1.5.3.1.4.19',
  labObservation: '1.3.6.1.4.1.19376.1.3.1.6',
  labProcedureStep: '1.3.6.1.4.1.19376.1.3.1.2',
  simpleObservation: '1.3.6.1.4.1.19376.1.5.3.1.4.13',
  encounter: '1.3.6.1.4.1.19376.1.5.3.1.4.14',
  supply: '2.16.840.1.113883.10.20.1.34',
  vaccinationRank: '2.16.840.1.113883.10.20.1.46',
  problemStatus: '2.16.840.1.113883.10.20.1.57',
  reaction: '2.16.840.1.113883.10.20.1.54',
} as const;

/** Section codes (LOINC) that change how their entries are read. */
const SECTION = {
  history: '11348-0',
  allergies: '48765-2',
  plan: '18776-5',
  familyHistory: '10157-6',
  vitalSigns: '8716-3',
  socialHistory: '29762-2',
  results: '30954-2',
  adverseEffects: '44939-7',
  devices: '46264-8',
  attachments: ['55107-7', '55108-5'],
} as const;

const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const CONDITION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/condition-category';
const PATIENT: Reference<Patient> = { reference: PATIENT_PLACEHOLDER };

export interface EntryContext {
  /** Reimbursement history (CNAM-HR, document code REMB): medications are dispensations. */
  reimbursement: boolean;
  warnings: ExtractionWarning[];
  resources: ExtractedResource[];
  /** Lab results, for the DiagnosticReport of a CR-BIO. */
  labResults: string[];
}

interface Where {
  path: string;
  section: string | undefined;
}

/** Walks a section, its entries and its sub-sections. */
export function readSection(section: XmlNode, path: string, ctx: EntryContext): void {
  const code = attr(first(section, 'code'), 'code');
  const here = `${path}/section[${code ?? '?'}]`;
  if (code && (SECTION.attachments as readonly string[]).includes(code)) return;
  if (code === SECTION.familyHistory) {
    if (all(section, 'entry').length > 0) {
      ctx.warnings.push({ location: here, text: 'Family history is not extracted as facts about the patient' });
    }
    return;
  }
  all(section, 'entry').forEach((entry, i) => {
    for (const [tag, nodes] of Object.entries(entry)) {
      if (tag.startsWith('@') || !Array.isArray(nodes) || tag === 'templateId') continue;
      for (const node of all(entry, tag))
        readEntry(tag, node, { path: `${here}/entry[${i + 1}]/${tag}`, section: code }, ctx);
    }
  });
  for (const component of all(section, 'component')) {
    for (const sub of all(component, 'section')) readSection(sub, here, ctx);
  }
}

function readEntry(tag: string, node: XmlNode, where: Where, ctx: EntryContext): void {
  if (attr(node, 'moodCode') && !['EVN', 'INT'].includes(attr(node, 'moodCode') as string)) return;
  // Plan of care (IHE PCC): planned acts, not facts. A VSM nests its treatments under a plan
  // section but in their own 10160-0 section, which is read.
  if (where.section === SECTION.plan) return;
  switch (tag) {
    case 'act':
      return readAct(node, where, ctx);
    case 'observation':
      return readObservation(node, where, ctx);
    case 'substanceAdministration':
      return readSubstanceAdministration(node, where, ctx);
    case 'procedure':
      return readProcedure(node, where, ctx);
    case 'encounter':
      return readEncounter(node, where, ctx);
    case 'supply':
      return readSupply(node, where, ctx);
    case 'organizer':
      return readChildren(node, where, ctx, 'component');
    default:
      ctx.warnings.push({ location: where.path, text: `Entry ${tag} is not extracted` });
  }
}

/** Recurses into entryRelationship (act containers: concerns, lab batteries) or organizer components. */
function readChildren(node: XmlNode, where: Where, ctx: EntryContext, link = 'entryRelationship'): void {
  all(node, link).forEach((rel, i) => {
    for (const [tag, nodes] of Object.entries(rel)) {
      if (tag.startsWith('@') || !Array.isArray(nodes) || tag === 'templateId' || tag === 'sequenceNumber') continue;
      for (const child of all(rel, tag))
        readEntry(tag, child, { ...where, path: `${where.path}/${link}[${i + 1}]/${tag}` }, ctx);
    }
  });
}

function push(ctx: EntryContext, resource: ExtractedResource['resource'], fullUrl?: string): void {
  ctx.resources.push(fullUrl ? { resource, fullUrl } : { resource });
}

function readAct(node: XmlNode, where: Where, ctx: EntryContext): void {
  // Concern acts (problems, allergies) and lab batteries carry the facts in entryRelationship.
  if (hasTemplate(node, T.allergyConcern) || where.section === SECTION.allergies) {
    for (const rel of all(node, 'entryRelationship')) {
      for (const obs of all(rel, 'observation')) readAllergy(obs, { ...where, path: `${where.path}/observation` }, ctx);
    }
    return;
  }
  readChildren(node, where, ctx);
}

function readObservation(node: XmlNode, where: Where, ctx: EntryContext): void {
  if (hasTemplate(node, T.problemEntry) && !hasTemplate(node, T.reaction)) {
    if (where.section === SECTION.adverseEffects) return;
    return readProblem(node, where, ctx);
  }
  if (hasTemplate(node, T.labObservation)) return readResult(node, where, ctx, 'laboratory');
  if (hasTemplate(node, T.simpleObservation)) {
    const category =
      where.section === SECTION.vitalSigns
        ? 'vital-signs'
        : where.section === SECTION.socialHistory
          ? 'social-history'
          : where.section === SECTION.results
            ? 'laboratory'
            : undefined;
    if (category) return readResult(node, where, ctx, category);
  }
}

function statusCodeOf(node: XmlNode): string | undefined {
  for (const rel of all(node, 'entryRelationship')) {
    for (const obs of all(rel, 'observation')) {
      if (hasTemplate(obs, T.problemStatus)) return attr(first(obs, 'value'), 'code');
    }
  }
  return undefined;
}

function readProblem(node: XmlNode, where: Where, ctx: EntryContext): void {
  const code = cdaConcept(first(node, 'value'), `${where.path}/value`, ctx.warnings);
  if (!code) {
    ctx.warnings.push({ location: where.path, text: 'Problem without a coded value: not extracted' });
    return;
  }
  const period = cdaPeriod(first(node, 'effectiveTime'));
  const status = statusCodeOf(node) ?? (where.section === SECTION.history || period.end ? 'resolved' : 'active');
  const clinical = ['active', 'recurrence', 'relapse', 'inactive', 'remission', 'resolved'].includes(status)
    ? status
    : 'active';
  const condition: Condition = {
    resourceType: 'Condition',
    subject: PATIENT,
    code,
    clinicalStatus: { coding: [{ system: CONDITION_CLINICAL, code: clinical }] },
    verificationStatus: {
      coding: [{ system: CONDITION_VER_STATUS, code: attr(node, 'negationInd') === 'true' ? 'refuted' : 'confirmed' }],
    },
    category: [{ coding: [{ system: CONDITION_CATEGORY, code: 'problem-list-item' }] }],
    ...(period.start ? { onsetDateTime: period.start } : {}),
    ...(period.end ? { abatementDateTime: period.end } : {}),
  };
  push(ctx, condition);
}

function readAllergy(node: XmlNode, where: Where, ctx: EntryContext): void {
  const agent = at(first(node, 'participant'), 'participantRole', 'playingEntity');
  const code =
    cdaConcept(first(agent, 'code'), `${where.path}/participant/code`, ctx.warnings) ??
    cdaConcept(first(node, 'value'), `${where.path}/value`, ctx.warnings);
  if (!code) {
    ctx.warnings.push({ location: where.path, text: 'Allergy without a coded agent: not extracted' });
    return;
  }
  const kind = attr(first(node, 'code'), 'code');
  const period = cdaPeriod(first(node, 'effectiveTime'));
  const status = statusCodeOf(node);
  const allergy: AllergyIntolerance = {
    resourceType: 'AllergyIntolerance',
    patient: PATIENT,
    code,
    clinicalStatus: {
      coding: [
        {
          system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical',
          code: status === 'resolved' ? 'resolved' : status === 'inactive' ? 'inactive' : 'active',
        },
      ],
    },
    // SNOMED CT 416098002 drug allergy, 419511003 drug intolerance (IHE PCC allergy types).
    ...(kind === '416098002' || kind === '419511003' || kind === '59037007'
      ? { category: ['medication' as const] }
      : {}),
    ...(period.start ? { onsetDateTime: period.start } : {}),
  };
  push(ctx, allergy);
}

function readResult(node: XmlNode, where: Where, ctx: EntryContext, category: string): void {
  const code = cdaConcept(first(node, 'code'), `${where.path}/code`, ctx.warnings);
  if (!code) {
    ctx.warnings.push({ location: where.path, text: 'Result without a code: not extracted' });
    return;
  }
  const value = first(node, 'value');
  const obs: Observation = {
    resourceType: 'Observation',
    status:
      attr(first(node, 'statusCode'), 'code') === 'completed' || !first(node, 'statusCode') ? 'final' : 'preliminary',
    category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: category }] }],
    code,
    subject: PATIENT,
  };
  const period = cdaPeriod(first(node, 'effectiveTime'));
  if (period.at) obs.effectiveDateTime = period.at;
  else if (period.start) obs.effectivePeriod = { start: period.start, end: period.end };
  Object.assign(obs, observationValue(value, `${where.path}/value`, ctx));
  const interpretation = all(node, 'interpretationCode')
    .map((c) => cdaCodings(c, `${where.path}/interpretationCode`, ctx.warnings))
    .filter((c) => c.length > 0)
    .map((coding) => ({ coding: coding.map((c) => ({ ...c, system: c.system ?? V3_INTERPRETATION })) }));
  if (interpretation.length > 0) obs.interpretation = interpretation;
  const ranges = all(node, 'referenceRange')
    .map((r) => at(r, 'observationRange', 'value'))
    .map((v) => cdaInterval(v))
    .map(
      (r) =>
        r.range ??
        (r.quantity?.comparator?.startsWith('<')
          ? { high: strip(r.quantity) }
          : r.quantity
            ? { low: strip(r.quantity) }
            : undefined),
    )
    .filter((r): r is NonNullable<typeof r> => !!r);
  if (ranges.length > 0) obs.referenceRange = ranges;
  const fullUrl = `urn:uuid:${randomUUID()}`;
  push(ctx, obs, fullUrl);
  if (category === 'laboratory') ctx.labResults.push(fullUrl);
}

function strip<Q extends { comparator?: string }>(q: Q): Omit<Q, 'comparator'> {
  const rest = { ...q };
  delete rest.comparator;
  return rest;
}

function observationValue(value: XmlNode | undefined, where: string, ctx: EntryContext): Partial<Observation> {
  switch (xsiType(value)) {
    case 'PQ': {
      const q = cdaQuantity(value);
      return q ? { valueQuantity: q } : {};
    }
    case 'IVL_PQ': {
      const { range, quantity } = cdaInterval(value);
      return range ? { valueRange: range } : quantity ? { valueQuantity: quantity } : {};
    }
    case 'INT': {
      const n = Number(attr(value, 'value'));
      return Number.isInteger(n) ? { valueInteger: n } : {};
    }
    case 'BL':
      return attr(value, 'value') ? { valueBoolean: attr(value, 'value') === 'true' } : {};
    case 'CD':
    case 'CE':
    case 'CV': {
      const concept = cdaConcept(value, where, ctx.warnings);
      return concept ? { valueCodeableConcept: concept } : {};
    }
    case 'ST':
      return text(value) ? { valueString: text(value) } : {};
    case 'TS': {
      const t = cdaTime(attr(value, 'value'));
      return t ? { valueDateTime: t } : {};
    }
    case undefined:
    default:
      return {};
  }
}

/** Drug or vaccine: the manufacturedMaterial code (CIS, CIP…) with its translations (ATC, CIP). */
function productOf(node: XmlNode, where: Where, ctx: EntryContext): CodeableConcept | undefined {
  const material = at(node, 'consumable', 'manufacturedProduct', 'manufacturedMaterial');
  const concept = cdaConcept(first(material, 'code'), `${where.path}/consumable/code`, ctx.warnings);
  const name = text(first(material, 'name'));
  if (concept && name && !concept.text) concept.text = name;
  return concept;
}

function readSubstanceAdministration(node: XmlNode, where: Where, ctx: EntryContext): void {
  if (hasTemplate(node, T.immunization)) return readImmunization(node, where, ctx);
  if (!hasTemplate(node, T.medication)) return;
  const medication = productOf(node, where, ctx);
  if (!medication) {
    ctx.warnings.push({ location: where.path, text: 'Medication without a product code: not extracted' });
    return;
  }
  const times = all(node, 'effectiveTime').map((e) => cdaPeriod(e));
  const period = times.find((t) => t.start || t.end) ?? times.find((t) => t.at) ?? {};
  if (ctx.reimbursement) {
    const supply = at(first(node, 'entryRelationship'), 'supply');
    const qty = cdaQuantity(first(supply, 'quantity'));
    const when = cdaTime(attr(first(supply, 'effectiveTime'), 'value')) ?? period.at ?? period.start;
    const dispense: MedicationDispense = {
      resourceType: 'MedicationDispense',
      status: 'completed',
      subject: PATIENT,
      medicationCodeableConcept: medication,
      ...(when ? { whenHandedOver: when } : {}),
      ...(qty ? { quantity: qty } : {}),
    };
    push(ctx, dispense);
    return;
  }
  const statement: MedicationStatement = {
    resourceType: 'MedicationStatement',
    status: period.end && period.end < new Date().toISOString() ? 'completed' : 'active',
    subject: PATIENT,
    medicationCodeableConcept: medication,
    ...(period.start || period.end ? { effectivePeriod: { start: period.start, end: period.end } } : {}),
    ...(!period.start && !period.end && period.at ? { effectiveDateTime: period.at } : {}),
  };
  push(ctx, statement);
}

function readImmunization(node: XmlNode, where: Where, ctx: EntryContext): void {
  const vaccineCode = productOf(node, where, ctx);
  if (!vaccineCode) {
    ctx.warnings.push({ location: where.path, text: 'Vaccination without a vaccine code: not extracted' });
    return;
  }
  const period = cdaPeriod(first(node, 'effectiveTime'));
  const at0 = period.at ?? period.start;
  let rank: number | undefined;
  for (const rel of all(node, 'entryRelationship')) {
    for (const obs of all(rel, 'observation')) {
      if (hasTemplate(obs, T.vaccinationRank)) rank = Number(attr(first(obs, 'value'), 'value'));
    }
  }
  const lot = text(at(node, 'consumable', 'manufacturedProduct', 'manufacturedMaterial', 'lotNumberText'));
  const immunization: Immunization = {
    resourceType: 'Immunization',
    status: attr(node, 'negationInd') === 'true' ? 'not-done' : 'completed',
    vaccineCode,
    patient: PATIENT,
    ...(at0 ? { occurrenceDateTime: at0 } : { occurrenceString: 'date inconnue' }),
    ...(lot ? { lotNumber: lot } : {}),
    ...(rank && Number.isInteger(rank) && rank > 0 ? { protocolApplied: [{ doseNumberPositiveInt: rank }] } : {}),
  };
  push(ctx, immunization);
}

function readProcedure(node: XmlNode, where: Where, ctx: EntryContext): void {
  if (!hasTemplate(node, T.procedure) && !hasTemplate(node, T.labProcedureStep)) return;
  const code = cdaConcept(first(node, 'code'), `${where.path}/code`, ctx.warnings);
  if (!code) {
    ctx.warnings.push({ location: where.path, text: 'Procedure without a code: not extracted' });
    return;
  }
  const period = cdaPeriod(first(node, 'effectiveTime'));
  const procedure: Procedure = {
    resourceType: 'Procedure',
    status: attr(first(node, 'statusCode'), 'code') === 'active' ? 'in-progress' : 'completed',
    subject: PATIENT,
    code,
    ...(period.at ? { performedDateTime: period.at } : {}),
    ...(!period.at && (period.start || period.end)
      ? { performedPeriod: { start: period.start, end: period.end } }
      : {}),
  };
  push(ctx, procedure);
}

function readEncounter(node: XmlNode, where: Where, ctx: EntryContext): void {
  if (!hasTemplate(node, T.encounter)) return;
  const period = cdaPeriod(first(node, 'effectiveTime'));
  const cls = attr(first(node, 'code'), 'code');
  const type = all(node, 'qualifier')
    .map((q) => cdaConcept(first(q, 'value'), `${where.path}/qualifier/value`, ctx.warnings))
    .filter((c): c is CodeableConcept => !!c);
  const encounter: Encounter = {
    resourceType: 'Encounter',
    status: period.end || ctx.reimbursement ? 'finished' : 'unknown',
    class: { system: V3_ACT_CODE, code: cls ?? 'AMB' },
    subject: PATIENT,
    ...(type.length > 0 ? { type } : {}),
    ...(period.start || period.end || period.at
      ? { period: { start: period.start ?? period.at, end: period.end ?? period.at } }
      : {}),
  };
  push(ctx, encounter);
}

/** Devices dispensed (reimbursement history, LPP codes). */
function readSupply(node: XmlNode, where: Where, ctx: EntryContext): void {
  if (!hasTemplate(node, T.supply) || where.section !== SECTION.devices) return;
  const device = at(first(node, 'participant'), 'participantRole', 'playingDevice');
  const item = cdaConcept(first(device, 'code'), `${where.path}/participant/playingDevice/code`, ctx.warnings);
  if (!item) {
    ctx.warnings.push({ location: where.path, text: 'Device without a code: not extracted' });
    return;
  }
  const when = cdaPeriod(first(node, 'effectiveTime'));
  const qty = cdaQuantity(first(node, 'quantity'));
  const delivery: SupplyDelivery = {
    resourceType: 'SupplyDelivery',
    status: 'completed',
    patient: PATIENT,
    suppliedItem: { itemCodeableConcept: item, ...(qty ? { quantity: qty } : {}) },
    ...(when.at || when.start ? { occurrenceDateTime: when.at ?? when.start } : {}),
  };
  push(ctx, delivery);
}
