import type { Coding, Coverage, MedicationDispense, Observation, Resource } from '@medplum/fhirtypes';
import { immunization } from './facts';
import { Terminology } from '@gw/ingest';
import { addDays } from './random';
import type { Rng } from './random';
import { ownerTag } from './structures';
import type { Structure } from './structures';
import { ALD_SYSTEM, COVERAGE_TYPE_SYSTEM } from './vocabulary';

/** What the FMT facts of a person depend on (drawn before, on the person's main stream). */
export interface FmtInput {
  rng: Rng;
  id: (key: string) => string;
  asOf: string;
  patientRef: string;
  structure: Structure;
  age: number;
  birthDate: string;
  female: boolean;
  diabetes: boolean;
  asthma: boolean;
  copd: boolean;
  heartFailure: boolean;
  ckd: boolean;
}

/** ALD numbers of the conditions the generator draws (list of ALD 30, CSS art. D160-4). */
const ALD_OF = { diabetes: '8', heartFailure: '5', respiratory: '14', ckd: '19' } as const;

/** ALD for reasons the generator does not model otherwise (cancers, psychiatric, coronary, stroke…). */
const OTHER_ALD = ['30', '23', '13', '1', '3', '9', '31', '32'];
const OTHER_ALD_WEIGHTS = [35, 18, 14, 6, 6, 5, 10, 6];

/** Bronchodilators dispensed to people with asthma or COPD (ATC). */
const BRONCHODILATORS = [
  { system: Terminology.ATC, code: 'R03AC02', display: 'salbutamol' },
  { system: Terminology.ATC, code: 'R03AK06', display: 'salmétérol et fluticasone' },
  { system: Terminology.ATC, code: 'R03BB04', display: 'tiotropium' },
];

/**
 * The facts the 2026 forfait médecin traitant reads (docs/indicators.md): an ALD
 * Coverage (its exceptions, one per ALD number, each with its period) for ~18 % of the population
 * (the conditions drawn, plus other reasons by age), a C2S Coverage for ~11 % (yearly rights,
 * ~20 % of them expired), and bronchodilator dispensations for most people with asthma or COPD.
 * Drawn from the person's own FMT stream so the other draws stay as they were.
 */
export function fmtFacts(f: FmtInput): Resource[] {
  const { rng } = f;
  const out: Resource[] = [];
  const ald = new Set<string>();
  if (f.diabetes && rng.chance(0.85)) {
    ald.add(ALD_OF.diabetes);
  }
  if (f.heartFailure && rng.chance(0.8)) {
    ald.add(ALD_OF.heartFailure);
  }
  if ((f.copd && rng.chance(0.35)) || (f.asthma && rng.chance(0.04))) {
    ald.add(ALD_OF.respiratory);
  }
  if (f.ckd && rng.chance(0.3)) {
    ald.add(ALD_OF.ckd);
  }
  const other = f.age < 16 ? 0.02 : f.age < 40 ? 0.05 : f.age < 60 ? 0.12 : f.age < 75 ? 0.24 : 0.38;
  if (rng.chance(other)) {
    ald.add(OTHER_ALD[rng.weighted(OTHER_ALD_WEIGHTS)] as string);
  }
  if (ald.size > 0) {
    out.push(aldCoverage(f, [...ald].sort()));
  }
  const c2s = f.age < 16 ? 0.16 : f.age < 60 ? 0.12 : f.age < 75 ? 0.07 : 0.05;
  if (rng.chance(c2s)) {
    out.push(c2sCoverage(f));
  }
  if ((f.asthma || f.copd) && rng.chance(0.7)) {
    const n = rng.int(1, 6);
    for (let k = 0; k < n; k++) {
      out.push(dispense(f, k));
    }
  }
  // Drawn last: the draws above are those of the territory before these facts existed.
  out.push(...preventionItems(f));
  return out;
}

/** The vaccines the FMT prevention items count, under one ATC code of each item's ValueSet. */
const VACCINES = {
  ror: { system: Terminology.ATC, code: 'J07BD52', display: 'rougeole, oreillons, rubéole (ROR)' },
  menC: { system: Terminology.ATC, code: 'J07AH07', display: 'méningocoque C, conjugué' },
  hpv: { system: Terminology.ATC, code: 'J07BM03', display: 'papillomavirus humain (9 valences)' },
  pneumo: { system: Terminology.ATC, code: 'J07AL02', display: 'pneumocoque, polyoside conjugué' },
  covid: { system: Terminology.ATC, code: 'J07BN01', display: 'covid-19, ARN messager' },
} as const;

/** Cervical screening: cytology (25–29 years) and the HPV test (30–65), LOINC as the ValueSets list them. */
const CERVICAL = {
  cytology: { system: 'http://loinc.org', code: '10524-7', display: 'Frottis cervico-utérin (examen cytologique)' },
  hpvTest: { system: 'http://loinc.org', code: '77379-6', display: 'Test HPV à haut risque (col de l’utérus)' },
} as const;

/**
 * The acts behind the FMT prevention items the other draws do not make, at coverage rates of the
 * order Santé publique France publishes (children's ROR and meningococcal C ~90 %, HPV ~45 % of
 * girls and fewer boys, cervical screening ~55 %, Covid-19 and pneumococcal vaccination of people
 * at risk 20–30 %). A vaccine is dated by the child's age at the recommended dose; nothing is
 * dated after the data's last day.
 */
