import type {
  CareTeam,
  Condition,
  Consent,
  Encounter,
  MedicationStatement,
  Observation,
  Organization,
  Patient,
  Practitioner,
  PractitionerRole,
  Resource,
  Task,
} from '@medplum/fhirtypes';
import { FINESS, IDNATPS, nirKey } from '@gw/fhir';
import { nameUuid } from '@gw/platform';
import { OWNER_TAG_SYSTEM } from '@gw/store';
import { Rng, addDays } from '../../apps/gateway/src/demo/territory/random';
import {
  FAMILY_NAMES,
  GIVEN_FEMALE,
  GIVEN_MALE,
  INS_TEST_SYSTEM,
  PROFESSION,
} from '../../apps/gateway/src/demo/territory/vocabulary';

/**
 * The sharing benchmark's territory: 40 organizations (MSPs, cabinets infirmiers and kiné,
 * pharmacies, a laboratory, a hospital, a CPTS), their professionals and roles, and patients with
 * the resources that open the équipe-de-soins bases: a médecin traitant (structure team), MSP and
 * hospital encounters, CareTeams naming a nurse and a pharmacist of other structures (care
 * circle), permit Consents to a pharmacy (consent), hospital follow-up Tasks owned by the MSP,
 * oppositions (to everyone or to a named actor) and restricted resources (v3-Confidentiality R).
 * Deterministic: the same seed and size give the same resources and ids.
 */

export const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
export const SHARING_CONSENT_CATEGORY = 'https://gateway.fr-primary-care.org/fhir/CodeSystem/consent-category';
export const CARE_TEAM_ROLE_R259 = 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7RoleClass/FHIR/TRE-R259-HL7RoleClass';
const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const ATC = 'http://www.whocc.no/atc';
const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const IPP_PREFIX = 'urn:oid:1.2.250.1.999.2.';

/** LOINC codes of the observations, with relative frequencies (vital signs first, then labs). */
export const OBSERVATION_CODES: readonly {
  code: string;
  display: string;
  unit: string;
  w: number;
  lo: number;
  hi: number;
}[] = [
  { code: '29463-7', display: 'Body weight', unit: 'kg', w: 20, lo: 45, hi: 110 },
  { code: '8480-6', display: 'Systolic blood pressure', unit: 'mm[Hg]', w: 18, lo: 100, hi: 170 },
  { code: '8462-4', display: 'Diastolic blood pressure', unit: 'mm[Hg]', w: 18, lo: 60, hi: 100 },
  { code: '8867-4', display: 'Heart rate', unit: '/min', w: 10, lo: 50, hi: 110 },
  { code: '39156-5', display: 'Body mass index', unit: 'kg/m2', w: 8, lo: 18, hi: 40 },
  { code: '4548-4', display: 'Hemoglobin A1c', unit: '%', w: 5, lo: 5, hi: 10 },
  { code: '2160-0', display: 'Creatinine', unit: 'umol/L', w: 5, lo: 50, hi: 150 },
  { code: '13457-7', display: 'LDL cholesterol', unit: 'g/L', w: 4, lo: 0.7, hi: 2 },
  { code: '2345-7', display: 'Glucose', unit: 'g/L', w: 4, lo: 0.7, hi: 2 },
  { code: '718-7', display: 'Hemoglobin', unit: 'g/dL', w: 4, lo: 10, hi: 17 },
  { code: '8310-5', display: 'Body temperature', unit: 'Cel', w: 2, lo: 36, hi: 39.5 },
  { code: '59408-5', display: 'Oxygen saturation', unit: '%', w: 2, lo: 88, hi: 100 },
];
const CONDITIONS = [
  ['44054006', 'Diabetes mellitus type 2'],
  ['38341003', 'Hypertensive disorder'],
  ['195967001', 'Asthma'],
  ['13645005', 'Chronic obstructive lung disease'],
  ['35489007', 'Depressive disorder'],
  ['55822004', 'Hyperlipidemia'],
  ['49436004', 'Atrial fibrillation'],
  ['396275006', 'Osteoarthritis'],
] as const;
const MEDICATIONS = [
  ['A10BA02', 'metformine'],
  ['C09AA05', 'ramipril'],
  ['C10AA05', 'atorvastatine'],
  ['N02BE01', 'paracétamol'],
  ['R03AK06', 'salmétérol et fluticasone'],
  ['B01AF01', 'rivaroxaban'],
  ['N06AB10', 'escitalopram'],
  ['C07AB07', 'bisoprolol'],
] as const;

