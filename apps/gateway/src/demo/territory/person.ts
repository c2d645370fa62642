import type { Coding, Extension, Patient, Resource } from '@medplum/fhirtypes';
import { nameUuid } from '@gw/platform';
import {
  COMMUNE_CODES,
  GW_PATIENT_PROFILE,
  IDENTIFIER_TYPES,
  INSEE_CODE_EXTENSION,
  MT_STATUS_EXTENSION,
  RELIABILITY_CODES,
  RELIABILITY_EXTENSION,
  V2_0203,
  nirKey,
} from '@gw/fhir';
import { CODES } from '@gw/indicators';
import {
  careTeam,
  findMtTask,
  condition,
  daysBack,
  fluDate,
  hospitalStay,
  immunization,
  inPeriod,
  medication,
  observation,
  procedure,
  visit,
} from './facts';
import type { FactContext, MtHistory } from './facts';
import { fmtFacts } from './fmt-facts';
import { Rng, addDays } from './random';
import type { Layout, Structure } from './structures';
import { ownerTag } from './structures';
import { AGE_BANDS_5Y, FAMILY_NAMES, GIVEN_FEMALE, GIVEN_MALE, INS_TEST_SYSTEM } from './vocabulary';

/**
 * Years of history generated for the facts that recur every year (visits, treatment, HbA1c, flu
 * vaccination, hospital stays): the dashboard's trend shows 12 monthly reports, each over the 12
 * months to its end, so the oldest window starts 23 months before the data ends.
 */
export const HISTORY_YEARS = 2;

/** What the generator knows of one person once drawn (tests check the distributions on it). */
export interface PersonFacts {
  index: number;
  age: number;
  sex: 'male' | 'female';
  identity: 'QUAL' | 'RECUP' | 'VALI' | 'PROV';
  mt: 'declared' | 'none' | 'seeking' | 'departed' | 'fictitious';
  diabetes: boolean;
  atRisk: boolean;
  /** Known to a second structure under another local id (same qualified INS). */
  duplicate: boolean;
  /** Hospital stays over the whole history ({@link HISTORY_YEARS}). */
  stays: number;
}

/** A person's records: one or two Patient resources and their clinical facts, ids and owners set. */
export interface PersonRecords {
  facts: PersonFacts;
  resources: Resource[];
}

/**
 * One person of the territory, drawn from its own random stream (seed, index). Rates follow
 * DOMAIN.md §2 and §8 and public field figures (rounded): see the README "Synthetic territory".
 */