function preventionItems(f: FmtInput): Resource[] {
  const { rng } = f;
  const out: Resource[] = [];
  const atAge = (months: number, jitterDays: number): string =>
    addDays(f.birthDate, Math.round(months * 30.44) + rng.int(0, jitterDays));
  const vaccinate = (key: string, vaccine: Coding, day: string): void => {
    if (day <= f.asOf) {
      out.push(immunization(f.id(key), vaccine, day, f.patientRef, f.structure.ref));
    }
  };
  if (f.age < 18) {
    if (rng.chance(0.9)) {
      vaccinate('menc-1', VACCINES.menC, atAge(5, 30));
      if (rng.chance(0.9)) {
        vaccinate('menc-2', VACCINES.menC, atAge(12, 45));
      }
    }
    if (rng.chance(0.93)) {
      vaccinate('ror-1', VACCINES.ror, atAge(12, 60));
      if (rng.chance(0.9)) {
        vaccinate('ror-2', VACCINES.ror, atAge(16, 90));
      }
    }
    if (f.age >= 11 && rng.chance(f.female ? 0.55 : 0.3)) {
      vaccinate('hpv-1', VACCINES.hpv, atAge(132, 3 * 365));
    }
  }
  const chronic = f.diabetes || f.asthma || f.copd || f.heartFailure || f.ckd;
  if (f.age >= 18 && chronic && rng.chance(0.22)) {
    vaccinate('pneumo', VACCINES.pneumo, addDays(f.asOf, -rng.int(30, 1800)));
  }
  if ((f.age >= 65 || (f.age >= 18 && chronic)) && rng.chance(0.3)) {
    // The autumn campaign of the year before the data's last day, or the spring one of its year.
    const year = Number(f.asOf.slice(0, 4));
    const spring = addDays(`${year}-04-14`, rng.int(0, 60));
    vaccinate(
      'covid',
      VACCINES.covid,
      rng.chance(0.5) && spring <= f.asOf ? spring : addDays(`${year - 1}-10-15`, rng.int(0, 75)),
    );
  }
  if (f.female && f.age >= 25 && f.age <= 65 && rng.chance(0.55)) {
    const young = f.age < 30;
    const day = addDays(f.asOf, -rng.int(0, young ? 1094 : 1824));
    out.push(screeningTest(f, young ? CERVICAL.cytology : CERVICAL.hpvTest, day));
  }
  return out;
}

function screeningTest(f: FmtInput, code: Coding, day: string): Observation {
  return {
    resourceType: 'Observation',
    id: f.id('cervical'),
    meta: { tag: [ownerTag(f.structure.ref)] },
    status: 'final',
    code: { coding: [code], text: code.display },
    subject: { reference: f.patientRef },
    effectiveDateTime: `${day}T09:00:00Z`,
    valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '260385009', display: 'Negative' }] },
  };
}

function aldCoverage(f: FmtInput, numbers: string[]): Coverage {
  const { rng } = f;
  return {
    resourceType: 'Coverage',
    id: f.id('coverage-ald'),
    meta: { tag: [ownerTag(f.structure.ref)] },
    status: 'active',
    type: { coding: [{ system: Terminology.V3_ACT_CODE, code: 'PUBLICPOL', display: 'public healthcare' }] },
    beneficiary: { reference: f.patientRef },
    payor: [{ display: 'Assurance Maladie' }],
    costToBeneficiary: [
      {
        type: { text: 'Exonération du ticket modérateur (ALD)' },
        valueMoney: { value: 0, currency: 'EUR' },
        exception: numbers.map((n) => {
          const start = addDays(f.asOf, -rng.int(30, 4000));
          // A few recognitions ended (a cancer in remission, a time-limited ALD not renewed).
          const ended = rng.chance(0.06);
          return {
            type: { coding: [{ system: ALD_SYSTEM, code: n }] },
            period: ended ? { start, end: addDays(start, rng.int(365, 1800)) } : { start },
          };
        }),
      },
    ],
  };
}

function c2sCoverage(f: FmtInput): Coverage {
  const { rng } = f;
  // Rights granted for a year, renewed on request: ~20 % lapsed before the data ends.
  const lapsed = rng.chance(0.2);
  const start = addDays(f.asOf, lapsed ? -rng.int(400, 1000) : -rng.int(0, 360));
  return {
    resourceType: 'Coverage',
    id: f.id('coverage-c2s'),
    meta: { tag: [ownerTag(f.structure.ref)] },
    status: 'active',
    type: { coding: [{ system: COVERAGE_TYPE_SYSTEM, code: 'C2S', display: 'Complémentaire santé solidaire' }] },
    beneficiary: { reference: f.patientRef },
    payor: [{ display: 'Assurance Maladie' }],
    period: { start, end: addDays(start, 364) },
  };
}

function dispense(f: FmtInput, k: number): MedicationDispense {
  const { rng } = f;
  const drug = BRONCHODILATORS[f.copd ? rng.int(0, 2) : rng.int(0, 1)] as (typeof BRONCHODILATORS)[number];
  const day = addDays(f.asOf, -rng.int(0, 729));
  return {
    resourceType: 'MedicationDispense',
    id: f.id(`dispense-${k}`),
    meta: { tag: [ownerTag(f.structure.ref)] },
    status: 'completed',
    medicationCodeableConcept: { coding: [drug], text: drug.display },
    subject: { reference: f.patientRef },
    quantity: { value: 1, unit: 'boîte' },
    whenHandedOver: `${day}T10:00:00Z`,
  };
}