export type OrgKind = 'msp' | 'nursing' | 'physio' | 'pharmacy' | 'lab' | 'hospital' | 'cpts';

export interface BenchRole {
  practitioner: string;
  role: string;
  org: string;
  profession?: string;
  health: boolean;
  idNatPs: string;
}

export interface BenchOrg {
  index: number;
  kind: OrgKind;
  ref: string;
  name: string;
  roles: BenchRole[];
}

/** Who is who: organizations, roles, and for each MSP the structures its patients also see. */
export interface BenchLayout {
  orgs: BenchOrg[];
  msps: BenchOrg[];
  hospital: BenchOrg;
  /** Per MSP index: its neighbouring cabinet infirmier, cabinet kiné and pharmacies. */
  nursingOf: BenchOrg[];
  physioOf: BenchOrg[];
  pharmaciesOf: BenchOrg[][];
  resources: Resource[];
}

const COUNTS: Record<OrgKind, number> = { msp: 14, nursing: 5, physio: 3, pharmacy: 15, lab: 1, hospital: 1, cpts: 1 };
/** Roles per organization: profession code (TRE_G15) or undefined for non-health staff. */
const STAFF: Record<OrgKind, (string | undefined)[]> = {
  msp: ['10', '10', '10', '10', '60', '60', '70', '50', undefined, undefined],
  nursing: ['60', '60', '60'],
  physio: ['70', '70'],
  pharmacy: ['21', '21'],
  lab: ['21', '10'],
  hospital: ['10', '10', '10', '10', '10', '10', '60', '60', '60', undefined],
  cpts: [undefined],
};

function owner(ref: string): Resource['meta'] {
  return { tag: [{ system: OWNER_TAG_SYSTEM, code: ref }] };
}

export function buildLayout(seed: number): BenchLayout {
  const id = (k: string): string => nameUuid(`sharing-bench|${seed}|${k}`);
  const orgs: BenchOrg[] = [];
  const resources: Resource[] = [];
  let rpps = 0;
  for (const kind of Object.keys(COUNTS) as OrgKind[]) {
    for (let i = 0; i < COUNTS[kind]; i++) {
      const oid = id(`org|${kind}|${i}`);
      const ref = `Organization/${oid}`;
      const org: BenchOrg = { index: orgs.length, kind, ref, name: `${kind.toUpperCase()} ${i + 1}`, roles: [] };
      orgs.push(org);
      resources.push({
        resourceType: 'Organization',
        id: oid,
        meta: owner(ref),
        identifier: [{ system: FINESS, value: `63${String(900_000 + orgs.length * 7).padStart(7, '0')}` }],
        active: true,
        name: `${org.name} (bench)`,
      } satisfies Organization);
      for (const profession of STAFF[kind]) {
        rpps++;
        const pid = id(`pract|${rpps}`);
        const rid = id(`role|${rpps}`);
        const idNatPs = `8${String(10_000_000_000 + rpps * 13).slice(-10)}`;
        const female = rpps % 2 === 0;
        resources.push({
          resourceType: 'Practitioner',
          id: pid,
          meta: owner(ref),
          identifier: [{ system: IDNATPS, value: idNatPs }],
          name: [
            {
              family: FAMILY_NAMES[(rpps * 7) % FAMILY_NAMES.length],
              given: [(female ? GIVEN_FEMALE : GIVEN_MALE)[rpps % 20]],
            },
          ],
        } satisfies Practitioner);
        resources.push({
          resourceType: 'PractitionerRole',
          id: rid,
          meta: owner(ref),
          active: true,
          practitioner: { reference: `Practitioner/${pid}` },
          organization: { reference: ref },
          ...(profession ? { code: [{ coding: [{ system: PROFESSION, code: profession }] }] } : {}),
        } satisfies PractitionerRole);
        org.roles.push({
          practitioner: `Practitioner/${pid}`,
          role: `PractitionerRole/${rid}`,
          org: ref,
          profession,
          health: profession !== undefined,
          idNatPs,
        });
      }
    }
  }
  const of = (kind: OrgKind): BenchOrg[] => orgs.filter((o) => o.kind === kind);
  const msps = of('msp');
  const nursing = of('nursing');
  const physio = of('physio');
  const pharmacies = of('pharmacy');
  return {
    orgs,
    msps,
    hospital: of('hospital')[0],
    nursingOf: msps.map((_, i) => nursing[i % nursing.length]),
    physioOf: msps.map((_, i) => physio[i % physio.length]),
    pharmaciesOf: msps.map((_, i) => [pharmacies[i % pharmacies.length], pharmacies[(i + 1) % pharmacies.length]]),
    resources,
  };
}

