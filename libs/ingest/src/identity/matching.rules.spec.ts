import type { Patient } from '@medplum/fhirtypes';
import { nirKey } from '@gw/fhir';
import type { PatientTraits } from '../intake/extraction';
import { compareTraits, decideMatch, normaliseTrait, usableIns } from './matching.rules';
import type { Candidate, Found } from './matching.rules';

const nir = (first13: string): string => `${first13}${nirKey(first13)}`;
const NIR_A = nir('2790363220004');
const NIR_B = nir('1620311004017');
const BAD_KEY = `2790363220004${nirKey('2790363220004') === '90' ? '91' : '90'}`;
const TEST_NIR = '1.2.250.1.213.1.4.10';
const NIA = nir('3790363220004');
const BIRTH_PLACE = 'http://hl7.org/fhir/StructureDefinition/patient-birthPlace';
const INSEE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code';

const incoming: PatientTraits = {
  ins: { value: NIR_A, oid: TEST_NIR },
  identifiers: [{ system: 'urn:lgc', value: '42' }],
  birthFamily: "D'ARC-LÉGER",
  given: ['Jean-François', 'Marie'],
  sex: 'male',
  birthDate: '1962-03-11',
  birthPlace: '63113',
};

function patient(
  id: string,
  over: Partial<Patient> & { family?: string; given?: string; place?: string } = {},
): Candidate {
  const { family = 'D ARC LEGER', given = 'JEAN FRANCOIS', place, ...rest } = over;
  return {
    id,
    patient: {
      resourceType: 'Patient',
      name: [
        { use: 'usual', family: 'MARTIN' },
        { use: 'official', family, given: [given] },
      ],
      gender: 'male',
      birthDate: '1962-03-11',
      ...(place
        ? {
            extension: [
              { url: BIRTH_PLACE, valueAddress: { extension: [{ url: INSEE, valueCoding: { code: place } }] } },
            ],
          }
        : {}),
      ...rest,
    },
  };
}
const withIns = (id: string, value: string, oid = TEST_NIR): Candidate =>
  patient(id, { identifier: [{ use: 'official', system: `urn:oid:${oid}`, value }] });
const none: Found = { byIns: [], byLocal: [] };

describe('normaliseTrait', () => {
  it.each([
    ["D'ARC-LÉGER", 'd arc leger'],
    ['  Jean  -  François ', 'jean francois'],
    ['CŒURDEROY', 'coeurderoy'],
    ['Lætitia', 'laetitia'],
    ['O’NEIL', 'o neil'],
  ])('%s → %s', (raw, expected) => {
    expect(normaliseTrait(raw)).toBe(expected);
  });
  it('an empty or blank trait is no trait', () => {
    expect(normaliseTrait(' - ')).toBeUndefined();
    expect(normaliseTrait(undefined)).toBeUndefined();
  });
});

describe('usableIns', () => {
  it('takes a NIR or NIA with a valid key, test OIDs included, with or without urn:oid:', () => {
    expect(usableIns({ value: NIR_A, oid: '1.2.250.1.213.1.4.8' })).toEqual({
      system: 'urn:oid:1.2.250.1.213.1.4.8',
      value: NIR_A,
    });
    expect(usableIns({ value: NIR_A, oid: `urn:oid:${TEST_NIR}` })?.system).toBe(`urn:oid:${TEST_NIR}`);
    expect(usableIns({ value: NIA, oid: '1.2.250.1.213.1.4.9' })).toBeDefined();
  });
  it('never an INS whose key is wrong, nor an identifier of another system', () => {
    expect(usableIns({ value: BAD_KEY, oid: TEST_NIR })).toBeUndefined();
    expect(usableIns({ value: NIR_A, oid: '1.2.250.1.71.4.2.1' })).toBeUndefined();
  });
});