export function buildPerson(layout: Layout, seed: number, index: number, asOf: string): PersonRecords {
  const rng = Rng.for(seed, `${layout.ns}|person|${index}`);
  const id = (key: string): string => nameUuid(`${layout.ns}|p${index}|${key}`);
  const d = drawPerson(layout, rng, index, asOf);
  const resources: Resource[] = [];
  const patientRef = `Patient/${id('patient')}`;
  resources.push(
    patientRecord(
      layout,
      rng,
      d,
      d.structure,
      id('patient'),
      `${d.structure.key}-${String(index + 1).padStart(7, '0')}`,
    ),
  );
  const secondRef = d.second ? `Patient/${id('patient-2')}` : undefined;
  if (d.second) {
    resources.push(
      patientRecord(
        layout,
        rng,
        d,
        d.second,
        id('patient-2'),
        `${d.second.key}-${String(index + 1).padStart(7, '0')}-B`,
      ),
    );
  }
  const ctx: FactContext = {
    rng,
    id,
    asOf,
    periodStart: addDays(asOf, -364),
    patientRef,
    structure: d.structure,
    resources,
    gp: d.facts.mt === 'declared' ? d.gp : undefined,
    // Facts a second practice recorded land on its own record of the person.
    where: (share) =>
      d.second && secondRef && rng.chance(share)
        ? { ref: secondRef, s: d.second }
        : { ref: patientRef, s: d.structure },
  };
  chronicCare(ctx, d);
  prevention(ctx, d.facts);
  careUse(ctx, layout, d.facts);
  // Earlier years: the yearly facts again, on the same records, ids suffixed by the year back.
  for (let y = 1; y < HISTORY_YEARS; y++) {
    const earlier: FactContext = {
      ...ctx,
      periodStart: addDays(ctx.periodStart, -365 * y),
      id: (key) => id(`${key}-y${y}`),
    };
    yearlyCare(earlier, d);
    yearlyPrevention(earlier, d.facts);
    careUse(earlier, layout, d.facts);
  }
  // The FMT facts and the MT's history draw from a stream of their own: the draws above (and the
  // resources they make) are those of the territory before these facts existed.
  const fmt = Rng.for(seed, `${layout.ns}|person|${index}|fmt`);
  let mtSince: MtHistory | undefined;
  if (ctx.gp) {
    // Every declared MT is dated (the Assurance Maladie dates a declaration), so the FMT patientèle
    // of 31 December holds every age. The at-risk and the oldest, dated first, still draw their
    // dates on the FMT stream; the others from a stream of their own, so the FMT draws below stay
    // those a seed gave before.
    const dates = d.facts.atRisk || d.facts.age >= 75 ? fmt : Rng.for(seed, `${layout.ns}|person|${index}|mt`);
    mtSince = mtHistory(dates, ctx, d);
    resources.push(careTeam(ctx, mtSince));
  }
  const has = (c: Coding): boolean => d.conditions.includes(c);
  resources.push(
    ...fmtFacts({
      rng: fmt,
      id,
      asOf,
      patientRef,
      structure: d.structure,
      age: d.facts.age,
      birthDate: d.birthDate,
      female: d.facts.sex === 'female',
      diabetes: d.facts.diabetes,
      asthma: has(CODES.asthma),
      copd: has(CODES.copd),
      heartFailure: has(CODES.heartFailure),
      ckd: has(CODES.chronicKidneyDisease),
    }),
  );
  resources.push(...findMtRequests(Rng.for(seed, `${layout.ns}|person|${index}|cpts`), ctx, layout, d, mtSince));
  return { facts: d.facts, resources };
}

/**
 * The CPTS's "find a médecin traitant" requests, on a stream of their own: for ~25 % of the
 * persons whose MT was declared in the year (the CPTS found it: the request closed on the
 * declaration's day), and for ~40 % of the persons seeking one (a third closed without an MT,
 * the others still open in the CPTS's queue).
 */
function findMtRequests(rng: Rng, ctx: FactContext, layout: Layout, d: Drawn, mt?: MtHistory): Resource[] {
  const cpts = `Organization/${layout.cpts.id}`;
  if (mt && mt.since > addDays(ctx.periodStart, 7) && rng.chance(0.25)) {
    return [findMtTask(ctx, cpts, addDays(mt.since, -rng.int(10, 90)), mt.since)];
  }
  if (d.facts.mt === 'seeking' && rng.chance(0.4)) {
    const asked = addDays(ctx.asOf, -rng.int(5, 330));
    const closed = addDays(asked, rng.int(15, 60));
    return [findMtTask(ctx, cpts, asked, rng.chance(0.35) && closed <= ctx.asOf ? closed : undefined)];
  }
  return [];
}

interface Drawn {
  facts: PersonFacts;
  birthDate: string;
  /** Birth name and first given name: the same on every record of the person (INS traits). */
  name: { family: string; given: string };
  structure: Structure;
  second?: Structure;
  commune: number;
  gp?: string;
  conditions: Coding[];
}

