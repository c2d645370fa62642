import type {
  CodeableConcept,
  Coding,
  Consent,
  Encounter,
  EncounterLocation,
  Extension,
  HumanName,
  Identifier,
  Patient,
  Practitioner,
} from '@medplum/fhirtypes';
import {
  COMMUNE_CODES,
  CONSENT_CODES,
  DISCHARGE_DISPOSITION,
  FINESS,
  GW,
  GW_PATIENT_PROFILE,
  IDENTIFIER_TYPES,
  IDNATPS,
  INSEE_CODE_EXTENSION,
  RELIABILITY_CODES,
  RELIABILITY_EXTENSION,
  RPPS,
  V2_0203,
} from '@gw/fhir';
import { keptIdentity } from '../identity/patient-identity.rules';
import { MOVEMENT_KIND } from './pam-fr.reader';

export { CONSENT_CODES, FINESS, GW, IDNATPS, RPPS };
import type { AddressData, Cx, DoctorData, MovementData, PatientData, UnitData } from './pam-fr.reader';

const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const BIRTH_GIVEN_LIST = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name';
const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const PMSI_MODE_SORTIE = `${GW}/fhir/CodeSystem/pmsi-mode-sortie`;
const PMSI_MODE_ENTREE = `${GW}/fhir/CodeSystem/pmsi-mode-entree`;
const V2_0112 = 'http://terminology.hl7.org/CodeSystem/v2-0112';
export const CONSENT_IDS = `${GW}/fhir/NamingSystem/consent`;

/** The identifier system of a CX (IPP, visit number): the source's setting, an ISO OID, else per facility. */
export function cxSystem(
  cx: Cx,
  configured: string | null | undefined,
  facility: string,
  kind: 'ipp' | 'visit',
): string {
  if (configured) {
    return configured;
  }
  if (cx.oid) {
    return `urn:oid:${cx.oid}`;
  }
  return `${GW}/hl7/${encodeURIComponent(cx.namespace || facility)}/${kind}`;
}

function ippIdentifier(system: string, value: string, use: Identifier['use'] = 'usual'): Identifier {
  return { use, type: { coding: [{ system: V2_0203, code: 'PI' }] }, system, value };
}

/**
 * The Patient after this message: PID is a full snapshot in PAM-FR, so the mapped parts replace
 * what the hospital sent before; identifiers and names from elsewhere are kept.
 *
 * A PID-3 INS that failed its checks (`insRejected`) changes no INS: a valid INS already stored stays,
 * with its identity status unless PID-32 itself says provisional (a mistyped INS must not erase or
 * downgrade a qualified identity); without a valid stored INS the identity is provisional
 * (the rules: identity/patient-identity.rules.ts, keptIdentity).
 */
export function buildPatient(
  existing: Patient | undefined,
  p: PatientData,
  ippSystem: string,
  doctor?: { ref: string; remove: boolean },
): Patient {
  const out: Patient = { ...(existing ?? {}), resourceType: 'Patient' };
  delete out.meta;
  const { identifiers: kept, keepStatus: keepIdentity } = keptIdentity(existing, p, ippSystem);
  const ids: Identifier[] = [ippIdentifier(ippSystem, p.ipp?.value ?? '')];
  if (p.ins) {
    ids.push({
      use: 'official',
      type: { coding: [{ system: IDENTIFIER_TYPES, code: p.ins.kind }] },
      system: `urn:oid:${p.ins.oid}`,
      value: p.ins.value,
    });
  }
  out.identifier = [...ids, ...kept.filter((k) => !ids.some((i) => i.system === k.system && i.value === k.value))];
  if (p.names.length > 0) {
    out.name = [
      ...p.names.map(toHumanName),
      ...(existing?.name ?? []).filter((n) => n.use !== 'official' && n.use !== 'usual'),
    ];
  }
  if (p.birthDate) {
    out.birthDate = p.birthDate;
  }
  if (p.gender) {
    out.gender = p.gender;
  }
  setOrDelete(out, 'address', p.addresses.length > 0 ? p.addresses.map(toAddress).map(clean) : undefined);
  setOrDelete(out, 'telecom', p.telecoms.length > 0 ? p.telecoms : undefined);
  if (typeof p.deceased === 'string') {
    out.deceasedDateTime = p.deceased;
    delete out.deceasedBoolean;
  } else if (typeof p.deceased === 'boolean' && !out.deceasedDateTime) {
    out.deceasedBoolean = p.deceased;
  }
  const ext = (existing?.extension ?? []).filter(
    (e) => (keepIdentity || e.url !== RELIABILITY_EXTENSION) && e.url !== BIRTH_PLACE,
  );
  if (p.identityStatus && !keepIdentity) {
    ext.push({
      url: RELIABILITY_EXTENSION,
      extension: [{ url: 'identityStatus', valueCoding: { system: RELIABILITY_CODES, code: p.identityStatus } }],
    });
  }
  if (p.birthPlace) {
    ext.push({
      url: BIRTH_PLACE,
      valueAddress: clean({
        city: p.birthPlace.city,
        country: p.birthPlace.country,
        extension: [{ url: INSEE_CODE_EXTENSION, valueCoding: { system: COMMUNE_CODES, code: p.birthPlace.insee } }],
      }),
    });
  }
  setOrDelete(out, 'extension', ext.length > 0 ? ext : undefined);
  if (doctor) {
    const others = (existing?.generalPractitioner ?? []).filter(
      (g) => g.reference !== doctor.ref && !g.reference?.startsWith('Practitioner/'),
    );
    setOrDelete(
      out,
      'generalPractitioner',
      doctor.remove ? (others.length ? others : undefined) : [{ reference: doctor.ref }, ...others],
    );
  }
  if (out.active === undefined) {
    out.active = true;
  }
  out.meta = { profile: [GW_PATIENT_PROFILE] };
  return out;
}

