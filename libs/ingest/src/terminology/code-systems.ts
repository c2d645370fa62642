import type { Coding } from '@medplum/fhirtypes';

/**
 * The one place that says which code system a code belongs to. Documents name code systems by OID
 * (CDA `codeSystem`), by a FHIR URL, or by an older URL; the gateway stores one canonical per system
 * so that a search, a ValueSet or an indicator finds every document's codes whatever the sender wrote.
 *
 * Canonicals: the ANS terminology server (SMT, https://smt.esante.gouv.fr/terminologie-…) for the
 * French and WHO classifications it publishes, the HL7 canonicals for international ones (LOINC,
 * SNOMED CT, UCUM, v3 vocabularies).
 */
export interface CodeSystemEntry {
  /** The canonical URL written in Coding.system. */
  canonical: string;
  /** Short name used in docs, warnings and the terminology table. */
  name: string;
  /** OIDs that name this system in documents (the first one is written back in CDA/XDS metadata). */
  oids: string[];
  /** Other URLs seen in FHIR resources for the same system. */
  urls?: string[];
}

export const LOINC = 'http://loinc.org';
export const SNOMED_CT = 'http://snomed.info/sct';
export const UCUM = 'http://unitsofmeasure.org';
export const CCAM = 'https://smt.esante.gouv.fr/terminologie-ccam';
export const NABM = 'https://smt.esante.gouv.fr/terminologie-nabm';
export const CIM_10 = 'https://smt.esante.gouv.fr/terminologie-cim-10';
export const CISP_2 = 'https://smt.esante.gouv.fr/terminologie-cisp';
export const ATC = 'https://smt.esante.gouv.fr/terminologie-atc';
/** Base de données publique des médicaments: CIS (8 digits) and CIP (7 or 13 digits) codes. */
export const BDPM = 'https://smt.esante.gouv.fr/terminologie-bdpm';
export const NUVA = 'https://smt.esante.gouv.fr/terminologie-nuva';
/**
 * NGAP (Nomenclature générale des actes professionnels). The ANS terminology server publishes no
 * NGAP CodeSystem, so the FHIR rule for a system known only by its OID applies: `urn:oid:` + the
 * OID the CI-SIS uses (1.2.250.1.213.2.10). One identity whatever the document said.
 */
export const NGAP = 'urn:oid:1.2.250.1.213.2.10';
/** Liste des produits et prestations (devices), known by OID only. */
export const LPP = 'urn:oid:1.2.250.1.215.200.2.1';
/** Unité commune de dispensation (hospital drugs), known by OID only. */
export const UCD = 'urn:oid:1.2.250.1.215.200.1.1.2';
export const EDQM = 'http://standardterms.edqm.eu';
export const CIM_11 = 'http://id.who.int/icd/release/11/mms';
export const V3_INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
export const V3_ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const V3_ROLE_CODE = 'http://terminology.hl7.org/CodeSystem/v3-RoleCode';
export const V3_PARTICIPATION_FUNCTION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationFunction';
export const V3_CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
export const V3_GENDER = 'http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender';
export const V3_ACT_PRIORITY = 'http://terminology.hl7.org/CodeSystem/v3-ActPriority';
export const CONDITION_VER_STATUS = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';
export const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
/** ANS "Cercle de soins" roles (TRE_R259): PCP = médecin traitant. */
export const TRE_R259 = 'https://mos.esante.gouv.fr/NOS/TRE_R259-HL7RoleClass/FHIR/TRE-R259-HL7RoleClass';