/** Demographics, identity, médecin traitant, chronic conditions and a possible second practice. */
function drawPerson(layout: Layout, rng: Rng, index: number, asOf: string): Drawn {
  const band = rng.weighted(AGE_BANDS_5Y.map((b) => b.share));
  const age = band * 5 + rng.int(0, 4);
  const sex = rng.chance((AGE_BANDS_5Y[band] as { female: number }).female) ? 'female' : 'male';
  const birthDate = addDays(`${Number(asOf.slice(0, 4)) - age - 1}${asOf.slice(4)}`, rng.int(1, 364));
  const structure = layout.structures[rng.weighted(layout.structures.map((s) => s.weight))] as Structure;
  const commune = rng.chance(0.7) ? structure.commune : rng.int(0, layout.communes.length - 1);
  const identity = (['QUAL', 'RECUP', 'VALI', 'PROV'] as const)[rng.weighted([85, 5, 5, 5])] as PersonFacts['identity'];
  const adult = age >= 16;
  const m = rng.next();
  // Adults: ~9 % without an MT (none or seeking), ~2 % with a retired one, ~1 % with the caisse's fictitious number.
  const mt: PersonFacts['mt'] = adult
    ? m < 0.063
      ? 'none'
      : m < 0.09
        ? 'seeking'
        : m < 0.11
          ? 'departed'
          : m < 0.122
            ? 'fictitious'
            : 'declared'
    : m < 0.15
      ? 'none'
      : 'declared';
  const gp =
    mt === 'declared'
      ? rng.pick(structure.gps)
      : mt === 'departed'
        ? rng.pick(layout.retired)
        : mt === 'fictitious'
          ? layout.fictitious
          : undefined;
  const rates = conditionRates(age);
  const codes = [CODES.diabetesType2, CODES.asthma, CODES.copd, CODES.heartFailure, CODES.chronicKidneyDisease];
  const has = [rates.diabetes, rates.asthma, rates.copd, rates.heartFailure, rates.ckd].map((p) => rng.chance(p));
  const others = layout.structures.filter((s) => s !== structure);
  const duplicate = adult && identity === 'QUAL' && others.length > 0 && rng.chance(0.03);
  const second = duplicate ? rng.pick(others) : undefined;
  const name = { family: rng.pick(FAMILY_NAMES), given: rng.pick(sex === 'female' ? GIVEN_FEMALE : GIVEN_MALE) };
  const facts: PersonFacts = {
    index,
    age,
    sex,
    identity,
    mt,
    diabetes: has[0] as boolean,
    atRisk: has.some(Boolean),
    duplicate,
    stays: 0,
  };
  return { facts, birthDate, name, structure, second, commune, gp, conditions: codes.filter((_, i) => has[i]) };
}

/** A Patient as structure `s` records the person: its own IPP, the INS and identity status, the MT. */
function patientRecord(layout: Layout, rng: Rng, d: Drawn, s: Structure, pid: string, ipp: string): Patient {
  const { facts } = d;
  const ins =
    facts.identity === 'QUAL' || facts.identity === 'RECUP'
      ? nir(facts.sex, d.birthDate, layout.dept, facts.index)
      : undefined;
  return {
    resourceType: 'Patient',
    id: pid,
    meta: { profile: [GW_PATIENT_PROFILE], tag: [ownerTag(s.ref)] },
    extension: [
      {
        url: RELIABILITY_EXTENSION,
        extension: [{ url: 'identityStatus', valueCoding: { system: RELIABILITY_CODES, code: facts.identity } }],
      },
      { url: MT_STATUS_EXTENSION, valueCode: facts.mt },
    ],
    identifier: [
      { use: 'usual', type: { coding: [{ system: V2_0203, code: 'PI' }] }, system: s.ippSystem, value: ipp },
      ...(ins
        ? [
            {
              use: 'official' as const,
              type: { coding: [{ system: IDENTIFIER_TYPES, code: 'INS-NIR' }] },
              system: INS_TEST_SYSTEM,
              value: ins,
            },
          ]
        : []),
    ],
    active: true,
    name: [{ use: 'official', family: d.name.family, given: [d.name.given] }],
    gender: facts.sex,
    birthDate: d.birthDate,
    address: [addressOf(layout, d.commune, rng.int(1, 120))],
    ...telecomOf(layout, d),
    ...(d.gp ? { generalPractitioner: [{ reference: d.gp }] } : {}),
  };
}

/**
 * Since when the médecin traitant is declared, and for ~8 % an earlier one of the same structure
 * (declared before, until the day before): the CareTeam's PCP participants over time.
 */
function mtHistory(rng: Rng, ctx: FactContext, d: Drawn): MtHistory {
  // Not before birth: a newborn's MT is declared from its first days.
  const drawn = addDays(ctx.asOf, -rng.int(30, Math.max(31, Math.min(6000, d.facts.age * 365))));
  const since = drawn < d.birthDate ? d.birthDate : drawn;
  const others = d.structure.gps.filter((g) => g !== ctx.gp);
  if (others.length === 0 || !rng.chance(0.08)) {
    return { since };
  }
  const previous = { gp: rng.pick(others), start: addDays(since, -rng.int(200, 3000)), end: addDays(since, -1) };
  // A child's earlier MT would start before birth: none.
  return previous.start < d.birthDate ? { since } : { since, previous };
}