function toHumanName(n: PatientData['names'][number]): HumanName {
  const name: HumanName = { use: n.use, family: n.family };
  if (n.given) {
    name.given = [n.given];
  }
  if (n.birthGivenList) {
    name.extension = [{ url: BIRTH_GIVEN_LIST, valueString: n.birthGivenList }];
  }
  return name;
}

/** A40: the prior patient is kept, inactive, pointing at the survivor; its IPP becomes `old`. */
export function markReplaced(prior: Patient, survivorRef: string): Patient {
  const out: Patient = { ...prior, active: false };
  delete out.meta;
  out.link = [
    ...(prior.link ?? []).filter((l) => l.other.reference !== survivorRef),
    { other: { reference: survivorRef }, type: 'replaced-by' },
  ];
  out.identifier = (prior.identifier ?? []).map((i) => (isIpp(i) ? { ...i, use: 'old' } : i));
  out.meta = prior.meta?.profile ? { profile: prior.meta.profile } : undefined;
  return clean(out);
}

/** The survivor of a merge (or the patient of an A47) keeps the prior identifiers as `old`. */
export function addOldIdentifiers(p: Patient, prior: Identifier[], replacesRef?: string): Patient {
  const out: Patient = { ...p };
  const ids = [...(p.identifier ?? [])];
  for (const i of prior.filter(isIpp)) {
    if (!ids.some((x) => x.system === i.system && x.value === i.value)) {
      ids.push({ ...i, use: 'old' });
    }
  }
  out.identifier = ids;
  if (replacesRef && !(p.link ?? []).some((l) => l.other.reference === replacesRef)) {
    out.link = [...(p.link ?? []), { other: { reference: replacesRef }, type: 'replaces' }];
  }
  return out;
}

function isIpp(i: Identifier): boolean {
  return i.type?.coding?.some((c) => c.code === 'PI') ?? false;
}

/**
 * The Practitioner of an HL7 ROL (médecin traitant): identifiers typed as FR Core types them
 * (fr-core-cs-identifier-type: IDNPS for the IdNatPS, RPPS for the RPPS number), and the name as
 * sent: ROL carries no title, so none is made up (not every médecin traitant is a "Dr").
 */
export function buildPractitioner(existing: Practitioner | undefined, d: DoctorData): Practitioner {
  const typed = (code: string): Identifier['type'] => ({ coding: [{ system: IDENTIFIER_TYPES, code }] });
  const ids: Identifier[] = [{ use: 'official', type: typed('IDNPS'), system: IDNATPS, value: d.idNatPs }];
  if (d.rpps) {
    ids.push({ use: 'official', type: typed('RPPS'), system: RPPS, value: d.rpps });
  }
  const out: Practitioner = { ...(existing ?? {}), resourceType: 'Practitioner' };
  delete out.meta;
  out.identifier = [...ids, ...(existing?.identifier ?? []).filter((i) => i.system !== IDNATPS && i.system !== RPPS)];
  if (d.family) {
    out.name = [{ use: 'official', family: d.family, ...(d.given ? { given: [d.given] } : {}) }];
  }
  return out;
}

