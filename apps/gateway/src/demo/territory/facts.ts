import type {
  CareTeam,
  Coding,
  Condition,
  Encounter,
  Immunization,
  MedicationRequest,
  Observation,
  Procedure,
  Resource,
  Task,
} from '@medplum/fhirtypes';
import { DISCHARGE_DISPOSITION, TASK_CODE_SYSTEM } from '@gw/fhir';
import { CODES, CONDITION_CLINICAL } from '@gw/indicators';
import { TASK_TEXT } from '@gw/exchange';
import { Terminology } from '@gw/ingest';
import { addDays } from './random';
import type { Rng } from './random';
import type { Layout, Structure } from './structures';
import { ownerTag } from './structures';
import { CARE_TEAM_ROLE, GW_ENCOUNTER_PROFILE, GW_TASK_PROFILE } from './vocabulary';

const DAY_MS = 86_400_000;

/** What the clinical-fact builders of one person share: its random stream, ids, dates, records. */
export interface FactContext {
  rng: Rng;
  id: (key: string) => string;
  asOf: string;
  periodStart: string;
  patientRef: string;
  structure: Structure;
  resources: Resource[];
  /** The patient's active médecin traitant, if any. */
  gp?: string;
  /** The record (and structure) a fact lands on: the second practice's with probability `share`. */
  where: (share: number) => { ref: string; s: Structure };
}

/** A day of the indicator year. */
export function inPeriod(ctx: FactContext): string {
  return addDays(ctx.periodStart, ctx.rng.int(0, 364));
}

/** A day within `max` days before the end of the data. */
export function daysBack(ctx: FactContext, max: number): string {
  return addDays(ctx.asOf, -ctx.rng.int(0, max));
}

/** A day of the flu campaign (October to January) inside the period. */
export function fluDate(ctx: FactContext): string {
  for (let k = 0; k < 50; k++) {
    const d = inPeriod(ctx);
    if (['10', '11', '12', '01'].includes(d.slice(5, 7))) {
      return d;
    }
  }
  return inPeriod(ctx);
}

export function condition(ctx: FactContext, code: Coding): Condition {
  return {
    resourceType: 'Condition',
    id: ctx.id(`cond-${code.code}`),
    meta: { tag: [ownerTag(ctx.structure.ref)] },
    clinicalStatus: { coding: [{ system: CONDITION_CLINICAL, code: 'active' }] },
    verificationStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }],
    },
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] },
    ],
    code: { coding: [code], text: code.display },
    subject: { reference: ctx.patientRef },
    onsetDateTime: addDays(ctx.asOf, -ctx.rng.int(400, 7000)),
    recorder: ctx.gp ? { reference: ctx.gp } : undefined,
  };
}

export function medication(ctx: FactContext, code: Coding, key: string): MedicationRequest {
  return {
    resourceType: 'MedicationRequest',
    id: ctx.id(key),
    meta: { tag: [ownerTag(ctx.structure.ref)] },
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: { coding: [code], text: code.display },
    subject: { reference: ctx.patientRef },
    authoredOn: inPeriod(ctx),
    requester: ctx.gp ? { reference: ctx.gp } : undefined,
    dispenseRequest: {
      numberOfRepeatsAllowed: 2,
      expectedSupplyDuration: { value: 90, unit: 'd', system: 'http://unitsofmeasure.org', code: 'd' },
    },
  };
}

export function observation(
  ctx: FactContext,
  code: Coding,
  key: string,
  day: string,
  subject: string,
  s: Structure,
  quantity?: { value: number; unit: string },
  concept?: Coding,
): Observation {
  return {
    resourceType: 'Observation',
    id: ctx.id(key),
    meta: { tag: [ownerTag(s.ref)] },
    status: 'final',
    category: [
      { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] },
    ],
    code: { coding: [code], text: code.display },
    subject: { reference: subject },
    effectiveDateTime: day,
    ...(quantity
      ? {
          valueQuantity: {
            value: Math.round(quantity.value * 10) / 10,
            unit: quantity.unit,
            system: 'http://unitsofmeasure.org',
            code: quantity.unit,
          },
        }
      : {}),
    ...(concept ? { valueCodeableConcept: { coding: [concept] } } : {}),
  };
}

