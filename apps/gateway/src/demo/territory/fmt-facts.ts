import type { Coverage, MedicationDispense, Resource } from '@medplum/fhirtypes';
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
 * The facts the 2026 forfait médecin traitant reads (/work/briefs/fmt-contract.md): an ALD
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
  return out;
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