export interface StoredMovement {
  movementId: string;
  trigger: string;
  cancelled: boolean;
  data: MovementData;
  seq: number;
}

export interface Stay {
  status: Encounter['status'];
  class?: string;
  start?: string;
  end?: string;
  locations: { unit: UnitData; start?: string; end?: string }[];
  modeEntree?: string;
  modeSortie?: string;
  pv136?: string;
  destination?: string;
  discharged: boolean;
}

const time = (s: string | undefined): number => (s ? Date.parse(s) : Number.POSITIVE_INFINITY);

/**
 * The stay as the active movements describe it, in date order. A pure function of the movement set,
 * so messages arriving late or out of order converge on the same Encounter.
 */
export function foldStay(movements: StoredMovement[]): Stay {
  const active = movements
    .filter((m) => !m.cancelled)
    .sort((a, b) => time(a.data.start) - time(b.data.start) || a.seq - b.seq);
  const stay: Stay = { status: 'cancelled', locations: [], discharged: false };
  let status: Encounter['status'] | undefined;
  for (const m of active) {
    const d = m.data;
    stay.class = d.class ?? stay.class;
    stay.modeEntree = d.modeEntree ?? stay.modeEntree;
    switch (MOVEMENT_KIND[m.trigger]) {
      case 'preadmit':
        status = status ?? 'planned';
        break;
      case 'admit':
        status = 'in-progress';
        stay.start = d.admit ?? d.start ?? stay.start;
        break;
      case 'leave':
        status = 'onleave';
        break;
      case 'discharge':
        break;
      case 'transfer':
      case 'class':
      case 'return':
      case undefined:
        status = 'in-progress';
        break;
    }
    stay.start = stay.start ?? (MOVEMENT_KIND[m.trigger] !== 'preadmit' ? d.admit : undefined);
    const last = stay.locations[stay.locations.length - 1];
    if (d.ufMed && last?.unit.code !== d.ufMed.code && MOVEMENT_KIND[m.trigger] !== 'discharge') {
      if (last) {
        last.end = d.start;
      }
      stay.locations.push({ unit: d.ufMed, start: d.start });
    }
  }
  const discharge = active.filter((m) => MOVEMENT_KIND[m.trigger] === 'discharge').pop();
  if (discharge) {
    // A discharge is terminal whatever order the other movements arrived in.
    const d = discharge.data;
    status = 'finished';
    stay.discharged = true;
    stay.end = d.discharge ?? d.start;
    stay.start = stay.start ?? d.admit;
    stay.modeSortie = d.modeSortie;
    stay.pv136 = d.pv136;
    stay.destination = d.destination;
    const last = stay.locations[stay.locations.length - 1];
    if (last && !last.end) {
      last.end = stay.end;
    }
  }
  stay.status = active.length === 0 ? 'cancelled' : (status ?? 'in-progress');
  return stay;
}

const CLASSES: Record<string, [string, string]> = {
  I: ['IMP', 'inpatient encounter'],
  O: ['AMB', 'ambulatory'],
  E: ['EMER', 'emergency'],
  R: ['AMB', 'ambulatory'],
  P: ['PRENC', 'pre-admission'],
};

const SORTIE_TO_FHIR: Record<string, [string, string]> = {
  '6': ['other-hcf', 'Other healthcare facility'],
  '7': ['other-hcf', 'Other healthcare facility'],
  '8': ['home', 'Home'],
  '9': ['exp', 'Expired'],
};

export interface EncounterContext {
  visitSystem: string;
  visit: string;
  patientRef: string;
  organizationRef: string;
  unitSystem: string;
}