export function procedure(ctx: FactContext, code: Coding, key: string, day: string): Procedure {
  return {
    resourceType: 'Procedure',
    id: ctx.id(key),
    meta: { tag: [ownerTag(ctx.structure.ref)] },
    status: 'completed',
    code: { coding: [code], text: code.display },
    subject: { reference: ctx.patientRef },
    performedDateTime: day,
  };
}

/** A vaccination given on `day` to the patient record `subject`, filed by the structure `owner` (its reference). */
export function immunization(id: string, vaccine: Coding, day: string, subject: string, owner: string): Immunization {
  return {
    resourceType: 'Immunization',
    id,
    meta: { tag: [ownerTag(owner)] },
    status: 'completed',
    vaccineCode: { coding: [vaccine], text: vaccine.display },
    patient: { reference: subject },
    occurrenceDateTime: day,
    primarySource: true,
  };
}

export function visit(ctx: FactContext, key: string, start: string, subject: string, s: Structure): Encounter {
  const end = new Date(Date.parse(start) + 20 * 60_000).toISOString();
  const practitioner = s === ctx.structure && ctx.gp ? ctx.gp : ctx.rng.pick(s.gps);
  return {
    resourceType: 'Encounter',
    id: ctx.id(key),
    // Practice software rarely declares the gateway's profiles: visits get the base R4 validation
    // only (half the cost of the profiled one; visits are most of the resources).
    meta: { tag: [ownerTag(s.ref)] },
    status: 'finished',
    class: CODES.ambulatory,
    type: [{ coding: [{ system: 'http://snomed.info/sct', code: '11429006', display: 'Consultation' }] }],
    subject: { reference: subject },
    participant: [{ individual: { reference: practitioner } }],
    period: { start, end },
    serviceProvider: { reference: s.ref },
  };
}

/**
 * A hospital stay ending in the period, then (field rates of the CPTS "sortie" indicator) a
 * completed follow-up Task within days (35 %), else a primary-care visit within 7 days (20 %),
 * else a later visit or nothing.
 */
export function hospitalStay(ctx: FactContext, layout: Layout, k: number): void {
  const { rng } = ctx;
  const hospital = layout.hospitals[rng.weighted([70, 30])] as Layout['hospitals'][number];
  const start = Date.parse(
    `${addDays(ctx.periodStart, rng.int(0, 350))}T${String(rng.int(7, 20)).padStart(2, '0')}:00:00Z`,
  );
  const end = new Date(start + rng.int(1, 10) * DAY_MS + rng.int(0, 8) * 3_600_000);
  const stay: Encounter = {
    resourceType: 'Encounter',
    id: ctx.id(`stay-${k}`),
    meta: { profile: [GW_ENCOUNTER_PROFILE], tag: [ownerTag(hospital.ref)] },
    identifier: [{ system: hospital.visitSystem, value: `V${ctx.id(`stay-${k}`).slice(0, 8).toUpperCase()}` }],
    status: 'finished',
    class: CODES.inpatient,
    subject: { reference: ctx.patientRef },
    period: { start: new Date(start).toISOString(), end: end.toISOString() },
    hospitalization: {
      dischargeDisposition: { coding: [{ system: DISCHARGE_DISPOSITION, code: 'home', display: 'Home' }] },
    },
    serviceProvider: { reference: hospital.ref },
  };
  ctx.resources.push(stay);
  const draw = rng.next();
  const horizon = Date.parse(`${addDays(ctx.asOf, 1)}T00:00:00Z`);
  if (draw < 0.35) {
    const done = new Date(Math.min(horizon - 3_600_000, end.getTime() + rng.int(1, 6) * DAY_MS)).toISOString();
    const task: Task = {
      resourceType: 'Task',
      id: ctx.id(`follow-up-${k}`),
      meta: { profile: [GW_TASK_PROFILE], tag: [ownerTag(ctx.structure.ref)] },
      status: 'completed',
      intent: 'order',
      priority: 'urgent',
      code: {
        coding: [{ system: TASK_CODE_SYSTEM, code: 'discharge-follow-up', display: TASK_TEXT['discharge-follow-up'] }],
      },
      focus: { reference: `Encounter/${stay.id}` },
      for: { reference: ctx.patientRef },
      authoredOn: end.toISOString(),
      lastModified: done,
      executionPeriod: { start: end.toISOString(), end: done },
      owner: { reference: ctx.gp ?? ctx.structure.ref },
      restriction: { period: { end: new Date(end.getTime() + 7 * DAY_MS).toISOString().slice(0, 10) } },
    };
    ctx.resources.push(task);
  } else if (draw < 0.55 || rng.chance(0.4)) {
    const days = draw < 0.55 ? rng.int(1, 6) : rng.int(9, 40);
    if (end.getTime() + days * DAY_MS >= horizon) {
      return;
    }
    ctx.resources.push(
      visit(
        ctx,
        `after-stay-${k}`,
        new Date(end.getTime() + days * DAY_MS).toISOString().slice(0, 13) + ':00:00.000Z',
        ctx.patientRef,
        ctx.structure,
      ),
    );
  }
}