describe('compareTraits', () => {
  const record = (c: Candidate): PatientTraits => ({
    identifiers: [],
    birthFamily: c.patient.name?.find((n) => n.use === 'official')?.family,
    given: c.patient.name?.find((n) => n.use === 'official')?.given,
    sex: c.patient.gender,
    birthDate: c.patient.birthDate,
    birthPlace: (c.patient.extension?.[0]?.valueAddress?.extension?.[0]?.valueCoding?.code as string) ?? undefined,
  });
  it.each<[string, Candidate, 'exact' | 'partial' | 'different']>([
    ['accents, case, hyphens and apostrophes differ only', patient('p'), 'exact'],
    ['same birth place', patient('p', { place: '63113' }), 'exact'],
    ['another birth place', patient('p', { place: '75056' }), 'partial'],
    ['another first given name (a twin)', patient('p', { given: 'PIERRE' }), 'partial'],
    ['another birth name (married name sent as birth name)', patient('p', { family: 'DUPONT' }), 'partial'],
    ['another birth date', patient('p', { birthDate: '1962-03-12' }), 'partial'],
    ['another sex', patient('p', { gender: 'female' }), 'partial'],
    ['only the birth date in common', patient('p', { family: 'DUPONT', given: 'PIERRE' }), 'different'],
  ])('%s → %s', (_what, c, grade) => {
    expect(compareTraits(incoming, record(c))).toBe(grade);
  });
  it('an incoming identity without sex or birth date is never exact', () => {
    const r = record(patient('p'));
    expect(compareTraits({ ...incoming, sex: undefined }, r)).toBe('partial');
    expect(compareTraits({ ...incoming, birthDate: undefined }, r)).toBe('partial');
  });
});

describe('decideMatch: the rule table', () => {
  const traitsOnly = { ...incoming, ins: undefined, identifiers: [] };
  it.each<[string, PatientTraits, Found, unknown]>([
    [
      'INS finds one',
      incoming,
      { byIns: [withIns('a', NIR_A)], byLocal: [] },
      { kind: 'matched', patientId: 'a', rule: 'ins' },
    ],
    [
      'INS and local identifier agree',
      incoming,
      { byIns: [withIns('a', NIR_A)], byLocal: [withIns('a', NIR_A)] },
      { kind: 'matched', patientId: 'a', rule: 'ins' },
    ],
    [
      'INS and local identifier designate two patients',
      incoming,
      { byIns: [withIns('a', NIR_A)], byLocal: [patient('b')] },
      { kind: 'review', reason: 'ins-local-conflict', candidates: ['a', 'b'] },
    ],
    [
      'INS finds several',
      incoming,
      { byIns: [withIns('a', NIR_A), withIns('b', NIR_A)], byLocal: [] },
      { kind: 'review', reason: 'ins-several', candidates: ['a', 'b'] },
    ],
    [
      'local identifier finds one without INS',
      incoming,
      { byIns: [], byLocal: [patient('b')] },
      { kind: 'matched', patientId: 'b', rule: 'local-identifier' },
    ],
    [
      'local identifier finds one holding another NIR',
      incoming,
      { byIns: [], byLocal: [withIns('b', NIR_B)] },
      { kind: 'review', reason: 'ins-conflict', candidates: ['b'] },
    ],
    [
      'a NIA on the record is no conflict with an incoming NIR',
      incoming,
      { byIns: [], byLocal: [withIns('b', NIA, '1.2.250.1.213.1.4.9')] },
      { kind: 'matched', patientId: 'b', rule: 'local-identifier' },
    ],
    [
      'local identifier finds several',
      incoming,
      { byIns: [], byLocal: [patient('b'), patient('c')] },
      { kind: 'review', reason: 'local-several', candidates: ['b', 'c'] },
    ],
    [
      'one exact on traits (a partial twin next to it)',
      traitsOnly,
      { ...none, byTraits: [patient('t'), patient('twin', { given: 'PIERRE' })] },
      { kind: 'matched', patientId: 't', rule: 'traits' },
    ],
    [
      'two exact on traits',
      traitsOnly,
      { ...none, byTraits: [patient('t1'), patient('t2')] },
      { kind: 'review', reason: 'traits-several', candidates: ['t1', 't2'] },
    ],
    [
      'only a partial on traits',
      traitsOnly,
      { ...none, byTraits: [patient('t', { given: 'PIERRE' }), patient('x', { family: 'X', given: 'Y' })] },
      { kind: 'review', reason: 'traits-partial', candidates: ['t'] },
    ],
    [
      'exact traits but the record holds another NIR (never merged)',
      incoming,
      { ...none, byTraits: [withIns('t', NIR_B)] },
      { kind: 'review', reason: 'ins-conflict', candidates: ['t'] },
    ],
    ['nothing found', incoming, { ...none, byTraits: [patient('x', { family: 'X', given: 'Y' })] }, { kind: 'none' }],
    ['no traits step for this caller (HL7 feed)', traitsOnly, none, { kind: 'none' }],
    [
      'an INS with a wrong key conflicts with nothing',
      { ...incoming, ins: { value: BAD_KEY, oid: TEST_NIR } },
      { byIns: [], byLocal: [withIns('b', NIR_B)] },
      { kind: 'matched', patientId: 'b', rule: 'local-identifier' },
    ],
  ])('%s', (_what, traits, found, expected) => {
    expect(decideMatch(traits, found)).toEqual(expected);
  });
});