/** Chronic conditions (onset years back); for diabetics: treatment, HbA1c, fructosamine, fundus exam. */
function chronicCare(ctx: FactContext, d: Drawn): void {
  const { rng, resources } = ctx;
  for (const code of d.conditions) {
    resources.push(condition(ctx, code));
  }
  if (!d.facts.diabetes) {
    return;
  }
  yearlyCare(ctx, d);
  if (rng.chance(0.25)) {
    resources.push(medication(ctx, CODES.insulinGlargine, 'med-2'));
  }
  if (rng.chance(0.03)) {
    resources.push(
      observation(ctx, CODES.fructosamine, 'fruc-0', inPeriod(ctx), ctx.patientRef, ctx.structure),
      observation(ctx, CODES.fructosamine, 'fruc-1', inPeriod(ctx), ctx.patientRef, ctx.structure),
    );
  }
  if (rng.chance(0.6)) {
    resources.push(
      procedure(ctx, rng.chance(0.7) ? CODES.fundusExam : CODES.retinography, 'fundus', daysBack(ctx, 700)),
    );
  }
}

/** A diabetic's year: the treatment renewed and 0 to 3 HbA1c assays. */
function yearlyCare(ctx: FactContext, d: Drawn): void {
  const { rng, resources } = ctx;
  if (!d.facts.diabetes) {
    return;
  }
  resources.push(medication(ctx, CODES.metformin, 'med-1'));
  const hba1c = [0, 1, 2, 3][rng.weighted([12, 28, 35, 25])] as number;
  for (let k = 0; k < hba1c; k++) {
    const w = ctx.where(0.3);
    resources.push(
      observation(ctx, CODES.hba1c, `hba1c-${k}`, inPeriod(ctx), w.ref, w.s, {
        value: 5.8 + rng.int(0, 40) / 10,
        unit: '%',
      }),
    );
  }
}

/** Flu vaccination, breast and colorectal screening. */
function prevention(ctx: FactContext, f: PersonFacts): void {
  const { rng, resources } = ctx;
  yearlyPrevention(ctx, f);
  if (f.sex === 'female' && f.age >= 50 && f.age <= 74 && rng.chance(0.48)) {
    resources.push(procedure(ctx, CODES.screeningMammography, 'mammo', daysBack(ctx, 725)));
  }
  if (f.age >= 50 && f.age <= 74) {
    if (rng.chance(0.09)) {
      resources.push(procedure(ctx, CODES.colonoscopy, 'colono', daysBack(ctx, 1800)));
    } else if (rng.chance(0.32)) {
      resources.push(
        observation(ctx, CODES.fit, 'fit', daysBack(ctx, 725), ctx.patientRef, ctx.structure, undefined, {
          system: 'http://snomed.info/sct',
          code: '260385009',
          display: 'Negative',
        }),
      );
    }
  }
}

/** The flu vaccination of one campaign (age as today: a year back, a few were a year younger). */
function yearlyPrevention(ctx: FactContext, f: PersonFacts): void {
  const adult = f.age >= 16;
  const flu = f.age >= 75 ? 0.6 : f.age >= 65 ? 0.5 : adult && f.atRisk ? 0.33 : adult ? 0.04 : 0;
  if (ctx.rng.chance(flu)) {
    const w = ctx.where(0.5);
    ctx.resources.push(immunization(ctx.id('flu'), CODES.fluVaccine, fluDate(ctx), w.ref, w.s.ref));
  }
}