/**
 * A request to the CPTS's "find a médecin traitant" service (the exchange layer's `find-mt` Task,
 * owned by the CPTS): open from `asked`, completed on `done` when given.
 */
export function findMtTask(ctx: FactContext, cpts: string, asked: string, done?: string): Task {
  const at = (day: string): string => `${day}T10:00:00Z`;
  return {
    resourceType: 'Task',
    id: ctx.id('find-mt'),
    meta: { profile: [GW_TASK_PROFILE], tag: [ownerTag(cpts)] },
    status: done ? 'completed' : 'in-progress',
    intent: 'order',
    code: { coding: [{ system: TASK_CODE_SYSTEM, code: 'find-mt', display: TASK_TEXT['find-mt'] }] },
    for: { reference: ctx.patientRef },
    authoredOn: at(asked),
    lastModified: at(done ?? asked),
    executionPeriod: { start: at(asked), ...(done ? { end: at(done) } : {}) },
    owner: { reference: cpts },
  };
}

/** The médecin traitant's declaration over time (the CareTeam's PCP participants). */
export interface MtHistory {
  since: string;
  previous?: { gp: string; start: string; end: string };
}

/** The MT as a participant: the gateway's role and TRE_R259 PCP (fmt-contract), with its period. */
function mtParticipant(
  gp: string | undefined,
  period: { start: string; end?: string },
): NonNullable<CareTeam['participant']>[number] {
  return {
    role: [
      {
        coding: [
          { system: CARE_TEAM_ROLE, code: 'mt', display: 'Médecin traitant' },
          { system: Terminology.TRE_R259, code: 'PCP', display: 'Médecin traitant' },
        ],
      },
    ],
    member: { reference: gp },
    period,
  };
}

export function careTeam(ctx: FactContext, mt: MtHistory): CareTeam {
  const s = ctx.structure;
  const participant: CareTeam['participant'] = [mtParticipant(ctx.gp, { start: mt.since })];
  if (mt.previous) {
    participant.push(mtParticipant(mt.previous.gp, { start: mt.previous.start, end: mt.previous.end }));
  }
  if (s.nurses.length > 0) {
    participant.push({
      role: [{ coding: [{ system: CARE_TEAM_ROLE, code: 'nurse', display: 'Infirmier(e)' }] }],
      member: { reference: ctx.rng.pick(s.nurses) },
    });
  }
  if (s.coordinator) {
    participant.push({
      role: [{ coding: [{ system: CARE_TEAM_ROLE, code: 'coordinator', display: 'Coordinateur de parcours' }] }],
      member: { reference: s.coordinator },
    });
  }
  return {
    resourceType: 'CareTeam',
    id: ctx.id('care-team'),
    meta: { tag: [ownerTag(s.ref)] },
    status: 'active',
    name: 'Équipe de soins primaires',
    subject: { reference: ctx.patientRef },
    participant,
    managingOrganization: [{ reference: s.ref }],
  };
}