export const CODE_SYSTEMS: readonly CodeSystemEntry[] = [
  { canonical: LOINC, name: 'LOINC', oids: ['2.16.840.1.113883.6.1'] },
  { canonical: SNOMED_CT, name: 'SNOMED CT', oids: ['2.16.840.1.113883.6.96'] },
  { canonical: UCUM, name: 'UCUM', oids: ['2.16.840.1.113883.6.8'] },
  // CCAM: the CI-SIS volets use the Assurance Maladie's OID, other French documents the ANS one;
  // the reimbursement history (CNAM-HR) its own value set OID. One code space.
  {
    canonical: CCAM,
    name: 'CCAM',
    oids: ['1.2.250.1.213.2.5', '1.2.250.1.215.300.1', '1.2.250.1.215.200.3.4'],
    urls: ['http://www.ameli.fr/ccam'],
  },
  { canonical: NABM, name: 'NABM', oids: ['1.2.250.1.213.2.7', '1.2.250.1.215.200.4.1'] },
  {
    canonical: CIM_10,
    name: 'CIM-10',
    oids: ['2.16.840.1.113883.6.3'],
    urls: ['http://hl7.org/fhir/sid/icd-10', 'http://hl7.org/fhir/sid/icd-10-fr'],
  },
  { canonical: CISP_2, name: 'CISP-2', oids: ['2.16.840.1.113883.6.139'], urls: ['http://hl7.org/fhir/sid/icpc-2'] },
  // CNAM-HR sends ATC classes (3 characters, .2.1) and substances (5 levels, .2.2): both ATC codes.
  {
    canonical: ATC,
    name: 'ATC',
    oids: ['2.16.840.1.113883.6.73', '1.2.250.1.215.200.1.2.1', '1.2.250.1.215.200.1.2.2'],
    urls: ['http://www.whocc.no/atc'],
  },
  // CIS (1.2.250.1.213.2.3.1), CIP7 / CIP13 (.3.2, .3.3) and the CNAM-HR CIP value set: the BDPM
  // publishes all three; their lengths (8, 7, 13 digits) never collide.
  {
    canonical: BDPM,
    name: 'CIS/CIP (BDPM)',
    oids: ['1.2.250.1.213.2.3.1', '1.2.250.1.213.2.3.2', '1.2.250.1.213.2.3.3', '1.2.250.1.215.200.1.1.1'],
  },
  { canonical: NUVA, name: 'NUVA', oids: [] },
  { canonical: NGAP, name: 'NGAP', oids: ['1.2.250.1.213.2.10', '1.2.250.1.215.200.3.3'] },
  { canonical: LPP, name: 'LPP', oids: ['1.2.250.1.215.200.2.1'] },
  { canonical: UCD, name: 'UCD', oids: ['1.2.250.1.215.200.1.1.2'] },
  { canonical: EDQM, name: 'EDQM Standard Terms', oids: ['0.4.0.127.0.16.1.1.2.1'] },
  { canonical: CIM_11, name: 'CIM-11', oids: ['2.16.840.1.113883.6.347'] },
  { canonical: V3_INTERPRETATION, name: 'ObservationInterpretation', oids: ['2.16.840.1.113883.5.83'] },
  { canonical: V3_ACT_CODE, name: 'ActCode', oids: ['2.16.840.1.113883.5.4'] },
  { canonical: V3_ROLE_CODE, name: 'RoleCode', oids: ['2.16.840.1.113883.5.111'] },
  { canonical: V3_PARTICIPATION_FUNCTION, name: 'ParticipationFunction', oids: ['2.16.840.1.113883.5.88'] },
  { canonical: V3_CONFIDENTIALITY, name: 'Confidentiality', oids: ['2.16.840.1.113883.5.25'] },
  { canonical: V3_GENDER, name: 'AdministrativeGender', oids: ['2.16.840.1.113883.5.1'] },
  { canonical: V3_ACT_PRIORITY, name: 'ActPriority', oids: ['2.16.840.1.113883.5.7'] },
  { canonical: CONDITION_VER_STATUS, name: 'condition-ver-status', oids: ['2.16.840.1.113883.4.642.1.1075'] },
  { canonical: CONDITION_CLINICAL, name: 'condition-clinical', oids: ['2.16.840.1.113883.4.642.1.1074'] },
];

const BY_OID = new Map<string, CodeSystemEntry>();
const BY_URL = new Map<string, CodeSystemEntry>();
for (const entry of CODE_SYSTEMS) {
  BY_URL.set(entry.canonical, entry);
  for (const url of entry.urls ?? []) BY_URL.set(url, entry);
  for (const oid of entry.oids) {
    BY_OID.set(oid, entry);
    BY_URL.set(`urn:oid:${oid}`, entry);
  }
}

const OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;

export interface ResolvedSystem {
  /** What to write in Coding.system. */
  system: string;
  /** false: the system is not one the gateway knows (kept as `urn:oid:…` or as given). */
  known: boolean;
  name?: string;
}

/**
 * The canonical system for an OID, a `urn:oid:` or a URL. An unknown OID becomes `urn:oid:<oid>`
 * (never dropped: a lab's local code stays searchable as what it is); an unknown URL is kept.
 */
export function resolveSystem(systemOrOid: string): ResolvedSystem {
  const raw = systemOrOid.trim();
  const entry = OID.test(raw) ? BY_OID.get(raw) : BY_URL.get(raw.replace(/\/+$/, ''));
  if (entry) return { system: entry.canonical, known: true, name: entry.name };
  return { system: OID.test(raw) ? `urn:oid:${raw}` : raw, known: false };
}

/** The canonical system URL (see {@link resolveSystem}). */
export function canonicalSystem(systemOrOid: string): string {
  return resolveSystem(systemOrOid).system;
}

/** The OID to write for a canonical system (CDA, XDS metadata), when it has one. */
export function systemOid(system: string): string | undefined {
  const entry = BY_URL.get(system);
  if (entry) return entry.oids[0];
  return system.startsWith('urn:oid:') ? system.slice('urn:oid:'.length) : undefined;
}

/** True when two system names (OID, urn:oid, URL) denote the same code system. */
export function sameSystem(a: string, b: string): boolean {
  return canonicalSystem(a) === canonicalSystem(b);
}

/** A Coding with its system made canonical; the code and display are kept as they are. */
export function normalizeCoding(coding: Coding): Coding {
  if (!coding.system) return coding;
  return { ...coding, system: canonicalSystem(coding.system) };
}
