/**
 * The clinical vocabulary shared by the indicator catalogue (fhir-profiles/measures) and the
 * synthetic territory generator. The catalogue's ValueSets are the reference: these constants only
 * let the generator produce facts those ValueSets match. Codes marked "configurable" follow
 * DOMAIN.md §8 "from memory" items and can be changed in the ValueSets without code.
 */
import { Terminology } from '@gw/ingest';

// The canonicals the practice intake writes (libs/ingest terminology module), so generated facts
// look like ingested ones. The catalogue also matches the legacy names (catalogue.ts expand).
export const LOINC = Terminology.LOINC;
export const ATC = Terminology.ATC;
/** CCAM (French procedure classification). */
export const CCAM = Terminology.CCAM;
export const CIM10 = Terminology.CIM_10;
export const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';

export const CODES = {
  /** Observation.code */
  hba1c: { system: LOINC, code: '4548-4', display: 'Hémoglobine A1c/hémoglobine totale' },
  fructosamine: { system: LOINC, code: '15069-8', display: 'Fructosamine' },
  /** Immunochemical faecal occult blood test (colorectal screening). */
  fit: { system: LOINC, code: '29771-3', display: 'Recherche de sang occulte dans les selles (test immunologique)' },
  creatinine: { system: LOINC, code: '2160-0', display: 'Créatinine sérique' },
  /** MedicationRequest.medicationCodeableConcept: the ATC class A10 (prefix) is "treated diabetes". */
  metformin: { system: ATC, code: 'A10BA02', display: 'metformine' },
  insulinGlargine: { system: ATC, code: 'A10AE04', display: 'insuline glargine' },
  /** Immunization.vaccineCode: ATC J07BB (prefix) is influenza vaccine. */
  fluVaccine: { system: ATC, code: 'J07BB02', display: 'vaccin grippal inactivé, antigène de surface' },
  /** Procedure.code (CCAM). */
  fundusExam: {
    system: CCAM,
    code: 'BGQP002',
    display: 'Examen du fond d’œil par biomicroscopie avec verre de contact',
  },
  retinography: { system: CCAM, code: 'BGQP140', display: 'Rétinographie (configurable)' },
  screeningMammography: { system: CCAM, code: 'QEQK004', display: 'Mammographie de dépistage bilatérale' },
  colonoscopy: { system: CCAM, code: 'HHQE002', display: 'Coloscopie totale' },
  /** Condition.code (CIM-10); chronic conditions of the flu "at risk 16–64" ValueSet are prefixes. */
  diabetesType2: { system: CIM10, code: 'E11', display: 'Diabète sucré de type 2' },
  asthma: { system: CIM10, code: 'J45', display: 'Asthme' },
  copd: { system: CIM10, code: 'J44', display: 'Bronchopneumopathie chronique obstructive' },
  heartFailure: { system: CIM10, code: 'I50', display: 'Insuffisance cardiaque' },
  chronicKidneyDisease: { system: CIM10, code: 'N18', display: 'Maladie rénale chronique' },
  /** Encounter.class */
  inpatient: { system: ACT_CODE, code: 'IMP', display: 'inpatient encounter' },
  ambulatory: { system: ACT_CODE, code: 'AMB', display: 'ambulatory' },
} as const;