/** Primary-care visits (the file active) and hospital stays with their follow-up. */
function careUse(ctx: FactContext, layout: Layout, f: PersonFacts): void {
  const { rng, resources } = ctx;
  const seen = rng.chance(f.age >= 65 ? 0.9 : 0.78);
  const visits = seen ? 1 + Math.min(9, rng.poisson(f.age >= 75 ? 5 : f.age >= 65 ? 3.5 : f.age < 16 ? 2 : 1.8)) : 0;
  for (let k = 0; k < visits; k++) {
    const w = ctx.where(0.3);
    resources.push(
      visit(
        ctx,
        `visit-${k}`,
        `${inPeriod(ctx)}T${String(rng.int(8, 18)).padStart(2, '0')}:${rng.pick(['00', '20', '40'])}:00Z`,
        w.ref,
        w.s,
      ),
    );
  }
  const stays = rng.chance(f.age >= 75 ? 0.2 : f.age >= 65 ? 0.12 : f.age >= 16 ? 0.06 : 0.04)
    ? rng.chance(0.15)
      ? 2
      : 1
    : 0;
  for (let k = 0; k < stays; k++) {
    hospitalStay(ctx, layout, k);
  }
  f.stays += stays;
}

/** Prevalences by age (treated type 2 diabetes ~5 % overall; the chronic conditions of the flu at-risk list). */
function conditionRates(age: number): {
  diabetes: number;
  asthma: number;
  copd: number;
  heartFailure: number;
  ckd: number;
} {
  return {
    diabetes:
      age < 20
        ? 0.002
        : age < 40
          ? 0.01
          : age < 50
            ? 0.035
            : age < 60
              ? 0.07
              : age < 70
                ? 0.12
                : age < 80
                  ? 0.15
                  : 0.13,
    asthma: age < 16 ? 0.08 : 0.055,
    copd: age < 40 ? 0 : age < 65 ? 0.03 : 0.07,
    heartFailure: age < 50 ? 0.001 : age < 65 ? 0.008 : age < 75 ? 0.03 : 0.08,
    ckd: age < 50 ? 0.002 : age < 65 ? 0.02 : 0.06,
  };
}

function addressOf(layout: Layout, commune: number, number: number): NonNullable<Patient['address']>[number] {
  const c = layout.communes[commune] as Layout['communes'][number];
  const ext: Extension = {
    url: INSEE_CODE_EXTENSION,
    valueCoding: { system: COMMUNE_CODES, code: c.insee, display: c.name },
  };
  return {
    use: 'home',
    line: [`${number} rue de la République`],
    city: c.name,
    postalCode: c.postalCode,
    country: 'FR',
    extension: [ext],
  };
}

/**
 * How to reach the person, the same on each of its records: a mobile number of the range ARCEP
 * keeps for fiction (06 39 98 xx xx) for ~85 %, an e-mail at example.org for ~40 %. Drawn from a
 * hash of the person, not its random stream, so the other draws stay as they were.
 */
function telecomOf(layout: Layout, d: Drawn): Pick<Patient, 'telecom'> {
  const h = nameUuid(`${layout.ns}|p${d.facts.index}|telecom`).replace(/-/g, '');
  const n = parseInt(h.slice(0, 8), 16);
  const telecom: NonNullable<Patient['telecom']> = [];
  if (n % 100 < 85) {
    const digits = String(n % 10_000).padStart(4, '0');
    telecom.push({ system: 'phone', use: 'mobile', value: `06 39 98 ${digits.slice(0, 2)} ${digits.slice(2)}` });
  }
  if ((n >>> 8) % 100 < 40) {
    const plain = (t: string): string =>
      t
        .normalize('NFD')
        .replace(/[\u0300-\u036f]/g, '')
        .toLowerCase()
        .replace(/[^a-z]+/g, '-');
    telecom.push({
      system: 'email',
      value: `${plain(d.name.given)}.${plain(d.name.family)}.${d.facts.index}@example.org`,
    });
  }
  return telecom.length > 0 ? { telecom } : {};
}

/** A test INS-NIR: sex, birth year and month, birth department, then commune and order numbers unique per person index. */
function nir(sex: 'male' | 'female', birthDate: string, dept: string, index: number): string {
  const commune = String(1 + (Math.floor(index / 999) % 990)).padStart(3, '0');
  const order = String(1 + (index % 999)).padStart(3, '0');
  const first13 = `${sex === 'male' ? 1 : 2}${birthDate.slice(2, 4)}${birthDate.slice(5, 7)}${dept}${commune}${order}`;
  return first13 + nirKey(first13);
}