/** What a patient was drawn with (the harness picks its query patients from these). */
export interface PatientFacts {
  index: number;
  id: string;
  msp: number;
  careCircle: boolean;
  consent: boolean;
  opposition: 'none' | 'all' | 'actor';
  hospital: boolean;
}

export function by(role: (r: BenchRole) => boolean, org: BenchOrg): BenchRole {
  const found = org.roles.find(role);
  if (!found) {
    throw new Error(`no such role in ${org.name}`);
  }
  return found;
}

/**
 * One patient and its record, about `mean` resources on average (chronic patients have more).
 * `asOf` is the last day of the data: everything happens in the 3 years before it.
 */
export function buildPatient(
  layout: BenchLayout,
  seed: number,
  index: number,
  asOf: string,
  mean: number,
): { facts: PatientFacts; resources: Resource[] } {
  const rng = Rng.for(seed, `sharing|p|${index}`);
  const id = (k: string): string => nameUuid(`sharing-bench|${seed}|p${index}|${k}`);
  const mspIndex = rng.weighted(layout.msps.map((_, i) => 14 - (i % 7)));
  const msp = layout.msps[mspIndex];
  const gps = msp.roles.filter((r) => r.profession === '10');
  const gp = gps[index % gps.length];
  const mspNurse = by((r) => r.profession === '60', msp);
  const nursing = layout.nursingOf[mspIndex];
  const pharmacy = layout.pharmaciesOf[mspIndex][rng.int(0, 1)];
  const hospital = layout.hospital;
  const pid = id('patient');
  const patientRef = `Patient/${pid}`;
  const female = rng.chance(0.52);
  const year = 1935 + rng.int(0, 85);
  const month = rng.int(1, 12);
  const nir13 = `${female ? 2 : 1}${String(year).slice(2)}${String(month).padStart(2, '0')}63${String(100 + (index % 800)).padStart(3, '0')}${String(index % 1000).padStart(3, '0')}`;
  const chronic = rng.chance(0.35);
  // Scale the record so the whole territory averages `mean` resources per patient.
  const k = (mean / 21) * (chronic ? 1.7 : 0.62);
  const facts: PatientFacts = {
    index,
    id: pid,
    msp: mspIndex,
    careCircle: rng.chance(chronic ? 0.55 : 0.12),
    consent: rng.chance(0.15),
    opposition: rng.chance(0.02) ? 'all' : rng.chance(0.02) ? 'actor' : 'none',
    hospital: rng.chance(0.12),
  };
  const day = (back: number): string => addDays(asOf, -back);
  const at = (back: number): string =>
    `${day(back)}T${String(8 + (back % 10)).padStart(2, '0')}:${String((back * 7) % 60).padStart(2, '0')}:00+01:00`;
  const restricted = (): Resource['meta'] | undefined =>
    rng.chance(0.03) ? { security: [{ system: CONFIDENTIALITY, code: 'R' }] } : undefined;
  const meta = (org: string): Resource['meta'] => {
    const r = restricted();
    return { ...owner(org), ...(r ?? {}) };
  };
  const out: Resource[] = [];
  out.push({
    resourceType: 'Patient',
    id: pid,
    meta: owner(msp.ref),
    identifier: [
      { use: 'official', system: INS_TEST_SYSTEM, value: nir13 + nirKey(nir13) },
      { use: 'usual', system: `${IPP_PREFIX}${mspIndex}`, value: `IPP${index}` },
    ],
    name: [
      {
        use: 'official',
        family: FAMILY_NAMES[rng.int(0, FAMILY_NAMES.length - 1)],
        given: [rng.pick(female ? GIVEN_FEMALE : GIVEN_MALE)],
      },
    ],
    gender: female ? 'female' : 'male',
    birthDate: `${year}-${String(month).padStart(2, '0')}-${String(rng.int(1, 28)).padStart(2, '0')}`,
    generalPractitioner: [{ reference: gp.role }],
  } satisfies Patient);

  const encounters: string[] = [];
  const visits = 1 + rng.poisson(4 * k);
  for (let v = 0; v < visits; v++) {
    const back = rng.int(0, 1000);
    const eid = id(`enc|${v}`);
    encounters.push(eid);
    out.push(encounter(eid, msp.ref, patientRef, gp.role, at(back), meta(msp.ref)));
  }
  const observations = rng.poisson(9 * k);
  for (let o = 0; o < observations; o++) {
    const c = OBSERVATION_CODES[rng.weighted(OBSERVATION_CODES.map((x) => x.w))];
    const enc = encounters[rng.int(0, encounters.length - 1)];
    out.push(observation(id(`obs|${o}`), patientRef, gp.role, at(rng.int(0, 1000)), c, rng, meta(msp.ref), enc));
  }
  const conditions = rng.poisson(2 * k);
  for (let c = 0; c < conditions; c++) {
    const [code, display] = rng.pick(CONDITIONS);
    out.push({
      resourceType: 'Condition',
      id: id(`cond|${c}`),
      meta: meta(msp.ref),
      clinicalStatus: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
      },
      category: [
        {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }],
        },
      ],
      code: { coding: [{ system: SNOMED, code, display }] },
      subject: { reference: patientRef },
      recordedDate: day(rng.int(0, 1000)),
      recorder: { reference: gp.role },
    } satisfies Condition);
  }
  const meds = rng.poisson(2.5 * k);
  for (let m = 0; m < meds; m++) {
    const [code, display] = rng.pick(MEDICATIONS);
    // A third of treatments are recorded by the pharmacy (dispensation), the rest by the GP.
    const author = rng.chance(0.33) ? pharmacy.ref : msp.ref;
    const start = rng.int(30, 1000);
    out.push({
      resourceType: 'MedicationStatement',
      id: id(`med|${m}`),
      meta: meta(author),
      status: rng.chance(0.7) ? 'active' : 'completed',
      medicationCodeableConcept: { coding: [{ system: ATC, code, display }] },
      subject: { reference: patientRef },
      effectivePeriod: { start: day(start) },
      dateAsserted: at(start),
    } satisfies MedicationStatement);
  }
  if (facts.careCircle) {
    const nurse = by((r) => r.profession === '60', nursing);
    const pharmacist = by((r) => r.profession === '21', pharmacy);
    const participant: CareTeam['participant'] = [
      { role: [r259('PCP', 'Médecin traitant')], member: { reference: gp.role }, period: { start: day(900) } },
      {
        role: [r259('PROV', 'Infirmier')],
        member: { reference: nurse.role },
        period: { start: day(rng.int(30, 700)) },
      },
      { role: [r259('PROV', 'Infirmier')], member: { reference: mspNurse.role } },
    ];
    if (rng.chance(0.5)) {
      participant.push({ role: [r259('PROV', 'Pharmacien')], member: { reference: pharmacist.role } });
    }
    if (rng.chance(0.3)) {
      // A participant whose period ended: no access any more.
      participant.push({
        role: [r259('PROV', 'Masseur-kinésithérapeute')],
        member: { reference: layout.physioOf[mspIndex].ref },
        period: { start: day(400), end: day(60) },
      });
    }
    out.push({
      resourceType: 'CareTeam',
      id: id('careteam'),
      meta: owner(msp.ref),
      status: 'active',
      subject: { reference: patientRef },
      participant,
      managingOrganization: [{ reference: msp.ref }],
    } satisfies CareTeam);
    // The cabinet infirmier's own records of the patient: a basis covers the whole record, whoever filed it.
    const nurseObs = rng.poisson(2 * k);
    for (let o = 0; o < nurseObs; o++) {
      const c = OBSERVATION_CODES[rng.int(0, 4)];
      out.push(observation(id(`nobs|${o}`), patientRef, nurse.role, at(rng.int(0, 600)), c, rng, meta(nursing.ref)));
    }
  }
  if (facts.consent) {
    out.push(
      consent(
        id('consent'),
        msp.ref,
        patientRef,
        'permit',
        day(rng.int(10, 500)),
        [{ reference: pharmacy.ref }],
        ['MedicationStatement', 'Observation', 'Condition'],
      ),
    );
  }
  if (facts.opposition !== 'none') {
    // Objects to sharing with everyone, or with the nearby cabinet infirmier only.
    out.push(
      consent(
        id('opposition'),
        msp.ref,
        patientRef,
        'deny',
        day(rng.int(10, 300)),
        facts.opposition === 'actor' ? [{ reference: nursing.ref }] : [],
        undefined,
      ),
    );
  }
  if (facts.hospital) {
    const doctor = by((r) => r.profession === '10', hospital);
    const hid = id('hosp-enc');
    const back = rng.int(5, 700);
    out.push(encounter(hid, hospital.ref, patientRef, doctor.role, at(back), owner(hospital.ref)));
    for (let o = 0; o < 1 + rng.poisson(2 * k); o++) {
      const c = OBSERVATION_CODES[rng.int(0, OBSERVATION_CODES.length - 1)];
      out.push(observation(id(`hobs|${o}`), patientRef, doctor.role, at(back), c, rng, meta(hospital.ref), hid));
    }
    if (rng.chance(0.4)) {
      // The discharge follow-up: filed by the hospital, owned by the MSP (or an open one with the nursing practice).
      const toNurse = rng.chance(0.3);
      const status = rng.chance(0.6) ? 'requested' : 'completed';
      out.push({
        resourceType: 'Task',
        id: id('task'),
        meta: owner(hospital.ref),
        status,
        intent: 'order',
        code: { text: 'Suivi de sortie d’hospitalisation' },
        for: { reference: patientRef },
        encounter: { reference: `Encounter/${hid}` },
        authoredOn: at(back),
        requester: { reference: doctor.role },
        owner: { reference: toNurse ? nursing.ref : msp.ref },
        input: [
          {
            type: { text: 'Compte rendu de sortie' },
            valueReference: { reference: `Encounter/${hid}` },
          },
        ],
      } satisfies Task);
    }
  }
  return { facts, resources: out };
}