/** The Encounter for a stay; fields the feed does not own (participants, reason…) are kept. */
export function buildEncounter(existing: Encounter | undefined, stay: Stay, ctx: EncounterContext): Encounter {
  const out: Encounter = {
    ...(existing ?? {}),
    resourceType: 'Encounter',
    status: stay.status,
    class: existing?.class ?? { system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor', code: 'UNK' },
  };
  delete out.meta;
  out.identifier = [
    { use: 'official', type: { coding: [{ system: V2_0203, code: 'VN' }] }, system: ctx.visitSystem, value: ctx.visit },
    ...(existing?.identifier ?? []).filter((i) => !(i.system === ctx.visitSystem && i.value === ctx.visit)),
  ];
  const cls = stay.class ? CLASSES[stay.class] : undefined;
  if (cls) {
    out.class = { system: ACT_CODE, code: cls[0], display: cls[1] };
  }
  out.subject = { reference: ctx.patientRef };
  out.serviceProvider = { reference: ctx.organizationRef };
  setOrDelete(out, 'period', stay.start || stay.end ? clean({ start: stay.start, end: stay.end }) : undefined);
  const locations: EncounterLocation[] = stay.locations.map((l, i) => ({
    location: {
      identifier: { system: ctx.unitSystem, value: l.unit.code },
      ...(l.unit.display ? { display: l.unit.display } : {}),
    },
    status: i === stay.locations.length - 1 && !stay.discharged && stay.status !== 'cancelled' ? 'active' : 'completed',
    ...(l.start || l.end ? { period: clean({ start: l.start, end: l.end }) } : {}),
  }));
  setOrDelete(out, 'location', locations.length > 0 ? locations : undefined);
  const hosp: NonNullable<Encounter['hospitalization']> = { ...(existing?.hospitalization ?? {}) };
  delete hosp.admitSource;
  delete hosp.dischargeDisposition;
  delete hosp.destination;
  if (stay.modeEntree) {
    hosp.admitSource = { coding: [{ system: PMSI_MODE_ENTREE, code: stay.modeEntree }] };
  }
  const disposition = dischargeDisposition(stay);
  if (disposition) {
    hosp.dischargeDisposition = disposition;
  }
  if (stay.discharged && stay.destination) {
    hosp.destination = { identifier: { system: FINESS, value: stay.destination } };
  }
  setOrDelete(out, 'hospitalization', Object.keys(hosp).length > 0 ? hosp : undefined);
  return out;
}

function dischargeDisposition(stay: Stay): CodeableConcept | undefined {
  if (!stay.discharged || (!stay.modeSortie && !stay.pv136)) {
    return undefined;
  }
  const coding: Coding[] = [];
  const fhir = stay.modeSortie ? SORTIE_TO_FHIR[stay.modeSortie] : undefined;
  if (fhir) {
    coding.push({ system: DISCHARGE_DISPOSITION, code: fhir[0], display: fhir[1] });
  }
  if (stay.modeSortie) {
    coding.push({ system: PMSI_MODE_SORTIE, code: stay.modeSortie });
  }
  if (stay.pv136) {
    coding.push({ system: V2_0112, code: stay.pv136 });
  }
  return { coding };
}

/** ZFA: one Consent per patient and policy (DMP feeding, DMP consultation), updated in place. */
export function buildConsent(
  existing: Consent | undefined,
  patientRef: string,
  organizationRef: string,
  policy: 'dmp-feeding' | 'dmp-consultation',
  code: string,
  permit: boolean,
): Consent {
  return {
    ...(existing ?? {}),
    resourceType: 'Consent',
    meta: undefined,
    identifier: [{ system: CONSENT_IDS, value: `${patientRef}/${policy}` }],
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [
      {
        coding: [
          {
            system: CONSENT_CODES,
            code: policy,
            display: policy === 'dmp-feeding' ? 'Alimentation du DMP' : 'Consultation du DMP',
          },
        ],
      },
    ],
    patient: { reference: patientRef },
    organization: [{ reference: organizationRef }],
    policyRule: { coding: [{ system: CONSENT_CODES, code: code }] },
    provision: { type: permit ? 'permit' : 'deny' },
  };
}

function toAddress(a: AddressData): Record<string, unknown> {
  const { insee, ...rest } = a;
  return {
    ...rest,
    line: a.line.length ? a.line : undefined,
    extension: insee ? [{ url: INSEE_CODE_EXTENSION, valueCoding: { system: COMMUNE_CODES, code: insee } }] : undefined,
  };
}

function setOrDelete<T extends object, K extends keyof T>(o: T, key: K, v: T[K] | undefined): void {
  if (v === undefined) {
    delete o[key];
  } else {
    o[key] = v;
  }
}

/** Drops undefined properties (FHIR JSON has no nulls). */
export function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export type { Extension };