function r259(code: string, display: string): { coding: { system: string; code: string; display: string }[] } {
  return { coding: [{ system: CARE_TEAM_ROLE_R259, code, display }] };
}

function encounter(
  id: string,
  org: string,
  patientRef: string,
  role: string,
  start: string,
  meta: Resource['meta'],
): Encounter {
  return {
    resourceType: 'Encounter',
    id,
    meta,
    status: 'finished',
    class: { system: ACT_CODE, code: 'AMB', display: 'ambulatory' },
    subject: { reference: patientRef },
    participant: [{ individual: { reference: role } }],
    period: { start, end: start.replace(/T(\d\d)/, (_m, h: string) => `T${String(Number(h) + 1).padStart(2, '0')}`) },
    serviceProvider: { reference: org },
  };
}

function observation(
  id: string,
  patientRef: string,
  role: string,
  effective: string,
  c: (typeof OBSERVATION_CODES)[number],
  rng: Rng,
  meta: Resource['meta'],
  encounterId?: string,
): Observation {
  const value = Math.round((c.lo + rng.next() * (c.hi - c.lo)) * 10) / 10;
  return {
    resourceType: 'Observation',
    id,
    meta,
    status: 'final',
    category: [
      {
        coding: [
          {
            system: 'http://terminology.hl7.org/CodeSystem/observation-category',
            code: ['8480-6', '8462-4', '8867-4', '29463-7', '39156-5', '8310-5', '59408-5'].includes(c.code)
              ? 'vital-signs'
              : 'laboratory',
          },
        ],
      },
    ],
    code: { coding: [{ system: LOINC, code: c.code, display: c.display }] },
    subject: { reference: patientRef },
    ...(encounterId ? { encounter: { reference: `Encounter/${encounterId}` } } : {}),
    effectiveDateTime: effective,
    performer: [{ reference: role }],
    valueQuantity: { value, unit: c.unit, system: 'http://unitsofmeasure.org', code: c.unit },
  };
}

function consent(
  id: string,
  org: string,
  patientRef: string,
  type: 'permit' | 'deny',
  start: string,
  actors: { reference: string }[],
  classes: string[] | undefined,
): Consent {
  return {
    resourceType: 'Consent',
    id,
    meta: owner(org),
    status: 'active',
    scope: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
    },
    category: [{ coding: [{ system: SHARING_CONSENT_CATEGORY, code: 'equipe-de-soins' }] }],
    patient: { reference: patientRef },
    dateTime: `${start}T10:00:00+01:00`,
    policyRule: {
      coding: [
        { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: type === 'permit' ? 'OPTIN' : 'OPTOUT' },
      ],
    },
    provision: {
      type,
      period: { start },
      ...(actors.length > 0
        ? {
            actor: actors.map((reference) => ({
              role: {
                coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }],
              },
              reference,
            })),
          }
        : {}),
      ...(classes ? { class: classes.map((code) => ({ system: 'http://hl7.org/fhir/resource-types', code })) } : {}),
    },
  };
}
